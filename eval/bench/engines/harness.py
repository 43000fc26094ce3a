"""The speed comparison's protocol: same vectors, same queries, same k; latency first, recall matched.

Why each rule (issue 21's audit of the old comparison):

* **Batch-1 latency, one thread**, is the primary figure (mean, p50, p99): it needs no
  cores to share and is what a query waits. Throughput with ``threads`` is reported
  apart, with its thread count.
* **Interleaved repetitions**: every setting of every engine is timed once per round, in
  an order rotated each round, so a noisy neighbour hits all engines alike; the spread
  of per-round means (lowest to highest) is reported, and the load average is kept
  with every round. (A t interval of the mean over the two or three rounds a large
  corpus allows reaches ±12.7 or ±4.3 standard errors and fell below zero in tables of
  session 21.)
* **Warm**: each engine runs one untimed pass over all queries before its first timed
  pass (JIT, caches, lazily built structures).
* **Exact engines are checked**, not trusted: their top-k scores must equal lsr's exact
  ones, which are themselves checked against a brute-force product on a sample.
* **Approximate engines are compared at matched recall**: recall@k against the exact
  top k (tie-aware: a returned document whose exact score reaches the k-th best score
  counts), and for each target the setting with the lowest median latency that reaches it.
* **Nothing measured is lost to a time limit**: after every timed round the report so far
  (``complete`` false, ``rounds_done``) goes to ``on_round``, so a run stopped by the
  limit of a lent machine still leaves every round it finished. (A kANNolo run at a
  million documents once ended half-way through its last round and left nothing.)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from lsr.eval.bench.engines.base import Answer, Engine, Vectors
from tqdm.auto import tqdm

TARGETS = (0.90, 0.95, 0.97, 0.99)


@dataclass
class Row:
    """One engine under one search setting: quality, latency over all rounds, throughput."""

    system: str
    label: str
    settings: dict[str, Any]
    recall: float
    exact_scores_match: bool | None
    mean_ms: float
    p50_ms: float
    p99_ms: float
    rounds_mean_ms: list[float]
    throughput_qps: float | None = None
    throughput_workers: str | None = None  # "N threads", or "N processes" for an engine without parallel search
    mean_hits: float | None = None  # hits per query returned (at most k): an engine that stops short shows here


@dataclass
class Report:
    """Everything one comparison measured, with its context."""

    documents: int
    postings: int
    queries: int
    k: int
    rounds: int
    threads: int
    load_average: list[list[float]]
    builds: dict[str, dict[str, float]]
    rows: list[Row] = field(default_factory=list)
    reference_checked_queries: int = 0
    rounds_done: int = 0
    complete: bool = False  # False: a snapshot after rounds_done rounds, before the throughput pass

    def matched(self) -> dict[str, dict[str, dict[str, Any] | None]]:
        """:func:`matched` of this report's rows."""
        return matched([asdict(row) for row in self.rows])

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["matched_recall"] = self.matched()
        return data


def matched(
    rows: list[dict[str, Any]], group: Callable[[dict[str, Any]], str] = lambda row: row["system"]
) -> dict[str, dict[str, dict[str, Any] | None]]:
    """For each system (or other ``group`` of rows) and recall target: the setting with the lowest median latency
    reaching it (the median, because on a shared machine a few preempted queries move a mean by more than a
    setting does)."""
    out: dict[str, dict[str, dict[str, Any] | None]] = {}
    for system in sorted({group(row) for row in rows}):
        mine = [row for row in rows if group(row) == system]
        out[system] = {}
        for target in TARGETS:
            best = min((row for row in mine if row["recall"] >= target), key=lambda row: row["p50_ms"], default=None)
            out[system][f"{target:.2f}"] = (
                None if best is None else {key: best[key] for key in ("label", "mean_ms", "p50_ms", "recall")}
            )
    return out


def true_scores(docs: Vectors, terms: np.ndarray, weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Exact dot products of documents ``rows`` with one query (float64, so integer impacts sum exactly)."""
    query = np.zeros(docs.matrix.shape[1])
    query[terms] = weights
    return np.asarray(docs.matrix[rows] @ query).ravel()


def brute_force(docs: Vectors, terms: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """The exact top-k scores of one query by a full product over every document (the check of the reference)."""
    query = sp.csr_matrix((weights.astype(np.float64), terms, [0, len(terms)]), shape=(1, docs.matrix.shape[1]))
    scores = np.asarray((docs.matrix @ query.T).todense()).ravel()
    return np.sort(scores[scores > 0])[::-1][:k]  # engines return matching documents only, never padding


def recall(docs: Vectors, queries: Vectors, reference: Sequence[Answer], found: Sequence[Answer], k: int) -> float:
    """Tie-aware recall@k: the share of the exact top k matched by returned documents scoring at least the k-th."""
    shares = []
    for i, (want, got) in enumerate(zip(reference, found, strict=True)):
        if len(want.rows) == 0:
            continue
        kth = float(want.scores[: min(k, len(want.scores))].min())
        rows = np.unique(got.rows[:k])
        exact = true_scores(docs, *queries.row(i), rows) if len(rows) else np.empty(0)
        shares.append(min(int(np.count_nonzero(exact >= kth - 1e-6)), len(want.rows[:k])) / len(want.rows[:k]))
    return float(np.mean(shares)) if shares else 1.0


def same_scores(reference: Sequence[Answer], found: Sequence[Answer], k: int) -> bool:
    """Whether two engines return the same top-k score lists (ids may differ only among equal scores)."""
    for want, got in zip(reference, found, strict=True):
        a, b = want.scores[:k], got.scores[:k]
        if len(a) != len(b) or not np.allclose(np.sort(a)[::-1], np.sort(b)[::-1], rtol=1e-5, atol=1e-3):
            return False
    return True


def _rows(
    cases: list[tuple[Engine, dict[str, Any]]],
    quality: list[tuple[float, bool | None, float]],
    timings: list[list[np.ndarray]],
    throughput: tuple[Vectors, int, int] | None,
) -> list[Row]:
    """One row per setting from its recall and the rounds timed so far; ``throughput`` (queries, k, threads) runs
    each setting's multi-thread pass too."""
    rows = []
    for (engine, setting), (found_recall, exact, hits), rounds_seconds in zip(cases, quality, timings, strict=True):
        engine.configure(**setting)
        every = np.concatenate(rounds_seconds) * 1000
        per_round = [float(np.mean(r) * 1000) for r in rounds_seconds]
        qps = engine.throughput(*throughput) if throughput is not None else None
        used = None if throughput is None else f"{throughput[2]} {'threads' if engine.parallel_batch else 'processes'}"
        rows.append(
            Row(
                engine.system,
                engine.label,
                {**engine.settings, **setting},
                found_recall,
                exact,
                float(np.mean(every)),
                float(np.percentile(every, 50)),
                float(np.percentile(every, 99)),
                per_round,
                qps,
                used,
                hits,
            )
        )
    return rows


def compare(
    engines: Sequence[Engine],
    docs: Vectors,
    queries: Vectors,
    k: int = 10,
    rounds: int = 3,
    threads: int = 1,
    check_queries: int = 20,
    settings: Sequence[Sequence[dict[str, Any]]] | None = None,
    on_round: Callable[[Report], None] | None = None,
) -> Report:
    """Build every engine, check the exact ones, then time every setting in interleaved rounds.

    ``settings`` (one list per engine, in order) replaces the engines' own grids, so one fixed setting can be
    measured under the same protocol without the sweep (the synthetic-vs-real probe times one Seismic setting).
    ``on_round`` receives the report after each timed round (rows from the rounds so far, no throughput yet).
    """
    report = Report(len(docs), int(docs.matrix.nnz), len(queries), k, rounds, threads, [], {})
    grids = settings if settings is not None else [engine.grid(k) for engine in engines]
    with tempfile.TemporaryDirectory(prefix="lsr-bench-") as tmp:
        for number, (engine, grid) in enumerate(
            tqdm(list(zip(engines, grids, strict=True)), desc="build", unit=" engines")
        ):
            workdir = Path(tmp) / f"{number}-{engine.system}"
            workdir.mkdir()
            engine.plan(grid)
            built = engine.build(docs, workdir, threads=threads)
            report.builds[engine.label] = {"seconds": built.seconds, "index_mib": built.index_bytes / 2**20}
        reference_engine = engines[0]
        reference_engine.configure()
        reference_engine.warm_up(queries, k)
        reference = [reference_engine.search(*queries.row(i), k) for i in range(len(queries))]
        for i in range(min(check_queries, len(queries))):
            if not np.allclose(brute_force(docs, *queries.row(i), k), reference[i].scores, rtol=1e-5, atol=1e-3):
                raise AssertionError(f"{reference_engine.label} is not exact on query {i}: the reference is wrong")
        report.reference_checked_queries = min(check_queries, len(queries))
        cases = [(engine, dict(setting)) for engine, grid in zip(engines, grids, strict=True) for setting in grid]
        quality: list[tuple[float, bool | None, float]] = []
        for engine, setting in tqdm(cases, desc="warm-up and recall", unit=" settings"):
            engine.configure(**setting)
            engine.warm_up(queries, k)
            found = [engine.search(*queries.row(i), k) for i in range(len(queries))]
            exact = same_scores(reference, found, k) if engine.is_exact(setting) else None
            hits = float(np.mean([min(len(answer.rows), k) for answer in found]))
            quality.append((recall(docs, queries, reference, found, k), exact, hits))
        timings: list[list[np.ndarray]] = [[] for _ in cases]
        for round_number in tqdm(range(rounds), desc="timed rounds", unit=" rounds"):
            report.load_average.append(list(os.getloadavg()))
            shift = round_number % len(cases)
            for position in [*range(shift, len(cases)), *range(shift)]:
                engine, setting = cases[position]
                engine.configure(**setting)
                timings[position].append(engine.latencies(queries, k))
            report.rounds_done = round_number + 1
            if on_round is not None:
                report.rows = _rows(cases, quality, timings, None)
                on_round(report)
        report.rows = _rows(cases, quality, timings, (queries, k, threads) if threads > 1 else None)
        report.complete = True
        for engine in engines:
            engine.configure()  # back to the build-time label the builds are keyed by
            report.builds[engine.label] |= engine.describe()
            engine.close()
    return report
