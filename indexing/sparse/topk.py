"""Top-k selection shared by the search kernels: a bounded heap over the touched documents or over the whole
score array (:func:`best_of`), exact rescoring of the best candidates of a pruned accumulation from the
forward index (:func:`rerank_top`), and the top k of a short list of documents scored alone (:func:`top_of_listed`).

Ties are broken by the lower document number, the rule :func:`lsr.indexing.sparse.search.brute_force` uses,
so every kernel returns the same list for the same scores.

Filters (:mod:`lsr.indexing.filters`) are tested here, at selection: ``allow`` is a bool mask of the documents a
search may return, empty for no filter. Accumulation adds every posting whatever the filter (testing a mask per
posting would cost a scattered read each), and a document the mask excludes is never offered to the heap, so the
result is exactly the top k of the allowed documents, for a second look at the few blocks of scores that pass
the heap's threshold (:func:`offer_block`). When the allowed documents are few, scoring each of them alone
(:func:`top_of_listed`) can cost less than reading the query's postings at all.
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


OFFER_BLOCK = 64
"""Scores :func:`offer_block` tests at a time. Fewer branches per score: exact search on the packages corpus's
1,038,337 SPLADE-tiny documents (1,000 queries, `lsr bench search`, three alternating runs on machine A) took a p50
of 1.42-1.52 ms a query at 64 against 1.59-1.67 ms at 16, and 0.71-0.73 against 0.84-0.96 ms a query in 2-thread
batches; on 200,000 random Zipf documents (eval/bench/filtered.py) it was 2-4% slower, within that run's spread."""


@njit(nogil=True, cache=True)
def offer_block(scores, first, count, k, out_docs, out_scores, size, allow) -> int:
    """Offer ``scores[:count]`` (documents ``first`` .. ``first + count - 1``) to the heap in ``out_*``, which holds
    ``size`` entries; return the heap's new size. The scores are left as they are (the caller zeroes them when done:
    safe dynamic pruning selects its first candidates and goes on accumulating). ``allow`` is those documents' mask
    (``allow[0]`` is document ``first``'s), or empty: no filter.

    Documents come in ascending order, so a score can only enter the full heap when it is at least the heap's
    least: that test, branch-free over :data:`OFFER_BLOCK` scores at a time, skips almost every block once the heap is
    full. Scores are compared as their bits (non-negative floats order as their bits do), whose maximum the compiler
    vectorizes.
    A filter is tested only in blocks that pass: their best allowed score (excluded ones masked to zero, still
    branch-free) must pass too. Testing the mask in every block's maximum cost up to 8x the unfiltered selection
    (200k documents, half of them allowed at random: a branch taken at random), and testing it only per document
    in passing blocks 3x (1% allowed: most blocks pass a threshold set by so few documents).
    """
    filtered = len(allow) > 0
    bits, least = scores.view(np.int32), out_scores.view(np.int32)
    threshold = least[0] if size == k else np.int32(0)
    block = OFFER_BLOCK
    for start in range(0, count, block):
        stop = min(start + block, count)
        best = np.int32(0)
        for local in range(start, stop):
            best = max(best, bits[local])
        if filtered and best > 0 and best >= threshold:
            best = np.int32(0)
            for local in range(start, stop):
                best = max(best, bits[local] & -np.int32(allow[local]))
        if best > 0 and best >= threshold:
            for local in range(start, stop):
                if bits[local] > 0 and bits[local] >= threshold and (not filtered or allow[local]):
                    size = offer(out_scores, out_docs, size, k, scores[local], first + local)
                    if size == k:
                        threshold = least[0]
    return size


@njit(nogil=True, cache=True)
def select_top(scores, touched, n_touched, k, out_docs, out_scores, allow, reset) -> int:
    """Top ``k`` of the touched documents that ``allow`` allows (all if empty) into ``out_*`` (best first); with
    ``reset``, resets the scores of all of them to zero."""
    filtered = len(allow) > 0
    size = 0
    for j in range(n_touched):
        doc = np.uint32(touched[j])  # unsigned: no negative-index wraparound test on the scores
        if not filtered or allow[doc]:
            size = offer(out_scores, out_docs, size, k, scores[doc], doc)
        if reset:
            scores[doc] = 0.0
    return rank(out_docs, out_scores, size)


@njit(nogil=True, cache=True)
def best_of(scores, touched, n_touched, dense, k, out_docs, out_scores, allow, reset=True) -> int:
    """Top ``k`` of an accumulation into ``out_*`` (best first): of the ``n_touched`` documents listed in
    ``touched``, or, when ``dense`` (most documents touched, so no list was kept), of the whole score array,
    offered :data:`OFFER_BLOCK` scores at a time; of the documents ``allow`` allows (all if it is empty). With
    ``reset`` (the default) the scores are zeroed for the next query; safe dynamic pruning keeps them to read on."""
    if dense:
        size = offer_block(scores, 0, len(scores), k, out_docs, out_scores, 0, allow)
        if reset:
            scores[:] = 0.0
        return rank(out_docs, out_scores, size)
    return select_top(scores, touched, n_touched, k, out_docs, out_scores, allow, reset)


LISTED_COST = 8
"""Postings read in the time :func:`top_of_listed` takes per document term and per (document, query term): 5-6 ns
for a new filter's thousands of documents, whose postings come from memory (2-4 ns for the same ones again; hinting
the next documents' postings ahead saved nothing), against 0.8-1.1 ns per posting read by the tiled kernel, at 200k
random documents (eval/bench/filtered.py); rounded up, since the mask's path has the flatter cost."""


@njit(inline="always")
def listed_is_cheaper(listed, forward, n_terms, reads) -> bool:  # noqa: ANN001
    """Whether scoring the ``listed`` documents alone costs less than reading the query's ``reads`` postings: a
    lookup per document term (at the corpus's average length: reading the listed documents' own lengths took a
    tenth of a search's time, 0.12 ms for a 1% filter at 200k documents), and a sum over the query terms each."""
    indptr, terms, _ = forward
    length = len(terms) / max(len(indptr) - 1, 1)
    return len(listed) > 0 and LISTED_COST * len(listed) * (length + n_terms) < reads


@njit(nogil=True, cache=True)
def top_of_listed(terms, weights, listed, table, forward, dense_query, k, out_docs, out_scores) -> int:
    """Top ``k`` of the ``listed`` documents alone (a filter's few allowed ones), each scored from the forward index.

    Each document's terms are looked up in ``dense_query`` (the thread's vocabulary-sized buffer, the query's
    weights written in for the call: independent loads, where a merge of two sorted lists waits on each step's
    load); a term the query holds is found among the query's terms, sorted once, by binary search, and the weights
    are added in query order, as term-at-a-time accumulation adds them, so a document's float32 score is the one
    an unfiltered search gives it, bit for bit.
    """
    fwd_indptr, fwd_terms, fwd_codes = forward
    n = len(terms)
    order = np.argsort(terms, kind="mergesort")  # stable: a repeated query term keeps its places' order
    sorted_terms = terms[order]
    products = np.zeros(n, dtype=np.float32)  # by query position
    for i in range(n):
        dense_query[terms[i]] = weights[i]  # positive (zeros are dropped), so non-zero marks a query term
    size = 0
    for j in range(len(listed)):
        doc = np.uint32(listed[j])
        start, end = fwd_indptr[doc], fwd_indptr[doc + 1]
        doc_terms, doc_codes = fwd_terms[start:end], fwd_codes[start:end]
        for at in range(end - start):  # from 0 over slices, unsigned terms: no wraparound test (accumulate.py)
            term = np.uint32(doc_terms[at])
            if dense_query[term] > 0.0:
                i = np.searchsorted(sorted_terms, term)
                while i < n and sorted_terms[i] == term:
                    products[order[i]] = weights[order[i]] * table[doc_codes[at]]
                    i += 1
        score = np.float32(0.0)
        for i in range(n):
            score += products[i]  # + 0.0 for a term the document lacks: the same float32 as leaving it out
            products[i] = 0.0
        if score > 0.0:
            size = offer(out_scores, out_docs, size, k, score, doc)
    for i in range(n):
        dense_query[terms[i]] = 0.0
    return rank(out_docs, out_scores, size)


@njit(nogil=True, cache=True)
def rerank_top(
    terms, weights, work, n_touched, dense, rerank, k, out_docs, out_scores, table, forward, candidates, allow
) -> int:
    """Rescore the ``rerank`` best accumulated documents exactly (forward index), write the top ``k`` to ``out_*``.

    Pruned accumulations miss small contributions; the documents they rank highest still contain the
    true top k with high probability, and rescoring a few hundred of them costs little.
    ``work`` is ``(scores, touched, dense query)``; the candidates are found by :func:`best_of` (which resets
    the scores). ``forward`` is the index's document-major copy
    ``(indptr, terms, codes)``, ``candidates`` two ``rerank``-sized buffers (documents, scores). Candidates are
    only documents that ``allow`` allows (all if it is empty).
    """
    found, _ = offer_best(
        terms, weights, work, n_touched, dense, rerank, k, out_docs, out_scores, table, forward, candidates, allow, True
    )
    dense_query = work[2]
    for i in range(len(terms)):
        dense_query[terms[i]] = 0.0
    return rank(out_docs, out_scores, found)


@njit(inline="always")
def offer_best(
    terms, weights, work, n_touched, dense, rerank, k, out_docs, out_scores, table, forward, candidates, allow, reset
):  # noqa: ANN001, ANN201
    """Rescore the ``rerank`` best accumulated documents exactly into the ``k``-heap ``out_*`` (unranked); return
    the heap's size and how many candidates there were (in ``candidates[0]``). The query's weights are left in the
    dense query buffer for the caller to clear or use again; ``reset`` is :func:`best_of`'s."""
    scores, touched, dense_query = work
    cand_docs, cand_scores = candidates
    size = best_of(scores, touched, n_touched, dense, rerank, cand_docs, cand_scores, allow, reset)
    for i in range(len(terms)):
        dense_query[terms[i]] = weights[i]
    found = 0
    for c in range(size):
        doc = np.uint32(cand_docs[c])
        found = offer(out_scores, out_docs, found, k, exact_score(doc, dense_query, table, forward), doc)
    return found, size


@njit(inline="always")
def exact_score(doc, dense_query, table, forward):  # noqa: ANN001, ANN201
    """Document ``doc``'s exact score from the forward index, the query's weights written into ``dense_query``."""
    fwd_indptr, fwd_terms, fwd_codes = forward
    start, end = fwd_indptr[doc], fwd_indptr[doc + 1]
    doc_terms, doc_codes = fwd_terms[start:end], fwd_codes[start:end]
    exact = np.float32(0.0)
    for j in range(end - start):  # from 0 over slices, unsigned terms: no wraparound test (accumulate.py)
        exact += dense_query[np.uint32(doc_terms[j])] * table[doc_codes[j]]
    return exact
