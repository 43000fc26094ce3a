"""Batch search on a GPU: CUDA kernels (numba.cuda) score a batch of queries against the whole index.

Three strategies, same results. ``tiles`` (the default, exact search): one block per (query, tile of
8,192 documents) of the tiled postings (:mod:`lsr.indexing.sparse.tiles`) adds the query's terms' segments
into the tile's scores in shared memory, term by term in query order, then keeps the tile's best ``k``
(a threshold that ``k`` documents reach, then an exact ranking of the few above it); only those
candidates reach global memory, and one ``topk`` over them per query finishes. It reads each query
posting once, 4 bytes each, and blocks of the same tile for different queries run side by side, so
segments of shared terms come from L2.
``postings`` (term-at-a-time, and the only one that takes a posting budget): every block of a (query,
term) pair's postings atomically adds into a dense ``batch x documents`` score matrix, a scattered
read-modify-write per posting. ``forward`` (document-at-a-time): one warp per document walks the
forward index, looks each term up in the batch's query terms and accumulates in shared memory; it reads
the whole forward index per batch. The two dense-matrix kernels end with a top-k over the matrix.
Every selection orders by score descending, then document number ascending, the CPU kernel's rule, so
all return the same documents (scores agree to float rounding). Without a GPU the same kernels run under
Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), which is how the tests check them on CPU.

Filters (``allow``, :mod:`lsr.indexing.filters`) go to the device as a byte per document: the tiles kernel zeroes
the scores of excluded documents in shared memory before its selection, the dense-matrix kernels' score rows are
zeroed there before the top-k. Zero, not minus infinity: every selection takes positive scores only as hits, and
the device top-k's keys order non-negative float bits.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.sparse as sp

if not hasattr(np, "row_stack"):  # numba-cuda (<= 0.30) overloads np.row_stack, which NumPy 2.4 removed
    np.row_stack = np.vstack

from lsr.indexing.filters import check_allow
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.tiles import TILE, build_tiles
from numba import cuda  # noqa: E402 - after the NumPy alias above
from numba.core import config  # noqa: E402

THREADS = 256
POSTINGS_PER_BLOCK = 4 * THREADS
WARPS = THREADS // 32
MAX_FORWARD_BATCH = 32
MAX_TILE_K = 16  # a tile's THREADS lists of this many (score, document) fit in its spent score array
LISTS = THREADS * MAX_TILE_K  # shared-array sizes must be module constants, not expressions
CANDIDATES = 2 * THREADS  # a tile's documents ranked exactly at the end (above it: merge per-thread lists)


@cuda.jit
def _zero(scores):  # noqa: ANN001 - device arrays
    i = cuda.grid(1)
    if i < scores.size:
        scores.flat[i] = 0.0  # pragma: no cover - runs on the device


@cuda.jit
def _drop(scores, allow):  # noqa: ANN001 - device arrays
    """Zero the scores of the documents a filter excludes, in every row of a score matrix."""
    doc, row = cuda.grid(2)
    if row < scores.shape[0] and doc < scores.shape[1] and not allow[doc]:
        scores[row, doc] = 0.0  # pragma: no cover - runs on the device


@cuda.jit
def _accumulate(chunk_pair, chunk_first, chunk_last, rows, weights, docs, codes, table, scores):  # noqa: ANN001
    chunk = cuda.blockIdx.x
    pair = chunk_pair[chunk]
    row = rows[pair]
    weight = weights[pair]
    for p in range(chunk_first[chunk] + cuda.threadIdx.x, chunk_last[chunk], cuda.blockDim.x):
        cuda.atomic.add(scores, (row, docs[p]), weight * table[codes[p]])


@cuda.jit(device=True, inline=True)
def _better(score_a, doc_a, score_b, doc_b):  # noqa: ANN001, ANN202
    return score_a > score_b or (score_a == score_b and doc_a < doc_b)


@cuda.jit(device=True, inline=True)
def _add_segment(local, docs, values, weight, p, end):  # noqa: ANN001, ANN202
    """Add one (tile, term) segment into the tile's scores, four postings in flight per thread.

    A document occurs once per term, so no two threads add to the same score here, and the four loads
    issued before the four updates hide memory latency that a one-posting loop would wait out.
    """
    while p + 3 * THREADS < end:
        d0, d1, d2, d3 = docs[p], docs[p + THREADS], docs[p + 2 * THREADS], docs[p + 3 * THREADS]
        w0, w1 = np.float32(values[p]), np.float32(values[p + THREADS])
        w2, w3 = np.float32(values[p + 2 * THREADS]), np.float32(values[p + 3 * THREADS])
        local[d0] += weight * w0
        local[d1] += weight * w1
        local[d2] += weight * w2
        local[d3] += weight * w3
        p += 4 * THREADS
    if p < end:  # at most three left: their loads too are issued before any update
        d0, d1, d2 = docs[p], docs[p], docs[p]
        w0, w1, w2 = np.float32(values[p]), np.float32(0.0), np.float32(0.0)
        if p + THREADS < end:
            d1, w1 = docs[p + THREADS], np.float32(values[p + THREADS])
        if p + 2 * THREADS < end:
            d2, w2 = docs[p + 2 * THREADS], np.float32(values[p + 2 * THREADS])
        local[d0] += weight * w0
        if p + THREADS < end:
            local[d1] += weight * w1
        if p + 2 * THREADS < end:
            local[d2] += weight * w2


@cuda.jit(device=True, inline=True)
def _merge_lists(local, tid, size, k, query, tile, first, out_scores, out_docs):  # noqa: ANN001, ANN202
    """The tile's best ``k`` by merging every thread's own best ``k``: exact whatever the scores, but its lists
    live in local memory and half its threads idle at each merge round, so it only serves tiles whose ties
    put more than ``CANDIDATES`` documents at or above the threshold of :func:`_tile_top_py`."""
    best = cuda.local.array(MAX_TILE_K, dtype=np.float32)
    best_doc = cuda.local.array(MAX_TILE_K, dtype=np.int32)
    for j in range(k):
        best[j] = -1.0
        best_doc[j] = TILE  # past the tile: an empty slot sorts last
    for d in range(tid, size, THREADS):  # each thread's best k of its documents, best first
        score = local[d]
        if score > 0.0 and _better(score, d, best[k - 1], best_doc[k - 1]):
            j = k - 1
            while j > 0 and _better(score, d, best[j - 1], best_doc[j - 1]):
                best[j] = best[j - 1]
                best_doc[j] = best_doc[j - 1]
                j -= 1
            best[j] = score
            best_doc[j] = d
    cuda.syncthreads()
    # the score array is spent: its first half holds the threads' lists' scores, its second half their
    # documents' offsets in the tile (below 8,192, so exact as floats)
    for j in range(k):
        local[tid * MAX_TILE_K + j] = best[j]
        local[LISTS + tid * MAX_TILE_K + j] = best_doc[j]
    cuda.syncthreads()
    stride = THREADS // 2
    while stride > 0:  # tree merge: thread t keeps the best k of its list and list t + stride
        if tid < stride:
            a, b = tid * MAX_TILE_K, (tid + stride) * MAX_TILE_K
            for j in range(k):
                if _better(local[b], local[LISTS + b], local[a], local[LISTS + a]):
                    best[j], best_doc[j] = local[b], np.int32(local[LISTS + b])
                    b += 1
                else:
                    best[j], best_doc[j] = local[a], np.int32(local[LISTS + a])
                    a += 1
            for j in range(k):
                local[tid * MAX_TILE_K + j] = best[j]
                local[LISTS + tid * MAX_TILE_K + j] = best_doc[j]
        cuda.syncthreads()
        stride //= 2
    if tid < k:
        out_scores[query, tile, tid] = local[tid]
        out_docs[query, tile, tid] = first + np.int32(local[LISTS + tid])


def _tile_top_py(q_indptr, q_terms, q_weights, offsets, docs, values, n_docs, k, out_scores, out_docs, allow):  # noqa: ANN001
    # block (query, tile): the tile's scores in shared memory, then its top k of the documents allow allows (all when
    # it is empty) into out_*[query, tile]
    local = cuda.shared.array(TILE, dtype=np.float32)
    found_scores = cuda.shared.array(CANDIDATES, dtype=np.float32)
    found_docs = cuda.shared.array(CANDIDATES, dtype=np.int32)
    warp_floor = cuda.shared.array(WARPS, dtype=np.float32)
    found = cuda.shared.array(1, dtype=np.int32)
    query, tile = cuda.blockIdx.x, cuda.blockIdx.y
    tid = cuda.threadIdx.x
    first = tile * TILE
    for d in range(tid, TILE, THREADS):
        local[d] = 0.0
    cuda.syncthreads()
    row = tile * (offsets.shape[0] // cuda.gridDim.y)
    begin, stop = q_indptr[query], q_indptr[query + 1]
    next_start, next_end = np.int64(0), np.int64(0)
    if begin < stop:
        next_start, next_end = offsets[row + q_terms[begin]], offsets[row + q_terms[begin] + 1]
    for i in range(begin, stop):  # terms in query order, the order the CPU kernel adds in
        start, end = next_start, next_end
        if i + 1 < stop:  # the next term's segment bounds, loaded while this term's postings are added
            next_start, next_end = offsets[row + q_terms[i + 1]], offsets[row + q_terms[i + 1] + 1]
        if end > start:  # the same for every thread, so the barrier inside is safe
            _add_segment(local, docs, values, q_weights[i], start + tid, end)
            cuda.syncthreads()
    cuda.syncthreads()
    size = min(TILE, n_docs - first)
    if allow.size:  # the same for every thread, so the barrier inside is safe: excluded documents score nothing
        for d in range(tid, size, THREADS):
            if not allow[first + d]:
                local[d] = 0.0
        cuda.syncthreads()
    # Selection by threshold: each thread's best document; the k-th best of a warp's 32 is a score that k
    # documents of the tile reach, so no document below the highest such floor is in the tile's top k.
    # The few at or above it are ranked exactly; registers and shared memory only, where merging per-thread
    # lists (local memory) took two thirds of the kernel's time (H100, 8.8M documents, eval/RESULTS.md).
    top, top_doc = np.float32(-1.0), np.int32(TILE + tid)  # none: below any score, past the tile, unique
    for d in range(tid, size, THREADS):  # ascending, so the lowest document keeps a tied best
        if local[d] > top and local[d] > 0.0:
            top, top_doc = local[d], d
    found_scores[tid], found_docs[tid] = top, top_doc
    if tid == 0:
        found[0] = 0
    cuda.syncthreads()
    lane0 = tid - tid % 32
    rank = 0
    for j in range(lane0, lane0 + 32):
        if _better(found_scores[j], found_docs[j], top, top_doc):
            rank += 1
    if rank == k - 1:  # the 32 are distinct, so exactly one thread of each warp has this rank
        warp_floor[tid // 32] = top
    cuda.syncthreads()
    floor = warp_floor[0]
    for w in range(1, WARPS):
        floor = max(floor, warp_floor[w])
    for d in range(tid, size, THREADS):
        score = local[d]
        if score > 0.0 and score >= floor:
            slot = cuda.atomic.add(found, 0, 1)
            if slot < CANDIDATES:
                found_scores[slot], found_docs[slot] = score, d
    cuda.syncthreads()
    n_found = found[0]
    if n_found > CANDIDATES:  # the same for every thread: the merge's barriers are safe
        _merge_lists(local, tid, size, k, query, tile, first, out_scores, out_docs)
        return
    for i in range(tid, n_found, THREADS):  # a candidate's place is the number of candidates better than it
        score, d = found_scores[i], found_docs[i]
        place = 0
        for j in range(n_found):
            if _better(found_scores[j], found_docs[j], score, d):
                place += 1
        if place < k:
            out_scores[query, tile, place] = score
            out_docs[query, tile, place] = first + d
    if n_found <= tid < k:  # fewer candidates than k: empty slots sort last
        out_scores[query, tile, tid] = -1.0
        out_docs[query, tile, tid] = first + TILE


_tile_top = cuda.jit(_tile_top_py)


@functools.cache
def _tiles_kernel(registers: int | None):  # noqa: ANN202 - a CUDA kernel
    """The tiles kernel, compiled with at most ``registers`` per thread (None: as many as the compiler wants).

    Occupancy is what a cap buys: a block is 256 threads with about 37 KB of shared memory, so an H100 SM
    holds 6 of them, and 40 registers per thread still allow 6; every register above that costs resident
    blocks, hence loads in flight. Below what the kernel needs, registers spill to local memory. Measured on
    an H100 (eval/RESULTS.md): uncapped it uses 40 (32 before its threshold selection, when no cap made it
    faster either), so shared memory bounds its occupancy; the option stays for timing that on other cards.
    The simulator has no registers, so it runs the uncapped kernel.
    """
    if registers is None or config.ENABLE_CUDASIM:
        return _tile_top
    return cuda.jit(max_registers=registers)(_tile_top_py)


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


def _top_k_host(values: np.ndarray, docs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the ``k`` best positive ``values`` and their ``docs`` (score descending, document ascending)."""
    out_docs = np.zeros((len(values), k), dtype=np.int32)
    best = np.zeros((len(values), k), dtype=np.float32)
    sizes = np.zeros(len(values), dtype=np.int64)
    for row in range(len(values)):
        hits = np.flatnonzero(values[row] > 0)
        order = hits[np.lexsort((docs[row, hits], -values[row, hits]))][:k]
        out_docs[row, : len(order)], best[row, : len(order)] = docs[row, order], values[row, order]
        sizes[row] = len(order)
    return out_docs, best, sizes


def _top_k_device(values, docs, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # noqa: ANN001
    """:func:`_top_k_host` on the device, one ``topk`` over 64-bit keys that order exactly that way."""
    import torch

    values = torch.as_tensor(values, device="cuda")
    docs = torch.as_tensor(docs, device="cuda").to(torch.int64)
    # non-negative float32 bits order like the floats; the low half prefers lower document numbers
    keys = (values.view(torch.int32).to(torch.int64) << 32) | (0x7FFFFFFF - docs)
    top = keys.topk(min(k, keys.shape[1]), dim=1).values
    found = (top >> 32).to(torch.int32).view(torch.float32)
    width = top.shape[1]
    out_docs = np.zeros((len(values), k), dtype=np.int32)
    out_scores = np.zeros((len(values), k), dtype=np.float32)
    out_docs[:, :width] = torch.where(found > 0, 0x7FFFFFFF - (top & 0xFFFFFFFF), 0).cpu().numpy()
    out_scores[:, :width] = found.clamp(min=0).cpu().numpy()
    return out_docs, out_scores, (found > 0).sum(dim=1).cpu().numpy().astype(np.int64)


def _select(values, docs, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # noqa: ANN001 - device arrays
    """Top ``k`` of each row of device arrays of candidate scores and their documents."""
    if config.ENABLE_CUDASIM:
        return _top_k_host(values.copy_to_host(), docs.copy_to_host(), k)
    return _top_k_device(values, docs, k)


STRATEGIES = ("tiles", "forward", "postings")
_NO_MASK = np.zeros(0, np.uint8)  # the kernels' "no filter"


def _decoded(index: SparseIndex, codes: np.ndarray) -> np.ndarray:
    """Weights the tiles kernel reads directly: a float16 index's codes are float16 bits (same 2 bytes, and
    no codebook lookup: a warp's 32 scattered table reads were its slowest load); 8-bit codes become float32."""
    if index.meta.weights == "float16":
        return codes.view(np.float16)
    return index.codebook[codes]


class GpuSearcher:
    """Batch top-k on the GPU with the same interface and results as :class:`lsr.indexing.sparse.search.Searcher`.

    ``tiles`` (the default) scores one tile of documents per block in shared memory and keeps each
    tile's best ``k``, so it writes no score matrix; above ``MAX_TILE_K`` it hands over to ``forward``
    (uploaded then). ``postings`` alone takes a posting budget (pruned search).
    """

    def __init__(
        self, index: SparseIndex, batch_size: int = 64, strategy: str = "tiles", registers: int | None = None
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
        if registers is not None and not 16 <= registers <= 255:
            raise ValueError(f"registers per thread must be in 16..255, not {registers}")
        self.index = index
        self.strategy = strategy
        self.registers = registers
        self._forward_searcher: GpuSearcher | None = None
        self.batch_size = min(batch_size, MAX_FORWARD_BATCH) if strategy == "forward" else batch_size
        if strategy == "tiles":
            tiles = build_tiles(index)
            self.n_tiles = tiles.n_tiles
            self.tile_offsets = cuda.to_device(tiles.offsets)
            self.tile_docs = cuda.to_device(tiles.docs)
            self.tile_values = cuda.to_device(_decoded(index, tiles.codes))
        else:  # both dense-matrix kernels decode weight codes through the codebook
            self.table = cuda.to_device(index.codebook)
        if strategy == "postings":
            self.docs = cuda.to_device(np.ascontiguousarray(index.docs))
            self.codes = cuda.to_device(np.ascontiguousarray(index.codes))
            self._host_offsets = np.asarray(index.offsets)
        elif strategy == "forward":
            self.fwd_indptr = cuda.to_device(np.ascontiguousarray(index.forward_indptr))
            self.fwd_terms = cuda.to_device(np.ascontiguousarray(index.forward_terms))
            self.fwd_codes = cuda.to_device(np.ascontiguousarray(index.forward_codes))

    def search(
        self, queries: sp.csr_matrix, k: int = 10, budget: int = 0, allow: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`lsr.indexing.sparse.search.Searcher.search`'s results, ``allow`` included (its mask is uploaded once
        per call, a byte per document)."""
        queries = sp.csr_matrix(queries, dtype=np.float32)
        if queries.shape[1] != self.index.meta.vocab_size:
            raise ValueError(f"queries have {queries.shape[1]} dimensions, the index {self.index.meta.vocab_size}")
        if np.any(queries.data < 0):
            raise ValueError("query weights must be non-negative")
        if budget and self.strategy != "postings":
            raise ValueError("a posting budget needs the postings strategy")
        mask = check_allow(allow, self.index.num_docs)
        if mask is not None and not np.any(mask):  # nothing allowed
            n = queries.shape[0]
            return np.zeros((n, k), np.int32), np.zeros((n, k), np.float32), np.zeros(n, np.int64)
        if self.strategy == "tiles" and k > MAX_TILE_K:
            return self._wide().search(queries, k, allow=mask)
        device_mask = cuda.to_device(_NO_MASK if mask is None else mask.view(np.uint8))
        parts = [
            self._batch(queries[s : s + self.batch_size], k, budget, device_mask)
            for s in range(0, queries.shape[0], self.batch_size)
        ]
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]

    def _wide(self) -> GpuSearcher:
        """The forward kernel, uploaded on first need, for ``k`` above what a tile keeps."""
        if self._forward_searcher is None:
            self._forward_searcher = GpuSearcher(self.index, self.batch_size, "forward")
        return self._forward_searcher

    def _batch(
        self,
        queries: sp.csr_matrix,
        k: int,
        budget: int,
        allow,  # noqa: ANN001 - a device array
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.strategy == "tiles":
            return _select(*self.candidates(queries, k, allow), k)
        scores = self.score(queries, budget)
        if allow.size and scores.size:
            _drop[(math.ceil(scores.shape[1] / THREADS), scores.shape[0]), (THREADS, 1)](scores, allow)
        return self.select(scores, k)

    def candidates(self, queries: sp.csr_matrix, k: int, allow=None):  # noqa: ANN001, ANN201 - device arrays
        """Each tile's best ``k`` scores and documents for each query: two ``batch x (tiles * k)`` device arrays;
        ``allow``, a device mask (empty or None: no filter), excludes documents."""
        shape = (queries.shape[0], self.n_tiles, k)
        scores = cuda.device_array(shape, dtype=np.float32)
        docs = cuda.device_array(shape, dtype=np.int32)
        if queries.shape[0]:
            _tiles_kernel(self.registers)[(queries.shape[0], self.n_tiles), THREADS](
                cuda.to_device(queries.indptr.astype(np.int64)),
                cuda.to_device(queries.indices.astype(np.int32)),
                cuda.to_device(queries.data.astype(np.float32)),
                self.tile_offsets,
                self.tile_docs,
                self.tile_values,
                self.index.num_docs,
                k,
                scores,
                docs,
                cuda.to_device(_NO_MASK) if allow is None else allow,
            )
        return scores.reshape(shape[0], self.n_tiles * k), docs.reshape(shape[0], self.n_tiles * k)

    def registers_used(self) -> int | None:
        """Registers per thread of the compiled tiles kernel (None before its first launch, or simulated)."""
        kernel = _tiles_kernel(self.registers)
        if self.strategy != "tiles" or config.ENABLE_CUDASIM or not kernel.overloads:
            return None
        return max(compiled.regs_per_thread for compiled in kernel.overloads.values())

    def score(self, queries: sp.csr_matrix, budget: int = 0):  # noqa: ANN201 - a device array
        """The dense ``batch x documents`` score matrix of one batch of queries, on the device."""
        scores = cuda.device_array((queries.shape[0], self.index.num_docs), dtype=np.float32)
        if self.strategy == "forward":
            self._forward(queries, scores)
        else:
            self._postings(queries, budget, scores)
        return scores

    def select(self, scores, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # noqa: ANN001 - a device array
        """Top ``k`` documents, scores and hit counts of each row of a device score matrix."""
        if config.ENABLE_CUDASIM:
            host = scores.copy_to_host()
            return _top_k_host(host, np.broadcast_to(np.arange(host.shape[1]), host.shape), k)
        import torch

        return _top_k_device(scores, torch.arange(scores.shape[1], device="cuda").expand(scores.shape[0], -1), k)

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
