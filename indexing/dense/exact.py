"""Exact inner-product search over all vectors: the reference every approximate index is measured against."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from indexing.dense.base import DenseIndex, VectorShards, check_finite
from indexing.dense.format import DenseIndexError, DenseMeta

VECTORS = "vectors.npy"


def exact_top_k(matrix: np.ndarray, queries: np.ndarray, k: int, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` rows by inner product, score descending and row ascending on ties, a block of queries at a time."""
    k = min(k, matrix.shape[0])
    rows = np.empty((len(queries), k), dtype=np.int64)
    best = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), block):
        scores = queries[start : start + block] @ matrix.T
        part = (
            np.argpartition(-scores, k - 1, axis=1)[:, :k]
            if k < matrix.shape[0]
            else np.tile(np.arange(matrix.shape[0]), (len(scores), 1))
        )
        for i, candidates in enumerate(part):
            order = candidates[np.lexsort((candidates, -scores[i, candidates]))]
            rows[start + i] = order
            best[start + i] = scores[i, order]
    return rows, best


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

    def _search(self, queries: np.ndarray, k: int, params: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
        return exact_top_k(np.asarray(self.matrix), queries, k)
