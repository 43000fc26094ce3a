"""One retriever contract: a retriever added by one class and one registration works everywhere retrievers do."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import DOCS
from lsr.indexing.retrieval import (
    Corpus,
    DocFilter,
    Hits,
    Hybrid,
    Retriever,
    RetrieverOptions,
    open_retriever,
    register,
    retriever_names,
)
from tiny_models import tiny_bert
from typer.testing import CliRunner

from lsr.cli import app
from lsr.errors import LsrError


class WordOverlap(Retriever):
    """A small retriever: a document scores the number of query words it contains."""

    name = "overlap"

    def __init__(self, documents: dict[str, set[str]]) -> None:
        self.documents = documents

    @classmethod
    def from_corpus(cls, corpus: Corpus, options: RetrieverOptions) -> WordOverlap:
        return cls({doc.id: set(f"{doc.title} {doc.text}".lower().split()) for doc in corpus.dataset.corpus()})

    def encode(self, texts: Sequence[str]) -> list[set[str]]:
        return [set(text.lower().split()) for text in texts]

    def search(self, queries: list[set[str]], k: int, allow: DocFilter | None = None) -> list[Hits]:
        found = []
        admitted = {doc: terms for doc, terms in self.documents.items() if allow is None or allow.admits(doc)}
        for words in queries:
            scored = sorted(((len(words & terms), doc) for doc, terms in admitted.items()), key=lambda p: (-p[0], p[1]))
            top = [(doc, score) for score, doc in scored if score > 0][:k]
            found.append(Hits([d for d, _ in top], np.asarray([s for _, s in top], dtype=np.float32)))
        return found


register(WordOverlap)


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
