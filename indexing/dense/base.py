"""What every dense index backend offers: build from vector shards, open, top-k search, filtered or not.

Filters (``allow``, :mod:`lsr.indexing.filters`): each backend filters inside its own search (exact: excluded rows
scored minus infinity before the top k; hnswlib: its ``filter`` callback; faiss: an ``IDSelectorBitmap``), and a
filter that allows few rows (:attr:`DenseIndex.scan_rows`) is answered by an exact scan of just those rows, from
their stored vectors, whatever the backend: exact, and faster than a graph or list search that skips most of
what it visits (whose recall also drops at such selectivity).
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

import numpy as np
from lsr.indexing.dense.format import DenseIndexError, DenseMeta, read_ids
from lsr.indexing.filters import DocNumbers, check_allow
from lsr.indexing.fingerprint import ids_fingerprint
from lsr.indexing.hits import Hits

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
    scan_rows: int = 4096
    """A filter that allows at most this many rows is answered by an exact scan of them: at 384 dimensions, 0.9 ms
    for one query, 0.06 ms a query in a batch of 32 (gathering the rows is most of it); a graph search would skip
    49 of every 50 nodes it visits at 200k rows."""

    def __init__(self, folder: Path, meta: DenseMeta) -> None:
        self.folder = folder
        self.meta = meta
        self.ids = read_ids(folder, meta.num_docs)
        self._numbers: DocNumbers | None = None

    @classmethod
    @abstractmethod
    def build(cls, shards: VectorShards, folder: Path, dimension: int, count: int, params: dict[str, int]) -> None:
        """Write the backend's own file(s) into ``folder`` (a temporary folder, renamed by the caller)."""

    @abstractmethod
    def _search(
        self, queries: np.ndarray, k: int, params: dict[str, int], allow: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows (int64, -1 where fewer were found) and scores (float32) of unit-ready queries, among the
        rows that ``allow`` (a bool mask, or None: all) allows."""

    @abstractmethod
    def _vectors(self, rows: np.ndarray) -> np.ndarray:
        """The stored (search-ready) vectors of ``rows``, float32."""

    def search(
        self, queries: np.ndarray, k: int, allow: np.ndarray | None = None, **params: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows and scores per query, queries normalised first if the model compares by cosine.

        ``allow``: a bool or uint8 mask of the index's rows, true where a row may be returned
        (:func:`.filters.allow_mask`); ``k`` is then at most the number of rows allowed, so a filter
        that allows none gives no columns, not rows of -1.
        """
        unknown = set(params) - set(self.search_params)
        if unknown:
            raise ValueError(f"{self.backend} has no search parameter(s) {', '.join(sorted(unknown))}")
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if not np.all(np.isfinite(queries)):
            raise ValueError("query vectors must be finite")
        if self.meta.similarity == "cosine":
            queries = normalise(queries)
        mask = check_allow(allow, self.meta.num_docs)
        allowed = self.meta.num_docs if mask is None else int(np.count_nonzero(mask))
        k = min(k, allowed)
        if k == 0:
            return np.zeros((len(queries), 0), dtype=np.int64), np.zeros((len(queries), 0), dtype=np.float32)
        if mask is not None and allowed <= self.scan_rows:
            listed = np.flatnonzero(mask)
            rows, scores = exact_top_k(self._vectors(listed), queries, k)
            rows = listed[rows]
        else:
            rows, scores = self._search(queries, k, self.search_params | params, mask)
        found = rows >= 0
        if np.any((rows < -1) | (rows >= self.meta.num_docs)) or not np.all(np.isfinite(scores[found])):
            raise DenseIndexError(f"{self.folder}: the {self.backend} search returned rows or scores out of range")
        return rows, scores

    @functools.cached_property
    def id_fingerprint(self) -> str:
        """The fingerprint of its row ids (:mod:`lsr.indexing.fingerprint`), computed on first use."""
        return ids_fingerprint(self.ids)

    def doc_numbers(self, ids: Iterable[str]) -> np.ndarray:
        """The row of each id (int64), -1 for ids not in the index: the input of :func:`.filters.allow_mask`.
        The lookup is built on first use."""
        if self._numbers is None:
            self._numbers = DocNumbers.of(self.ids)
        return self._numbers.numbers(ids)

    def hits(self, rows: np.ndarray, scores: np.ndarray) -> list[Hits]:
        """Search output (rows, -1 where fewer were found) as hits with the corpus's ids."""
        return [
            Hits([self.ids[r] for r in row[row >= 0]], np.asarray(score[row >= 0]))
            for row, score in zip(rows, scores, strict=True)
        ]


def exact_top_k(
    matrix: np.ndarray, queries: np.ndarray, k: int, block: int = 256, allow: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` rows by inner product, score descending and row ascending on ties, a block of queries at a time;
    with ``allow`` (a mask of the rows, allowing at least ``k``), among the allowed rows only."""
    k = min(k, matrix.shape[0])
    excluded = None if allow is None else np.flatnonzero(np.asarray(allow) == 0)
    rows = np.empty((len(queries), k), dtype=np.int64)
    best = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), block):
        scores = queries[start : start + block] @ matrix.T
        if excluded is not None:
            scores[:, excluded] = -np.inf
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
