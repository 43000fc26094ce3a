"""Vector shards: a corpus's encodings on disk, written as they are produced and resumable.

A vectors folder holds ``manifest.json`` and ``shard-NNNNN.npz`` files. A sparse
shard stores a CSR matrix (``data``, ``indices``, ``indptr``, ``shape``) and the
document ``ids`` of its rows; a dense shard stores ``embeddings`` and ``ids``.
Shard ``k`` holds documents ``k*S .. (k+1)*S - 1`` of the corpus in order, each
shard file is written atomically and only then recorded in the manifest, so an
interrupted run resumes after the last recorded shard and produces exactly the
files an uninterrupted run would. Within the shard being encoded, Ctrl-C keeps the
documents of every finished encoder call in ``partial.npz`` (:class:`Finished`), and
the rerun encodes only the others, in the same batches as an uninterrupted run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from lsr.errors import DataFormatError, LsrError
from lsr.fsutil import atomic_file

MANIFEST = "manifest.json"
PARTIAL = "partial.npz"
"""The finished encoder calls of a shard whose encoding was interrupted (Ctrl-C): a rerun continues inside the shard,
encoding only the documents they do not hold."""
FORMAT = "lsr-vectors/1"


Vectors = sp.csr_matrix | np.ndarray


@dataclass
class Manifest:
    """What a vectors folder holds and how far its writing got."""

    model: str
    kind: str
    dense: bool
    dimension: int
    shard_size: int
    corpus: dict[str, Any]
    shards: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = False
    format: str = FORMAT

    @property
    def documents(self) -> int:
        return sum(s["documents"] for s in self.shards)

    def save(self, folder: Path) -> None:
        with atomic_file(folder / MANIFEST) as out:
            json.dump(asdict(self), out, indent=2)

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        path = Path(folder) / MANIFEST
        try:
            raw = json.loads(path.read_text())
            manifest = cls(**raw)
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise LsrError(f"{path}: not a readable vectors manifest ({exc})") from exc
        if manifest.format != FORMAT:
            raise LsrError(f"{path}: unsupported format {manifest.format!r} (expected {FORMAT})")
        return manifest


def shard_name(number: int) -> str:
    return f"shard-{number:05d}.npz"


def stack(parts: list[Vectors]) -> Vectors:
    """Pieces of vectors, in order, as one matrix."""
    return np.vstack(parts) if isinstance(parts[0], np.ndarray) else sp.vstack(parts, format="csr")


def _arrays(ids: list[str], vectors: Vectors) -> dict[str, np.ndarray]:
    """A shard's arrays: ``ids``, and the CSR parts of sparse vectors or the ``embeddings`` of dense ones."""
    arrays: dict[str, np.ndarray] = {"ids": np.asarray(ids, dtype=str)}
    if sp.issparse(vectors):
        csr = sp.csr_matrix(vectors)
        return arrays | {
            "data": csr.data.astype(np.float32),
            "indices": csr.indices.astype(np.int32),
            "indptr": csr.indptr.astype(np.int64),
            "shape": np.asarray(csr.shape, dtype=np.int64),
        }
    return arrays | {"embeddings": np.asarray(vectors, dtype=np.float32)}


def write_shard(folder: Path, number: int, ids: list[str], vectors: Vectors) -> dict[str, Any]:
    """Write one shard atomically and return its manifest entry."""
    arrays = _arrays(ids, vectors)
    nnz = int(arrays["data"].size if "data" in arrays else arrays["embeddings"].size)
    with atomic_file(folder / shard_name(number), "wb") as out:
        np.savez(out, **arrays)
    return {"file": shard_name(number), "documents": len(ids), "nnz": nnz}


@dataclass
class Finished:
    """The encoder calls of one shard done so far, each as (rows, vectors): the positions in the shard of the
    documents it encoded, and their vectors. A piece hands its documents to the encoder longest first, so what an
    interrupted piece has done is a set of rows, not a prefix of the shard; keeping the rows lets Ctrl-C keep every
    finished call. Each call is recorded by one ``append``, so an interrupt never leaves rows without their vectors."""

    calls: list[tuple[np.ndarray, Vectors]] = field(default_factory=list)

    @property
    def documents(self) -> int:
        return sum(len(rows) for rows, _ in self.calls)

    def rows(self) -> np.ndarray:
        return np.concatenate([rows for rows, _ in self.calls]) if self.calls else np.zeros(0, np.int64)

    def in_order(self) -> Vectors:
        """The vectors by row, once every row of the shard is done: the shard as written."""
        return stack([vectors for _, vectors in self.calls])[np.argsort(self.rows(), kind="stable")]


def save_partial(folder: Path, number: int, ids: list[str], finished: Finished) -> int:
    """Keep the finished calls of shard ``number`` (its document ``ids``); returns how many documents they hold."""
    if not finished.calls:
        return 0
    rows = finished.rows()
    arrays = _arrays([ids[row] for row in rows], stack([vectors for _, vectors in finished.calls]))
    with atomic_file(folder / PARTIAL, "wb") as out:
        np.savez(out, shard=np.int64(number), rows=rows.astype(np.int64), **arrays)
    return len(rows)


def load_partial(folder: Path, number: int, ids: list[str]) -> Finished:
    """The kept calls of shard ``number`` as one, if ``partial.npz`` holds documents of this very block at the rows
    it names (anything else, e.g. from a corpus since edited, is dropped and encoded again). A file from before rows
    were kept holds the first documents of the block."""
    path = folder / PARTIAL
    if not path.is_file():
        return Finished()
    try:
        with np.load(path, allow_pickle=False) as npz:
            same = int(npz["shard"]) == number
            rows = np.asarray(npz["rows"]) if "rows" in npz else None
        kept_ids, vectors = read_shard(path)
    except (OSError, ValueError, KeyError, DataFormatError):
        return Finished()
    rows = np.arange(len(kept_ids)) if rows is None else rows
    if not same or not _rows_of(rows, kept_ids, ids):
        return Finished()
    return Finished([(rows.astype(np.int64), vectors)])


def _rows_of(rows: np.ndarray, kept_ids: list[str], ids: list[str]) -> bool:
    """Whether ``rows`` are distinct positions in ``ids`` holding ``kept_ids``, in that order."""
    if rows.ndim != 1 or rows.dtype.kind not in "iu" or len(rows) != len(kept_ids):
        return False
    if len(rows) and (rows.min() < 0 or rows.max() >= len(ids) or len(np.unique(rows)) != len(rows)):
        return False
    return kept_ids == [ids[row] for row in rows]


def read_shard(path: Path) -> tuple[list[str], sp.csr_matrix | np.ndarray]:
    """The ids and vectors of one shard file."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            ids = npz["ids"].tolist()
            if "embeddings" in npz:
                return ids, npz["embeddings"]
            matrix = sp.csr_matrix((npz["data"], npz["indices"], npz["indptr"]), shape=tuple(npz["shape"]))
    except (OSError, ValueError, KeyError) as exc:
        raise DataFormatError(path, f"not a readable vector shard ({exc})") from exc
    if matrix.shape[0] != len(ids):
        raise DataFormatError(path, f"{matrix.shape[0]} vectors but {len(ids)} ids")
    return ids, matrix


def iter_shards(folder: str | Path) -> Iterator[tuple[list[str], sp.csr_matrix | np.ndarray]]:
    """Every shard of a complete vectors folder, in corpus order."""
    folder = Path(folder)
    manifest = Manifest.load(folder)
    if not manifest.complete:
        raise LsrError(f"{folder}: encoding was interrupted ({manifest.documents} documents so far); rerun lsr encode")
    for entry in manifest.shards:
        yield read_shard(folder / entry["file"])


def merged_manifest(folders: list[Path]) -> Manifest:
    """The manifest of several vectors folders taken as one corpus (e.g. encoded on different machines):
    they must hold the same model's complete vectors, which :func:`iter_merged` then reads in the order given."""
    if not folders:
        raise LsrError("no vectors folders given")
    manifests = [Manifest.load(Path(f)) for f in folders]
    first = manifests[0]
    for folder, manifest in zip(folders, manifests, strict=True):
        if (manifest.model, manifest.kind, manifest.dense, manifest.dimension) != (
            first.model,
            first.kind,
            first.dense,
            first.dimension,
        ):
            raise LsrError(
                f"{folder} holds vectors of {manifest.model} ({manifest.kind}), {folders[0]} of {first.model}"
            )
        if not manifest.complete:
            raise LsrError(f"{folder}: encoding was interrupted; rerun lsr encode before indexing")
    return first


def iter_merged(folders: list[Path]) -> Iterator[tuple[list[str], sp.csr_matrix | np.ndarray]]:
    """Every shard of several vectors folders in turn, a document id met twice being an error: an index
    merged from machines' outputs must hold every document exactly once."""
    merged_manifest(folders)
    seen: set[str] = set()
    for folder in folders:
        for ids, vectors in iter_shards(folder):
            repeated = seen.intersection(ids)
            if repeated:
                raise LsrError(f"{folder}: document {sorted(repeated)[0]!r} is also in an earlier vectors folder")
            seen.update(ids)
            yield ids, vectors
