"""Clustered posting blocks with summaries: the structure of lsr's approximate search (:mod:`.clustered`).

Why: exact search must add every posting of every query term, so at a million documents it costs a fixed
1-2 ms a query whatever recall the user needs; dynamic pruning and posting budgets over impact-ordered lists do
not pay there (eval/RESULTS.md). Seismic (Bruch et al., SIGIR 2024) showed the structure that does: keep each
term's heaviest postings, group them into blocks of similar documents, and give each block a *summary*, a small
vector that estimates the best score any of its documents can reach. A query then visits only its heaviest terms'
lists and, in each, only the blocks whose summary promises a score near its current k-th best, scoring their
documents exactly from the forward index. This module describes that structure and reads and writes its files;
:mod:`.cluster_build` builds it from an lsr index, from the description in the paper and the authors' guide; the
code is lsr's own.

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
   approximate), its values rounded up to 8 bits per list. With ``keep_list_term`` (lsr's addition, not in the
   paper) the summary also keeps the term of the list the block is in, whatever the cut: every document of the
   block holds that term, yet a model whose documents spread their mass over hundreds of expansion terms (the
   shipped inference-free model) often loses it to the cut, and a query of a few terms then estimates the block
   at zero and skips it at any ``heap_factor`` above 0 (NFCorpus: recall stopped at 0.948 without it; 0.994 with
   it, eval/RESULTS.md, session 23). One entry a block at most (+0.2 % entries there).

Stored in ``INDEX/clusters/`` beside the index it was built from (written atomically; ``meta.json`` names the
settings, the index's postings checksum and a CRC-32 of every array). A summary's entries are kept per list
sorted by term, so a query finds the blocks that hold each of its terms by binary search, instead of reading
every block's summary (on the packages corpus that was 1.3x faster end to end in the prototype).

Memory, the packages corpus (1,038,337 documents, 36.3 M postings) at the defaults: 26.4 M kept postings
(4 bytes each), 5.3 M blocks (8 bytes), 196 M summary entries (5 bytes; 194 M without the list terms): about
1.2 GB on disk, comparable to Seismic's 0.9 GB index of the same vectors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

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
    0.5; ``doc_cut`` 15), and ``keep_list_term`` (lsr's, the module docstring's step 3)."""

    max_postings: int = 18_000
    centroid_fraction: float = 0.2
    summary_energy: float = 0.5
    doc_cut: int = 15
    seed: int = 0
    min_cluster_size: int = 2
    keep_list_term: bool = True

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
        if not isinstance(self.keep_list_term, bool):
            raise ValueError(f"keep_list_term must be true or false, not {self.keep_list_term!r}")


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
        # clusters written before the setting existed kept no list term
        settings = ClusterSettings(**{"keep_list_term": False, **raw})
        settings.check()
    except (TypeError, ValueError) as exc:
        raise ClustersError(f"{path}: field 'settings' is not readable ({exc})") from exc
    return settings


def describe(clusters: Clusters) -> str:
    """One line for the CLI: the sizes of what was built."""
    blocks = len(clusters.block_offsets) - 1
    entries = len(clusters.summary_terms)
    return f"{len(clusters.block_docs):,} postings kept in {blocks:,} blocks, {entries:,} summary entries"
