"""HNSW graphs through hnswlib: the embedded default dense index (no extra dependency, fast on a CPU).

``m`` (links per node) and ``ef_construction`` set graph quality at build time,
``ef`` the candidate list at search time. hnswlib cannot return more hits than its
candidate list holds, so a search for ``k`` hits uses ``max(ef, k)``. A filter reaches hnswlib's
``filter`` callback, called from C++ under the GIL for each node it would return, so the
graph is walked through excluded nodes but only allowed ones are kept.

hnswlib trusts its file: the label offset, every link and the entry point are followed without bounds
checks, so :func:`check_graph` reads the file's layout and proves them in range before hnswlib loads it.
"""

from __future__ import annotations

from pathlib import Path

import hnswlib
import numpy as np
from lsr.indexing.dense.base import DenseIndex, VectorShards, check_finite
from lsr.indexing.dense.format import DenseIndexError, DenseMeta
from lsr.indexing.sparse.format import check_range
from numba import njit

GRAPH = "hnsw.bin"
SEED = 100
HEADER = np.dtype(
    [
        ("level0_offset", "<u8"),
        ("max_elements", "<u8"),
        ("count", "<u8"),
        ("element_size", "<u8"),
        ("label_offset", "<u8"),
        ("data_offset", "<u8"),
        ("max_level", "<i4"),
        ("entry", "<u4"),
        ("max_m", "<u8"),
        ("max_m0", "<u8"),
        ("m", "<u8"),
        ("mult", "<f8"),
        ("ef_construction", "<u8"),
    ]
)
"""hnswlib's file header (``saveIndex``); then each element's level-0 record (link count, ``max_m0`` links, the
vector, the label) and, per element, the byte size and the link lists of its upper levels (``max_m`` links each)."""


@njit(nogil=True, cache=True)
def _upper_lists(words: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Where each element's upper-level lists start (in 4-byte words) and their byte size; the words walked."""
    starts = np.zeros(count, dtype=np.int64)
    sizes = np.zeros(count, dtype=np.int64)
    at = 0
    for element in range(count):
        if at >= len(words):
            return starts, sizes, len(words) + 1
        sizes[element] = words[at]
        starts[element] = at + 1
        at += 1 + (words[at] + 3) // 4
    return starts, sizes, at


def check_graph(path: Path, meta: DenseMeta) -> None:
    """The header matches the index, and every link, label and level is in range: what hnswlib follows unchecked."""
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    if len(raw) < HEADER.itemsize:
        raise DenseIndexError(f"{path}: truncated ({len(raw)} bytes)")
    head = raw[: HEADER.itemsize].view(HEADER)[0]
    count, m, m0, vector = meta.num_docs, int(head["max_m"]), int(head["max_m0"]), 4 * meta.dimension
    links0 = 4 + 4 * m0
    expected = {
        "count": count,
        "level0_offset": 0,
        "data_offset": links0,
        "label_offset": links0 + vector,
        "element_size": links0 + vector + 8,
    }
    for name, value in expected.items():
        if int(head[name]) != value:
            raise DenseIndexError(f"{path}: header field {name} is {head[name]}, expected {value} for this index")
    if not 1 <= m <= m0 < 1 << 16:
        raise DenseIndexError(f"{path}: header gives {m} links per upper level and {m0} on level 0")
    end = HEADER.itemsize + count * expected["element_size"]
    if len(raw) < end:
        raise DenseIndexError(f"{path}: truncated ({len(raw)} bytes, the level-0 records need {end})")
    records = raw[HEADER.itemsize : end].reshape(count, expected["element_size"])
    degree = records[:, :2].view("<u2")[:, 0]
    check_range(path, degree, 0, m0 + 1, "level-0 link count", DenseIndexError)
    check_range(
        path, records[:, 4:links0].view("<u4")[np.arange(m0) < degree[:, None]], 0, count, "link", DenseIndexError
    )
    check_range(path, records[:, links0 + vector :].view("<u8")[:, 0], 0, count, "row label", DenseIndexError)
    check_finite(path, records[:, links0 : links0 + vector].view("<f4"))
    if (len(raw) - end) % 4:
        raise DenseIndexError(f"{path}: {len(raw) - end} bytes of upper-level lists, not whole links")
    words = raw[end:].view("<u4")
    starts, sizes, walked = _upper_lists(words, count)
    per_level = 1 + m  # words: a link count, then m links
    if walked != len(words) or np.any(sizes % (4 * per_level)):
        raise DenseIndexError(f"{path}: the upper-level link lists do not match the header")
    levels = sizes // (4 * per_level)
    check_range(path, levels, 0, int(head["max_level"]) + 1, "element level", DenseIndexError)
    entry = int(head["entry"])
    if count and (entry >= count or levels[entry] != head["max_level"]):
        raise DenseIndexError(f"{path}: entry point {entry} is not an element of the top level {head['max_level']}")
    level = np.arange(levels.sum()) - np.repeat(np.cumsum(levels) - levels, levels) + 1  # 1 .. each element's top
    lists = np.repeat(starts, levels) + per_level * (level - 1)
    upper_degree = words[lists] & 0xFFFF
    check_range(path, upper_degree, 0, m + 1, "upper-level link count", DenseIndexError)
    used = np.arange(m) < upper_degree[:, None]
    targets = words[lists[:, None] + 1 + np.arange(m)][used]
    check_range(path, targets, 0, count, "upper-level link", DenseIndexError)
    if np.any(levels[targets] < np.broadcast_to(level[:, None], used.shape)[used]):
        raise DenseIndexError(f"{path}: an upper-level link leads to an element without that level")


class HnswIndex(DenseIndex):
    """An hnswlib graph in inner-product space (hnswlib's distance is ``1 - dot``; scores are ``dot``)."""

    backend = "hnsw"
    files = (GRAPH,)
    build_params = {"m": 32, "ef_construction": 200}
    search_params = {"ef": 256}

    def __init__(self, folder: Path, meta: DenseMeta) -> None:
        super().__init__(folder, meta)
        check_graph(folder / GRAPH, meta)
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

    def _search(
        self, queries: np.ndarray, k: int, params: dict[str, int], allow: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        self.graph.set_ef(max(params["ef"], k))
        allowed = None if allow is None else lambda label: bool(allow[label])
        labels, distances = self.graph.knn_query(queries, k=k, filter=allowed)
        return labels.astype(np.int64), (1.0 - distances).astype(np.float32)

    def _vectors(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.graph.get_items(rows), dtype=np.float32)
