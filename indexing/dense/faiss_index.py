"""faiss indexes (flat, HNSW, IVF), inner product; flat and IVF move to the GPU with the ``gpu`` extra.

faiss is imported only when one of these backends is used, so the embedded default
(hnswlib) works without it. IVF is trained on the first ``train`` vectors of the
corpus (k-means wants about 40 points per list, so ``nlist`` should stay below
``count / 40``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from indexing.dense.base import DenseIndex, VectorShards
from indexing.dense.format import DenseMeta
from lsr.errors import LsrError

FILE = "faiss.index"


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise LsrError("the faiss backends need faiss: pip install faiss-cpu (or the gpu extra)") from exc
    return faiss


def to_gpu(index: Any) -> Any:
    """The same index on every visible GPU (flat and IVF only; faiss has no GPU HNSW)."""
    faiss = _faiss()
    if not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() == 0:
        raise LsrError("--index-device cuda: faiss sees no GPU (install the gpu extra on a machine with one)")
    return faiss.index_cpu_to_all_gpus(index)


def _training_sample(shards: VectorShards, size: int) -> np.ndarray:
    """The first ``size`` corpus vectors (fewer if the corpus is smaller)."""
    parts: list[np.ndarray] = []
    have = 0
    for vectors in shards():
        parts.append(np.asarray(vectors[: size - have], dtype=np.float32))
        have += len(parts[-1])
        if have >= size:
            break
    return np.ascontiguousarray(np.vstack(parts))


class _FaissIndex(DenseIndex):
    """A faiss index read from ``faiss.index``; subclasses say how to create and tune it."""

    def __init__(self, folder: Path, meta: DenseMeta, device: str = "cpu") -> None:
        super().__init__(folder, meta)
        self.index = _faiss().read_index(str(folder / FILE))
        if device == "cuda":
            self.index = to_gpu(self.index)

    @classmethod
    def create(cls, dimension: int, params: dict[str, int]) -> Any:
        raise NotImplementedError

    @classmethod
    def build(cls, shards: VectorShards, folder: Path, dimension: int, count: int, params: dict[str, int]) -> None:
        index = cls.create(dimension, params)
        if not index.is_trained:
            index.train(_training_sample(shards, params["train"]))
        for vectors in shards():
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        _faiss().write_index(index, str(folder / FILE))

    def tune(self, params: dict[str, int]) -> None:
        """Set search-time parameters on the faiss index (flat has none)."""

    def _search(self, queries: np.ndarray, k: int, params: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
        self.tune(params)
        scores, rows = self.index.search(queries, k)
        return rows.astype(np.int64), scores.astype(np.float32)


class FaissFlatIndex(_FaissIndex):
    """``IndexFlatIP``: exact, faiss's BLAS kernels."""

    backend = "faiss-flat"

    @classmethod
    def create(cls, dimension: int, params: dict[str, int]) -> Any:
        faiss = _faiss()
        return faiss.IndexFlatIP(dimension)


class FaissHnswIndex(_FaissIndex):
    """``IndexHNSWFlat`` in inner-product space."""

    backend = "faiss-hnsw"
    build_params = {"m": 32, "ef_construction": 200}
    search_params = {"ef": 256}

    @classmethod
    def create(cls, dimension: int, params: dict[str, int]) -> Any:
        faiss = _faiss()
        index = faiss.IndexHNSWFlat(dimension, params["m"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params["ef_construction"]
        return index

    def tune(self, params: dict[str, int]) -> None:
        self.index.hnsw.efSearch = params["ef"]


class FaissIvfIndex(_FaissIndex):
    """``IndexIVFFlat``: ``nlist`` k-means cells, ``nprobe`` of them visited per query."""

    backend = "faiss-ivf"
    build_params = {"nlist": 64, "train": 100_000}
    search_params = {"nprobe": 16}

    @classmethod
    def create(cls, dimension: int, params: dict[str, int]) -> Any:
        faiss = _faiss()
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFFlat(quantizer, dimension, params["nlist"], faiss.METRIC_INNER_PRODUCT)
        return index

    def tune(self, params: dict[str, int]) -> None:
        _faiss().extract_index_ivf(self.index).nprobe = params["nprobe"]
