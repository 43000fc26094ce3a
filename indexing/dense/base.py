"""What every dense index backend offers: build from vector shards, open, top-k search."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

import numpy as np

from eval.runs import Run
from indexing.dense.format import DenseMeta, read_ids

VectorShards = Callable[[], Iterable[np.ndarray]]
"""A function returning a fresh pass over the corpus vectors, shard by shard, in corpus order."""


class DenseIndex(ABC):
    """An opened dense index: rows are corpus documents in order, scores are inner products (higher is better)."""

    backend: ClassVar[str]
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
        if self.meta.similarity == "cosine":
            queries = normalise(queries)
        k = min(k, self.meta.num_docs)
        return self._search(queries, k, self.search_params | params)

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
