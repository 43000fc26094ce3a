"""Teacher weights chosen on a labelled split (`lsr train weights`): the fusion is prepare's, the best comes first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lsr.cli import app
from lsr.runs import write_run
from lsr.train.weights import fused, search, weightings

QRELS = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}}
# teacher one ranks q1's and q2's documents first, teacher two q3's; only a mixture with teacher two at a quarter
# of teacher one's weight ranks all three first (worked out by hand in the tests' comments)
ONE = {"q1": {"a": 9.0, "x": 5.0, "c": 1.0}, "q2": {"b": 8.0, "y": 2.0}, "q3": {"x": 10.0, "c": 9.0, "y": 0.0}}
TWO = {"q1": {"x": 0.9, "a": 0.8}, "q2": {"y": 0.9, "b": 0.85, "c": 0.1}, "q3": {"c": 1.0, "y": 0.5, "x": 0.0}}


def test_grid_fixes_the_first_weight_and_never_silences_all_others() -> None:
    assert weightings(2, (0.0, 1.0)) == [(1.0, 1.0)]
    assert weightings(3, (0.0, 2.0)) == [(1.0, 0.0, 2.0), (1.0, 2.0, 0.0), (1.0, 2.0, 2.0)]


def test_fusion_pools_each_teachers_top_and_normalises_per_query() -> None:
    assert set(fused([ONE, TWO], (1.0, 1.0), ["q3"], pool=1)["q3"]) == {"x", "c"}
    assert set(fused([ONE, TWO], (1.0, 1.0), ["q3"], pool=2)["q3"]) == {"x", "c", "y"}
    alone = fused([ONE], (1.0,), ["q3"], pool=3)["q3"]
    assert max(alone, key=alone.get) == "x"
    # normalised: one x 1, c 0.9, y 0; two c 1, y 0.5, x 0; weights 1 and 0.25: c 0.92 > x 0.8 > y 0.1
    mixed = fused([ONE, TWO], (1.0, 0.25), ["q3"], pool=3)["q3"]
    assert mixed == pytest.approx({"x": 0.8, "c": 0.92, "y": 0.1})


def test_the_mixture_that_ranks_every_judged_document_first_wins() -> None:
    results = search([ONE, TWO], QRELS, grid=(0.25, 1.0, 4.0), pool=3, measures=("RR@10",))
    # at 1 and 1, q1's x (0.75) passes a (0.5): only 1 and 0.25 ranks every judged document first
    assert results[0].weights == (1.0, 0.25) and results[0].metrics["RR@10"] == pytest.approx(1.0)
    assert [r.metrics["RR@10"] for r in results] == sorted((r.metrics["RR@10"] for r in results), reverse=True)
    assert results[-1].metrics["RR@10"] < 1.0


def test_cli_prints_and_writes_every_weighting(tmp_path: Path) -> None:
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    docs = sorted({d for run in (ONE, TWO) for hits in run.values() for d in hits})
    (beir / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "text": d}) + "\n" for d in docs))
    (beir / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": q}) + "\n" for q in QRELS))
    lines = ["query-id\tcorpus-id\tscore\n"] + [f"{q}\t{d}\t1\n" for q, hits in QRELS.items() for d in hits]
    (beir / "qrels" / "dev.tsv").write_text("".join(lines))
    write_run(ONE, tmp_path / "one.trec")
    write_run(TWO, tmp_path / "two.trec")
    out = tmp_path / "weights.json"
    args = ["train", "weights", "--dataset", str(beir), "--split", "dev", "--run", str(tmp_path / "one.trec")]
    args += ["--run", str(tmp_path / "two.trec"), "--grid", "0.25,1,4", "--pool", "3", "--output", str(out)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "one.trec alone" in result.output
    saved = json.loads(out.read_text())
    assert len(saved["weightings"]) == 3 and saved["weightings"][0]["weights"] == [1.0, 0.25]
    bad = CliRunner().invoke(app, [*args[:-6], "--grid", "1,x"])
    assert bad.exit_code != 0 and "--grid" in str(bad.exception or bad.output)
