"""Building an index's clusters (:mod:`.clusters` describes the structure and its files): Numba kernels, all of
Numba's threads.

Why a module of its own: the build is most of the code and all of the cost (at a million documents, minutes on two
cores, against milliseconds to open the result), and it changes for speed while the format stays; :mod:`.clusters`
keeps what a reader of the files needs. Every change here must build the same arrays:
``python -m lsr.eval.bench.clusters_build_ab VECTORS REV`` times a version against another and compares them, and
tests/test_clustered.py recomputes every assignment and every summary in plain Python.
"""

from __future__ import annotations

import numba
import numpy as np
from lsr.indexing.sparse.clusters import MAX_BLOCKS, Clusters, ClustersError, ClusterSettings
from lsr.indexing.sparse.format import SparseIndex
from numba import njit, prange


@njit(inline="always")
def _hash(a: int, b: int) -> np.uint64:
    """A seeded 64-bit mix (splitmix64's finaliser): the same centroids on every machine and thread count."""
    x = (np.uint64(a) * np.uint64(0x9E3779B97F4A7C15)) ^ (np.uint64(b) * np.uint64(0xC2B2AE3D27D4EB4F))
    x ^= x >> np.uint64(31)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(29)
    return x


@njit(parallel=True, cache=True)
def _heaviest(indptr, weights, cut):  # noqa: ANN001, ANN202
    """Per document, the positions in the forward arrays of its ``cut`` heaviest weights (CSR)."""
    n = len(indptr) - 1
    bounds = np.empty(n + 1, np.int64)
    bounds[0] = 0
    for d in range(n):
        bounds[d + 1] = bounds[d] + min(cut, indptr[d + 1] - indptr[d])
    positions = np.empty(bounds[-1], np.int64)
    for d in prange(n):
        start = indptr[d]
        order = np.argsort(-weights[start : indptr[d + 1]])
        for i in range(bounds[d + 1] - bounds[d]):
            positions[bounds[d] + i] = start + order[i]
    return bounds, positions


@njit(nogil=True, cache=True)
def _centroid_map(docs, centroids, indptr, terms, weights, count, start, seen):  # noqa: ANN001, ANN202
    """The centroids' inverted map, laid out by term: term t's entries (centroid, weight), in centroid order, are
    ``start[t] .. start[t] + count[t]`` of the returned arrays. A counting sort over the terms met: ``count``
    (zero for every term) and ``start`` are per-thread scratch of the vocabulary's size, no sort and no search per
    lookup (a merge sort and a binary search per term were 40 % of the build on short lists). Returns the arrays
    and the terms met in ``seen[:met]``, whose ``count`` the caller sets back to zero."""
    met, size = 0, 0
    for c in range(len(centroids)):
        d = docs[centroids[c]]
        for j in range(indptr[d], indptr[d + 1]):
            t = terms[j]
            seen[met] = t
            met += count[t] == 0
            count[t] += 1
            size += 1
    filled = 0
    for i in range(met):
        t = seen[i]
        start[t] = filled
        filled += count[t]
        count[t] = 0
    entry_block, entry_weight = np.empty(size, np.int32), np.empty(size, np.float32)
    for c in range(len(centroids)):
        d = docs[centroids[c]]
        for j in range(indptr[d], indptr[d + 1]):
            t = terms[j]
            e = start[t] + count[t]
            entry_block[e], entry_weight[e] = c, weights[j]
            count[t] += 1
    return entry_block, entry_weight, met


@njit(nogil=True, cache=True)
def _nearest(doc, entries, removed, score, forward, heaviest) -> int:  # noqa: ANN001
    """The centroid (not ``removed``) with the largest dot product with ``doc``'s heaviest terms, the first of
    equals; -1 if none shares a term with them. ``entries`` is :func:`_centroid_map`'s ``(block, weight, count,
    start)``, ``forward`` ``(indptr, terms, weights)``, ``heaviest`` :func:`_heaviest`'s ``(bounds, positions)``;
    ``score`` (one per centroid, zero) is scratch, left zero. Every centroid's score is read back, not
    only those touched: in a long list the list's own term is in every centroid, so a document touches nearly
    all of them and the bookkeeping of which it touched cost more than the dense pass (2.4x on the longest lists
    of the packages corpus)."""
    entry_block, entry_weight, count, start = entries
    _, terms, weights = forward
    cut_bounds, cut_positions = heaviest
    for p in range(cut_bounds[doc], cut_bounds[doc + 1]):
        j = cut_positions[p]
        t, w = terms[j], weights[j]
        for e in range(start[t], start[t] + count[t]):
            score[entry_block[e]] += w * entry_weight[e]
    best, best_score = -1, np.float32(0.0)
    for c in range(len(score)):
        if score[c] > best_score and not removed[c]:
            best, best_score = c, score[c]
        score[c] = 0.0
    return best


@njit(nogil=True, cache=True)
def _cluster_list(docs, term, n_blocks, settings, forward, heaviest, scratch, out):  # noqa: ANN001
    """Write each document's block (0 .. n_blocks - 1) of one list into ``out`` (:mod:`.clusters`' docstring, step 2).
    ``forward`` is ``(indptr, terms, weights)``, ``heaviest`` :func:`_heaviest`'s ``(bounds, positions)``;
    ``scratch`` is :func:`_centroid_map`'s ``(count, start, seen)``."""
    seed, min_size = settings
    indptr, terms, weights = forward
    count, start, seen = scratch
    n = len(docs)
    keys = np.empty(n, np.uint64)
    for i in range(n):
        keys[i] = _hash(np.int64(docs[i]) + seed, term)
    centroids = np.argsort(keys)[:n_blocks]
    entry_block, entry_weight, met = _centroid_map(docs, centroids, indptr, terms, weights, count, start, seen)
    entries = (entry_block, entry_weight, count, start)
    score = np.zeros(n_blocks, np.float32)
    removed = np.zeros(n_blocks, np.bool_)
    counts = np.zeros(n_blocks, np.int64)
    for i in range(n):
        out[i] = max(0, _nearest(docs[i], entries, removed, score, forward, heaviest))
        counts[out[i]] += 1
    kept = 0
    for c in range(n_blocks):
        removed[c] = counts[c] <= min_size
        kept += not removed[c]
    if 0 < kept < n_blocks:
        first = np.argmin(removed)
        for i in range(n):
            if removed[out[i]]:
                best = _nearest(docs[i], entries, removed, score, forward, heaviest)
                out[i] = first if best < 0 else best
    for i in range(met):
        count[seen[i]] = 0


@njit(parallel=True, cache=True)
def _cluster(offsets, docs, kept, n_blocks, settings, forward, heaviest, chunks):  # noqa: ANN001, ANN202
    """Every list's block assignment, lists dealt round-robin by decreasing length so threads share the work."""
    vocab = len(offsets) - 1
    kept_offsets = np.zeros(vocab + 1, np.int64)
    for t in range(vocab):
        kept_offsets[t + 1] = kept_offsets[t] + kept[t]
    assign = np.zeros(kept_offsets[-1], np.int32)
    order = np.argsort(-kept)
    for chunk in prange(chunks):
        scratch = (np.zeros(vocab, np.int64), np.zeros(vocab, np.int64), np.empty(vocab + 1, np.int32))
        for o in range(chunk, vocab, chunks):
            t = order[o]
            if n_blocks[t] > 1:
                start = offsets[t]
                _cluster_list(
                    docs[start : start + kept[t]], t, n_blocks[t], settings, forward, heaviest, scratch,
                    assign[kept_offsets[t] : kept_offsets[t + 1]],
                )  # fmt: skip
    return kept_offsets, assign


@njit(parallel=True, cache=True)
def _blocks(offsets, docs, kept_offsets, term_blocks, assign):  # noqa: ANN001, ANN202
    """Block bounds and each block's documents in increasing number (the forward index is read in that order)."""
    vocab = len(offsets) - 1
    counts = np.zeros(term_blocks[-1] + 1, np.int64)
    for t in prange(vocab):
        for i in range(kept_offsets[t], kept_offsets[t + 1]):
            counts[term_blocks[t] + assign[i] + 1] += 1
    block_offsets = np.cumsum(counts)
    block_docs = np.empty(kept_offsets[-1], np.int32)
    for t in prange(vocab):
        n = kept_offsets[t + 1] - kept_offsets[t]
        keys = np.empty(n, np.int64)
        for i in range(n):
            keys[i] = (np.int64(assign[kept_offsets[t] + i]) << 32) | np.int64(docs[offsets[t] + i])
        keys.sort()
        first = block_offsets[term_blocks[t]]
        for i in range(n):
            block_docs[first + i] = np.int32(keys[i] & 0xFFFFFFFF)
    return block_offsets, block_docs


@njit(nogil=True, cache=True)
def _union(block, block_offsets, block_docs, indptr, terms, weights, dense, touched) -> int:  # noqa: ANN001
    """The coordinate-wise maximum of one block's documents into ``dense`` (zero before), its terms in ``touched``
    in the order first met; returns how many."""
    n = 0
    for i in range(block_offsets[block], block_offsets[block + 1]):
        d = block_docs[i]
        for j in range(indptr[d], indptr[d + 1]):
            t, w = terms[j], weights[j]
            if dense[t] == 0.0:
                touched[n] = t
                n += 1
            if w > dense[t]:
                dense[t] = w
    return n


@njit(nogil=True, cache=True)
def _energy_cut(dense, touched, n, energy, values):  # noqa: ANN001, ANN202
    """How many of a block's ``n`` coordinates its summary keeps (the heaviest, until they hold ``energy`` of the
    L1 mass), the smallest value kept, and how many coordinates of exactly that value are kept (ties go to the
    coordinates met first, as a stable sort by weight would order them). ``values`` is scratch.

    A selection, not a sort (3x faster on blocks of ~750 coordinates, the shipped model's on the packages corpus):
    three-way partitions around a median of three narrow the range holding the cut, the values above it kept
    whole. Masses are summed per partition rather than value by value in sorted order; in float64, sums of these
    float32 weights (float16 or 8-bit codes) are exact unless they span more than ~30 binades, so the cut is the
    one a sort finds (tests/test_clustered.py recomputes every summary with a sort)."""
    total = 0.0
    for i in range(n):
        values[i] = dense[touched[i]]
        total += values[i]
    target = energy * total
    if n == 0 or not target > 0.0:
        return 0, np.float32(np.inf), 0
    lo, hi = 0, n
    done, mass = 0, 0.0  # values above the range lo:hi (all kept) and their mass
    while lo < hi:
        a, b, c = values[lo], values[(lo + hi) // 2], values[hi - 1]
        pivot = max(min(a, b), min(max(a, b), c))
        above, equal = _partition(values, lo, hi, pivot)
        heavier = 0.0
        for j in range(lo, above):
            heavier += values[j]
        if above > lo and mass + heavier >= target:
            hi = above
            continue
        mass += heavier
        done += above - lo
        ties = 0
        while ties < equal - above and mass < target:
            mass += pivot
            ties += 1
        if mass >= target:
            return done + ties, pivot, ties
        done += equal - above
        lo = equal
    # rounding left the mass short of the target: every coordinate is kept
    smallest, ties = np.float32(np.inf), 0
    for i in range(n):
        if values[i] < smallest:
            smallest, ties = values[i], 1
        elif values[i] == smallest:
            ties += 1
    return n, smallest, ties


@njit(nogil=True, cache=True)
def _partition(values, lo, hi, pivot):  # noqa: ANN001, ANN202
    """Reorder ``values[lo:hi]`` into those above ``pivot``, equal to it, below it; returns where the equal ones
    start and where the lower ones start."""
    above, i, below = lo, lo, hi
    while i < below:
        v = values[i]
        if v > pivot:
            values[i], values[above] = values[above], v
            above += 1
            i += 1
        elif v < pivot:
            below -= 1
            values[i], values[below] = values[below], v
        else:
            i += 1
    return above, below


@njit(nogil=True, cache=True)
def _cut_keeps(dense, touched, n, smallest, ties, own) -> bool:  # noqa: ANN001
    """Whether the energy cut keeps term ``own``, or the block lacks it (a block emptied by merging small clusters
    has no terms), so that nothing is to be added: the rule :func:`_summary` applies, ties at the smallest value
    kept kept in the order their terms were first met."""
    for i in range(n):
        w = dense[touched[i]]
        keep = w > smallest or (w == smallest and ties > 0)
        if keep and w == smallest:
            ties -= 1
        if touched[i] == own:
            return keep
    return True


@njit(nogil=True, cache=True)
def _summary_sizes(block, own, block_offsets, block_docs, forward, energy, scratch, cut) -> None:  # noqa: ANN001
    """One block's summary size and cut (:func:`_energy_cut`) into ``cut[block]``: the first of two passes, so
    the second writes each summary straight into its place. ``own`` is the term whose list holds the block, kept
    in its summary even below the cut (``cut[block, 3]`` says it was added), or -1 for the cut alone. ``scratch``
    is ``(dense, touched, values)``, ``dense`` left zero."""
    indptr, terms, weights = forward
    dense, touched, values = scratch
    n = _union(block, block_offsets, block_docs, indptr, terms, weights, dense, touched)
    kept, smallest, ties = _energy_cut(dense, touched, n, energy, values)
    added = own >= 0 and not _cut_keeps(dense, touched, n, smallest, ties, own)
    cut[block, 0], cut[block, 1], cut[block, 2], cut[block, 3] = kept + added, smallest, ties, added
    for i in range(n):
        dense[touched[i]] = 0.0


@njit(nogil=True, cache=True)
def _summary(block, own, block_offsets, block_docs, forward, cut, scratch, out_terms, out_weights):  # noqa: ANN001, ANN202
    """One block's summary (:mod:`.clusters`' docstring, step 3) into ``out_*``, in no particular order (the caller
    sorts a list's entries by term), from the cut the first pass found: no sort here; term ``own`` too where that
    pass added it. ``forward`` is ``(indptr, terms, weights)``; ``scratch`` is ``(dense, touched)``, ``dense`` left
    zero."""
    indptr, terms, weights = forward
    dense, touched = scratch
    n = _union(block, block_offsets, block_docs, indptr, terms, weights, dense, touched)
    smallest, ties, added = np.float32(cut[block, 1]), np.int64(cut[block, 2]), cut[block, 3] > 0
    out = 0
    for i in range(n):
        t = touched[i]
        w = dense[t]
        if w > smallest or (w == smallest and ties > 0):
            if w == smallest:
                ties -= 1
            out_terms[out], out_weights[out] = t, w
            out += 1
        elif added and t == own:
            out_terms[out], out_weights[out] = t, w
            out += 1
        dense[t] = 0.0


@njit(nogil=True, cache=True)
def _stable_order(keys, vocab):  # noqa: ANN001, ANN202
    """``np.argsort(keys, kind="mergesort")`` for keys in ``[0, vocab)``: a counting sort once there are more keys
    than an eighth of the vocabulary (a long list's summary entries, sorted by term), a merge sort below."""
    n = len(keys)
    if 8 * n < vocab:
        return np.argsort(keys, kind="mergesort")
    starts = np.zeros(vocab + 1, np.int64)
    for i in range(n):
        starts[keys[i] + 1] += 1
    for t in range(vocab):
        starts[t + 1] += starts[t]
    order = np.empty(n, np.int64)
    for i in range(n):
        order[starts[keys[i]]] = i
        starts[keys[i]] += 1
    return order


@njit(parallel=True, cache=True)
def _summaries(vocab, term_blocks, block_offsets, block_docs, forward, energy, keep_list_term, chunks):  # noqa: ANN001, ANN202
    """Every block's summary, then each list's entries sorted by term with their block (local to the list) and
    their weight rounded up to 8 bits of the list's largest. ``keep_list_term``: each block's summary keeps the
    term of its list (:class:`.clusters.ClusterSettings`).

    The first pass finds every summary's size and cut; the second, list by list (the longest first, dealt
    round-robin), writes each list's summaries, sorts them by term and stores them in place, so no array of every
    entry's term and float weight exists beside the output (8 bytes an entry: 23 GB for the shipped model's 2.9
    billion entries at a million documents, more than this machine's memory)."""
    blocks = len(block_offsets) - 1
    owner = np.full(blocks, -1, np.int32)  # each block's list, where its term is kept whatever the cut
    if keep_list_term:
        for t in range(vocab):
            owner[term_blocks[t] : term_blocks[t + 1]] = t
    cut = np.empty((blocks, 4), np.float64)  # kept, smallest value kept, ties kept at that value, list term added
    for chunk in prange(chunks):
        scratch = (np.zeros(vocab, np.float32), np.empty(vocab, np.int32), np.empty(vocab, np.float32))
        for b in range(chunk, blocks, chunks):
            _summary_sizes(b, owner[b], block_offsets, block_docs, forward, energy, scratch, cut)
    bounds = np.zeros(blocks + 1, np.int64)
    for b in range(blocks):
        bounds[b + 1] = bounds[b] + np.int64(cut[b, 0])
    out_terms = np.empty(bounds[-1], np.uint16)
    out_blocks = np.empty(bounds[-1], np.uint16)
    out_codes = np.empty(bounds[-1], np.uint8)
    scales = np.zeros(vocab, np.float32)
    sizes = np.empty(vocab, np.int64)
    for t in range(vocab):
        sizes[t] = bounds[term_blocks[t + 1]] - bounds[term_blocks[t]]
    order = np.argsort(-sizes)
    for chunk in prange(chunks):
        scratch = (np.zeros(vocab, np.float32), np.empty(vocab, np.int32))
        for o in range(chunk, vocab, chunks):
            t = order[o]
            low, high = bounds[term_blocks[t]], bounds[term_blocks[t + 1]]
            if high == low:
                continue
            entry_terms, entry_weights = np.empty(high - low, np.int32), np.empty(high - low, np.float32)
            local = np.empty(high - low, np.int32)
            for b in range(term_blocks[t], term_blocks[t + 1]):
                first, last = bounds[b] - low, bounds[b + 1] - low
                _summary(
                    b, owner[b], block_offsets, block_docs, forward, cut, scratch, entry_terms[first:last],
                    entry_weights[first:last],
                )  # fmt: skip
                local[first:last] = b - term_blocks[t]
            ranked = _stable_order(entry_terms, vocab)
            scale = np.float32(entry_weights.max() / 255.0)
            scales[t] = scale
            for i in range(high - low):
                e = ranked[i]
                out_terms[low + i] = entry_terms[e]
                out_blocks[low + i] = local[e]
                out_codes[low + i] = min(255, int(np.ceil(entry_weights[e] / scale)))
    summary_offsets = np.empty(vocab + 1, np.int64)
    for t in range(vocab + 1):
        summary_offsets[t] = bounds[term_blocks[t]]
    return summary_offsets, out_terms, out_blocks, out_codes, scales


def build_clusters(index: SparseIndex, settings: ClusterSettings | None = None) -> Clusters:
    """Cluster every list of ``index`` (:mod:`.clusters`' docstring; its default settings when none are given)."""
    settings = settings or ClusterSettings()
    settings.check()
    if index.meta.vocab_size > MAX_BLOCKS:
        raise ClustersError(
            f"{index.path}: clusters store terms in 16 bits; this vocabulary has {index.meta.vocab_size:,}"
        )
    indptr, terms = np.asarray(index.forward_indptr), np.asarray(index.forward_terms)
    weights = index.codebook[np.asarray(index.forward_codes)]
    offsets = np.asarray(index.offsets)
    kept = np.minimum(np.diff(offsets), settings.max_postings)
    n_blocks = np.where(kept > 0, np.clip((settings.centroid_fraction * kept).astype(np.int64), 1, MAX_BLOCKS), 0)
    term_blocks = np.concatenate(([0], np.cumsum(n_blocks))).astype(np.int64)
    chunks = 8 * numba.get_num_threads()
    kept_offsets, assign = _cluster(
        offsets, np.asarray(index.docs), kept, n_blocks, (np.int64(settings.seed), np.int64(settings.min_cluster_size)),
        (indptr, terms, weights), _heaviest(indptr, weights, settings.doc_cut), chunks,
    )  # fmt: skip
    block_offsets, block_docs = _blocks(offsets, np.asarray(index.docs), kept_offsets, term_blocks, assign)
    summary = _summaries(
        index.meta.vocab_size, term_blocks, block_offsets, block_docs, (indptr, terms, weights),
        np.float32(settings.summary_energy), settings.keep_list_term, chunks,
    )  # fmt: skip
    return Clusters(settings, term_blocks, block_offsets, block_docs, *summary)
