"""The ``lsr`` command as users run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lsr.cli import app
from lsr.runs import write_run

LSR = [str(Path(sys.executable).with_name("lsr"))]
COMMANDS = [
    [],
    ["data"],
    ["data", "download"],
    ["data", "convert-smart"],
    ["data", "stats"],
    ["eval"],
    ["eval", "bm25"],
    ["eval", "score"],
    ["eval", "run"],
    ["eval", "compare"],
    ["demo"],
    ["encode"],
    ["encode", "idf"],
    ["index"],
    ["search"],
    ["bench"],
    ["bench", "encode"],
    ["bench", "idf-query"],
    ["bench", "replies"],
    ["bench", "search"],
    ["bench", "engines"],
    ["bench", "engines-table"],
    ["bench", "synthetic"],
    ["bench", "synthetic-stats"],
    ["bench", "serve-open"],
    ["export"],
    ["export", "lucene"],
    ["recommend"],
    ["recommend", "train"],
    ["recommend", "user"],
]


def test_console_script_help() -> None:
    result = subprocess.run(LSR + ["--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    for group in ("data", "eval", "demo", "encode", "index", "search", "bench"):
        assert group in result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "lsr")
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, command + ["--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_user_errors_are_one_line_with_status_2(tmp_path: Path) -> None:
    result = subprocess.run(
        LSR + ["eval", "bm25", "--dataset", str(tmp_path / "nope"), "--output-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "error:" in result.stderr and "no such dataset" in result.stderr and "Traceback" not in result.stderr


def test_stats_and_score(beir_dir: Path, tmp_path: Path) -> None:
    stats = CliRunner().invoke(app, ["data", "stats", str(beir_dir)])
    assert stats.exit_code == 0, stats.output
    assert "5 documents, 3 queries" in stats.output
    write_run({"q1": {"d1": 2.0, "d2": 1.0}, "q3": {"d2": 1.0, "d4": 0.5}}, tmp_path / "run.trec")
    score = CliRunner().invoke(
        app,
        [
            "eval",
            "score",
            "--run",
            str(tmp_path / "run.trec"),
            "--dataset",
            str(beir_dir),
            "--measure",
            "RR@10",
            "--measure",
            "P@1",
        ],
    )
    assert score.exit_code == 0, score.output
    assert "0.7500" in score.output  # RR@10: q1 1.0, q3 0.5
    assert "1 judged queries got no results" in score.output

    # with --output-dir, scored runs (made elsewhere) become evaluation folders that `lsr eval compare` pairs
    write_run({"q1": {"d1": 1.0}}, tmp_path / "other.trec")
    for name in ("run", "other"):
        args = ["eval", "score", "--run", str(tmp_path / f"{name}.trec"), "--dataset", str(beir_dir)]
        written = CliRunner().invoke(app, [*args, "--complete", "--output-dir", str(tmp_path / f"eval-{name}")])
        assert written.exit_code == 0, written.output
    metrics = json.loads((tmp_path / "eval-run" / "metrics.json").read_text())
    assert metrics["RR@10"] == pytest.approx(0.5)  # -c: three judged queries, q2 unanswered counts 0
    compared = CliRunner().invoke(
        app,
        ["eval", "compare", str(tmp_path / "eval-run"), str(tmp_path / "eval-other"), "--measure", "RR@10"]
        + ["--name", "base", "--name", "other"],
        terminal_width=200,
    )
    assert compared.exit_code == 0, compared.output
    assert "0.5000" in compared.output and "0.3333" in compared.output and "-0.1667" in compared.output


def test_convert_smart_command(tmp_path: Path) -> None:
    src = tmp_path / "cisi"
    src.mkdir()
    (src / "CISI.ALL").write_text(".I 1\n.T\nDewey\n.W\nclassification\n")
    (src / "CISI.QRY").write_text(".I 1\n.W\nclassification?\n")
    (src / "CISI.REL").write_text("1 1 0 0.0\n")
    result = CliRunner().invoke(app, ["data", "convert-smart", str(src), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "corpus.jsonl").read_text())["title"] == "Dewey"
    bad = CliRunner().invoke(app, ["data", "convert-smart", str(src), str(tmp_path / "o2"), "--collection", "x"])
    assert bad.exit_code == 2 and "--collection" in bad.output
