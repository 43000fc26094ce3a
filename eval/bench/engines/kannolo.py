"""kANNolo (Delfino, Rulli, Nardini, Venturini et al., ECIR 2025) sparse HNSW through its package ``kannolo``.

How its authors run it (kANNolo ``docs/PythonUsage.md``): ``SparsePlainHNSW.build_from_arrays`` over
the documents' components, values and offsets with ``m=32`` neighbours per node and
``ef_construction=200`` (their example's values; inner product is the sparse index's metric), searched
one query at a time with ``search(components, values, k, ef_search)``. The vectors are the integer
impacts, unchanged. :meth:`Kannolo.grid` sweeps ``ef_search`` over the values of :data:`LADDER` that are at least
``k``: an HNSW beam keeps ``ef_search`` candidates, so a narrower one cannot hold ``k`` hits (kANNolo widens it to
``k`` itself, which would run ``ef_search = k`` under another setting's label). A search with ``ef_search < k`` is
refused rather than widened.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from lsr.eval.bench.engines.base import ENGINES, Answer, Built, Vectors
from lsr.eval.bench.engines.support import Tunable, answer, disk_bytes, require

LADDER = (10, 20, 40, 80, 160, 320, 640, 1000, 2000)
"""The ef_search values swept at k = 10 (up to 200 k); at larger k, those of them at least k."""
MIN_SETTINGS = 3
"""At a k that leaves fewer ladder values than this, the ladder goes on doubling: a frontier needs points."""


@ENGINES.add
class Kannolo(Tunable):
    """Graph (HNSW) search over sparse vectors by inner product; approximate."""

    system = "kannolo"
    exact = False
    parallel_batch = True
    package = "kannolo"
    defaults = {"ef_search": 100}

    def __init__(self, m: int = 32, ef_construction: int = 200) -> None:
        super().__init__(m=m, ef_construction=ef_construction)
        self._index: Any = None

    def grid(self, k: int) -> list[dict[str, Any]]:
        """The ladder's ef_search values of at least k, doubled on until there are :data:`MIN_SETTINGS`."""
        values = [ef for ef in LADDER if ef >= k] or [k]
        while len(values) < MIN_SETTINGS:
            values.append(2 * values[-1])
        return [{"ef_search": ef} for ef in values]

    def build(self, docs: Vectors, workdir: Path, threads: int = 1) -> Built:
        require(self.package, "kannolo")
        from kannolo import SparsePlainHNSW

        started = time.perf_counter()
        matrix = docs.matrix
        self._index = SparsePlainHNSW.build_from_arrays(
            matrix.indices.astype(np.int32),
            matrix.data.astype(np.float32),
            matrix.indptr.astype(np.int64),
            m=self.settings["m"],
            ef_construction=self.settings["ef_construction"],
        )
        seconds = time.perf_counter() - started
        folder = Path(workdir) / "kannolo"
        folder.mkdir(parents=True, exist_ok=True)
        self._index.save(str(folder / "index"))  # searched in memory; saved only to measure its size
        return Built(seconds, disk_bytes(folder))

    def _ef(self, k: int) -> int:
        """The configured ef_search, refused when below ``k`` (see the module docstring)."""
        ef = self.search_settings["ef_search"]
        if ef < k:
            raise ValueError(f"kannolo: ef_search={ef} is below k={k}; an HNSW beam that narrow cannot hold k hits")
        return ef

    def search(self, terms: np.ndarray, weights: np.ndarray, k: int) -> Answer:
        if not len(terms):
            return answer(np.zeros(0), np.zeros(0))
        scores, rows = self._index.search(terms.astype(np.int32), weights.astype(np.float32), k, self._ef(k))
        keep = rows >= 0
        return answer(rows[keep], scores[keep])

    def search_batch(self, queries: Vectors, k: int, threads: int) -> list[Answer]:
        """kANNolo's own parallel batch search."""
        matrix = queries.matrix
        ef = self._ef(k)
        scores, rows = self._index.batch_search(
            matrix.indices.astype(np.int32),
            matrix.data.astype(np.float32),
            matrix.indptr.astype(np.int64),
            k,
            ef,
            num_threads=threads,
        )
        scores, rows = np.asarray(scores).reshape(len(queries), -1), np.asarray(rows).reshape(len(queries), -1)
        return [answer(r[r >= 0], s[r >= 0]) for r, s in zip(rows, scores, strict=True)]

    def close(self) -> None:
        self._index = None
