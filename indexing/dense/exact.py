"""Exact inner-product search over all vectors: the reference every approximate index is measured against."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lsr.indexing.dense.base import DenseIndex, VectorShards, check_finite, exact_top_k
from lsr.indexing.dense.format import DenseIndexError, DenseMeta

VECTORS = "vectors.npy"


class ExactIndex(DenseIndex):
    """All vectors in one float32 array (memory-mapped); search is one matrix product per block of queries."""

    backend = "exact"
    files = (VECTORS,)

    def __init__(self, folder: Path, meta: DenseMeta) -> None:
        super().__init__(folder, meta)
        self.matrix = np.load(folder / VECTORS, mmap_mode="r", allow_pickle=False)
        shape = (meta.num_docs, meta.dimension)
        if self.matrix.shape != shape or self.matrix.dtype != np.float32:
            raise DenseIndexError(
                f"{folder / VECTORS}: {self.matrix.shape} {self.matrix.dtype}, expected {shape} float32"
            )
        check_finite(folder / VECTORS, self.matrix)

    @classmethod
    def build(cls, shards: VectorShards, folder: Path, dimension: int, count: int, params: dict[str, int]) -> None:
        out = np.lib.format.open_memmap(folder / VECTORS, mode="w+", dtype=np.float32, shape=(count, dimension))
        start = 0
        for vectors in shards():
            out[start : start + len(vectors)] = vectors
            start += len(vectors)
        out.flush()

    def _search(
        self, queries: np.ndarray, k: int, params: dict[str, int], allow: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        return exact_top_k(np.asarray(self.matrix), queries, k, allow=allow)

    def _vectors(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.matrix[rows])
