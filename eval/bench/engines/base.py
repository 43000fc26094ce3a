"""One interface for every engine the speed benchmark compares, lsr's own and the field's.

Why: a fair comparison feeds every engine the identical postings and queries and asks
each the same question. Every engine here indexes one :class:`Vectors` (integer
impacts, the quantisation Anserini uses for SPLADE: weight x 100, rounded) and answers
one query at a time with document row numbers and scores, best first. The harness
(`lsr.eval.bench.engines.harness`) owns timing, repetitions and recall; engines only
build and search. An engine that can time itself without the Python call in the
measured region (Lucene inside the JVM) overrides :meth:`Engine.latencies`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

GUIDE_K = 10
"""The k that clustered engines' recommended settings (Seismic's guide) are tuned for (accuracy@10)."""
CLUSTER_CUTS = (3, 5, 8, 10, 15)
HEAP_FACTORS = (0.7, 0.75, 0.8, 0.9, 1.0)
"""The ``query_cut`` x ``heap_factor`` grid both clustered engines (Seismic, lsr's clustered search) are swept over,
one grid for both so that neither has finer steps to reach a recall target with: the factors span the range the
Seismic authors recommend (0.7-1)."""
DEEP_CUTS = (20, 30, 50)
"""``query_cut`` values a clustered engine (Seismic, lsr's clustered search) is swept over as well beyond
:data:`GUIDE_K`: a deep top k draws on the query's lighter terms too."""


@dataclass(frozen=True)
class Vectors:
    """Rows of integer impacts (stored as float32) over a shared vocabulary; row ``i`` is ``ids[i]``."""

    ids: list[str]
    matrix: sp.csr_matrix

    def row(self, number: int) -> tuple[np.ndarray, np.ndarray]:
        """Term ids (int32) and impacts (float32) of one row."""
        start, end = self.matrix.indptr[number], self.matrix.indptr[number + 1]
        return self.matrix.indices[start:end].astype(np.int32), self.matrix.data[start:end].astype(np.float32)

    def __len__(self) -> int:
        return self.matrix.shape[0]


@dataclass(frozen=True)
class Built:
    """What building cost: wall seconds, bytes on disk (or in memory where the engine keeps none on disk)."""

    seconds: float
    index_bytes: int


@dataclass(frozen=True)
class Answer:
    """One query's top k: document row numbers and scores, best first, no padding."""

    rows: np.ndarray  # int64
    scores: np.ndarray  # float32


class Engine(ABC):
    """One built index of an engine, searched under one search-time setting at a time.

    ``settings`` (constructor) are build-time parameters; ``search_settings`` (set by
    :meth:`configure`, swept over :meth:`grid`) are read by :meth:`search`, so a sweep of
    search-time knobs reuses one index. ``exact`` engines must return the exact top-k scores.
    """

    system: ClassVar[str]
    exact: ClassVar[bool]
    parallel_batch: ClassVar[bool] = False
    """Whether :meth:`search_batch` spreads queries over threads. One that does not (BMP's binding searches one
    query at a time and holds the GIL) is timed for throughput with one forked process per thread instead."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.search_settings: dict[str, Any] = {}

    @property
    def label(self) -> str:
        """``system`` plus its build and search settings, as the results table shows it."""
        every = {**self.settings, **self.search_settings}
        extra = " ".join(f"{key}={value}" for key, value in sorted(every.items()))
        return f"{self.system} {extra}".strip()

    def grid(self, k: int) -> list[dict[str, Any]]:
        """The search-time settings the benchmark sweeps for this index when asked for ``k`` hits (one empty
        setting: nothing to sweep).

        ``k`` is an argument because some settings only mean what their label says at some k: an HNSW beam
        narrower than k cannot hold k hits, and a rescoring pool must hold at least k. Such a setting is left
        out or sized from k here, so no row is labelled with a setting other than the one that ran.
        """
        return [{}]

    def is_exact(self, setting: dict[str, Any]) -> bool:
        """Whether this engine is exact under ``setting`` (checked by the harness, never assumed in a result)."""
        return self.exact

    def configure(self, **search_settings: Any) -> None:
        """Search with these search-time settings from now on."""
        self.search_settings = search_settings

    def warm_up(self, queries: Vectors, k: int) -> None:
        """One untimed pass over every query, so caches, JIT and lazily built structures are warm."""
        for i in range(len(queries)):
            self.search(*queries.row(i), k)

    def plan(self, grid: Sequence[dict[str, Any]]) -> None:
        """Told, before :meth:`build`, the search settings this run will use, so that an engine can leave out a
        structure none of them reads (lsr's clusters in a run of its exact setting only); by default nothing."""
        return None

    @abstractmethod
    def build(self, docs: Vectors, workdir: Path, threads: int = 1) -> Built:
        """Index ``docs`` under ``workdir`` (a fresh folder the engine owns)."""

    @abstractmethod
    def search(self, terms: np.ndarray, weights: np.ndarray, k: int) -> Answer:
        """The top ``k`` of one query, single-threaded."""

    def search_batch(self, queries: Vectors, k: int, threads: int) -> list[Answer]:
        """All queries with ``threads`` threads; engines with a native parallel batch override this."""
        return [self.search(*queries.row(i), k) for i in range(len(queries))]

    def latencies(self, queries: Vectors, k: int) -> np.ndarray:
        """Seconds per query, batch 1, one thread, measured around :meth:`search`."""
        out = np.empty(len(queries))
        for i in range(len(queries)):
            terms, weights = queries.row(i)
            started = time.perf_counter()
            self.search(terms, weights, k)
            out[i] = time.perf_counter() - started
        return out

    def throughput(self, queries: Vectors, k: int, threads: int) -> float:
        """Queries per second of one :meth:`search_batch` pass with ``threads`` threads (after the warm-up pass), or
        of ``threads`` forked processes for an engine without a parallel batch."""
        if threads > 1 and not self.parallel_batch:
            from lsr.eval.bench.engines.forked import forked_throughput

            return forked_throughput(self, queries, k, threads)
        started = time.perf_counter()
        self.search_batch(queries, k, threads)
        return len(queries) / (time.perf_counter() - started)

    def describe(self) -> dict[str, Any]:
        """What to record beside the numbers (a runtime's version and flags); nothing by default."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release what the engine holds (a JVM searcher, a mapped file); nothing by default."""


@dataclass
class Registry:
    """Engine factories by system name, so the CLI can list and pick them."""

    factories: dict[str, type[Engine]] = field(default_factory=dict)

    def add(self, engine: type[Engine]) -> type[Engine]:
        self.factories[engine.system] = engine
        return engine


ENGINES = Registry()
