"""Batch search on a GPU: CUDA kernels (numba.cuda) score a batch of queries against the whole index.

Two strategies, same results. ``postings`` (term-at-a-time): every block of a
(query, term) pair's postings is a block of the launch grid whose threads
atomically add ``query weight x document weight`` into a dense ``batch x
documents`` score matrix; it reads only the query terms' postings, but each
posting is a scattered read-modify-write in a matrix far larger than the cache.
``forward`` (document-at-a-time): one warp per document walks the document's
terms in the forward index, looks each up in the batch's query terms, and
accumulates the batch's scores in shared memory, then writes each score once; it
reads the whole forward index per batch, so larger batches amortise it, and has
no atomics. Top-k then selects on 64-bit keys that
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
WARPS = THREADS // 32
MAX_FORWARD_BATCH = 32


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
        cuda.atomic.add(scores, (row, docs[p]), weight * table[codes[p]])


@cuda.jit
def _forward_scores(indptr, terms, codes, table, slot_of_term, slot_ptr, slot_query, slot_weight, scores):  # noqa: ANN001
    # per warp, per query, per lane: lanes are the fastest axis, so accumulation is free of bank conflicts
    partial = cuda.shared.array((WARPS, MAX_FORWARD_BATCH, 32), dtype=np.float32)
    group = cuda.threadIdx.x // 32
    lane = cuda.threadIdx.x % 32
    n_queries = scores.shape[0]
    # every warp of a block runs the same number of rounds, so the block can synchronise in each
    for base in range(cuda.blockIdx.x * WARPS, scores.shape[1], cuda.gridDim.x * WARPS):
        doc = base + group
        if doc < scores.shape[1]:
            for b in range(n_queries):
                partial[group, b, lane] = 0.0
            for p in range(indptr[doc] + lane, indptr[doc + 1], 32):
                slot = slot_of_term[terms[p]]
                if slot >= 0:
                    weight = table[codes[p]]
                    for j in range(slot_ptr[slot], slot_ptr[slot + 1]):
                        partial[group, slot_query[j], lane] += weight * slot_weight[j]
        cuda.syncthreads()
        if doc < scores.shape[1] and lane < n_queries:
            total = np.float32(0.0)
            for step in range(32):  # diagonal order: the lanes read 32 different banks
                total += partial[group, lane, (step + lane) % 32]
            scores[lane, doc] = total
        cuda.syncthreads()


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

    def __init__(self, index: SparseIndex, batch_size: int = 64, strategy: str = "postings") -> None:
        if strategy not in ("postings", "forward"):
            raise ValueError(f"strategy must be postings or forward, not {strategy!r}")
        self.index = index
        self.strategy = strategy
        self.batch_size = min(batch_size, MAX_FORWARD_BATCH) if strategy == "forward" else batch_size
        self.table = cuda.to_device(index.codebook)
        if strategy == "postings":
            self.docs = cuda.to_device(np.ascontiguousarray(index.docs))
            self.codes = cuda.to_device(np.ascontiguousarray(index.codes))
            self._host_offsets = np.asarray(index.offsets)
        else:
            self.fwd_indptr = cuda.to_device(np.ascontiguousarray(index.forward_indptr))
            self.fwd_terms = cuda.to_device(np.ascontiguousarray(index.forward_terms))
            self.fwd_codes = cuda.to_device(np.ascontiguousarray(index.forward_codes))

    def search(self, queries: sp.csr_matrix, k: int = 10, budget: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        queries = sp.csr_matrix(queries, dtype=np.float32)
        if queries.shape[1] != self.index.meta.vocab_size:
            raise ValueError(f"queries have {queries.shape[1]} dimensions, the index {self.index.meta.vocab_size}")
        if np.any(queries.data < 0):
            raise ValueError("query weights must be non-negative")
        if budget and self.strategy == "forward":
            raise ValueError("a posting budget needs the postings strategy")
        parts = [
            self._batch(queries[s : s + self.batch_size], k, budget)
            for s in range(0, queries.shape[0], self.batch_size)
        ]
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]

    def _batch(self, queries: sp.csr_matrix, k: int, budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.select(self.score(queries, budget), k)

    def score(self, queries: sp.csr_matrix, budget: int = 0):  # noqa: ANN201 - a device array
        """The dense ``batch x documents`` score matrix of one batch of queries, on the device."""
        scores = cuda.device_array((queries.shape[0], self.index.num_docs), dtype=np.float32)
        if self.strategy == "forward":
            self._forward(queries, scores)
        else:
            self._postings(queries, budget, scores)
        return scores

    @staticmethod
    def select(scores, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # noqa: ANN001 - a device array
        """Top ``k`` documents, scores and hit counts of each row of a device score matrix."""
        if config.ENABLE_CUDASIM:
            return _top_k_host(scores.copy_to_host(), k)
        return _top_k_device(scores, k)

    def _postings(self, queries: sp.csr_matrix, budget: int, scores) -> None:  # noqa: ANN001 - a device array
        rows = np.repeat(np.arange(queries.shape[0], dtype=np.int32), np.diff(queries.indptr))
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

    def _forward(self, queries: sp.csr_matrix, scores) -> None:  # noqa: ANN001 - a device array
        used = np.unique(queries.indices)
        if not len(used):
            _zero[math.ceil(scores.size / THREADS), THREADS](scores)
            return
        slot_of_term = np.full(queries.shape[1], -1, dtype=np.int32)
        slot_of_term[used] = np.arange(len(used), dtype=np.int32)
        by_term = queries[:, used].tocsc()  # for each used term, the queries that have it and their weights
        blocks = max(1, min(math.ceil(self.index.num_docs / WARPS), 16384))
        _forward_scores[blocks, THREADS](
            self.fwd_indptr,
            self.fwd_terms,
            self.fwd_codes,
            self.table,
            cuda.to_device(slot_of_term),
            cuda.to_device(by_term.indptr.astype(np.int64)),
            cuda.to_device(by_term.indices.astype(np.int32)),
            cuda.to_device(by_term.data.astype(np.float32)),
            scores,
        )
