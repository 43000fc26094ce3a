"""``lsr train adapt`` ends with before/after figures on held-out pseudo-queries and on named qrels splits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from lsr.eval.compare import compare, load_run_scores
from lsr.eval.demo import demo_dataset
from tiny_models import tiny_bert
from typer.testing import CliRunner

from lsr.cli import app
from lsr.data.beir import BeirDataset
from lsr.train.data import EXAMPLES_FILE
from lsr.train.examples import read_examples
from lsr.train.report import MEASURES, REPORT_FILE
from lsr.train.student import load_student

HELD_OUT = 5


@pytest.fixture(scope="module")
def inference_free(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny inference-free model (random BERT, the demo corpus's IDF) to adapt from."""
    root = tmp_path_factory.mktemp("if")
    folder = root / "model"
    load_student(str(tiny_bert(root / "bert")), "inference-free", [demo_dataset()], device="cpu").save_pretrained(
        folder
    )
    return folder


def _adapt(model: Path, out: Path, cache: Path, *extra: str) -> object:
    args = ["train", "adapt", "--corpus", str(demo_dataset()), "--model", str(model), "--output", str(out)]
    args += ["--teachers", "bm25", "--pseudo-queries", "2", "--pseudo-holdout", str(HELD_OUT)]
    args += ["--steps", "2", "--batch-size", "4", "--cache-dir", str(cache), "--device", "cpu", *extra]
    return CliRunner().invoke(app, args, terminal_width=200)


def test_adapt_reports_before_and_after(inference_free: Path, tmp_path: Path) -> None:
    out = tmp_path / "adapted"
    result = _adapt(inference_free, out, tmp_path / "cache", "--eval-split", "test", "--pseudo-max-share", "0.6")
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "before -> after" in result.output and "nDCG@10" in result.output
    assert json.loads((out / "data" / "prepare.json").read_text())["pseudo_max_share"] == 0.6

    report = json.loads((out / REPORT_FILE).read_text())
    assert report["models"] == {"before": str(inference_free), "after": str(out / "model")}
    by_split = {t["split"]: t for t in report["targets"]}
    assert by_split["pseudo"]["queries"] == HELD_OUT
    assert by_split["test"]["queries"] == len(BeirDataset(demo_dataset()).qrels("test"))
    for target in by_split.values():
        assert set(target["before"]) == set(target["after"]) == set(target["p_value"]) == set(MEASURES)

    # the held-out pseudo-queries are judged by their source document and never trained on
    held = BeirDataset(out / "data").qrels("pseudo")
    assert all(list(docs) == [qid.split("#")[0]] for qid, docs in held.items())
    assert not set(held) & {e.qid for e in read_examples(out / "data" / EXAMPLES_FILE)}

    # the evaluation folders are ordinary ones: `lsr eval compare` pairs them and finds the report's p-value
    before = load_run_scores(out / "report" / "test-before")
    after = load_run_scores(out / "report" / "test-after")
    assert before.aggregate == pytest.approx(by_split["test"]["before"])
    paired = compare([before, after], ["nDCG@10"])[after.name]["nDCG@10"]
    assert paired.p_value == pytest.approx(by_split["test"]["p_value"]["nDCG@10"], nan_ok=True)


def test_adapt_cut_short_by_max_minutes_resumes_and_only_then_reports(inference_free: Path, tmp_path: Path) -> None:
    """A GPU job with a time limit stops with a checkpoint and no report; the next, with --resume, finishes the
    training where it stopped and reports, with the documents' mean non-zeros before and after."""
    out = tmp_path / "adapted"
    first = _adapt(inference_free, out, tmp_path / "cache", "--max-minutes", "0")
    assert first.exit_code == 0, first.output + repr(first.exception)
    assert "resume with --resume" in first.output
    assert not (out / REPORT_FILE).exists() and not (out / "model").exists()
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-1"]

    second = _adapt(inference_free, out, tmp_path / "cache", "--resume")
    assert second.exit_code == 0, second.output + repr(second.exception)
    assert "resumed from" in second.output and "step 1" in second.output
    report = json.loads((out / REPORT_FILE).read_text())
    assert set(report["doc_nnz"]) == {"before", "after"} and all(v > 0 for v in report["doc_nnz"].values())
    assert f"{report['doc_nnz']['after']:.1f} after" in second.output
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


def test_report_only_reports_on_the_latest_checkpoint_without_training(inference_free: Path, tmp_path: Path) -> None:
    """A run stopped by --max-minutes with no time left to finish: --report-only evaluates its checkpoint as it is
    (the log gains no step) and refuses a folder with no checkpoint."""
    out = tmp_path / "adapted"
    none = _adapt(inference_free, out, tmp_path / "cache", "--report-only")
    assert none.exit_code != 0 and "no checkpoint to report on" in none.output + str(none.exception)

    assert _adapt(inference_free, out, tmp_path / "cache", "--max-minutes", "0").exit_code == 0
    result = _adapt(inference_free, out, tmp_path / "cache", "--report-only", "--eval-split", "test")
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "reporting on the checkpoint at step 1" in result.output and "before -> after" in result.output
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["models"]["after"] == str(out / "model") and (out / "model").is_dir()
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [1]

    moved = tmp_path / "moved"  # a checkpoint without the data it trained on: nothing is prepared anew
    shutil.copytree(out, moved, ignore=lambda folder, names: ["data"] if Path(folder) == out else [])
    lost = _adapt(inference_free, moved, tmp_path / "cache", "--report-only")
    assert lost.exit_code != 0 and "give the --data the run trained on" in lost.output + str(lost.exception)
    assert not (moved / "data").exists()


def test_unknown_eval_split_fails_before_any_work(inference_free: Path, tmp_path: Path) -> None:
    result = _adapt(inference_free, tmp_path / "adapted", tmp_path / "cache", "--eval-split", "nope")
    assert result.exit_code != 0
    assert "no split 'nope'" in result.output + str(result.exception)
    assert not (tmp_path / "adapted" / "data").exists()
