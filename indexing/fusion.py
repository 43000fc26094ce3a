"""Hybrid retrieval: fuse the runs of several retrievers into one, and tune the fusion weights.

Two families, as in the hybrid-search literature and ranx:

- reciprocal rank fusion (Cormack et al., 2009): ``sum_i w_i / (k + rank_i(d))`` with
  ``k = 60``; it needs no score calibration because it only looks at ranks;
- a weighted sum of per-query normalised scores, min-max (``(s - min) / (max - min)``)
  or z-score (``(s - mean) / std``, population std), because raw BM25, SPLADE and
  cosine scores live on unrelated scales.

A document missing from one retriever's list ranked below everything that
retriever returned: it adds nothing under RRF and gets that retriever's lowest
normalised score for the query under a weighted sum (0 for min-max).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

from lsr.runs import Run, ranked

RRF_K = 60
METHODS = ("rrf", "minmax", "zscore")


def _weights(runs: Sequence[Run], weights: Sequence[float] | None) -> list[float]:
    if weights is None:
        return [1.0] * len(runs)
    if len(weights) != len(runs):
        raise ValueError(f"{len(weights)} weights for {len(runs)} runs")
    return [float(w) for w in weights]


def _top(run: Run, depth: int | None) -> Run:
    return run if depth is None else {qid: dict(ranked(hits)[:depth]) for qid, hits in run.items()}


def rrf(runs: Sequence[Run], weights: Sequence[float] | None = None, k: int = RRF_K) -> Run:
    """Reciprocal rank fusion; ranks start at 1 and follow trec_eval's order (score, then doc id, descending)."""
    fused: Run = {}
    for run, weight in zip(runs, _weights(runs, weights), strict=True):
        for qid, hits in run.items():
            scores = fused.setdefault(qid, {})
            for rank, (did, _) in enumerate(ranked(hits), start=1):
                scores[did] = scores.get(did, 0.0) + weight / (k + rank)
    return fused


def normalise(run: Run, method: str) -> Run:
    """Each query's scores min-max scaled to [0, 1] (all equal: 1) or z-scored (all equal: 0)."""
    out: Run = {}
    for qid, hits in run.items():
        if not hits:
            out[qid] = {}
            continue
        values = np.fromiter(hits.values(), dtype=np.float64, count=len(hits))
        if method == "minmax":
            low, spread = values.min(), values.max() - values.min()
            scaled = (values - low) / spread if spread > 0 else np.ones_like(values)
        elif method == "zscore":
            std = values.std()
            scaled = (values - values.mean()) / std if std > 0 else np.zeros_like(values)
        else:
            raise ValueError(f"unknown normalisation {method!r}; choose minmax or zscore")
        out[qid] = dict(zip(hits, scaled.tolist(), strict=True))
    return out


def weighted_sum(normalised: Sequence[Run], weights: Sequence[float] | None = None) -> Run:
    """``sum_i w_i * s_i(d)`` over already normalised runs; a missing document scores its run's query minimum."""
    fused: Run = {}
    weights = _weights(normalised, weights)
    queries = dict.fromkeys(qid for run in normalised for qid in run)
    for qid in queries:
        lists = [run.get(qid, {}) for run in normalised]
        floors = [min(hits.values()) if hits else 0.0 for hits in lists]
        docs = dict.fromkeys(did for hits in lists for did in hits)
        fused[qid] = {
            did: sum(w * hits.get(did, floor) for w, hits, floor in zip(weights, lists, floors, strict=True))
            for did in docs
        }
    return fused


def fuse(
    runs: Sequence[Run], method: str = "rrf", weights: Sequence[float] | None = None, depth: int | None = None
) -> Run:
    """Fuse ``runs`` by ``method`` (rrf, minmax or zscore), keeping the top ``depth`` hits per query."""
    if method == "rrf":
        fused = rrf(runs, weights)
    elif method in METHODS:
        fused = weighted_sum([normalise(run, method) for run in runs], weights)
    else:
        raise ValueError(f"unknown fusion {method!r}; choose one of {', '.join(METHODS)}")
    return _top(fused, depth)


def weight_grid(parts: int, step: float = 0.1) -> list[tuple[float, ...]]:
    """Every weight vector on the simplex (non-negative, summing to 1) with coordinates in multiples of ``step``."""
    steps = round(1 / step)
    if abs(steps * step - 1) > 1e-9:
        raise ValueError(f"step {step} does not divide 1")
    grid = []
    for head in itertools.product(range(steps + 1), repeat=parts - 1):
        if sum(head) <= steps:
            grid.append(tuple(round(n / steps, 10) for n in (*head, steps - sum(head))))
    return grid


def tune_weights(
    runs: Sequence[Run], score: Callable[[Run], float], method: str = "minmax", step: float = 0.1
) -> tuple[tuple[float, ...], float]:
    """The grid weights whose fusion scores best by ``score`` (e.g. nDCG@10 on a dev split), and that score.

    Ties go to the weights nearest to equal ones, so a flat objective does not pick
    an extreme that leans on one retriever for no gain.
    """
    prepared = [normalise(run, method) for run in runs] if method != "rrf" else list(runs)
    best: tuple[float, float, tuple[float, ...]] | None = None
    for weights in weight_grid(len(runs), step):
        fused = rrf(prepared, weights) if method == "rrf" else weighted_sum(prepared, weights)
        value = score(fused)
        spread = max(weights) - min(weights)
        if best is None or (value, -spread) > (best[0], -best[1]):
            best = (value, spread, weights)
    assert best is not None
    return best[2], best[0]
