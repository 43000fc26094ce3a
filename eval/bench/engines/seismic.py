"""Seismic (Bruch, Nardini, Rulli and Venturini, SIGIR 2024) through ``pyseismic-lsr``.

How its authors run it (TusKANNy/seismic ``docs/Guidelines.md``): a ``SeismicDataset`` of string
tokens and values (here term ids and the integer impacts, unchanged) built into a ``SeismicIndex``
with ``n_postings=3000`` (their range for ~10M documents is 3000-6000), ``centroid_fraction=0.2``
(they found 0.05-0.2 reasonable), ``min_cluster_size=2``, ``summary_energy=0.5`` (0.4-0.6),
``max_fraction=6`` ("a good choice"), the Python default clustering (``doc_cut=15``) and, optionally,
a kNN graph of ``knn`` neighbours per document (they warn it takes much longer to build), searched
with ``query_cut=10``, ``heap_factor=0.8`` and ``sorted=False``: the configuration their guide
reports at 99% accuracy@10 on MS MARCO. :meth:`Seismic.grid` sweeps ``query_cut`` x ``heap_factor``
(0.7-1.0, the range they recommend) with and without the kNN graph (``n_knn`` neighbours explored).

Wheel: the authors recommend compiling for the CPU (``RUSTFLAGS="-C target-cpu=native" pip install
--no-binary :all: pyseismic-lsr``) for maximum speed; :data:`WHEEL` records which build is installed
(the benchmark states it beside Seismic's numbers).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from lsr.eval.bench.engines.base import ENGINES, Answer, Built, Engine, Vectors
from lsr.eval.bench.engines.support import BuildCache, answer, disk_bytes, grid, require, term_strings

GUIDELINES = {
    "n_postings": 3000,
    "centroid_fraction": 0.2,
    "min_cluster_size": 2,
    "summary_energy": 0.5,
    "max_fraction": 6.0,
    "doc_cut": 15,
}
"""The build of the authors' guide (docs/Guidelines.md, the MS MARCO example)."""
KNN = 10
"""Neighbours per document of the optional kNN graph."""
_BUILDS = BuildCache()


def wheel() -> str:
    """How the installed pyseismic-lsr was built: ``native`` when it was compiled here (no RECORD of a
    downloaded wheel names a platform tag), else the generic wheel's tag."""
    from importlib.metadata import distribution

    try:
        text = distribution("pyseismic-lsr").read_text("WHEEL") or ""
    except Exception:  # noqa: BLE001 - any metadata problem just means unknown
        return "unknown"
    tags = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Tag:")]
    return ",".join(tags) or "unknown"


@ENGINES.add
class Seismic(Engine):
    """Seismic's approximate search: summaries of clustered, pruned posting lists, optionally a kNN graph."""

    system = "seismic"
    exact = False
    package = "seismic"

    def __init__(
        self, query_cut: int = 10, heap_factor: float = 0.8, knn: int = 0, n_knn: int = 0, **build: Any
    ) -> None:
        unknown = set(build) - set(GUIDELINES)
        if unknown:
            raise ValueError(f"unknown Seismic settings: {', '.join(sorted(unknown))}")
        if n_knn > knn:
            raise ValueError(f"n_knn={n_knn} explores more neighbours than the graph's knn={knn}")
        super().__init__(query_cut=query_cut, heap_factor=heap_factor, knn=knn, n_knn=n_knn, **build)
        self._build = {**GUIDELINES, **build, "nknn": knn}
        self._index: Any = None

    @classmethod
    def grid(cls, knn: bool = True) -> list[dict[str, Any]]:
        """query_cut x heap_factor (0.7-1.0), without the kNN graph and (``knn``) with it."""
        plain = grid(query_cut=(3, 5, 8, 10, 15), heap_factor=(0.7, 0.75, 0.8, 0.9, 1.0))
        graph = grid(query_cut=(3, 5, 10), heap_factor=(0.7, 0.8, 0.9), knn=(KNN,), n_knn=(KNN,))
        return plain + (graph if knn else [])

    def build(self, docs: Vectors, workdir: Path, threads: int = 1) -> Built:
        require(self.package, "pyseismic-lsr")
        from seismic import SeismicDataset, SeismicIndex

        key = tuple(sorted(self._build.items()))
        cached = _BUILDS.get(docs, key)
        if cached is None:
            started = time.perf_counter()
            dataset = SeismicDataset()
            for row in range(len(docs)):
                terms, impacts = docs.row(row)
                dataset.add_document(str(row), self._tokens(terms), impacts.astype(np.float32))
            index = SeismicIndex.build_from_dataset(dataset, num_threads=threads, **self._build)
            seconds = time.perf_counter() - started
            folder = Path(workdir) / "seismic"
            folder.mkdir(parents=True, exist_ok=True)
            index.save(str(folder / "index"))  # searched in memory; saved only to measure its size
            cached = (index, Built(seconds, disk_bytes(folder)))
            _BUILDS.put(docs, key, *cached)
        self._index, built = cached
        return built

    @staticmethod
    def _tokens(terms: np.ndarray) -> np.ndarray:
        from seismic import get_seismic_string

        return np.array(term_strings(terms), dtype=get_seismic_string())

    def _arguments(self) -> dict[str, Any]:
        s = self.settings
        return {"query_cut": s["query_cut"], "heap_factor": s["heap_factor"], "n_knn": s["n_knn"], "sorted": False}

    def search(self, terms: np.ndarray, weights: np.ndarray, k: int) -> Answer:
        found = self._index.search("q", self._tokens(terms), weights.astype(np.float32), k=k, **self._arguments())
        return answer([int(doc) for _, _, doc in found], [score for _, score, _ in found])

    def search_batch(self, queries: Vectors, k: int, threads: int) -> list[Answer]:
        """Seismic's own parallel batch search (Rayon threads over queries)."""
        rows = [queries.row(i) for i in range(len(queries))]
        found = self._index.batch_search(
            self._tokens(np.arange(len(rows))),
            [self._tokens(terms) for terms, _ in rows],
            [weights.astype(np.float32) for _, weights in rows],
            k,
            num_threads=threads,
            **self._arguments(),
        )
        return [answer([int(doc) for _, _, doc in hits], [score for _, score, _ in hits]) for hits in found]

    def close(self) -> None:
        self._index = None
