"""Top-k selection shared by the search kernels: a bounded heap over the touched documents or over the whole
score array (:func:`best_of`), and exact rescoring of the best candidates of a pruned accumulation from the
forward index (:func:`rerank_top`).

Ties are broken by the lower document number, the rule :func:`indexing.sparse.search.brute_force` uses,
so every kernel returns the same list for the same scores.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(inline="always")
def _worse(score_a: float, doc_a: int, score_b: float, doc_b: int) -> bool:
    return score_a < score_b or (score_a == score_b and doc_a > doc_b)


@njit(nogil=True, cache=True)
def _sift_down(heap_scores: np.ndarray, heap_docs: np.ndarray, size: int, i: int) -> None:
    while True:
        child = 2 * i + 1
        if child >= size:
            return
        if child + 1 < size and _worse(
            heap_scores[child + 1], heap_docs[child + 1], heap_scores[child], heap_docs[child]
        ):
            child += 1
        if not _worse(heap_scores[child], heap_docs[child], heap_scores[i], heap_docs[i]):
            return
        heap_scores[i], heap_scores[child] = heap_scores[child], heap_scores[i]
        heap_docs[i], heap_docs[child] = heap_docs[child], heap_docs[i]
        i = child


@njit(nogil=True, cache=True)
def offer(heap_scores, heap_docs, size, k, score, doc) -> int:
    """Offer one document to a bounded min-heap of the ``k`` best so far; returns the heap's new size."""
    if size < k:
        heap_scores[size] = score
        heap_docs[size] = doc
        size += 1
        if size == k:
            for root in range(k // 2 - 1, -1, -1):
                _sift_down(heap_scores, heap_docs, k, root)
    elif _worse(heap_scores[0], heap_docs[0], score, doc):
        heap_scores[0] = score
        heap_docs[0] = doc
        _sift_down(heap_scores, heap_docs, k, 0)
    return size


@njit(nogil=True, cache=True)
def rank(out_docs, out_scores, size) -> int:
    """Order a heap's ``size`` entries best first: score descending, document number ascending."""
    order = np.argsort(out_docs[:size], kind="mergesort")
    ranked_docs = out_docs[:size][order].copy()
    ranked_scores = out_scores[:size][order].copy()
    order = np.argsort(-ranked_scores, kind="mergesort")
    for j in range(size):
        out_docs[j] = ranked_docs[order[j]]
        out_scores[j] = ranked_scores[order[j]]
    return size


@njit(nogil=True, cache=True)
def offer_block(scores, first, count, k, out_docs, out_scores, size) -> int:
    """Offer ``scores[:count]`` (documents ``first`` .. ``first + count - 1``) to the heap in ``out_*``, which holds
    ``size`` entries; zero those scores, return the heap's new size.

    Documents come in ascending order, so a score can only enter the full heap when it is at least the heap's
    least: that test, branch-free over 16 scores at a time, skips almost every block once the heap is full.
    """
    threshold = out_scores[0] if size == k else np.float32(0.0)
    block = 16
    for start in range(0, count, block):
        stop = min(start + block, count)
        best = np.float32(0.0)
        for local in range(start, stop):
            best = max(best, scores[local])
        if best > 0.0 and best >= threshold:
            for local in range(start, stop):
                score = scores[local]
                if score > 0.0 and score >= threshold:
                    size = offer(out_scores, out_docs, size, k, score, first + local)
                    if size == k:
                        threshold = out_scores[0]
    scores[:count] = 0.0
    return size


@njit(nogil=True, cache=True)
def select_top(scores, touched, n_touched, k, out_docs, out_scores) -> int:
    """Top ``k`` of the touched documents into ``out_*`` (best first); resets their scores to zero."""
    size = 0
    for j in range(n_touched):
        doc = np.uint32(touched[j])  # unsigned: no negative-index wraparound test on the scores
        size = offer(out_scores, out_docs, size, k, scores[doc], doc)
        scores[doc] = 0.0
    return rank(out_docs, out_scores, size)


@njit(nogil=True, cache=True)
def best_of(scores, touched, n_touched, dense, k, out_docs, out_scores) -> int:
    """Top ``k`` of an accumulation into ``out_*`` (best first), resetting the scores to zero: of the ``n_touched``
    documents listed in ``touched``, or, when ``dense`` (most documents touched, so no list was kept), of the
    whole score array, offered 16 scores at a time."""
    if dense:
        return rank(out_docs, out_scores, offer_block(scores, 0, len(scores), k, out_docs, out_scores, 0))
    return select_top(scores, touched, n_touched, k, out_docs, out_scores)


@njit(nogil=True, cache=True)
def rerank_top(
    terms, weights, work, n_touched, dense, rerank, k, out_docs, out_scores, table, forward, candidates
) -> int:
    """Rescore the ``rerank`` best accumulated documents exactly (forward index), write the top ``k`` to ``out_*``.

    Pruned accumulations miss small contributions; the documents they rank highest still contain the
    true top k with high probability, and rescoring a few hundred of them costs little.
    ``work`` is ``(scores, touched, dense query)``; the candidates are found by :func:`best_of` (which resets
    the scores). ``forward`` is the index's document-major copy
    ``(indptr, terms, codes)``, ``candidates`` two ``rerank``-sized buffers (documents, scores).
    """
    scores, touched, dense_query = work
    cand_docs, cand_scores = candidates
    size = best_of(scores, touched, n_touched, dense, rerank, cand_docs, cand_scores)
    fwd_indptr, fwd_terms, fwd_codes = forward
    for i in range(len(terms)):
        dense_query[terms[i]] = weights[i]
    found = 0
    for c in range(size):
        doc = np.uint32(cand_docs[c])
        start, end = fwd_indptr[doc], fwd_indptr[doc + 1]
        doc_terms, doc_codes = fwd_terms[start:end], fwd_codes[start:end]
        exact = np.float32(0.0)
        for j in range(end - start):  # from 0 over slices, unsigned terms: no wraparound test (accumulate.py)
            exact += dense_query[np.uint32(doc_terms[j])] * table[doc_codes[j]]
        found = offer(out_scores, out_docs, found, k, exact, doc)
    for i in range(len(terms)):
        dense_query[terms[i]] = 0.0
    return rank(out_docs, out_scores, found)
