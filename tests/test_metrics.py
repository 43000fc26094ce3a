"""Metrics against values worked out by hand with trec_eval's definitions."""

from __future__ import annotations

from math import log2

import pytest

from lsr.metrics import evaluate

QRELS = {"q1": {"d1": 2, "d2": 1, "d3": 0, "d9": 1}, "q2": {"d5": 1}, "q3": {"d7": 1}}
RUN = {
    # q1 retrieves itself (dropped under BEIR's rule); d2 and d1 tie, and trec_eval puts d2 first (doc id descending)
    "q1": {"q1": 10.0, "d4": 3.0, "d2": 2.0, "d1": 2.0, "d3": 1.0},
    # q2's only relevant document is at rank 11
    "q2": {**{f"x{i:02d}": 21.0 - i for i in range(1, 11)}, "d5": 1.0},
    "q4": {"d1": 1.0},  # not judged: ignored
}


def test_hand_computed_values() -> None:
    result = evaluate(QRELS, RUN, ["nDCG@10", "R@100", "R@1000", "RR@10", "RR", "AP", "P@2"])
    q1, q2 = result.per_query["q1"], result.per_query["q2"]
    # q1 ranking: d4 (0), d2 (1), d1 (2), d3 (0); relevant: d1, d2, d9
    dcg = 1 / log2(3) + 2 / log2(4)
    ideal = 2 / log2(2) + 1 / log2(3) + 1 / log2(4)
    assert q1["nDCG@10"] == pytest.approx(dcg / ideal, abs=1e-12)
    assert q1["R@100"] == pytest.approx(2 / 3)
    assert q1["AP"] == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert q1["RR@10"] == q1["RR"] == pytest.approx(1 / 2)
    assert q1["P@2"] == pytest.approx(1 / 2)
    # q2: a hit at rank 11 counts for RR and AP but not for RR@10 or nDCG@10
    assert q2["nDCG@10"] == 0.0
    assert q2["RR@10"] == 0.0
    assert q2["RR"] == pytest.approx(1 / 11)
    assert q2["AP"] == pytest.approx(1 / 11)
    assert q2["R@1000"] == 1.0
    assert result.aggregate["nDCG@10"] == pytest.approx(dcg / ideal / 2)
    assert result.aggregate["RR@10"] == pytest.approx(1 / 4)
    assert result.aggregate["AP"] == pytest.approx(((1 / 2 + 2 / 3) / 3 + 1 / 11) / 2)
    # q3 has judgements but no results: left out of the mean, as trec_eval does without -c
    assert set(result.per_query) == {"q1", "q2"}
    assert result.unanswered == ["q3"]


def test_identical_ids_count_when_asked() -> None:
    kept = evaluate(QRELS, RUN, ["RR@10"], ignore_identical_ids=False)
    assert kept.per_query["q1"]["RR@10"] == pytest.approx(1 / 3)


def test_default_measures_and_empty_run() -> None:
    result = evaluate(QRELS, {})
    assert list(result.aggregate) == ["nDCG@10", "R@100", "R@1000", "RR@10", "AP"]
    assert all(v == 0.0 for v in result.aggregate.values())
    assert result.unanswered == ["q1", "q2", "q3"]


def test_complete_counts_unanswered_queries_as_zero() -> None:
    default = evaluate(QRELS, RUN, ["RR@10"])
    complete = evaluate(QRELS, RUN, ["RR@10"], complete=True)
    assert complete.per_query["q3"]["RR@10"] == 0.0
    assert complete.aggregate["RR@10"] == pytest.approx(default.aggregate["RR@10"] * 2 / 3)


@pytest.mark.parametrize("complete", [False, True])
def test_the_note_under_the_table_names_the_convention_used(complete: bool) -> None:
    from io import StringIO

    from lsr.eval.outputs import print_metrics
    from rich.console import Console

    out = StringIO()
    print_metrics(evaluate(QRELS, RUN, ["RR@10"], complete=complete), "t", Console(file=out, width=200))
    note = out.getvalue().strip().splitlines()[-1]
    expected = "count as 0 in the mean (trec_eval -c)" if complete else "are left out of the mean (trec_eval's default)"
    assert note == f"1 judged queries got no results and {expected}"
