"""Fusion arithmetic on hand-made runs, and weight tuning choosing the better weights."""

from __future__ import annotations

import math

import pytest
from lsr.indexing.fusion import fuse, normalise, rrf, tune_weights, weight_grid, weighted_sum

from lsr.metrics import evaluate

A = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
B = {"q": {"b": 5.0, "d": 4.0}}


def test_rrf_values() -> None:
    fused = rrf([A, B])
    expected = {"a": 1 / 61, "b": 1 / 62 + 1 / 61, "c": 1 / 63, "d": 1 / 62}
    assert fused["q"] == pytest.approx(expected)
    weighted = rrf([A, B], weights=[2.0, 0.5], k=10)
    assert weighted["q"] == pytest.approx({"a": 2 / 11, "b": 2 / 12 + 0.5 / 11, "c": 2 / 13, "d": 0.5 / 12})


def test_rrf_ranks_ties_in_trec_eval_order() -> None:
    fused = rrf([{"q": {"x": 1.0, "y": 1.0}}])  # tie: trec_eval ranks doc ids descending, so y is first
    assert fused["q"] == pytest.approx({"y": 1 / 61, "x": 1 / 62})


def test_min_max_and_z_score() -> None:
    assert normalise(A, "minmax")["q"] == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0})
    assert normalise({"q": {"x": 4.0, "y": 4.0}}, "minmax")["q"] == {"x": 1.0, "y": 1.0}
    z = math.sqrt(1.5)  # (3 - 2) / std(3, 2, 1) with the population std sqrt(2/3)
    assert normalise(A, "zscore")["q"] == pytest.approx({"a": z, "b": 0.0, "c": -z})
    assert normalise({"q": {"x": 4.0}}, "zscore")["q"] == {"x": 0.0}
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalise(A, "rank")


def test_weighted_sums_give_missing_documents_the_run_minimum() -> None:
    minmax = fuse([A, B], "minmax", [0.5, 0.5])
    assert minmax["q"] == pytest.approx({"a": 0.5, "b": 0.75, "c": 0.0, "d": 0.0})
    z = math.sqrt(1.5)
    zscore = fuse([A, B], "zscore")
    assert zscore["q"] == pytest.approx({"a": z - 1, "b": 1.0, "c": -z - 1, "d": -z - 1})
    assert weighted_sum([normalise(A, "minmax"), {}], [1, 1])["q"] == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0})


def test_fuse_keeps_the_top_depth_and_checks_its_arguments() -> None:
    assert set(fuse([A, B], "rrf", depth=2)["q"]) == {"b", "a"}
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse([A, B], "max")
    with pytest.raises(ValueError, match="1 weights for 2 runs"):
        fuse([A, B], "rrf", [1.0])


def test_weight_grid() -> None:
    assert weight_grid(2, 0.5) == [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)]
    three = weight_grid(3, 0.1)
    assert len(three) == 66 and all(abs(sum(w) - 1) < 1e-9 and min(w) >= 0 for w in three)
    with pytest.raises(ValueError, match="does not divide"):
        weight_grid(2, 0.3)


def test_tuning_picks_the_weights_that_score_better() -> None:
    # relevant ids sort first, so a fused tie ranks them last (trec_eval breaks ties by doc id, descending)
    qrels = {"q1": {"a1": 1}, "q2": {"a2": 1}}
    right = {"q1": {"a1": 2.0, "z1": 1.0}, "q2": {"a2": 0.9, "z2": 0.8}}
    wrong = {"q1": {"z1": 9.0, "a1": 1.0}, "q2": {"z2": 9.0, "a2": 8.0}}

    def ndcg(run: dict) -> float:
        return evaluate(qrels, run, ["nDCG@10"]).aggregate["nDCG@10"]

    weights, value = tune_weights([wrong, right], ndcg, "minmax", step=0.25)
    assert value == 1.0 and weights[1] > weights[0]
    assert ndcg(fuse([wrong, right], "minmax", weights)) == 1.0
    assert ndcg(fuse([wrong, right], "minmax", [0.75, 0.25])) < 1.0
    flat, _ = tune_weights([right, right], ndcg, "zscore", step=0.25)
    assert flat == (0.5, 0.5)  # no gain anywhere: the most even weights
