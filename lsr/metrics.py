"""Retrieval metrics exactly as trec_eval computes them, per query and averaged.

Measures are named as ir-measures names them (``nDCG@10``, ``R@100``, ``RR@10``,
``AP``, ...) and computed by trec_eval's own C code through pytrec_eval. trec_eval
has no cutoff for reciprocal rank, so ``RR@k`` is ``recip_rank`` on the run cut to
its top k in trec_eval's order, which is what ``trec_eval -M k -m recip_rank`` gives.
Judged queries without results are left out of the mean, as trec_eval and BEIR do,
unless ``complete`` is set (trec_eval's ``-c``: they count as zero).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ir_measures
from ir_measures import RR

from lsr.data.qrels import Qrels
from lsr.fsutil import atomic_file, claim_dir
from lsr.runs import Run, drop_identical_ids, truncate, write_run

DEFAULT_MEASURES = ("nDCG@10", "R@100", "R@1000", "RR@10", "AP")


@dataclass
class Evaluation:
    """Aggregate and per-query values keyed by measure name, the judged queries the run missed, and whether those
    count as 0 in the means (``complete``, trec_eval's ``-c``) or are left out (its default)."""

    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]
    unanswered: list[str]
    complete: bool = False


def _per_query(measure: ir_measures.Measure, qrels: Qrels, run: Run) -> dict[str, float]:
    cutoff = measure.params.get("cutoff")
    if measure.NAME == RR.NAME and cutoff is not None:
        run = truncate(run, int(cutoff))
        measure = RR
    provider = ir_measures.pytrec_eval if ir_measures.pytrec_eval.supports(measure) else ir_measures.DefaultPipeline
    return {m.query_id: float(m.value) for m in provider.iter_calc([measure], qrels, run)}


def evaluate(
    qrels: Qrels,
    run: Run,
    measures: Sequence[str] = DEFAULT_MEASURES,
    ignore_identical_ids: bool = True,
    complete: bool = False,
) -> Evaluation:
    """Score ``run`` against ``qrels``.

    ``ignore_identical_ids`` applies BEIR's rule (a hit whose doc id equals the
    query id is dropped); ``complete`` is trec_eval's ``-c``.
    """
    if ignore_identical_ids:
        run = drop_identical_ids(run)
    run = {qid: hits for qid, hits in run.items() if hits and qid in qrels}
    scored = list(qrels) if complete else list(run)
    per_query: dict[str, dict[str, float]] = {qid: {} for qid in scored}
    aggregate: dict[str, float] = {}
    for name in measures:
        measure = ir_measures.parse_measure(name)
        computed = _per_query(measure, qrels, run) if run else {}
        values = {qid: computed.get(qid, 0.0) for qid in scored}
        for qid, value in values.items():
            per_query[qid][name] = value
        aggregate[name] = sum(values.values()) / len(values) if values else 0.0
    unanswered = [qid for qid in qrels if qid not in run]
    return Evaluation(aggregate=aggregate, per_query=per_query, unanswered=unanswered, complete=complete)


@dataclass
class Paired:
    """A run against the baseline on one measure."""

    delta: float
    p_value: float
    queries: int


def paired_test(baseline: dict[str, float], other: dict[str, float]) -> Paired:
    """Mean difference and two-sided paired t-test p-value over the queries both runs scored."""
    from scipy.stats import ttest_rel

    common = sorted(set(baseline) & set(other))
    if not common:
        return Paired(math.nan, math.nan, 0)
    a = [baseline[q] for q in common]
    b = [other[q] for q in common]
    delta = sum(b) / len(b) - sum(a) / len(a)
    if len(common) < 2 or all(x == y for x, y in zip(a, b, strict=True)):
        return Paired(delta, 1.0 if delta == 0 else math.nan, len(common))
    return Paired(delta, float(ttest_rel(b, a).pvalue), len(common))


def write_evaluation(
    output_dir: str | Path, run: Run, evaluation: Evaluation, config: dict[str, Any], tag: str
) -> None:
    """An evaluation folder, the one format every evaluation writes and ``lsr eval compare`` reads:
    ``OUT/run.trec`` (TREC run), ``OUT/metrics.json`` (aggregate values keyed by measure name),
    ``OUT/per_query.tsv`` (``trec_eval -q`` layout: measure, query, value) and ``OUT/config.json``."""
    out = claim_dir(output_dir)
    write_run(run, out / "run.trec", tag=tag)
    with atomic_file(out / "metrics.json") as handle:
        json.dump(evaluation.aggregate, handle, indent=2)
    with atomic_file(out / "per_query.tsv") as handle:
        for qid, values in evaluation.per_query.items():
            for name, value in values.items():
                handle.write(f"{name}\t{qid}\t{value:.6f}\n")
        for name, value in evaluation.aggregate.items():
            handle.write(f"{name}\tall\t{value:.6f}\n")
    with atomic_file(out / "config.json") as handle:
        json.dump(config, handle, indent=2, default=str)
