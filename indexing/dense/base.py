"""What every dense index backend offers: build from vector shards, open, top-k search."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

import numpy as np

from indexing.dense.format import DenseIndexError, DenseMeta, read_ids
from lsr.runs import Run

VectorShards = Callable[[], Iterable[np.ndarray]]
"""A function returning a fresh pass over the corpus vectors, shard by shard, in corpus order."""


class DenseIndex(ABC):
    """An opened dense index: rows are corpus documents in order, scores are inner products (higher is better)."""

    backend: ClassVar[str]
    files: ClassVar[tuple[str, ...]]
    """The backend's own files, each of which ``meta.json`` must checksum."""
    build_params: ClassVar[dict[str, int]] = {}
    """Build-time parameters and their defaults (they name the cached index)."""
    search_params: ClassVar[dict[str, int]] = {}
    """Search-time parameters and their defaults."""

    def __init__(self, folder: Path, meta: DenseMeta) -> None:
        self.folder = folder
        self.meta = meta
        self.ids = read_ids(folder, meta.num_docs)

    @classmethod
    @abstractmethod
    def build(cls, shards: VectorShards, folder: Path, dimension: int, count: int, params: dict[str, int]) -> None:
        """Write the backend's own file(s) into ``folder`` (a temporary folder, renamed by the caller)."""

    @abstractmethod
    def _search(self, queries: np.ndarray, k: int, params: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows (int64, -1 where fewer were found) and scores (float32) of unit-ready queries."""

    def search(self, queries: np.ndarray, k: int, **params: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows and scores per query, queries normalised first if the model compares by cosine."""
        unknown = set(params) - set(self.search_params)
        if unknown:
            raise ValueError(f"{self.backend} has no search parameter(s) {', '.join(sorted(unknown))}")
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if not np.all(np.isfinite(queries)):
            raise ValueError("query vectors must be finite")
        if self.meta.similarity == "cosine":
            queries = normalise(queries)
        k = min(k, self.meta.num_docs)
        rows, scores = self._search(queries, k, self.search_params | params)
        found = rows >= 0
        if np.any((rows < -1) | (rows >= self.meta.num_docs)) or not np.all(np.isfinite(scores[found])):
            raise DenseIndexError(f"{self.folder}: the {self.backend} search returned rows or scores out of range")
        return rows, scores

    def to_run(self, query_ids: list[str], rows: np.ndarray, scores: np.ndarray) -> Run:
        """Search output as ``{query_id: {doc_id: score}}``."""
        return {
            qid: {self.ids[r]: float(s) for r, s in zip(rows[i], scores[i], strict=True) if r >= 0}
            for i, qid in enumerate(query_ids)
        }


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Unit-length rows (zero rows stay zero), so inner product is cosine similarity."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, np.float32(1e-12))).astype(np.float32)


def check_finite(path: Path, vectors: np.ndarray, rows: int = 1 << 14) -> None:
    """Every stored vector finite, ``rows`` at a time: a NaN or an infinity would rank as anything."""
    for start in range(0, len(vectors), rows):
        finite = np.isfinite(vectors[start : start + rows]).all(axis=1)
        if not finite.all():
            raise DenseIndexError(f"{path}: vector {start + int(np.argmin(finite))} holds a NaN or an infinity")
