"""Clustered posting blocks with summaries: the structure of lsr's approximate search (:mod:`.clustered`).

Why: exact search must add every posting of every query term, so at a million documents it costs a fixed
1-2 ms a query whatever recall the user needs; dynamic pruning and posting budgets over impact-ordered lists do
not pay there (eval/RESULTS.md). Seismic (Bruch et al., SIGIR 2024) showed the structure that does: keep each
term's heaviest postings, group them into blocks of similar documents, and give each block a *summary*, a small
vector that estimates the best score any of its documents can reach. A query then visits only its heaviest terms'
lists and, in each, only the blocks whose summary promises a score near its current k-th best, scoring their
documents exactly from the forward index. This module builds that structure from an lsr index, from the
description in the paper and the authors' guide; the code is lsr's own.

Built per term, from its impact-ordered postings (:mod:`.format`):

1. **Static pruning**: the first ``max_postings`` postings (the heaviest).
2. **Clustering**: ``centroid_fraction`` x n documents of the list, chosen by a seeded hash, are centroids; each
   document joins the centroid whose vector has the largest dot product with the document's ``doc_cut`` heaviest
   terms (through an inverted map of the centroids' terms), one pass, as in the paper's shallow k-means;
   documents that share no such term with any centroid join the first one. Clusters of ``min_cluster_size``
   documents or fewer are then dissolved and their documents moved to their nearest remaining centroid, as the
   authors' code does: a block of one or two documents costs a summary about as long as scoring them.
3. **Summaries**: a block's summary is the coordinate-wise maximum of its documents' vectors, cut to its heaviest
   coordinates holding ``summary_energy`` of its L1 mass (so it no longer bounds the score: the search is
   approximate), its values rounded up to 8 bits per list.

Stored in ``INDEX/clusters/`` beside the index it was built from (written atomically; ``meta.json`` names the
settings, the index's postings checksum and a CRC-32 of every array). A summary's entries are kept per list
sorted by term, so a query finds the blocks that hold each of its terms by binary search, instead of reading
every block's summary (on the packages corpus that was 1.3x faster end to end in the prototype).

Memory, the packages corpus (1,038,337 documents, 36.3 M postings) at the defaults: 26.4 M kept postings
(4 bytes each), 5.3 M blocks (8 bytes), 207 M summary entries (5 bytes): about 1.2 GB on disk, comparable to
Seismic's 0.9 GB index of the same vectors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numba
import numpy as np
from lsr.indexing.sparse.format import (
    META,
    IndexFormatError,
    SparseIndex,
    check_bounds,
    check_range,
    crc32_file,
    read_meta,
    write_meta,
)
from numba import njit, prange

from lsr.fsutil import atomic_dir

FORMAT = "lsr-clusters/1"
FOLDER = "clusters"
"""Sub-folder of an index that holds its clusters."""
ARRAYS = (
    "term_blocks.npy",
    "block_offsets.npy",
    "block_docs.npy",
    "summary_offsets.npy",
    "summary_terms.npy",
    "summary_blocks.npy",
    "summary_codes.npy",
    "summary_scales.npy",
)
MAX_BLOCKS = 1 << 16
"""Blocks per list at most (more postings share blocks): a summary entry names its block in 16 bits."""


class ClustersError(IndexFormatError):
    """The clusters folder is missing, corrupt, from another index, or cannot be built for this index."""


@dataclass(frozen=True)
class ClusterSettings:
    """Build settings; the defaults are the Seismic authors' recommended ones (``n_postings`` 3000 with
    ``max_fraction`` 6 keeps at most 18,000 postings of a list; ``centroid_fraction`` 0.2; ``summary_energy``
    0.5; ``doc_cut`` 15)."""

    max_postings: int = 18_000
    centroid_fraction: float = 0.2
    summary_energy: float = 0.5
    doc_cut: int = 15
    seed: int = 0
    min_cluster_size: int = 2

    def check(self) -> None:
        if self.max_postings < 1:
            raise ValueError(f"max_postings must be at least 1, not {self.max_postings}")
        if not 0 < self.centroid_fraction <= 1:
            raise ValueError(f"centroid_fraction must be in (0, 1], not {self.centroid_fraction}")
        if not 0 < self.summary_energy <= 1:
            raise ValueError(f"summary_energy must be in (0, 1], not {self.summary_energy}")
        if self.doc_cut < 1:
            raise ValueError(f"doc_cut must be at least 1, not {self.doc_cut}")
        if self.min_cluster_size < 0:
            raise ValueError(f"min_cluster_size must be at least 0, not {self.min_cluster_size}")


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
def _nearest(doc, entries, removed, score, terms, weights, cut_bounds, cut_positions) -> int:  # noqa: ANN001
    """The centroid (not ``removed``) with the largest dot product with ``doc``'s heaviest terms, the first of
    equals; -1 if none shares a term with them. ``entries`` is :func:`_centroid_map`'s ``(block, weight, count,
    start)``; ``score`` (one per centroid, zero) is scratch, left zero. Every centroid's score is read back, not
    only those touched: in a long list the list's own term is in every centroid, so a document touches nearly
    all of them and the bookkeeping of which it touched cost more than the dense pass (2.4x on the longest lists
    of the packages corpus)."""
    entry_block, entry_weight, count, start = entries
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
def _cluster_list(docs, term, n_blocks, settings, forward, cut_bounds, cut_positions, scratch, out):  # noqa: ANN001
    """Write each document's block (0 .. n_blocks - 1) of one list into ``out`` (see the module docstring).
    ``forward`` is ``(indptr, terms, weights)``; ``scratch`` is :func:`_centroid_map`'s ``(count, start, seen)``."""
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
        out[i] = max(0, _nearest(docs[i], entries, removed, score, terms, weights, cut_bounds, cut_positions))
        counts[out[i]] += 1
    kept = 0
    for c in range(n_blocks):
        removed[c] = counts[c] <= min_size
        kept += not removed[c]
    if 0 < kept < n_blocks:
        first = np.argmin(removed)
        for i in range(n):
            if removed[out[i]]:
                best = _nearest(docs[i], entries, removed, score, terms, weights, cut_bounds, cut_positions)
                out[i] = first if best < 0 else best
    for i in range(met):
        count[seen[i]] = 0


@njit(parallel=True, cache=True)
def _cluster(offsets, docs, kept, n_blocks, settings, forward, cut_bounds, cut_positions, chunks):  # noqa: ANN001, ANN202
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
                    docs[start : start + kept[t]], t, n_blocks[t], settings, forward, cut_bounds, cut_positions,
                    scratch, assign[kept_offsets[t] : kept_offsets[t + 1]],
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
def _summary_sizes(block, block_offsets, block_docs, forward, energy, scratch, cut) -> None:  # noqa: ANN001
    """One block's summary size and cut (:func:`_energy_cut`) into ``cut[block]``: the first of two passes, so
    the second writes each summary straight into its place. ``scratch`` is ``(dense, touched, values)``, ``dense``
    left zero."""
    indptr, terms, weights = forward
    dense, touched, values = scratch
    n = _union(block, block_offsets, block_docs, indptr, terms, weights, dense, touched)
    kept, smallest, ties = _energy_cut(dense, touched, n, energy, values)
    cut[block, 0], cut[block, 1], cut[block, 2] = kept, smallest, ties
    for i in range(n):
        dense[touched[i]] = 0.0


@njit(nogil=True, cache=True)
def _summary(block, block_offsets, block_docs, indptr, terms, weights, cut, dense, touched, out_terms, out_weights):  # noqa: ANN001, ANN202
    """One block's summary (module docstring, step 3) into ``out_*``, in no particular order (the caller sorts a
    list's entries by term), from the cut the first pass found: no sort here. ``dense`` is scratch, left zero."""
    n = _union(block, block_offsets, block_docs, indptr, terms, weights, dense, touched)
    smallest, ties = np.float32(cut[block, 1]), np.int64(cut[block, 2])
    out = 0
    for i in range(n):
        t = touched[i]
        w = dense[t]
        if w > smallest or (w == smallest and ties > 0):
            if w == smallest:
                ties -= 1
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
def _summaries(vocab, term_blocks, block_offsets, block_docs, forward, energy, chunks):  # noqa: ANN001, ANN202
    """Every block's summary, then each list's entries sorted by term with their block (local to the list) and
    their weight rounded up to 8 bits of the list's largest.

    The first pass finds every summary's size and cut; the second, list by list (the longest first, dealt
    round-robin), writes each list's summaries, sorts them by term and stores them in place, so no array of every
    entry's term and float weight exists beside the output (8 bytes an entry: 23 GB for the shipped model's 2.9
    billion entries at a million documents, more than this machine's memory)."""
    indptr, terms, weights = forward
    blocks = len(block_offsets) - 1
    cut = np.empty((blocks, 3), np.float64)  # kept, smallest value kept, ties kept at that value
    for chunk in prange(chunks):
        scratch = (np.zeros(vocab, np.float32), np.empty(vocab, np.int32), np.empty(vocab, np.float32))
        for b in range(chunk, blocks, chunks):
            _summary_sizes(b, block_offsets, block_docs, forward, energy, scratch, cut)
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
        dense, touched = np.zeros(vocab, np.float32), np.empty(vocab, np.int32)
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
                    b, block_offsets, block_docs, indptr, terms, weights, cut, dense, touched,
                    entry_terms[first:last], entry_weights[first:last],
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


@dataclass
class Clusters:
    """An index's clustered blocks and summaries, opened read-only (memory-mapped) and checked."""

    settings: ClusterSettings
    term_blocks: np.ndarray  # int64, vocab + 1: term t's blocks are term_blocks[t]:term_blocks[t + 1]
    block_offsets: np.ndarray  # int64, blocks + 1: a block's documents in block_docs
    block_docs: np.ndarray  # int32
    summary_offsets: np.ndarray  # int64, vocab + 1: term t's summary entries, sorted by term
    summary_terms: np.ndarray  # uint16
    summary_blocks: np.ndarray  # uint16, the block within the list
    summary_codes: np.ndarray  # uint8, x summary_scales[t]
    summary_scales: np.ndarray  # float32, vocab

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name.removesuffix(".npy")) for name in ARRAYS}

    @property
    def max_blocks(self) -> int:
        """The most blocks of one list: the size of a search's per-list buffer."""
        return int(np.diff(self.term_blocks).max(initial=0))

    def save(self, index: SparseIndex) -> Path:
        """Write into ``INDEX/clusters`` atomically (a crash leaves the previous clusters, or none); a folder of that
        name that lsr did not write is refused (:mod:`lsr.fsutil`)."""
        with atomic_dir(index.path / FOLDER) as tmp:
            for name, array in self.arrays().items():
                np.save(tmp / name, array, allow_pickle=False)
            fields = {
                "format": FORMAT,
                "settings": asdict(self.settings),
                "index": _index_identity(index),
                "checksums": {name: crc32_file(tmp / name) for name in ARRAYS},
            }
            write_meta(tmp / META, fields)
        return index.path / FOLDER

    @classmethod
    def open(cls, index: SparseIndex, verify: bool = True) -> Clusters:
        """Open ``INDEX/clusters``; refused with the file and field named if it is missing, corrupt, or was built
        from another index. Every id a kernel indexes with is checked, whatever ``verify`` says."""
        folder = index.path / FOLDER
        if not (folder / META).is_file():
            raise ClustersError(
                f"{index.path}: no clusters for approximate search; build them with `lsr index cluster {index.path}`"
            )
        fields = {"format": str, "settings": object, "index": str, "checksums": dict}
        raw = read_meta(folder / META, fields, FORMAT, verify, ClustersError, what="clusters")
        if raw["index"] != _index_identity(index):
            raise ClustersError(
                f"{folder / META}: built from another index ({raw['index']}, this index is "
                f"{_index_identity(index)}); rebuild them with `lsr index cluster {index.path}`"
            )
        settings = _settings(folder / META, raw["settings"])
        arrays = {}
        for name in ARRAYS:
            if verify and crc32_file(folder / name) != raw["checksums"].get(name):
                raise ClustersError(f"{folder / name}: checksum mismatch, the file is corrupt or from other clusters")
            try:
                arrays[name.removesuffix(".npy")] = np.load(folder / name, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise ClustersError(f"{folder / name}: unreadable ({exc})") from exc
        clusters = cls(settings, **arrays)
        clusters._check(folder, index)
        return clusters

    def _check(self, folder: Path, index: SparseIndex) -> None:
        """Types, lengths, and every id and bound in range (the kernel reads them unchecked)."""
        vocab, docs = index.meta.vocab_size, index.num_docs
        blocks = len(self.block_offsets) - 1
        entries = len(self.summary_terms)
        expected = {
            "term_blocks": ((vocab + 1,), np.int64),
            "block_offsets": ((blocks + 1,), np.int64),
            "block_docs": ((len(self.block_docs),), np.int32),
            "summary_offsets": ((vocab + 1,), np.int64),
            "summary_terms": ((entries,), np.uint16),
            "summary_blocks": ((entries,), np.uint16),
            "summary_codes": ((entries,), np.uint8),
            "summary_scales": ((vocab,), np.float32),
        }
        for name, (shape, dtype) in expected.items():
            array = getattr(self, name)
            if array.shape != shape or array.dtype != dtype or blocks < 0:
                raise ClustersError(
                    f"{folder / name}.npy: shape {array.shape} {array.dtype}, expected {shape} {np.dtype(dtype)}"
                )
        check_bounds(folder / "term_blocks.npy", self.term_blocks, blocks, "block bounds", ClustersError)
        check_bounds(
            folder / "block_offsets.npy", self.block_offsets, len(self.block_docs), "document bounds", ClustersError
        )
        check_bounds(folder / "summary_offsets.npy", self.summary_offsets, entries, "summary bounds", ClustersError)
        if len(self.block_docs):
            check_range(folder / "block_docs.npy", self.block_docs, 0, docs, "document number", ClustersError)
        if entries:
            check_range(folder / "summary_terms.npy", self.summary_terms, 0, vocab, "term", ClustersError)
            # each list's largest block number, one reduction over the entries (no per-entry temporary: 195 M
            # entries at 1M documents)
            lists = np.flatnonzero(np.diff(self.summary_offsets))
            largest = np.maximum.reduceat(self.summary_blocks, self.summary_offsets[lists])
            beyond = largest >= np.diff(self.term_blocks)[lists]
            if beyond.any():
                term = int(lists[np.argmax(beyond)])
                raise ClustersError(
                    f"{folder / 'summary_blocks.npy'}: the summary of term {term} names block "
                    f"{largest[np.argmax(beyond)]}, beyond its list's {np.diff(self.term_blocks)[term]} blocks"
                )
        if self.max_blocks > MAX_BLOCKS or not np.all(np.isfinite(self.summary_scales) & (self.summary_scales >= 0)):
            raise ClustersError(
                f"{folder}: a list has more than {MAX_BLOCKS} blocks or a summary scale is not finite and non-negative"
            )


def _index_identity(index: SparseIndex) -> str:
    """What ties clusters to their index: its sizes and the CRC-32 of its postings and forward files."""
    m = index.meta
    crcs = ",".join(
        str(m.checksums.get(name, "")) for name in ("postings_docs.npy", "forward_indptr.npy", "forward_terms.npy")
    )
    return f"{m.num_docs} documents, {m.nnz} postings, vocabulary {m.vocab_size}, crc {crcs}"


def _settings(path: Path, raw: object) -> ClusterSettings:
    try:
        if not isinstance(raw, dict):
            raise TypeError("an object of settings expected")
        settings = ClusterSettings(**raw)
        settings.check()
    except (TypeError, ValueError) as exc:
        raise ClustersError(f"{path}: field 'settings' is not readable ({exc})") from exc
    return settings


def build_clusters(index: SparseIndex, settings: ClusterSettings = ClusterSettings()) -> Clusters:
    """Cluster every list of ``index`` (module docstring); all of Numba's threads."""
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
    cut_bounds, cut_positions = _heaviest(indptr, weights, settings.doc_cut)
    kept_offsets, assign = _cluster(
        offsets, np.asarray(index.docs), kept, n_blocks, (np.int64(settings.seed), np.int64(settings.min_cluster_size)),
        (indptr, terms, weights), cut_bounds, cut_positions, chunks,
    )  # fmt: skip
    block_offsets, block_docs = _blocks(offsets, np.asarray(index.docs), kept_offsets, term_blocks, assign)
    summary = _summaries(
        index.meta.vocab_size, term_blocks, block_offsets, block_docs, (indptr, terms, weights),
        np.float32(settings.summary_energy), chunks,
    )  # fmt: skip
    return Clusters(settings, term_blocks, block_offsets, block_docs, *summary)


def describe(clusters: Clusters) -> str:
    """One line for the CLI: the sizes of what was built."""
    blocks = len(clusters.block_offsets) - 1
    entries = len(clusters.summary_terms)
    return f"{len(clusters.block_docs):,} postings kept in {blocks:,} blocks, {entries:,} summary entries"
