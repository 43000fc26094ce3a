"""Approximate search over clustered blocks (:mod:`.clusters`): the query's heaviest lists, the promising blocks.

For each of the query's ``query_cut`` heaviest terms, heaviest first: the dot product of the query with every
block summary of that term's list is computed at once (the list's summary entries are sorted by term, so each
query term's entries are found by galloping search and added into a per-block buffer); a block whose estimate is
below ``heap_factor`` x the current k-th best score is skipped, and every document of the others not scored yet
is scored exactly from the forward index and offered to the top-k heap. Results are exact scores of the documents
scored (summed in another order than exact search's, so equal to float32's rounding; integer impacts sum
exactly); what is approximate is which documents get scored. ``heap_factor`` below 1 skips fewer blocks (higher
recall); a larger ``query_cut`` visits more lists. At ``heap_factor`` 0 with every query term and clusters that
kept whole lists, every document holding a query term is scored: the exact top k (tested).

Speed comes from the memory traffic per scored document, measured on the packages corpus (1M documents, k = 10,
``query_cut`` 5, ``heap_factor`` 1, one thread, shared 2-core Zen 5; prototype): scoring from the index's separate
forward arrays through ``forward_indptr`` took 0.97 ms a query for 2,252 documents; reading each document through a
(start, length) word stored beside its block entry, from one array of (term << 16 | code) words, with the first line
of the next documents' vectors prefetched, took 0.57 ms; prefetching every line of those vectors, with the final
clusters, took 0.71 to 0.50 ms. The visited set is a bit per document (128 KiB at 1M, in L2),
cleared through the list of documents scored. The words now carry the weight's float16 bits rather than its code,
so a posting costs one gather, not two (:func:`_dot`): 21-25 % less time on SciFact, 0-8 % at 1M, where the
kernel waits on memory (eval/RESULTS.md, session 20).

Filters (``allow``) are applied when a document is offered: disallowed documents are scored and dropped, so the
k-th best, and so the block test, are over allowed documents only.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np
from llvmlite import ir
from lsr.indexing.sparse.build import codebook
from lsr.indexing.sparse.clusters import FOLDER, Clusters, ClustersError
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.prefetch import prefetch
from lsr.indexing.sparse.topk import offer, rank
from numba import njit, prange, types
from numba.extending import intrinsic

AHEAD = 6
"""Documents of a block whose vectors are prefetched ahead of the one being scored."""
PREFETCH_WORDS = 64
"""Words of a document's vector prefetched (four cache lines): all of a one-line package description's (median 35
terms), the head of a long one, whose rest the hardware prefetcher streams once the kernel reads it. Prefetching all
of SciFact's 248-term vectors cost more hint instructions than it saved there."""


@njit(inline="always")
def _prefetch_vector(packed, span) -> None:  # noqa: ANN001
    """Prefetch the first :data:`PREFETCH_WORDS` words of a document's packed vector (16 words a line)."""
    start = np.uint64(span) >> np.uint64(16)
    end = start + min(np.uint64(span) & np.uint64(0xFFFF), np.uint64(PREFETCH_WORDS))
    while start < end:
        prefetch(packed, start)
        start += np.uint64(16)


@njit(nogil=True, cache=True)
def _block_dots(term, terms, weights, clusters, dots) -> int:  # noqa: ANN001
    """The estimate of every block of ``term``'s list into ``dots``; returns how many blocks the list has.

    The list's summary entries are sorted by term, and so are the query's terms (:func:`.search.check_rows` keeps
    a CSR row's order; every caller's rows are sorted): each term is looked for from where the previous one ended,
    by galloping then binary search, instead of a binary search over the whole list each time (a fifth less time
    in this function on SciFact). Unsorted terms would only make the search restart at the list's start."""
    term_blocks, summary_offsets, summary_terms, summary_blocks, summary_codes, summary_scales = clusters
    blocks = term_blocks[term + 1] - term_blocks[term]
    for x in range(blocks):
        dots[x] = 0.0
    low, high = summary_offsets[term], summary_offsets[term + 1]
    scale = summary_scales[term]
    e, last = low, -1
    for i in range(len(terms)):
        t = np.uint16(terms[i])
        if terms[i] < last:  # an unsorted row: search this term from the list's start
            e = low
        last = terms[i]
        step, bound = 1, e
        while bound < high and summary_terms[bound] < t:  # gallop: the first entry >= t is in (e, bound]
            e, bound, step = bound + 1, bound + step, step * 2
        bound = min(bound, high)
        while e < bound:
            middle = (e + bound) >> 1
            if summary_terms[middle] < t:
                e = middle + 1
            else:
                bound = middle
        w = weights[i] * scale
        while e < high and summary_terms[e] == t:
            dots[summary_blocks[e]] += w * summary_codes[e]
            e += 1
    return blocks


HALF_SHIFT = np.float32(2.0**56)
"""A float16 weight's bits moved into a float32's (:func:`_dot`) are its value times 2^-112; the dense query is
scaled by 2^56 and the sum by 2^56 (powers of two: exact), so no product or sum leaves float32's normal range."""


@intrinsic
def _bits_to_float32(typingctx, bits):  # noqa: ANN001, ANN202, ARG001
    """The float32 whose bits are this uint32 (a free bit cast: LLVM keeps it inside vectorised loops)."""

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202, ARG001
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.uint32), codegen


@njit(nogil=True, cache=True, fastmath={"reassoc", "nsz", "contract"})
def _dot(vector, dense) -> float:  # noqa: ANN001
    """A packed document vector (words ``term << 16 | float16 bits``) dotted with the dense query (scaled by
    :data:`HALF_SHIFT`).

    The float16 becomes a float32 by moving its exponent and mantissa bits up 13 places, which leaves the value
    times 2^-112 (subnormal float16s included): no lookup, so one memory gather per posting (the query's weight)
    instead of two, and the loop vectorises. Reassociated so that LLVM emits gathers; the sum's order then differs
    from exact search's, so a score may differ from the exact kernel's in float32's last bits (not for integer
    impacts, whose sums are exact)."""
    score = np.float32(0.0)
    for j in range(len(vector)):
        v = vector[j]
        score += dense[v >> np.uint32(16)] * _bits_to_float32((v & np.uint32(0x7FFF)) << np.uint32(13))
    return score * HALF_SHIFT


@njit(nogil=True, cache=True)
def search_one(
    terms, weights, query_cut, heap_factor, k, clusters, blocks, forward, work, allow, out_docs, out_scores
) -> int:  # noqa: ANN001
    """One query's top ``k`` into ``out_*`` (ranked); returns how many hits.

    ``clusters`` is ``(term_blocks, summary_offsets, summary_terms, summary_blocks, summary_codes, summary_scales)``,
    ``blocks`` ``(block_offsets, block_docs, block_spans)`` with a span ``start << 16 | length`` into ``forward``
    ``(packed, scale)``: words ``term << 16 | float16 bits`` and the weight of value 1 (:func:`packed_forward`).
    ``work``: this thread's ``(dense query, dots, visited bits, scored)``, left as found (zero)."""
    term_blocks = clusters[0]
    block_offsets, block_docs, block_spans = blocks
    packed, scale = forward
    dense, dots, bits, scored = work
    filtered = len(allow) > 0
    for i in range(len(terms)):
        dense[terms[i]] = weights[i] * scale * HALF_SHIFT
    order = np.argsort(-weights, kind="mergesort")
    size, n_scored = 0, 0
    for o in range(min(query_cut, len(terms))):
        term = terms[order[o]]
        first = term_blocks[term]
        for x in range(_block_dots(term, terms, weights, clusters, dots)):
            if size == k and dots[x] < heap_factor * out_scores[0]:
                continue
            start, end = block_offsets[first + x], block_offsets[first + x + 1]
            docs, spans = block_docs[start:end], block_spans[start:end]
            n = end - start
            for i in range(min(AHEAD, n)):
                _prefetch_vector(packed, spans[i])
            for i in range(n):
                if i + AHEAD < n:
                    _prefetch_vector(packed, spans[i + AHEAD])
                doc = np.uint32(docs[i])
                word, bit = doc >> np.uint32(6), np.uint64(1) << np.uint64(doc & np.uint32(63))
                if bits[word] & bit:
                    continue
                bits[word] |= bit
                scored[n_scored] = doc
                n_scored += 1
                if filtered and not allow[doc]:
                    continue
                span = np.uint64(spans[i])
                start = np.int64(span >> np.uint64(16))
                score = _dot(packed[start : start + np.int64(span & np.uint64(0xFFFF))], dense)
                size = offer(out_scores, out_docs, size, k, score, doc)
    for i in range(len(terms)):
        dense[terms[i]] = 0.0
    for i in range(n_scored):
        bits[scored[i] >> np.uint32(6)] = np.uint64(0)
    return rank(out_docs, out_scores, size)


@njit(nogil=True, cache=True)
def _search_rows(first, end, rows, query_cut, heap_factor, k, clusters, blocks, forward, mine, allow, out) -> None:  # noqa: ANN001
    """Query rows ``first`` to ``end`` with one thread's buffers ``mine`` (:func:`search_one`)."""
    indptr, indices, data = rows
    out_docs, out_scores, sizes = out
    heap_docs = np.empty(k, np.int32)
    heap_scores = np.empty(k, np.float32)
    for q in range(first, end):
        lo, hi = indptr[q], indptr[q + 1]
        found = search_one(
            indices[lo:hi], data[lo:hi], query_cut, heap_factor, k, clusters, blocks, forward, mine, allow,
            heap_docs, heap_scores,
        )  # fmt: skip
        out_docs[q, :found] = heap_docs[:found]
        out_scores[q, :found] = heap_scores[:found]
        sizes[q] = found


@njit(parallel=True, nogil=True, cache=True)
def _search_parallel(rows, query_cut, heap_factor, k, clusters, blocks, forward, work, threads, allow, out) -> None:  # noqa: ANN001
    """Every query row, split in ``threads`` runs; ``work`` holds at least that many sets of buffers (first axis)."""
    n = len(rows[0]) - 1
    per = (n + threads - 1) // threads
    for t in prange(threads):
        mine = (work[0][t], work[1][t], work[2][t], work[3][t])
        _search_rows(
            t * per, min(n, (t + 1) * per), rows, query_cut, heap_factor, k, clusters, blocks, forward, mine, allow,
            out,
        )  # fmt: skip


_PREPARED: weakref.WeakKeyDictionary[SparseIndex, tuple[tuple[int, int], ClusteredSearch]] = weakref.WeakKeyDictionary()
_PREPARING = threading.Lock()


def _written(index: SparseIndex) -> tuple[int, int]:
    """Which clusters folder is on disk now: clusters are replaced by renaming a new folder in (:mod:`lsr.fsutil`),
    so a rebuild changes the folder's inode."""
    try:
        found = (index.path / FOLDER).stat()
    except OSError:
        return (0, 0)
    return (found.st_ino, found.st_mtime_ns)


def packed_forward(index: SparseIndex) -> tuple[np.ndarray, np.float32]:
    """The forward index as one array of words ``term << 16 | float16 bits`` and the weight those bits' value 1
    stands for: float16 codes are their own bits (scale 1); the uint8 codebook's 255 linear steps are the integers
    0-255 (exact in float16) times the step. A codebook other than the one :func:`.build.codebook` writes for the
    index's kind is refused rather than searched with wrong weights."""
    kind, table, codes = index.meta.weights, np.asarray(index.codebook), np.asarray(index.forward_codes)
    step = np.float32(table[1]) if kind == "uint8" else np.float32(1.0)
    expected = codebook(kind, float(step) * 255)
    if table.shape != expected.shape or not np.array_equal(table.view(np.uint32), expected.view(np.uint32)):
        raise ClustersError(f"{index.path / 'codebook.npy'}: not a float16 or 255-step linear codebook")
    bits = codes.astype(np.float16).view(np.uint16) if kind == "uint8" else codes
    return (np.asarray(index.forward_terms).astype(np.uint32) << np.uint32(16)) | bits.astype(np.uint32), step


class ClusteredSearch:
    """An index's clusters with what the kernel reads prepared once (:func:`_search_rows`); read-only, so every
    searcher of the index shares one (:meth:`of`), each with its own :meth:`work` buffers."""

    def __init__(self, index: SparseIndex, clusters: Clusters) -> None:
        """Builds the packed forward copy (4 bytes per posting) and each block entry's span (8 bytes per kept
        posting): about 0.4 GB at 1M documents, a second or two. Documents of 65,536 terms or more cannot be
        spanned in 16 bits and are refused."""
        indptr = np.asarray(index.forward_indptr)
        lengths = np.diff(indptr)
        if len(lengths) and lengths.max() >= 1 << 16:
            raise ClustersError(
                f"{index.path}: a document has {lengths.max():,} terms; clustered search takes fewer than 65,536"
            )
        docs = np.asarray(clusters.block_docs)
        spans = (indptr[docs] << 16) | lengths[docs]
        self.clusters = (
            np.asarray(clusters.term_blocks), np.asarray(clusters.summary_offsets), np.asarray(clusters.summary_terms),
            np.asarray(clusters.summary_blocks),
            np.asarray(clusters.summary_codes),
            np.asarray(clusters.summary_scales),
        )  # fmt: skip
        self.blocks = (np.asarray(clusters.block_offsets), docs, spans)
        self.forward = packed_forward(index)
        self.shape = (index.num_docs, index.meta.vocab_size, max(clusters.max_blocks, 1))

    @classmethod
    def of(cls, index: SparseIndex) -> ClusteredSearch:
        """The clusters of this opened index, opened and prepared on the first call and shared after it (a server's
        main and express-lane searchers search one copy, not two). Clusters rebuilt since are opened anew."""
        written = _written(index)
        with _PREPARING:
            seen, prepared = _PREPARED.get(index, ((0, 0), None))
            if prepared is None or seen != written:
                prepared = cls(index, Clusters.open(index))
                _PREPARED[index] = (written, prepared)
        return prepared

    def work(self, threads: int) -> tuple[np.ndarray, ...]:
        """Buffers for ``threads`` threads of one search at a time: per thread a dense query, the block estimates,
        the visited bits and the list of documents scored (4 bytes per document), all left zero by the kernel."""
        docs, vocab, blocks = self.shape
        return (
            np.zeros((threads, vocab), np.float32),
            np.zeros((threads, blocks), np.float32),
            np.zeros((threads, (docs >> 6) + 1), np.uint64),
            np.zeros((threads, max(docs, 1)), np.uint32),
        )

    def search(
        self, rows: tuple[np.ndarray, np.ndarray, np.ndarray], k: int, query_cut: int, heap_factor: float,
        work: tuple[np.ndarray, ...], allow: np.ndarray, out_docs: np.ndarray, out_scores: np.ndarray,
        sizes: np.ndarray,
    ) -> None:  # fmt: skip
        """Top ``k`` of each query row (``indptr`` int64, term ids int32, weights float32) into ``out_*`` and
        ``sizes``, with as many threads as ``work`` has buffers (:meth:`work`); ``allow``: the mask, or empty for
        none."""
        out = (out_docs, out_scores, sizes)
        threads = work[0].shape[0]
        if threads == 1:  # a parallel region costs its launch even on one thread: 8% of a SciFact search
            mine = tuple(buffers[0] for buffers in work)
            _search_rows(
                0, len(rows[0]) - 1, rows, query_cut, np.float32(heap_factor), k, self.clusters, self.blocks,
                self.forward, mine, allow, out,
            )  # fmt: skip
        else:
            _search_parallel(
                rows, query_cut, np.float32(heap_factor), k, self.clusters, self.blocks, self.forward, work, threads,
                allow, out,
            )  # fmt: skip
