"""On-disk layout of a dense index, shared by every backend, and checks at open.

An index folder holds ``meta.json`` (format, backend, build parameters, the model
the vectors came from, its similarity, sizes, the corpus when known and a CRC-32 of every other file),
``ids.json`` (the corpus id of each row, in corpus order) and the backend's own
file(s). Folders are written under a temporary name and renamed when complete, so
a folder that opens is a whole index; the checksums catch one damaged later.

``meta.json`` carries a checksum of its own fields and is checked field by field; the backends check
their structures (row labels and graph links in range, consistent sizes, finite vectors) before any
search, ``verify=False`` or not, since hnswlib and faiss follow links without bounds checks.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lsr.indexing.sparse.format import SOURCE_FIELDS, crc32_file, read_meta, write_meta

from lsr.errors import LsrError

FORMAT = "lsr-dense/1"
META = "meta.json"
IDS = "ids.json"
SIMILARITIES = ("cosine", "dot")
FIELDS = {
    "backend": str,
    "model": str,
    "similarity": str,
    "dimension": int,
    "num_docs": int,
    "params": dict,
    "checksums": dict,
    "format": str,
}


class DenseIndexError(LsrError):
    """A dense index folder is missing, corrupt, or of another format."""


@dataclass
class DenseMeta:
    """What ``meta.json`` records about a dense index."""

    backend: str
    model: str
    similarity: str
    dimension: int
    num_docs: int
    params: dict[str, int] = field(default_factory=dict)
    checksums: dict[str, int] = field(default_factory=dict)
    format: str = FORMAT
    corpus: str = ""

    def save(self, folder: Path) -> None:
        """Record the checksums of every file beside ``meta.json`` and write it."""
        self.checksums = {p.name: crc32_file(p) for p in sorted(folder.iterdir()) if p.name != META}
        write_meta(folder / META, asdict(self))

    @classmethod
    def load(cls, folder: Path, verify: bool = True) -> DenseMeta:
        """Read and check ``meta.json``: field types, sizes, checksums (recomputed for every file when ``verify``)."""
        path = folder / META
        meta = cls(**read_meta(path, FIELDS, FORMAT, verify, DenseIndexError, "dense index", SOURCE_FIELDS))
        if meta.similarity not in SIMILARITIES:
            raise DenseIndexError(f"{path}: field 'similarity' is {meta.similarity!r}, not one of {SIMILARITIES}")
        if meta.dimension < 1:
            raise DenseIndexError(f"{path}: field 'dimension' is {meta.dimension}, not a vector size")
        for name, expected in meta.checksums.items():
            file = folder / name
            if name != Path(name).name or name in (".", "..", META):
                raise DenseIndexError(f"{path}: field 'checksums' names {name!r}, not a file of the index")
            if not file.is_file():
                raise DenseIndexError(f"{folder}: {name} is missing; rebuild the index")
            if verify and crc32_file(file) != expected:
                raise DenseIndexError(f"{file}: checksum mismatch, the file is corrupt; rebuild the index")
        return meta


def write_ids(folder: Path, ids: list[str]) -> None:
    (folder / IDS).write_text(json.dumps(ids))


def read_ids(folder: Path, expected: int) -> list[str]:
    """The corpus ids of the index rows: one string per row, so every row a search returns has its id."""
    try:
        ids = json.loads((folder / IDS).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DenseIndexError(f"{folder / IDS}: unreadable ({exc})") from exc
    if not isinstance(ids, list) or len(ids) != expected:
        count = f"{len(ids)} ids" if isinstance(ids, list) else "not a list of ids"
        raise DenseIndexError(f"{folder / IDS}: {count} for an index of {expected} vectors")
    if not all(isinstance(i, str) for i in ids):
        bad = next(n for n, i in enumerate(ids) if not isinstance(i, str))
        raise DenseIndexError(f"{folder / IDS}: id {bad} is {ids[bad]!r}, not a string")
    return ids
