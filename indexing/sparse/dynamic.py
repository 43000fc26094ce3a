"""Dynamic pruning over impact-ordered postings: stop reading when unread postings can no longer matter much.

Every term's postings are stored by decreasing weight, so after reading a prefix
of each list, ``query weight x weight at the cursor`` bounds what any unread
posting of that term can add, and the sum of those bounds, ``R``, bounds what
all unread postings can add to one document. Postings are read in rounds by
global contribution level (every contribution above ``level``, then above
``level / 2``, ...), so the heaviest contributions come first, whichever term
they belong to. After each round ``theta`` is the k-th best partial score; once
``alpha x R < theta`` a document not yet seen cannot reach the top k (for
``alpha`` = 1), and reading stops. The ``rerank`` best partial scores are then
rescored exactly from the forward index, which repairs the order of documents
whose small contributions were not read.

``alpha`` in (0, 1] is the knob (as in block-max pruning): smaller values stop
earlier and read fewer postings, at some cost in recall; a larger ``rerank``
recovers recall for a little more work.

At ``alpha`` = 1 the search is exact, which the stopping test alone does not make it: it bounds the documents
not yet seen, but a seen one ranked below the ``rerank`` best partial scores can still gain up to ``R`` and pass
them (recall 0.9998 on the first 450,000 packages documents, SPLADE-tiny, 2 of 1,000 queries). So at 1 the
``rerank`` best are rescored first, their k-th best exact score bounds the k-th best from below, and every seen
document whose partial score + ``R`` reaches it is rescored too (:func:`_settle`). ``R`` bounds every term at
once, so at the first stop thousands of documents qualify (median ~10,000 there); rounds go on while rescoring
them (``LISTED_COST`` postings per document term) would cost more than the next round's postings. The price:
on that corpus alpha 1 reads most postings, and is slower than exact search (eval/RESULTS.md); below 1 the
stopping test is already approximate and the ``rerank`` best alone are rescored, as before.

The kernel follows the exact one's loop discipline (:mod:`lsr.indexing.sparse.accumulate`): where a round
stops in each list is found by binary search (contributions never increase along a list), so the posting
loop runs from 0 over a slice, with unsigned document numbers and no test per posting; and the stopping
test counts the scores above ``alpha x R`` (the k-th best is above it exactly when k of them are) instead
of selecting the k-th. A query whose terms hold a quarter of the corpus size in postings or more keeps no
list of touched documents, and scans the score array instead (as exact search does). Results are
bit-identical to the earlier kernel, which tested every posting in a ``range(start, end)`` loop over signed
indices; that was 6-10x slower (1M synthetic documents, 1,000 queries, 2 threads: alpha 0.3, rerank 300
from 15.7 to 1.4 ms per query, against 2.4-2.5 ms for exact search). On that corpus almost all the time
goes to the postings' scattered additions (at alpha 0.3 about a fifth of a query's postings are read):
doubling the stopping scans or prefetching the scores changed nothing measurable; multiplying the level
by 0.7 per round instead of 0.5 read fewer postings but lost as much recall at the same ``alpha`` (no better
trade-off); and reading an impact-ordered tiled copy (scores in L2, as the exact kernel does) saved 14% at
alpha 1.0, 6% at 0.5 and nothing at 0.3, for another 4 bytes per posting of memory, so it was left out.

With a filter (``allow``) the stopping test counts allowed documents only: ``theta`` is then the k-th best
partial score among allowed documents, which is what an unseen allowed document must beat, so the bound stays
safe; disallowed documents still accumulate (their postings are read like any other) but never count toward
stopping nor become candidates. A filter that allows fewer than k documents never stops early: every posting
is read, and the exact scores are final.
"""

from __future__ import annotations

import numba
import numpy as np
from lsr.indexing.sparse.accumulate import add_segment, add_segment_touched
from lsr.indexing.sparse.topk import (
    LISTED_COST,
    best_of,
    exact_score,
    listed_is_cheaper,
    offer,
    offer_best,
    rank,
    rerank_top,
    top_of_listed,
)
from numba import njit, prange


@njit(inline="always")
def _cut(codes, table, weight, start, end, level):  # noqa: ANN001, ANN202
    """The first position in ``[start, end)`` whose contribution ``weight x table[code]`` is below ``level``.

    A term's postings are in impact order, so its contributions never increase along the list: a binary
    search finds where a round stops reading, and the posting loop itself runs without a test per posting.
    """
    low, high = start, end
    while low < high:
        middle = (low + high) >> 1
        if weight * table[codes[middle]] < level:
            high = middle
        else:
            low = middle + 1
    return low


@njit(inline="always")
def _above(scores, touched, n_touched, dense, threshold, allow) -> int:  # noqa: ANN001
    """How many documents score above ``threshold``: of those in ``touched``, or (``dense``) of the whole array;
    of those ``allow`` allows (all if it is empty).

    The k-th best score is above the threshold exactly when at least k documents are: counting, branch-free,
    decides the stopping test without selecting the k-th score.
    """
    count = 0
    if len(allow) and dense:
        for doc in range(len(scores)):
            count += (scores[doc] > threshold) & allow[doc]
    elif len(allow):
        for j in range(n_touched):
            doc = np.uint32(touched[j])
            count += (scores[doc] > threshold) & allow[doc]
    elif dense:
        for doc in range(len(scores)):
            count += scores[doc] > threshold
    else:
        for j in range(n_touched):
            count += scores[np.uint32(touched[j])] > threshold
    return count


@njit(inline="always")
def _next_reads(codes, table, weights, cursor, end, level) -> int:  # noqa: ANN001
    """How many postings a round down to ``level`` would read (a binary search per term, no posting read)."""
    reads = 0
    for i in range(len(cursor)):
        reads += _cut(codes, table, weights[i], cursor[i], end[i], level) - cursor[i]
    return reads


@njit(nogil=True, cache=True)
def _rescore_best(
    terms, weights, work, n_touched, dense, rerank, k, out_docs, out_scores, table, forward, candidates, allow
):  # noqa: ANN001, ANN201
    """Rescore the ``rerank`` best partial scores exactly into the ``k``-heap ``out_*``; return the heap's size.

    Their exact scores give the k-th best a lower bound that the seen documents are then tested against. Each
    rescored document's partial score becomes minus infinity, so that reading on leaves it out of every count
    and of the final pass (it is in the heap already). The query's weights stay in the dense query buffer
    for :func:`_settle`.
    """
    found, size = offer_best(
        terms, weights, work, n_touched, dense, rerank, k, out_docs, out_scores, table, forward, candidates, allow,
        False,
    )  # fmt: skip
    scores, cand_docs = work[0], candidates[0]
    for c in range(size):
        scores[np.uint32(cand_docs[c])] = -np.inf
    return found


@njit(nogil=True, cache=True)
def _settle(terms, work, n_touched, dense, remaining, k, out_docs, out_scores, found, table, forward, allow) -> int:  # noqa: ANN001
    """Rescore every seen document that could still reach the heap's k best: partial score + ``remaining`` (what
    its unread postings can add at most) at least the k-th best exact score; rank the heap, zero the scores.

    ``>=``, not ``>``: a document that can only tie the k-th best is rescored too, so ties are broken by the lower
    document number as in exact search, and the result is exact search's, document for document.
    """
    scores, touched, dense_query = work
    filtered = len(allow) > 0
    count = len(scores) if dense else n_touched
    for j in range(count):
        doc = np.uint32(j) if dense else np.uint32(touched[j])
        partial = scores[doc]
        if partial > 0.0 and (not filtered or allow[doc]) and (found < k or partial + remaining >= out_scores[0]):
            found = offer(out_scores, out_docs, found, k, exact_score(doc, dense_query, table, forward), doc)
        scores[doc] = 0.0
    for i in range(len(terms)):
        dense_query[terms[i]] = 0.0
    return rank(out_docs, out_scores, found)


@njit(nogil=True, cache=True)
def _search_dynamic_one(
    terms,
    weights,
    postings,
    alpha,
    rerank,
    k,
    work,
    out_docs,
    out_scores,
    forward,
    candidates,
    filters,
) -> int:
    """Top ``k`` of one query by round-wise reading, early termination and exact rescoring; returns the hit count.

    The arguments are :func:`lsr.indexing.sparse.search._search_one`'s, with ``alpha``. As there, a query whose
    terms hold many postings for the corpus size (a quarter of it or more) keeps no list of touched documents:
    the counts and the candidates then come from scans of the score array; and a filter's few allowed documents
    are scored alone, exactly, when that costs less than reading all the query's postings.
    """
    offsets, docs, codes, table = postings
    scores, touched, _ = work
    allow, listed = filters
    n = len(terms)
    cursor = np.empty(n, dtype=np.int64)
    end = np.empty(n, dtype=np.int64)
    level = np.float32(0.0)
    for i in range(n):
        cursor[i] = offsets[terms[i]]
        end[i] = offsets[terms[i] + 1]
        if cursor[i] < end[i]:
            level = max(level, weights[i] * table[codes[cursor[i]]])
    if listed_is_cheaper(listed, forward, n, np.sum(end - cursor)):
        return top_of_listed(terms, weights, listed, table, forward, work[2], k, out_docs, out_scores)
    dense = 4 * np.sum(end - cursor) >= len(scores)
    # what rescoring one document costs, in postings read (topk.LISTED_COST's calibration, at the average length)
    rescore_cost = LISTED_COST * len(forward[1]) / max(len(forward[0]) - 1, 1)
    settling = False  # alpha = 1, once no unseen document can reach the top k: the seen ones are being settled
    found = 0
    n_touched = 0
    while True:
        level = level * np.float32(0.5)
        remaining = np.float32(0.0)
        for i in range(n):
            start = cursor[i]
            stop = _cut(codes, table, weights[i], start, end[i], level)
            if stop < end[i]:
                remaining += weights[i] * table[codes[stop]]
            if dense:
                add_segment(scores, weights[i], docs, codes, table, start, stop)
            else:
                n_touched = add_segment_touched(scores, touched, n_touched, weights[i], docs, codes, table, start, stop)
            cursor[i] = stop
        if not settling:
            if remaining == 0.0:  # every posting read: the scores are final
                return best_of(scores, touched, n_touched, dense, k, out_docs, out_scores, allow)
            if _above(scores, touched, n_touched, dense, alpha * remaining, allow) < k:
                continue
            if alpha < 1.0:
                return rerank_top(
                    terms, weights, work, n_touched, dense, rerank, k, out_docs, out_scores, table, forward,
                    candidates, allow,
                )  # fmt: skip
            found = _rescore_best(
                terms, weights, work, n_touched, dense, rerank, k, out_docs, out_scores, table, forward, candidates,
                allow,
            )  # fmt: skip
            settling = True
        # a seen document can still reach the top k if its partial score + remaining reaches the k-th exact score
        bound = out_scores[0] - remaining if found == k else np.float32(0.0)
        if remaining == 0.0 or rescore_cost * _above(
            scores, touched, n_touched, dense, max(bound, np.float32(0.0)), allow
        ) <= _next_reads(codes, table, weights, cursor, end, level * np.float32(0.5)):
            return _settle(
                terms, work, n_touched, dense, remaining, k, out_docs, out_scores, found, table, forward, allow
            )


@njit(parallel=True, nogil=True, cache=True)
def search_dynamic_batch(
    indptr,
    terms,
    weights,
    postings,
    alpha,
    k,
    score_pool,
    touched_pool,
    out_docs,
    out_scores,
    out_sizes,
    rerank,
    forward,
    query_pool,
    filters,
) -> None:
    """:func:`_search_dynamic_one` for every query row, in parallel threads with per-thread buffers.

    The arguments are those of :func:`lsr.indexing.sparse.search._search_batch` with ``alpha`` for ``budget``.
    """
    for q in prange(len(indptr) - 1):
        thread = numba.get_thread_id()
        start, end = indptr[q], indptr[q + 1]
        candidates = (np.empty(rerank, dtype=np.int32), np.empty(rerank, dtype=np.float32))
        work = (score_pool[thread], touched_pool[thread], query_pool[thread])
        out_sizes[q] = _search_dynamic_one(
            terms[start:end],
            weights[start:end],
            postings,
            alpha,
            rerank,
            k,
            work,
            out_docs[q],
            out_scores[q],
            forward,
            candidates,
            filters,
        )
