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
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from indexing.sparse.topk import rerank_top, select_top


@njit(nogil=True, cache=True)
def _kth_score(scores, touched, n_touched, k, heap) -> float:
    """The k-th largest score among the touched documents (a min-heap of size k over the scores)."""
    for j in range(k):
        heap[j] = scores[touched[j]]
    heap[:k].sort()
    for j in range(k, n_touched):
        score = scores[touched[j]]
        if score > heap[0]:
            heap[0] = score
            i = 0
            while True:  # sift down the new root
                child = 2 * i + 1
                if child >= k:
                    break
                if child + 1 < k and heap[child + 1] < heap[child]:
                    child += 1
                if heap[child] >= heap[i]:
                    break
                heap[i], heap[child] = heap[child], heap[i]
                i = child
    return heap[0]


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
    heap,
    candidates,
) -> int:
    """Top ``k`` of one query by round-wise reading, early termination and exact rescoring; returns the hit count.

    The arguments are :func:`indexing.sparse.search._search_one`'s, with ``alpha`` and a ``k``-sized ``heap``.
    """
    offsets, docs, codes, table = postings
    scores, touched, _ = work
    n = len(terms)
    cursor = np.empty(n, dtype=np.int64)
    end = np.empty(n, dtype=np.int64)
    level = np.float32(0.0)
    for i in range(n):
        cursor[i] = offsets[terms[i]]
        end[i] = offsets[terms[i] + 1]
        if cursor[i] < end[i]:
            level = max(level, weights[i] * table[codes[cursor[i]]])
    n_touched = 0
    remaining = np.float32(0.0)
    theta = np.float32(0.0)
    while True:
        level = level * np.float32(0.5)
        remaining = np.float32(0.0)
        for i in range(n):
            weight = weights[i]
            p = cursor[i]
            stop = end[i]
            while p < stop:
                contribution = weight * table[codes[p]]
                if contribution < level:
                    remaining += contribution
                    break
                doc = docs[p]
                if scores[doc] == 0.0:
                    touched[n_touched] = doc
                    n_touched += 1
                scores[doc] += contribution
                p += 1
            cursor[i] = p
        if remaining == 0.0:  # every posting read: the scores are final
            return select_top(scores, touched, n_touched, k, out_docs, out_scores)
        if n_touched >= k:
            theta = _kth_score(scores, touched, n_touched, k, heap)
            if alpha * remaining < theta:
                break
    return rerank_top(terms, weights, work, n_touched, rerank, k, out_docs, out_scores, table, forward, candidates)


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
) -> None:
    """:func:`_search_dynamic_one` for every query row, in parallel threads with per-thread buffers.

    The arguments are those of :func:`indexing.sparse.search._search_batch` with ``alpha`` for ``budget``.
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
            np.empty(k, dtype=np.float32),
            candidates,
        )
