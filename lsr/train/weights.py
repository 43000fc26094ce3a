"""Teacher weights chosen on labelled queries: each weighting's ensemble ranked and scored as a retriever.

``lsr train prepare`` trains the student towards the teachers' weighted, per-query min-max normalised scores
(:func:`lsr.train.teachers.ensemble_scores`). The student cannot rank better than the ensemble it copies, so the
weights worth training on are those whose ensemble ranks a labelled split best. Here each weighting fuses the
teachers' runs exactly as ``prepare`` does (every teacher's top ``pool`` as candidates; unlike ``prepare``, the
judged documents are not added to the pool, which would put the labels into the ranking) and is scored with the
split's qrels. Use a dev or train split, never the test split that reports the result.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lsr.metrics import evaluate
from lsr.runs import Run, ranked
from lsr.train.teachers import ensemble_scores

DEFAULT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


@dataclass(frozen=True)
class Weighting:
    """One weighting's ensemble quality on the split."""

    weights: tuple[float, ...]
    metrics: dict[str, float]


def fused(runs: Sequence[Run], weights: Sequence[float], queries: Sequence[str], pool: int) -> Run:
    """The ensemble's ranking of every teacher's top ``pool`` for each query (queries no teacher answered: none)."""
    out: Run = {}
    for qid in queries:
        hits = [run.get(qid, {}) for run in runs]
        candidates = list(dict.fromkeys(doc for teacher in hits for doc, _ in ranked(teacher)[:pool]))
        if candidates:
            out[qid] = dict(zip(candidates, ensemble_scores(hits, candidates, weights), strict=True))
    return out


def weightings(teachers: int, grid: Sequence[float]) -> list[tuple[float, ...]]:
    """The first teacher's weight fixed at 1 (only ratios matter), the others from ``grid``, not all zero."""
    rest = [w for w in itertools.product(grid, repeat=teachers - 1) if teachers == 1 or any(w)]
    return [(1.0, *w) for w in rest]


def search(
    runs: Sequence[Run],
    qrels: Mapping[str, Mapping[str, int]],
    grid: Sequence[float] = DEFAULT_GRID,
    pool: int = 30,
    measures: Sequence[str] = ("nDCG@10", "RR@10"),
) -> list[Weighting]:
    """Every weighting's scores on ``qrels`` (trec_eval's ``-c``: a query no teacher answered counts 0), best
    first by the first measure."""
    queries = list(qrels)
    results = [
        Weighting(weights, evaluate(qrels, fused(runs, weights, queries, pool), measures, complete=True).aggregate)
        for weights in weightings(len(runs), grid)
    ]
    return sorted(results, key=lambda r: -r.metrics[measures[0]])
