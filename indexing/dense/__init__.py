"""Dense vector indexes: exact search, HNSW (hnswlib, the default) and faiss (flat, HNSW, IVF).

:func:`build_dense_index` writes any backend from vector shards into a temporary
folder renamed into place; :func:`open_dense_index` reads one back, checking its
checksums and every structure a search follows (:mod:`lsr.indexing.dense.format`), and
:func:`recall_at` says how close an approximate index's hits come to exact search's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
from lsr.indexing.dense.base import DenseIndex, exact_top_k, normalise
from lsr.indexing.dense.exact import ExactIndex
from lsr.indexing.dense.faiss_index import FaissFlatIndex, FaissHnswIndex, FaissIvfIndex
from lsr.indexing.dense.format import IDS, META, SIMILARITIES, DenseIndexError, DenseMeta, write_ids
from lsr.indexing.dense.hnsw import HnswIndex

from lsr.errors import LsrError
from lsr.fsutil import atomic_dir

BACKENDS: dict[str, type[DenseIndex]] = {
    cls.backend: cls for cls in (HnswIndex, ExactIndex, FaissFlatIndex, FaissHnswIndex, FaissIvfIndex)
}
Shards = Callable[[], Iterable[tuple[list[str], np.ndarray]]]
"""A function returning a fresh pass over ``(doc_ids, vectors)`` shards in corpus order (see lsr.encode.shards)."""


def _backend(name: str) -> type[DenseIndex]:
    if name not in BACKENDS:
        raise LsrError(f"unknown dense index {name!r}; choose one of {', '.join(BACKENDS)}")
    return BACKENDS[name]


def build_dense_index(
    shards: Shards,
    output: str | Path,
    model: str,
    similarity: str,
    backend: str = "hnsw",
    params: dict[str, int] | None = None,
    corpus: str = "",
) -> DenseMeta:
    """Index every shard's vectors at ``output`` (replaced atomically) and return its description.

    ``similarity`` follows the model: ``cosine`` stores unit-length vectors (and
    queries are normalised at search), so inner product ranks as cosine does;
    ``dot`` keeps the vectors as they are. ``corpus``, where the documents came from
    (when known), is recorded for ``lsr serve`` to report.
    """
    cls = _backend(backend)
    if similarity not in SIMILARITIES:
        raise LsrError(f"unknown similarity {similarity!r}; choose {' or '.join(SIMILARITIES)}")
    unknown = set(params or {}) - set(cls.build_params)
    if unknown:
        raise LsrError(f"{backend} has no build parameter(s) {', '.join(sorted(unknown))}")
    settings = cls.build_params | (params or {})
    ids: list[str] = []
    dimension = 0
    for doc_ids, vectors in shards():
        if not isinstance(vectors, np.ndarray):
            raise LsrError("a dense index needs dense vectors (these are sparse: use lsr index)")
        ids.extend(doc_ids)
        dimension = vectors.shape[1]
    if not ids:
        raise LsrError("no vectors to index")

    def vectors() -> Iterator[np.ndarray]:
        for _, matrix in shards():
            matrix = np.ascontiguousarray(matrix, dtype=np.float32)
            yield normalise(matrix) if similarity == "cosine" else matrix

    with atomic_dir(output) as tmp:
        cls.build(vectors, tmp, dimension, len(ids), settings)
        write_ids(tmp, ids)
        meta = DenseMeta(backend, model, similarity, dimension, len(ids), settings, corpus=corpus)
        meta.save(tmp)
    return meta


def open_dense_index(path: str | Path, verify: bool = True, device: str = "cpu") -> DenseIndex:
    """Open an index folder written by :func:`build_dense_index`; damage or a foreign folder is a clear error."""
    folder = Path(path)
    meta = DenseMeta.load(folder, verify=verify)
    cls = _backend(meta.backend)
    unchecked = sorted({IDS, *cls.files} - set(meta.checksums))
    if unchecked:
        raise DenseIndexError(f"{folder / META}: field 'checksums' lacks {', '.join(unchecked)}; rebuild the index")
    try:
        if device != "cpu":
            if not issubclass(cls, (FaissFlatIndex, FaissIvfIndex)):
                raise LsrError(f"--index-device {device}: only faiss-flat and faiss-ivf run on a GPU")
            return cls(folder, meta, device=device)  # type: ignore[call-arg]
        return cls(folder, meta)
    except LsrError:
        raise
    except (RuntimeError, OSError, ValueError) as exc:
        raise DenseIndexError(f"{folder}: cannot open the {meta.backend} index ({exc}); rebuild it") from exc


def recall_at(approximate: np.ndarray, exact: np.ndarray, depth: int = 10) -> float:
    """Mean share of exact search's top ``depth`` rows that the approximate top ``depth`` also holds."""
    found = []
    for got, truth in zip(approximate, exact, strict=True):
        wanted = set(truth[:depth].tolist()) - {-1}
        found.append(len(wanted & set(got[:depth].tolist())) / max(len(wanted), 1))
    return float(np.mean(found)) if found else 1.0


__all__ = [
    "BACKENDS",
    "DenseIndex",
    "DenseIndexError",
    "build_dense_index",
    "exact_top_k",
    "normalise",
    "open_dense_index",
    "recall_at",
]
