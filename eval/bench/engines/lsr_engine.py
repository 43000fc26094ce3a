"""lsr's own inverted index as a benchmark engine: exact, dynamically pruned, posting-budget and clustered search.

The index stores the integer impacts as float16, which holds every integer up to 2,048
exactly, so lsr scores the same integers the other engines do and its exact top-k is
the reference every other engine's recall is measured against. Search-time settings
(:meth:`LsrEngine.grid`), all :meth:`Searcher.search` keyword arguments:

* none: the exact kernel (tiled where a query reads a large share of the corpus);
* ``alpha`` in (0, 1] with ``rerank``: dynamic pruning (:mod:`lsr.indexing.sparse.dynamic`);
  ``alpha=1`` is safe, smaller values skip more postings and lose some recall;
* ``budget`` with ``rerank``: at most ``budget`` postings per term, then exact rescoring;
* ``query_cut`` with ``heap_factor``: clustered search (:mod:`lsr.indexing.sparse.clustered`) over the clusters
  built with the index at their default settings (the build time includes them).

``rerank`` is :data:`RERANK` or k, whichever is larger.

The Numba kernels compile on first use; the harness's warm-up pass keeps that out of
every timed search.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from lsr.eval.bench.engines.base import (
    CLUSTER_CUTS,
    DEEP_CUTS,
    ENGINES,
    GUIDE_K,
    HEAP_FACTORS,
    Answer,
    Built,
    Engine,
    Vectors,
)
from lsr.eval.bench.engines.support import disk_bytes
from lsr.indexing.sparse.build import build_index
from lsr.indexing.sparse.cluster_build import build_clusters
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.search import Searcher

RERANK = 100
"""Documents rescored exactly after a pruned search: ten times k at k = 10; never fewer than k."""
GRIDS = ("all", "clustered", "exact")
"""The parts of lsr's sweep a run can time (`lsr bench engines --lsr-grid`)."""


@ENGINES.add
class LsrEngine(Engine):
    """See the module docstring."""

    system: ClassVar[str] = "lsr"
    exact: ClassVar[bool] = True
    parallel_batch: ClassVar[bool] = True

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.searcher: Searcher | None = None
        self.clusters = True

    def plan(self, grid: Sequence[dict[str, Any]]) -> None:
        """Clusters only for a run with clustered settings: at a million documents they are most of the build (92 of
        its seconds on 16 cores), spent for nothing by a run of the exact reference alone."""
        self.clusters = any("query_cut" in setting for setting in grid)

    def grid(self, k: int, families: str = "all") -> list[dict[str, Any]]:
        """Exact, then dynamic pruning over alpha, then posting budgets, each rescoring ``max(RERANK, k)`` documents:
        the searcher needs a pool of at least k (dynamic pruning would widen a smaller one itself, and the label
        would then name a pool that did not run); then clustered search, its cuts going on to :data:`DEEP_CUTS`
        beyond :data:`GUIDE_K`, as Seismic's do.

        ``families`` (:data:`GRIDS`) narrows the sweep: ``exact`` is the reference alone; ``clustered`` leaves out
        the pruned settings, which at a million documents take most of a run's time and win no recall target."""
        if families not in GRIDS:
            raise ValueError(f"lsr's grid is one of {', '.join(GRIDS)}, not {families!r}")
        rerank = max(RERANK, k)
        dynamic = [{"alpha": a, "rerank": rerank} for a in (1.0, 0.8, 0.6, 0.5, 0.4, 0.3)]
        budgets = [{"budget": b, "rerank": rerank} for b in (20000, 5000, 1000)]
        cuts = (*CLUSTER_CUTS, *(DEEP_CUTS if k > GUIDE_K else ()))
        clustered = [{"query_cut": c, "heap_factor": h} for c in cuts for h in HEAP_FACTORS]
        pruned = [*dynamic, *budgets] if families == "all" else []
        return [{}, *pruned, *(clustered if families != "exact" else [])]

    def is_exact(self, setting: dict[str, Any]) -> bool:
        return not setting or setting.get("alpha") == 1.0

    def build(self, docs: Vectors, workdir: Path, threads: int = 1) -> Built:
        started = time.perf_counter()
        build_index(lambda: [(docs.ids, docs.matrix)], workdir / "lsr", "bench", "splade", weights="float16")
        index = SparseIndex.open(workdir / "lsr")
        if self.clusters:
            build_clusters(index).save(index)
        seconds = time.perf_counter() - started
        self.searcher = Searcher(index, threads=1)
        return Built(seconds, disk_bytes(workdir / "lsr"))

    def _searcher(self) -> Searcher:
        if self.searcher is None:
            raise RuntimeError("build the lsr engine before searching it")
        return self.searcher

    def search(self, terms: np.ndarray, weights: np.ndarray, k: int) -> Answer:
        docs, scores, sizes = self._searcher().search_vector(terms, weights, k=k, **self.search_settings)
        return Answer(docs[0, : sizes[0]].astype(np.int64), scores[0, : sizes[0]])

    def search_batch(self, queries: Vectors, k: int, threads: int) -> list[Answer]:
        searcher = self._searcher()
        searcher.threads = threads
        try:
            docs, scores, sizes = searcher.search(queries.matrix, k=k, **self.search_settings)
        finally:
            searcher.threads = 1
        return [Answer(docs[i, : sizes[i]].astype(np.int64), scores[i, : sizes[i]]) for i in range(len(queries))]
