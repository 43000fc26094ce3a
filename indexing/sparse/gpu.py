"""Batch search on a GPU: a CUDA kernel (numba.cuda) scores a batch of queries against the whole index.

The index's arrays are copied to the GPU once. For a batch of queries, every
(query, term) pair is a row of the launch grid; its threads walk that term's
postings and atomically add ``query weight x document weight`` into a dense
``batch x documents`` score matrix. Top-k then selects on 64-bit keys that
order by score descending and document number ascending, the CPU kernel's rule,
so both return the same documents (scores agree to float rounding: atomic
additions are not ordered). Without a GPU the same kernel runs under Numba's
CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), which is how the tests check it on CPU.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

if not hasattr(np, "row_stack"):  # numba-cuda (<= 0.30) overloads np.row_stack, which NumPy 2.4 removed
    np.row_stack = np.vstack

from numba import cuda  # noqa: E402 - after the NumPy alias above
from numba.core import config  # noqa: E402

from indexing.sparse.format import SparseIndex

THREADS = 256
POSTINGS_PER_BLOCK = 4 * THREADS


@cuda.jit
def _zero(scores):  # noqa: ANN001 - device arrays
    i = cuda.grid(1)
    if i < scores.size:
        scores.flat[i] = 0.0  # pragma: no cover - runs on the device


@cuda.jit
def _accumulate(chunk_pair, chunk_first, chunk_last, rows, weights, docs, codes, table, scores):  # noqa: ANN001
    chunk = cuda.blockIdx.x
    pair = chunk_pair[chunk]
    row = rows[pair]
    weight = weights[pair]
    for p in range(chunk_first[chunk] + cuda.threadIdx.x, chunk_last[chunk], cuda.blockDim.x):
        cuda.atomic.add(scores, (row, docs[p]), weight * table[codes[p]])  # pragma: no cover - device code


def _chunks(terms: np.ndarray, offsets: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split every (query, term) pair's postings into blocks of at most ``POSTINGS_PER_BLOCK``.

    One launch row per block of real work: a grid sized by the longest list would launch mostly
    idle blocks, since posting lengths span five orders of magnitude.
    """
    start = offsets[terms]
    end = offsets[terms + 1]
    if budget > 0:
        end = np.minimum(end, start + budget)
    counts = -(-(end - start) // POSTINGS_PER_BLOCK)
    pair = np.repeat(np.arange(len(terms), dtype=np.int32), counts)
    within = np.arange(len(pair), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    first = start[pair] + within * POSTINGS_PER_BLOCK
    return pair, first, np.minimum(first + POSTINGS_PER_BLOCK, end[pair])


def _top_k_host(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    docs = np.zeros((len(scores), k), dtype=np.int32)
    best = np.zeros((len(scores), k), dtype=np.float32)
    sizes = np.zeros(len(scores), dtype=np.int64)
    for row, values in enumerate(scores):
        hits = np.flatnonzero(values > 0)
        order = hits[np.lexsort((hits, -values[hits]))][:k]
        docs[row, : len(order)], best[row, : len(order)], sizes[row] = order, values[order], len(order)
    return docs, best, sizes


def _top_k_device(scores, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # noqa: ANN001
    import torch

    values = torch.as_tensor(scores, device="cuda")
    n = values.shape[1]
    # non-negative float32 bits order like the floats; the low half prefers lower document numbers
    keys = (values.view(torch.int32).to(torch.int64) << 32) | (n - 1 - torch.arange(n, device="cuda"))
    top = keys.topk(min(k, n), dim=1).values
    found = (top >> 32).to(torch.int32).view(torch.float32)
    docs = (n - 1 - (top & 0xFFFFFFFF)).to(torch.int32)
    sizes = (found > 0).sum(dim=1)
    out_docs = np.zeros((len(values), k), dtype=np.int32)
    out_scores = np.zeros((len(values), k), dtype=np.float32)
    width = min(k, n)
    out_docs[:, :width] = torch.where(found > 0, docs, 0).cpu().numpy()
    out_scores[:, :width] = found.clamp(min=0).cpu().numpy()
    return out_docs, out_scores, sizes.cpu().numpy().astype(np.int64)


class GpuSearcher:
    """Batch top-k on the GPU with the same interface and results as :class:`indexing.sparse.search.Searcher`."""

    def __init__(self, index: SparseIndex, batch_size: int = 64) -> None:
        self.index = index
        self.batch_size = batch_size
        self.docs = cuda.to_device(np.ascontiguousarray(index.docs))
        self.codes = cuda.to_device(np.ascontiguousarray(index.codes))
        self.table = cuda.to_device(index.codebook)
        self._host_offsets = np.asarray(index.offsets)

    def search(self, queries: sp.csr_matrix, k: int = 10, budget: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        queries = sp.csr_matrix(queries, dtype=np.float32)
        if queries.shape[1] != self.index.meta.vocab_size:
            raise ValueError(f"queries have {queries.shape[1]} dimensions, the index {self.index.meta.vocab_size}")
        if np.any(queries.data < 0):
            raise ValueError("query weights must be non-negative")
        parts = [
            self._batch(queries[s : s + self.batch_size], k, budget)
            for s in range(0, queries.shape[0], self.batch_size)
        ]
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]

    def _batch(self, queries: sp.csr_matrix, k: int, budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = np.repeat(np.arange(queries.shape[0], dtype=np.int32), np.diff(queries.indptr))
        scores = cuda.device_array((queries.shape[0], self.index.num_docs), dtype=np.float32)
        _zero[math.ceil(scores.size / THREADS), THREADS](scores)
        pair, first, last = _chunks(queries.indices, self._host_offsets, budget)
        if len(pair):
            _accumulate[len(pair), THREADS](
                cuda.to_device(pair),
                cuda.to_device(first),
                cuda.to_device(last),
                cuda.to_device(rows),
                cuda.to_device(queries.data),
                self.docs,
                self.codes,
                self.table,
                scores,
            )
        if config.ENABLE_CUDASIM:
            return _top_k_host(scores.copy_to_host(), k)
        return _top_k_device(scores, k)
