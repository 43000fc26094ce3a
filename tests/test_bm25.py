"""BM25 through pyserini (a real JVM and Lucene) on corpora built in the test."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import DOCS, make_beir
from lsr.eval.bm25 import run_bm25
from lsr.indexing.lucene import bm25

from lsr.data.beir import BeirDataset
from lsr.errors import DataFormatError, DataWarning
from lsr.runs import read_run

pytest.importorskip("pyserini")


@pytest.mark.parametrize("multifield", [False, True])
def test_bm25_eval_writes_standard_outputs(beir_dir: Path, tmp_path: Path, multifield: bool) -> None:
    out = tmp_path / "out"
    run, evaluation = run_bm25(beir_dir, "test", out, multifield=multifield)
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["nDCG@10", "R@100", "R@1000", "RR@10", "AP"]
    assert metrics == evaluation.aggregate
    assert read_run(out / "run.trec") == run
    assert next(iter(sorted(run["q1"].items(), key=lambda x: -x[1])))[0] == "d1"
    assert "q2" not in run["q2"]  # the document whose id equals the query id is dropped (BEIR)
    assert metrics["RR@10"] == 1.0 and metrics["R@100"] == 1.0
    per_query = (out / "per_query.tsv").read_text().splitlines()
    assert "nDCG@10\tq1\t1.000000" in per_query and per_query[-1].startswith("AP\tall\t")
    config = json.loads((out / "config.json").read_text())
    assert config["convention"] == ("multifield" if multifield else "flat") and config["k1"] == 0.9


@pytest.mark.parametrize("convention", ["flat", "multifield"])
def test_title_words_are_searched(beir_dir: Path, tmp_path: Path, convention: str) -> None:
    index = bm25.build_index(BeirDataset(beir_dir), tmp_path / "idx", convention)
    # "recommendation" appears only in d4's title
    run = bm25.search(index, {"q": "recommendation"}, k=10, convention=convention)
    assert list(run["q"]) == ["d4"]


def test_index_is_reused_only_for_the_same_corpus(beir_dir: Path, tmp_path: Path) -> None:
    data = BeirDataset(beir_dir)
    index = bm25.build_index(data, tmp_path / "idx")
    meta = index / bm25.META_FILE
    stamp = meta.stat().st_mtime_ns
    bm25.build_index(data, tmp_path / "idx")
    assert meta.stat().st_mtime_ns == stamp
    make_beir(beir_dir, docs=DOCS[:2])  # the corpus changed: rebuild
    bm25.build_index(BeirDataset(beir_dir), tmp_path / "idx")
    assert json.loads(meta.read_text())["documents"] == 2


def test_bad_corpus_leaves_no_index(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "bad")
    with open(folder / "corpus.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"_id": "d9", "title": "no text"}\n')
    with pytest.raises(DataFormatError, match=r"corpus\.jsonl:6: missing field 'text'"):
        bm25.build_index(BeirDataset(folder), tmp_path / "idx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]


def test_scifact_reproduces_anserini(shared: Path, tmp_path: Path) -> None:
    """Anserini's published BEIR regressions: SciFact test nDCG@10 0.679 (flat) and 0.665 (multifield)."""
    scifact = shared / "data" / "beir" / "scifact"
    for multifield, published in ((False, 0.679), (True, 0.665)):
        _, evaluation = run_bm25(scifact, "test", tmp_path / str(multifield), multifield=multifield)
        assert evaluation.aggregate["nDCG@10"] == pytest.approx(published, abs=0.003)
        assert len(evaluation.per_query) == 300


def test_empty_documents_are_skipped_with_a_warning(tmp_path: Path) -> None:
    docs = DOCS + [
        {"_id": "blank", "title": "", "text": "  "},
        {"_id": "title-only", "title": "recommendation", "text": ""},
    ]
    data = BeirDataset(make_beir(tmp_path / "d", docs=docs))
    with pytest.warns(DataWarning, match="1 document"):
        bm25.build_index(data, tmp_path / "flat", "flat")
    with pytest.warns(DataWarning, match="2 document"):
        bm25.build_index(data, tmp_path / "mf", "multifield")
    assert json.loads((tmp_path / "mf" / bm25.META_FILE).read_text())["empty_documents"] == 2


def test_an_index_without_longest_id_is_rebuilt_by_the_cache_and_refused_by_the_server(
    beir_dir: Path, tmp_path: Path
) -> None:
    """Indexes of an older lsr lack the longest id a server bounds its replies by: serving one says to rebuild,
    and building over it rebuilds."""
    from lsr.indexing.lucene.retriever import BM25Retriever
    from lsr.indexing.retrieval import RetrieverOptions

    from lsr.errors import LsrError

    index = bm25.build_index(BeirDataset(beir_dir), tmp_path / "idx")
    meta = index / bm25.META_FILE
    old = json.loads(meta.read_text())
    del old["longest_id"]
    meta.write_text(json.dumps(old))
    with pytest.raises(LsrError, match="older lsr .*rebuild"):
        _ = BM25Retriever.from_index(index, RetrieverOptions()).longest_id
    bm25.build_index(BeirDataset(beir_dir), index)
    assert BM25Retriever.from_index(index, RetrieverOptions()).longest_id == max(len(d["_id"].encode()) for d in DOCS)


def test_the_index_records_its_ids_fingerprint_and_a_corrupt_one_is_refused(tmp_path: Path) -> None:
    """Every document id (the empty documents Lucene skips too, as the other retrievers index them) is in the
    fingerprint a hybrid compares; a meta file whose fingerprint is not one is refused when opened, with its path."""
    from lsr.indexing.fingerprint import ids_fingerprint
    from lsr.indexing.lucene.retriever import BM25Retriever
    from lsr.indexing.retrieval import RetrieverOptions

    from lsr.errors import LsrError

    docs = [*DOCS, {"_id": "blank", "title": "", "text": "  "}]
    with pytest.warns(DataWarning, match="1 document"):
        index = bm25.build_index(BeirDataset(make_beir(tmp_path / "d", docs=docs)), tmp_path / "idx")
    opened = BM25Retriever.from_index(index, RetrieverOptions())
    assert opened.id_fingerprint == ids_fingerprint([d["_id"] for d in docs])
    meta = index / bm25.META_FILE
    for corrupt in ("garbage", 7, "12:xyz"):
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "ids": corrupt}))
        with pytest.raises(LsrError, match=re.escape(str(meta))):
            BM25Retriever.from_index(index, RetrieverOptions())
