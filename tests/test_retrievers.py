"""One retriever contract: a retriever added by one class and one registration works everywhere retrievers do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import retriever_support  # noqa: F401 - registers the 'overlap' retriever
from conftest import DOCS
from lsr.indexing.retrieval import Corpus, DocFilter, Hybrid, RetrieverOptions, open_retriever, retriever_names
from tiny_models import tiny_bert
from typer.testing import CliRunner

from lsr.cli import app
from lsr.errors import LsrError


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("bert") / "model")


def test_a_registered_retriever_runs_through_lsr_eval_run_and_a_hybrid(beir_dir: Path, model: Path, tmp_path: Path):
    assert "overlap" in retriever_names()
    base = ["eval", "run", "--dataset", str(beir_dir), "--cache-dir", str(tmp_path / "cache")]
    result = CliRunner().invoke(app, [*base, "--output-dir", str(tmp_path / "alone"), "--retriever", "overlap"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "alone" / "metrics.json").read_text())
    assert metrics["nDCG@10"] > 0.5  # the judged documents share words with their queries
    hybrid = ["--retriever", "hybrid", "--legs", "overlap,sparse", "--model", str(model), "--k", "3"]
    result = CliRunner().invoke(app, [*base, "--output-dir", str(tmp_path / "hybrid"), *hybrid])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "hybrid" / "config.json").read_text())
    assert list(config["legs"]) == ["overlap", "sparse"] and config["weights"] == [1.0, 1.0]


def test_hybrid_fuses_any_number_of_retrievers_and_filters_each(beir_dir: Path, model: Path, tmp_path: Path):
    from lsr.data.beir import BeirDataset

    corpus = Corpus(BeirDataset(beir_dir), tmp_path / "cache")
    sparse = open_retriever("sparse", corpus, RetrieverOptions(model=str(model), device="cpu"))
    overlap = open_retriever("overlap", corpus)
    queries = {"q1": "inverted index postings", "q3": "user item embeddings"}
    for allow in (DocFilter(allow=frozenset({"d4"})), DocFilter(deny=frozenset({"d1", "d2"}))):
        for retriever in (sparse, overlap):
            run = retriever.retrieve(queries, 5, allow)
            assert all(allow.admits(doc) for hits in run.values() for doc in hits), retriever.name
    only = sparse.retrieve(queries, 5, DocFilter(allow=frozenset({"d4"})))
    assert set(only["q3"]) <= {"d4"}
    fused = Hybrid([sparse, overlap], "rrf").retrieve(queries, 3)
    assert all(0 < len(hits) <= 3 for hits in fused.values())
    assert set(fused["q1"]) <= {d["_id"] for d in DOCS}
    with pytest.raises(LsrError, match="two or more different retrievers"):
        Hybrid([sparse, sparse])
    with pytest.raises(LsrError, match="unknown retriever 'bm52'"):
        open_retriever("bm52", corpus)


def test_an_installed_package_offers_a_retriever_by_entry_point(monkeypatch: pytest.MonkeyPatch, beir_dir: Path):
    """Named in the lsr.retrievers group, the class is loaded and registered when its name is asked for."""
    import importlib.metadata

    from lsr.indexing.retrieval import ENTRY_POINTS, check_names

    from lsr.data.beir import BeirDataset

    offered = [importlib.metadata.EntryPoint("words", "retriever_support:Words", ENTRY_POINTS)]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: offered if group == ENTRY_POINTS else [])
    assert "words" in retriever_names()
    check_names(["words", "overlap"])
    words = open_retriever("words", Corpus(BeirDataset(beir_dir), beir_dir))
    assert type(words) is retriever_support.Words
    assert list(words.retrieve({"q3": "user item embeddings"}, 2)["q3"]) == ["d4"]
