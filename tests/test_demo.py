"""``lsr demo``, the main job: every retriever and the hybrid on the embedded corpus, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lsr.eval.demo import demo_dataset
from tiny_models import tiny_bert
from typer.testing import CliRunner

from lsr.cli import app
from lsr.defaults import DEFAULT_SPARSE
from lsr.models import SpladeEncoder


def test_demo_runs_every_retriever_and_shows_hits(tmp_path: Path, own_cache: Path) -> None:
    """Also: the demo's encodings are in the one shared cache ($LSR_CACHE here), where `lsr cache ls` lists them and
    `lsr eval run` over the demo data finds them instead of encoding again."""
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
    assert not (tmp_path / "demo" / "cache").exists() and str(own_cache) in result.output
    listing = CliRunner().invoke(app, ["cache", "ls"]).output
    assert "vectors of model over" in listing, listing

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("lsr eval run encoded the demo corpus although the demo had")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SpladeEncoder, "encode_document", refuse)  # queries go through encode_query
        again = CliRunner().invoke(app, ["eval", "run", "--dataset", str(demo_dataset()), "--retriever", "sparse",
                                         "--model", str(model), "--output-dir", str(tmp_path / "again")])  # fmt: skip
    assert again.exit_code == 0, again.output + repr(again.exception)
    assert "from the cache" in again.output


@pytest.mark.skipif(not DEFAULT_SPARSE.is_dir(), reason="the shipped sparse model is not in this checkout")
def test_shipped_sparse_model_is_the_default_and_beats_bm25_on_the_demo(tmp_path: Path) -> None:
    pytest.importorskip("pyserini")
    from safetensors import safe_open

    files = [f for f in DEFAULT_SPARSE.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) < 50e6, "the shipped model must stay under 50 MB"
    with safe_open(DEFAULT_SPARSE / "document_0_Transformer" / "model.safetensors", "pt") as weights:
        assert {str(weights.get_slice(k).get_dtype()) for k in weights.keys()} <= {"F16", "I64"}
    assert "nDCG@10" in (DEFAULT_SPARSE / "README.md").read_text(), "the model card says what it scores"
    result = CliRunner().invoke(app, ["demo", "--output-dir", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    sparse = json.loads((tmp_path / "demo" / "sparse" / "config.json").read_text())
    assert sparse["model"] == str(DEFAULT_SPARSE)
    scores = {name: json.loads((tmp_path / "demo" / name / "metrics.json").read_text()) for name in ("bm25", "sparse")}
    assert scores["sparse"]["nDCG@10"] > scores["bm25"]["nDCG@10"]
