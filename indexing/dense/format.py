"""On-disk layout of a dense index, shared by every backend, and checks at open.

An index folder holds ``meta.json`` (format, backend, build parameters, the model
the vectors came from, its similarity, sizes and a CRC-32 of every other file),
``ids.json`` (the corpus id of each row, in corpus order) and the backend's own
file(s). Folders are written under a temporary name and renamed when complete, so
a folder that opens is a whole index; the checksums catch one damaged later.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from indexing.sparse.format import crc32_file
from lsr.errors import LsrError

FORMAT = "lsr-dense/1"
META = "meta.json"
IDS = "ids.json"


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

    def save(self, folder: Path) -> None:
        """Record the checksums of every file beside ``meta.json`` and write it."""
        self.checksums = {p.name: crc32_file(p) for p in sorted(folder.iterdir()) if p.name != META}
        (folder / META).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: Path, verify: bool = True) -> DenseMeta:
        """Read and check ``meta.json``; ``verify`` also recomputes every file's checksum."""
        path = folder / META
        if not folder.is_dir():
            raise DenseIndexError(f"{folder}: no such dense index folder")
        try:
            raw = json.loads(path.read_text())
            known = {f.name for f in fields(cls)}
            meta = cls(**{key: value for key, value in raw.items() if key in known})
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise DenseIndexError(f"{path}: not a readable dense index description ({exc})") from exc
        if meta.format != FORMAT:
            raise DenseIndexError(f"{path}: format {meta.format!r}, expected {FORMAT!r}")
        for name, expected in meta.checksums.items():
            file = folder / name
            if not file.is_file():
                raise DenseIndexError(f"{folder}: {name} is missing; rebuild the index")
            if verify and crc32_file(file) != expected:
                raise DenseIndexError(f"{file}: checksum mismatch, the file is corrupt; rebuild the index")
        return meta


def write_ids(folder: Path, ids: list[str]) -> None:
    (folder / IDS).write_text(json.dumps(ids))


def read_ids(folder: Path, expected: int) -> list[str]:
    """The corpus ids of the index rows; their count must match the index."""
    try:
        ids = json.loads((folder / IDS).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DenseIndexError(f"{folder / IDS}: unreadable ({exc})") from exc
    if not isinstance(ids, list) or len(ids) != expected:
        raise DenseIndexError(f"{folder / IDS}: {len(ids)} ids for an index of {expected} vectors")
    return ids
