"""HNSW graphs through hnswlib: the embedded default dense index (no extra dependency, fast on a CPU).

``m`` (links per node) and ``ef_construction`` set graph quality at build time,
``ef`` the candidate list at search time. hnswlib cannot return more hits than its
candidate list holds, so a search for ``k`` hits uses ``max(ef, k)``.
"""

from __future__ import annotations

from pathlib import Path

import hnswlib
import numpy as np

from indexing.dense.base import DenseIndex, VectorShards
from indexing.dense.format import DenseMeta

GRAPH = "hnsw.bin"
SEED = 100


class HnswIndex(DenseIndex):
    """An hnswlib graph in inner-product space (hnswlib's distance is ``1 - dot``; scores are ``dot``)."""

    backend = "hnsw"
    build_params = {"m": 32, "ef_construction": 200}
    search_params = {"ef": 256}

    def __init__(self, folder: Path, meta: DenseMeta) -> None:
        super().__init__(folder, meta)
        self.graph = hnswlib.Index(space="ip", dim=meta.dimension)
        self.graph.load_index(str(folder / GRAPH), max_elements=meta.num_docs)

    @classmethod
    def build(cls, shards: VectorShards, folder: Path, dimension: int, count: int, params: dict[str, int]) -> None:
        graph = hnswlib.Index(space="ip", dim=dimension)
        graph.init_index(max_elements=count, ef_construction=params["ef_construction"], M=params["m"], random_seed=SEED)
        start = 0
        for vectors in shards():
            graph.add_items(vectors, np.arange(start, start + len(vectors)))
            start += len(vectors)
        graph.save_index(str(folder / GRAPH))

    def _search(self, queries: np.ndarray, k: int, params: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
        self.graph.set_ef(max(params["ef"], k))
        labels, distances = self.graph.knn_query(queries, k=k)
        return labels.astype(np.int64), (1.0 - distances).astype(np.float32)
