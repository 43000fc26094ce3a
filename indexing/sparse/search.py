"""Exact and pruned top-k search over a :class:`SparseIndex` with Numba kernels.

Term-at-a-time: each query term's postings add ``query weight x document weight``
into a score array. When a query reads few postings for the corpus size, the
documents touched are remembered so that top-k selection (a bounded heap) and
the reset afterwards cost only what was touched; when it reads many (a quarter
of the corpus size or more), that bookkeeping costs more than one scan of the
score array, so the kernel accumulates without it and scans (1.6x faster on the
200k-document synthetic benchmark). By default (``Searcher(tiled=True)``) it does so tile by tile over the
tiled postings (:mod:`.tiles`, built on the first such query, 4 bytes per posting in memory),
so the scores being added to stay in L2 and each posting reads 4 bytes instead of 6. Tiles are
:data:`~lsr.indexing.sparse.tiles.CPU_TILE` (65,536) documents, not the GPU's 8,192: a query reads one
(tile, term) segment per tile and term, and each short segment starts with cache misses (hidden in part
by prefetching the next one). Results are bit-identical to ``tiled=False`` (the same additions in the same
order). Untiled, each posting's loop is indexed from 0 over slices so the compiler drops the
negative-index test (most of the previous kernel's time, below), and a dense query's scores are offered 64 at a time
(:data:`~lsr.indexing.sparse.topk.OFFER_BLOCK`).
Microbenchmark (1M synthetic documents, 200 queries, interleaved, shared 2-core Zen 5), ms per query,
batch (2 threads) / single-query p50: previous untiled kernel 14.0 / 24.5, untiled now 4.3 / 9.0, tiled
(65,536) 2.8 / 5.3; 8,192-document tiles 3.4 / 6.4.
Batches run in parallel threads, each with its own score array.
Ties are broken by the lower document number, the same rule as :func:`brute_force`.

Pruning (``budget``): postings are stored in impact order, so reading only the
first ``budget`` postings of each term keeps each term's largest contributions;
``query_terms`` keeps only the query's heaviest terms. Both trade recall for speed.
``rerank`` then rescores the pruned search's best candidates exactly from the
forward index, which recovers most of the recall that pruning loses.

Filters (``allow``, :mod:`lsr.indexing.filters`) are tested at top-k selection in every path (tiled, untiled,
pruned, reranked, dynamic; :mod:`lsr.indexing.sparse.topk`), so a filtered search does the unfiltered one's work and
returns exactly the top k of the allowed documents, with the same scores. A filter that allows few documents
(:data:`LISTED_SHARE`) also lists them, and a query whose postings would cost more to read than scoring the
listed documents alone scores just those (same scores again). At 200k random documents, one query on one thread
(eval/bench/filtered.py): 1.08 ms unfiltered (median), 0.15 ms allowing one document, 1.37 ms allowing 1%,
1.19 ms allowing 10%, 1.12 ms denying one.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp
from lsr.indexing.filters import check_allow
from lsr.indexing.hits import Hits
from lsr.indexing.sparse.accumulate import add_segment, add_segment_touched
from lsr.indexing.sparse.clustered import ClusteredSearch
from lsr.indexing.sparse.dynamic import search_dynamic_batch
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.prefetch import prefetch
from lsr.indexing.sparse.tiles import CPU_TILE, MAX_TILE, Tiles, build_tiles
from lsr.indexing.sparse.topk import best_of, listed_is_cheaper, offer_block, rank, rerank_top, top_of_listed
from numba import njit, prange


@njit(nogil=True, cache=True)
def _search_one(
    terms,
    weights,
    postings,
    budget,
    k,
    work,
    out_docs,
    out_scores,
    rerank,
    forward,
    candidates,
    tiles,
    filters,
) -> int:
    """Score one query into ``scores``, write its top ``k`` to ``out_*``; return how many hits there are.

    With ``rerank`` > 0, the ``rerank`` best documents of the (pruned) accumulation are
    rescored exactly from the forward index before the final top ``k`` is taken. ``postings`` is
    ``(offsets, docs, codes, table)``, ``forward`` the document-major copy ``(indptr, terms, codes)``;
    ``work`` is the thread's ``(scores, touched, dense query)`` buffers, ``candidates`` the rerank buffers,
    ``tiles`` the tiled copy ``(offsets, docs, codes, tile size)`` (:mod:`.tiles`; empty when not built).
    ``filters`` is ``(allow, listed)``: the mask of documents that may be returned (empty: all) and, when they are
    few, their numbers (else empty).
    """
    offsets, docs, codes, table = postings
    scores, touched, _ = work
    allow, listed = filters
    reads = 0
    for i in range(len(terms)):
        length = offsets[terms[i] + 1] - offsets[terms[i]]
        reads += min(length, budget) if budget > 0 else length
    if listed_is_cheaper(listed, forward, len(terms), reads):
        return top_of_listed(terms, weights, listed, table, forward, work[2], k, out_docs, out_scores)
    # many postings for the corpus size: accumulate without bookkeeping, then scan the scores once
    dense = 4 * reads >= len(scores)
    if dense and budget <= 0 and rerank <= 0 and len(tiles[0]):
        return _search_tiled(terms, weights, tiles, table, scores, k, out_docs, out_scores, allow)
    n_touched = 0
    for i in range(len(terms)):
        start = offsets[terms[i]]
        end = _end(offsets, terms[i], budget)
        if dense:
            add_segment(scores, weights[i], docs, codes, table, start, end)
        else:
            n_touched = add_segment_touched(scores, touched, n_touched, weights[i], docs, codes, table, start, end)
    if rerank <= 0:
        return best_of(scores, touched, n_touched, dense, k, out_docs, out_scores, allow)
    return rerank_top(
        terms, weights, work, n_touched, dense, rerank, k, out_docs, out_scores, table, forward, candidates, allow
    )


@njit(inline="always")
def _end(offsets, term, budget):  # noqa: ANN001, ANN202
    """Where the term's postings stop: all of them, or the first ``budget`` (> 0)."""
    start, end = offsets[term], offsets[term + 1]
    return start + budget if 0 < budget < end - start else end


PREFETCH_LINES = 8  # cache lines hinted at the start of the next segment (of its documents, and of its codes)


@njit(nogil=True, cache=True)
def _search_tiled(terms, weights, tiles, table, scores, k, out_docs, out_scores, allow) -> int:  # noqa: ANN001
    """Exact top ``k`` tile by tile (of the documents ``allow`` allows, all if it is empty): each tile's scores stay
    in the first ``tile`` floats of ``scores`` (L1/L2).

    While one (tile, term) segment is added, the next one's first lines, and the bounds of the same term's
    segment in the next tile, are prefetched: segments are short, and each would otherwise start with misses.
    """
    offsets, docs, codes, tile = tiles
    n_docs = len(scores)
    n_tiles = max(1, -(-n_docs // tile))
    row_size = len(offsets) // n_tiles
    n_terms = len(terms)
    docs_step, codes_step = 64 // docs.itemsize, 64 // codes.itemsize
    size = 0
    for t in range(n_tiles):
        row = t * row_size
        for i in range(n_terms):
            following = row + terms[i + 1] if i + 1 < n_terms else row + row_size + terms[0]
            if following < len(offsets) - 1:
                if following + row_size < len(offsets):
                    prefetch(offsets, following + row_size)
                start = offsets[following]
                for line in range(PREFETCH_LINES):
                    if start + line * docs_step < len(docs):
                        prefetch(docs, start + line * docs_step)
                    if start + line * codes_step < len(codes):
                        prefetch(codes, start + line * codes_step)
            add_segment(scores, weights[i], docs, codes, table, offsets[row + terms[i]], offsets[row + terms[i] + 1])
        first = t * tile
        count = min(tile, n_docs - first)
        size = offer_block(scores, first, count, k, out_docs, out_scores, size, allow[first : first + count])
        scores[:count] = 0.0
    return rank(out_docs, out_scores, size)


@njit(parallel=True, nogil=True, cache=True)
def _search_batch(
    indptr,
    terms,
    weights,
    postings,
    budget,
    k,
    score_pool,
    touched_pool,  # noqa: ANN001
    out_docs,
    out_scores,
    out_sizes,
    rerank,
    forward,
    query_pool,
    tiles,
    filters,
) -> None:
    for q in prange(len(indptr) - 1):
        thread = numba.get_thread_id()
        start, end = indptr[q], indptr[q + 1]
        candidates = (np.empty(max(rerank, 1), dtype=np.int32), np.empty(max(rerank, 1), dtype=np.float32))
        work = (score_pool[thread], touched_pool[thread], query_pool[thread])
        out_sizes[q] = _search_one(
            terms[start:end],
            weights[start:end],
            postings,
            budget,
            k,
            work,
            out_docs[q],
            out_scores[q],
            rerank,
            forward,
            candidates,
            tiles,
            filters,
        )


Rows = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Query rows as the kernels read them: ``indptr`` (int64), term ids (int32) and weights (float32), CSR-style."""


def _prune_rows(rows: Rows, query_terms: int | None) -> Rows:
    """Keep each query's ``query_terms`` heaviest terms (all when None; of equal weights, the first given), each row's
    kept terms in term order (as SciPy built each pruned row before).

    One stable sort of every row's terms by (row, weight) instead of a matrix per row stacked: a single query paid
    about 0.2 ms of SciPy construction for it (1M packages documents, where the search itself takes 0.3-2 ms)."""
    if query_terms is None:
        return rows
    indptr, indices, data = rows
    counts = np.diff(indptr)
    row_of = np.repeat(np.arange(len(counts)), counts)
    order = np.lexsort((-data, row_of))  # stable: equal weights keep their order
    rank = np.arange(len(order)) - np.repeat(indptr[:-1], counts)
    keep = np.zeros(len(order), dtype=bool)
    keep[order[rank < query_terms]] = True
    pruned = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(np.minimum(counts, query_terms), out=pruned[1:])
    by_term = np.lexsort((indices[keep], row_of[keep]))
    return pruned, indices[keep][by_term], data[keep][by_term]


@njit(nogil=True, cache=True)
def _scan_rows(indices, data, vocab_size) -> int:  # noqa: ANN001
    """0 when every weight is positive and finite and every term id in ``[0, vocab_size)``; 1 when, that aside, some
    weight is zero; -1 for a negative or non-finite weight; -2 for a term id outside the vocabulary. One pass in
    place of several NumPy calls, each of which costs a microsecond on a batch-1 query."""
    zeros = 0
    for i in range(len(data)):
        w = data[i]
        if not (w >= 0 and w < np.inf):
            return -1
        if indices[i] < 0 or indices[i] >= vocab_size:
            return -2
        if w == 0:
            zeros = 1
    return zeros


def check_rows(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, vocab_size: int) -> Rows:
    """Checked query rows without explicit zeros: weights finite and non-negative, term ids inside the vocabulary
    (a kernel indexes arrays with them), from arrays in one compiled pass (:func:`_scan_rows`), without SciPy."""
    data = np.asarray(data, dtype=np.float32)
    indices = np.asarray(indices, dtype=np.int32)
    indptr = np.asarray(indptr, dtype=np.int64)
    found = _scan_rows(indices, data, vocab_size)
    if found == -1:
        raise ValueError("query weights must be finite and non-negative")
    if found == -2:
        raise ValueError(f"query term ids must be in [0, {vocab_size}), the index's vocabulary")
    if found == 0:
        return indptr, indices, data
    keep = data != 0
    kept = np.concatenate(([0], np.cumsum(keep)))
    return kept[indptr], indices[keep], data[keep]


_NO_TILES = {
    np.dtype(dtype): (np.zeros(0, np.int64), np.zeros(0, np.uint16), np.zeros(0, dtype), 1)
    for dtype in (np.uint8, np.uint16)
}
_NO_MASK = np.zeros(0, bool)  # the kernels' "no filter"
DEFAULT_QUERY_CUT = 10
"""Lists a clustered search visits when not told: the Seismic authors' setting for high recall."""
_NOT_LISTED = np.zeros(0, np.int32)  # the kernels' "too many allowed documents to list"
LISTED_SHARE = 16
"""A filter's allowed documents are listed for :func:`~lsr.indexing.sparse.topk.top_of_listed` when they are at most
this fraction of the corpus: more would only pay off for a query reading a quarter of the index's postings."""


class Searcher:
    """Top-k search over an opened index; one instance can serve many threads' batches one at a time."""

    def __init__(
        self, index: SparseIndex, threads: int | None = None, tiled: bool = True, tile: int = CPU_TILE
    ) -> None:
        """``tiled``: exact queries that read many postings use the tiled copy (:mod:`.tiles`, ``tile``
        documents per tile), built on the first such query; it costs 4 bytes per posting of memory (0.9 GB at 1M
        documents) and a few seconds, and returns the same results, bit for bit, as ``tiled=False``.
        """
        if not 1 <= tile <= MAX_TILE:
            raise ValueError(f"tile must be in [1, {MAX_TILE}], not {tile}")
        self.index = index
        self.threads = threads or numba.get_num_threads()
        self.tiled = tiled
        self.tile = tile
        self._tiles: Tiles | None = None
        self._list_lengths: np.ndarray | None = None  # postings per term, for the decision to build the tiles
        self._clustered: ClusteredSearch | None = None  # the index's clusters, from the first clustered search on
        self._cluster_work: tuple[np.ndarray, ...] = ()  # this searcher's buffers for clustered search
        self._scores = np.zeros((numba.config.NUMBA_NUM_THREADS, index.num_docs), dtype=np.float32)
        self._touched = np.zeros((numba.config.NUMBA_NUM_THREADS, index.num_docs), dtype=np.int32)
        self._query = np.zeros((numba.config.NUMBA_NUM_THREADS, index.meta.vocab_size), dtype=np.float32)

    def search(self, queries: sp.csr_matrix, k: int = 10, **settings: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top ``k`` per row of ``queries`` (``settings``, exact or approximate: :meth:`_search_rows`)."""
        if queries.shape[1] != self.index.meta.vocab_size:
            raise ValueError(f"queries have {queries.shape[1]} dimensions, the index {self.index.meta.vocab_size}")
        if getattr(queries, "format", None) != "csr":  # a CSC matrix's indptr runs over columns
            queries = sp.csr_matrix(queries)
        return self._search_rows(
            check_rows(queries.indptr, queries.indices, queries.data, queries.shape[1]), k, **settings
        )

    def search_vector(
        self, terms: np.ndarray, weights: np.ndarray, k: int = 10, **settings: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`search` of one query given as term ids and weights: no SciPy matrix is built, which took about
        30 of a batch-1 search's 100-500 microseconds."""
        terms, weights = np.asarray(terms), np.asarray(weights)
        if terms.ndim != 1 or terms.shape != weights.shape:
            raise ValueError(
                f"terms and weights must be two 1-d arrays of one length, not {terms.shape} and {weights.shape}"
            )
        rows = check_rows(np.array([0, len(terms)], dtype=np.int64), terms, weights, self.index.meta.vocab_size)
        return self._search_rows(rows, k, **settings)

    def _search_rows(
        self,
        rows: Rows,
        k: int = 10,
        budget: int = 0,
        query_terms: int | None = None,
        rerank: int = 0,
        alpha: float | None = None,
        allow: np.ndarray | None = None,
        query_cut: int | None = None,
        heap_factor: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top ``k`` document numbers and scores per query row (``rows``: CSR arrays, :func:`check_rows`), and how many
        of the ``k`` slots are filled.

        ``budget`` > 0 reads at most that many postings per term (pruned search); 0 is exact.
        ``rerank`` > 0 rescores that many of the pruned search's best documents exactly.
        ``alpha`` in (0, 1] switches to dynamic pruning (:mod:`lsr.indexing.sparse.dynamic`), rescoring the
        ``rerank`` best candidates (at least ``k``): smaller ``alpha`` reads fewer postings, losing some recall;
        ``alpha=1`` is exact (it also rescores every seen document that could still reach the top ``k``).
        ``allow``: a bool or uint8 mask of ``index.num_docs`` documents, true where a document may be returned
        (:func:`.filters.allow_mask`); exact search then returns the exact top ``k`` of those documents.
        ``heap_factor`` (>= 0) switches to clustered search (:mod:`.clustered`, over the clusters ``lsr index
        cluster`` built), visiting the query's ``query_cut`` heaviest terms' lists (default 10) and the blocks
        whose summary reaches ``heap_factor`` x the k-th best score; it takes no other pruning option.
        """
        if heap_factor is not None:
            others = bool(budget or rerank or alpha is not None or query_terms is not None)
            return self._search_clustered(rows, k, query_cut, heap_factor, allow, others)
        if rerank and rerank < k:
            raise ValueError(f"rerank ({rerank}) must be at least k ({k})")
        if alpha is not None and not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], not {alpha}")
        if alpha is not None and budget:
            raise ValueError("alpha (dynamic pruning) does not combine with a posting budget")
        mask = check_allow(allow, self.index.num_docs)
        q = _prune_rows(rows, query_terms)
        n = len(q[0]) - 1
        out_docs = np.zeros((n, k), dtype=np.int32)
        out_scores = np.zeros((n, k), dtype=np.float32)
        sizes = np.zeros(n, dtype=np.int64)
        filters = self._filters(mask)
        if filters is None:  # nothing allowed
            return out_docs, out_scores, sizes
        common = (*q, (self.index.offsets, self.index.docs, self.index.codes, self.index.codebook))
        buffers = (self._scores, self._touched, out_docs, out_scores, sizes)
        forward = (self.index.forward_indptr, self.index.forward_terms, self.index.forward_codes)
        with _threads(min(self.threads, max(n, 1))):
            if alpha is None:
                tiles = self._tiles_for(q) if budget == 0 and rerank == 0 else None
                tiled = (
                    (tiles.offsets, tiles.docs, tiles.codes, tiles.tile) if tiles else _NO_TILES[self.index.codes.dtype]
                )
                _search_batch(*common, budget, k, *buffers, rerank, forward, self._query, tiled, filters)
            else:
                search_dynamic_batch(
                    *common, np.float32(alpha), k, *buffers, max(rerank, k), forward, self._query, filters
                )
        return _finite(out_docs, out_scores, sizes)

    def _search_clustered(
        self, rows: Rows, k: int, query_cut: int | None, heap_factor: float, allow: np.ndarray | None, others: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """Clustered search (:meth:`search`'s ``heap_factor``), its clusters opened on first use."""
        if others:
            raise ValueError(
                "heap_factor (clustered search) does not combine with budget, query_terms, rerank or alpha"
            )
        if not (math.isfinite(heap_factor) and heap_factor >= 0):
            raise ValueError(f"heap_factor must be finite and >= 0, not {heap_factor}")
        cut = DEFAULT_QUERY_CUT if query_cut is None else query_cut
        if cut < 1:
            raise ValueError(f"query_cut must be at least 1, not {cut}")
        mask = check_allow(allow, self.index.num_docs)
        n = len(rows[0]) - 1
        out_docs, out_scores = np.zeros((n, k), dtype=np.int32), np.zeros((n, k), dtype=np.float32)
        sizes = np.zeros(n, dtype=np.int64)
        if mask is not None and not mask.any():
            return out_docs, out_scores, sizes
        if self._clustered is None:  # kept: clusters rebuilt on disk later are for searchers opened after
            self._clustered = ClusteredSearch.of(self.index)
        threads = min(self.threads, numba.config.NUMBA_NUM_THREADS, max(n, 1))
        if not self._cluster_work or self._cluster_work[0].shape[0] < threads:  # `threads` may be raised later
            self._cluster_work = self._clustered.work(threads)
        work = self._cluster_work
        if work[0].shape[0] > threads:  # a batch of fewer queries than buffers: the first `threads` sets
            work = tuple(buffers[:threads] for buffers in work)
        # one thread runs the serial kernel: Numba's thread count is not read, and setting it costs microseconds
        with contextlib.nullcontext() if threads == 1 else _threads(threads):
            self._clustered.search(
                rows, k, cut, heap_factor, work, _NO_MASK if mask is None else mask, out_docs, out_scores, sizes
            )
        return _finite(out_docs, out_scores, sizes)

    def _filters(self, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
        """The kernels' ``(allow, listed)`` for a checked mask (:func:`lsr.indexing.filters.check_allow`); None when the
        mask allows nothing, so that no kernel runs."""
        if mask is None:
            return _NO_MASK, _NOT_LISTED
        count = np.count_nonzero(mask)
        if count == 0:
            return None
        few = LISTED_SHARE * count <= self.index.num_docs
        return mask, np.flatnonzero(mask).astype(np.int32) if few else _NOT_LISTED

    def _tiles_for(self, rows: Rows) -> Tiles | None:
        """The tiled copy, built on first need: when some query reads a quarter of the corpus size in postings."""
        if not self.tiled:
            return None
        if self._tiles is None:
            indptr, indices, _ = rows
            if self._list_lengths is None:  # once: a difference over the whole vocabulary is tens of microseconds
                self._list_lengths = np.diff(np.asarray(self.index.offsets))
            lengths = self._list_lengths[indices]
            if 4 * int(lengths.sum()) < self.index.num_docs:  # no query can read a quarter: no row-by-row sums
                return None
            read = np.concatenate(([0], np.cumsum(lengths)))
            if 4 * np.max(read[indptr[1:]] - read[indptr[:-1]], initial=0) < self.index.num_docs:
                return None
            self._tiles = build_tiles(self.index, self.tile)
        return self._tiles


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    """Numba's thread count set to ``count`` for a kernel call, and restored after it whatever happens."""
    previous = numba.get_num_threads()
    if previous == count:  # each set costs microseconds, a noticeable share of a batch-1 search
        yield
        return
    numba.set_num_threads(count)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _finite(docs: np.ndarray, scores: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A search's output, refused if a score overflowed (the index's weights are finite, checked at open: only a
    sum of products can overflow float32)."""
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores overflow float32: the query weights are too large for this index")
    return docs, scores, sizes


def hits(index: SparseIndex, docs: np.ndarray, scores: np.ndarray, sizes: np.ndarray) -> list[Hits]:
    """Search output (document numbers, scores, filled counts; CPU or GPU) as hits with the corpus's ids."""
    return [Hits(index.doc_ids(docs[i, : sizes[i]]), np.asarray(scores[i, : sizes[i]])) for i in range(len(sizes))]


def brute_force(matrix: sp.csr_matrix, queries: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference top-k by a SciPy sparse product: score descending, document number ascending, positive scores only."""
    scores = (sp.csr_matrix(queries, dtype=np.float32) @ matrix.T.astype(np.float32)).toarray()
    docs = np.zeros((queries.shape[0], k), dtype=np.int32) - 1
    best = np.zeros((queries.shape[0], k), dtype=np.float32)
    for row in range(queries.shape[0]):
        hits = np.flatnonzero(scores[row] > 0)
        order = hits[np.lexsort((hits, -scores[row, hits]))][:k]
        docs[row, : len(order)] = order
        best[row, : len(order)] = scores[row, order]
    return docs, best
