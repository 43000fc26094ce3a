"""``lsr demo``, the main job: every retriever and the hybrid on the embedded corpus, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_models import tiny_bert
from typer.testing import CliRunner

from lsr.cli import app


def test_demo_runs_every_retriever_and_shows_hits(tmp_path: Path) -> None:
    pytest.importorskip("pyserini")
    model = tiny_bert(tmp_path / "model")
    result = CliRunner().invoke(app, ["demo", "--output-dir", str(tmp_path / "demo"), "--model", str(model)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "q1: how do search engines find documents" in result.output
    for name in ("bm25", "dense", "sparse", "hybrid"):
        assert name in result.output
        assert (tmp_path / "demo" / name / "run.trec").is_file()
    bm25 = json.loads((tmp_path / "demo" / "bm25" / "metrics.json").read_text())
    assert bm25["nDCG@10"] == pytest.approx(0.8585, abs=1e-4)  # eval/RESULTS.md, demo row
    hybrid = json.loads((tmp_path / "demo" / "hybrid" / "config.json").read_text())
    assert hybrid["fusion"] == "rrf" and set(hybrid["legs"]) == {"bm25", "dense", "sparse"}
