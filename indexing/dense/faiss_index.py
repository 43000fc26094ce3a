"""faiss indexes (flat, HNSW, IVF), inner product; flat and IVF move to the GPU with the ``gpu`` extra.

faiss is imported only when one of these backends is used, so the embedded default
(hnswlib) works without it. IVF is trained on the first ``train`` vectors of the
corpus (k-means wants about 40 points per list, so ``nlist`` should stay below
``count / 40``).

faiss follows the ids, graph links and list sizes of a file it reads without bounds checks, so each
backend proves them in range (:meth:`_FaissIndex.check`) before the index is searched or moved to a GPU.

Filters reach faiss as an ``IDSelectorBitmap`` in the search parameters, tested inside the search (the flat scan,
the HNSW walk, the visited inverted lists: IVF returns fewer than ``k`` rows when the visited lists hold fewer
allowed ones). faiss's GPU indexes ignore selectors (faiss issue #3924), so on a GPU a filtered search runs on
the host copy of the index, which is kept for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from lsr.indexing.dense.base import DenseIndex, VectorShards, check_finite
from lsr.indexing.dense.format import DenseIndexError, DenseMeta
from lsr.indexing.sparse.format import check_bounds, check_range

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

    files = (FILE,)

    def __init__(self, folder: Path, meta: DenseMeta, device: str = "cpu") -> None:
        super().__init__(folder, meta)
        try:
            self.index = _faiss().read_index(str(folder / FILE))
        except RuntimeError as exc:  # faiss's own checks, some of them (one line, without its source location)
            reason = " ".join(str(exc).split())
            raise DenseIndexError(f"{folder / FILE}: faiss cannot read it ({reason}); rebuild the index") from exc
        self.check(folder / FILE)
        self.host = self.index  # what filtered searches run on (below), and where stored vectors are read
        if device == "cuda":
            self.index = to_gpu(self.index)

    def check(self, path: Path) -> None:
        """The index's kind and sizes are the metadata's; subclasses add what their search follows."""
        faiss, index, meta = _faiss(), self.index, self.meta
        sizes = (index.d, index.ntotal, index.metric_type)
        if not isinstance(index, self.kind()) or sizes != (meta.dimension, meta.num_docs, faiss.METRIC_INNER_PRODUCT):
            raise DenseIndexError(
                f"{path}: {type(index).__name__} of {index.d}-d vectors, {index.ntotal} rows, metric "
                f"{index.metric_type}; expected {self.backend}, inner product, {meta.dimension}-d, {meta.num_docs} rows"
            )

    @classmethod
    def kind(cls) -> type:
        """The faiss class this backend writes."""
        raise NotImplementedError

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

    def parameters(self, params: dict[str, int], selector: Any) -> Any:
        """Search-time parameters and a selector as faiss's per-search parameters (host indexes only)."""
        return _faiss().SearchParameters(sel=selector)

    def _search(
        self, queries: np.ndarray, k: int, params: dict[str, int], allow: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if allow is None:
            self.tune(params)
            scores, rows = self.index.search(queries, k)
        else:
            bitmap = np.packbits(allow, bitorder="little")  # faiss reads bit i % 8 of byte i // 8
            selector = _faiss().IDSelectorBitmap(bitmap)
            scores, rows = self.host.search(queries, k, params=self.parameters(params, selector))
        return rows.astype(np.int64), scores.astype(np.float32)

    def _vectors(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.host.reconstruct_batch(rows), dtype=np.float32)


class FaissFlatIndex(_FaissIndex):
    """``IndexFlatIP``: exact, faiss's BLAS kernels."""

    backend = "faiss-flat"

    @classmethod
    def create(cls, dimension: int, params: dict[str, int]) -> Any:
        faiss = _faiss()
        return faiss.IndexFlatIP(dimension)

    @classmethod
    def kind(cls) -> type:
        return _faiss().IndexFlat

    def check(self, path: Path) -> None:
        """And every vector finite."""
        super().check(path)
        check_finite(path, flat_vectors(self.index))


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

    def parameters(self, params: dict[str, int], selector: Any) -> Any:
        return _faiss().SearchParametersHNSW(efSearch=params["ef"], sel=selector)

    @classmethod
    def kind(cls) -> type:
        return _faiss().IndexHNSW

    def check(self, path: Path) -> None:
        """Levels, list offsets, links and the entry point in range; links above level 0 to nodes on that level."""
        super().check(path)
        faiss, graph, count = _faiss(), self.index.hnsw, self.index.ntotal
        storage = faiss.downcast_index(self.index.storage)
        if not isinstance(storage, faiss.IndexFlat) or (storage.d, storage.ntotal) != (self.index.d, count):
            raise DenseIndexError(f"{path}: the graph's vector storage does not match the index")
        check_finite(path, flat_vectors(storage))
        cumulative = faiss.vector_to_array(graph.cum_nneighbor_per_level).astype(np.int64)
        levels = faiss.vector_to_array(graph.levels).astype(np.int64)
        offsets = faiss.vector_to_array(graph.offsets).astype(np.int64)
        links = faiss.vector_to_array(graph.neighbors)
        if len(levels) != count or len(offsets) != count + 1 or len(cumulative) < 2:
            raise DenseIndexError(f"{path}: the graph has {len(levels)} levels for {count} vectors")
        check_range(path, levels, 1, len(cumulative), "node level", DenseIndexError)
        check_bounds(path, offsets, len(links), "link offsets", DenseIndexError)
        if np.any(np.diff(offsets) != cumulative[levels]):
            raise DenseIndexError(f"{path}: a node's link lists do not have its levels' sizes")
        check_range(path, links, -1, count, "link", DenseIndexError)
        if count and not (0 <= graph.entry_point < count and levels[graph.entry_point] == graph.max_level + 1):
            raise DenseIndexError(f"{path}: entry point {graph.entry_point} is not a node of the top level")
        position = np.arange(len(links)) - np.repeat(offsets[:-1], np.diff(offsets))  # within the node's lists
        needed = np.searchsorted(cumulative, position, "right")  # a link on level l leads to a node of l + 1 levels
        used = links >= 0
        if np.any(levels[links[used]] < needed[used]):
            raise DenseIndexError(f"{path}: a link above level 0 leads to a node without that level")


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

    def parameters(self, params: dict[str, int], selector: Any) -> Any:
        return _faiss().SearchParametersIVF(nprobe=params["nprobe"], sel=selector)

    def _vectors(self, rows: np.ndarray) -> np.ndarray:
        """Stored vectors by row need IVF's map from row to list entry, made on first need (8 bytes a row)."""
        if self.host.direct_map.type == _faiss().DirectMap.NoMap:
            self.host.make_direct_map()
        return super()._vectors(rows)

    @classmethod
    def kind(cls) -> type:
        return _faiss().IndexIVFFlat

    def check(self, path: Path) -> None:
        """One centroid per list, and the lists hold every row once by its number (ids a search returns as rows)."""
        super().check(path)
        faiss, ivf = _faiss(), self.index
        lists = ivf.invlists
        if (ivf.quantizer.d, ivf.quantizer.ntotal, lists.nlist) != (ivf.d, ivf.nlist, ivf.nlist):
            raise DenseIndexError(f"{path}: {ivf.quantizer.ntotal} centroids and {lists.nlist} lists for {ivf.nlist}")
        sizes = [lists.list_size(number) for number in range(ivf.nlist)]
        if sum(sizes) != ivf.ntotal or lists.code_size != ivf.code_size:
            raise DenseIndexError(f"{path}: the inverted lists hold {sum(sizes)} rows, not {ivf.ntotal}")
        for number, size in enumerate(sizes):
            if size:
                ids = faiss.rev_swig_ptr(lists.get_ids(number), size)
                check_range(path, ids, 0, ivf.ntotal, f"row id in list {number}", DenseIndexError)


def flat_vectors(index: Any) -> np.ndarray:
    """A flat faiss index's vectors as a (rows, dimension) array, without a copy."""
    return _faiss().rev_swig_ptr(index.get_xb(), index.ntotal * index.d).reshape(index.ntotal, index.d)
