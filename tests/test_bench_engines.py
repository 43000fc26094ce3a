"""The field's engines of the speed benchmark on a small real index: exact engines return brute force's top-k
scores, approximate ones report recall@k and reach 0.99 at their safest setting (BMP 0.97), at k = 10 and 100.

SciFact's first 1,000 documents and 50 test queries, encoded by splade-tiny and quantised as Anserini does
(``round(100 w)``). Documents are cut at 64 tokens so the encoding takes seconds on two shared cores: the
question here is whether each engine answers the dot product over the same integer impacts, which does not
depend on document length. An engine whose package is missing is skipped with the package named.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from lsr.eval.bench.engines import bmp, kannolo, pisa, seismic
from lsr.eval.bench.engines.base import DEEP_CUTS, Answer, Engine, Vectors
from lsr.eval.bench.engines.support import installed
from lsr.indexing.lucene.impact import quantise

from lsr.data.beir import read_corpus, read_queries
from lsr.data.textio import TextSource
from lsr.encode.corpus import document_text

DOCUMENTS, QUERIES, MAX_LENGTH = 1000, 50, 64


@pytest.fixture(scope="module")
def scifact() -> tuple[Vectors, Vectors, np.ndarray]:
    """Documents, queries and their brute-force scores (float64 dot products of the integer impacts)."""
    from conftest import SHARED

    root = SHARED / "data" / "beir" / "scifact"
    model = SHARED / "models" / "splade-tiny"
    if not root.is_dir() or not model.is_dir():
        pytest.skip(f"SciFact or splade-tiny not found under {SHARED} (set LSR_SHARED)")
    from lsr.models import load_encoder

    encoder = load_encoder(model, device="cpu", max_length=MAX_LENGTH)
    docs = list(itertools.islice(read_corpus(TextSource(root / "corpus.jsonl.gz")), DOCUMENTS))
    test = {line.split("\t")[0] for line in (root / "qrels" / "test.tsv").read_text().splitlines()[1:]}
    texts = read_queries(TextSource(root / "queries.jsonl"))
    chosen = [q for q in texts if q in test][:QUERIES]
    d = Vectors([doc.id for doc in docs], quantise(encoder.encode_document([document_text(x) for x in docs])))
    q = Vectors(chosen, quantise(encoder.encode_query([texts[i] for i in chosen])))
    return d, q, (q.matrix.astype(np.float64) @ d.matrix.astype(np.float64).T).toarray()


def _built(engine: Engine, docs: Vectors, tmp_path: Path) -> Engine:
    if not installed(engine.package):  # type: ignore[attr-defined]
        pytest.skip(f"{engine.system} needs the package {engine.package!r} (lsr[bench])")  # type: ignore[attr-defined]
    built = engine.build(docs, tmp_path, threads=2)
    assert built.seconds > 0 and built.index_bytes > 0
    return engine


def _answers(engine: Engine, queries: Vectors, k: int) -> list[Answer]:
    return [engine.search(*queries.row(i), k) for i in range(len(queries))]


def recall_at(answers: list[Answer], scores: np.ndarray, k: int) -> float:
    """Share of brute force's top k (matching documents only) found, a document tied with the k-th score counting
    as found; a query matching no document is left out."""
    found = []
    for got, row in zip(answers, scores, strict=True):
        best = np.sort(row[row > 0])[::-1][:k]
        if len(best):
            hits = np.count_nonzero(row[np.unique(got.rows[:k])] >= best[-1])
            found.append(min(hits, len(best)) / len(best))
    return float(np.mean(found))


def matching(scores: np.ndarray) -> np.ndarray:
    """How many documents each query matches (a positive brute-force score): an engine cannot return more."""
    return np.count_nonzero(scores > 0, axis=1)


def test_exact_engines_return_brute_force_scores(scifact, tmp_path: Path) -> None:
    """Every setting of every exact engine, k = 10 and 1,000, one query at a time and in a parallel batch."""
    docs, queries, scores = scifact
    engine = _built(pisa.Pisa(), docs, tmp_path)
    for setting, k in itertools.product(engine.grid(10), (10, 1000)):
        engine.configure(**setting)
        batch = engine.search_batch(queries, k, threads=2)
        for number, (got, together) in enumerate(zip(_answers(engine, queries, k), batch, strict=True)):
            row = scores[number]
            expected = np.sort(row[row > 0])[::-1][:k].astype(np.float32)
            assert got.rows.dtype == np.int64 and got.scores.dtype == np.float32
            assert np.array_equal(got.scores, expected), f"{engine.label} k={k} query {number}: not brute force's"
            assert np.array_equal(row[got.rows].astype(np.float32), got.scores), "a document's score is not its own"
            assert np.array_equal(together.scores, got.scores)


APPROXIMATE = [
    (bmp.Bmp(), [{}, {"alpha": 0.8}, {"alpha": 0.6, "beta": 0.6}]),
    (
        seismic.Seismic(),
        [
            {"query_cut": 50, "heap_factor": 1.0},
            {},
            {"query_cut": 5, "heap_factor": 0.7},
            {"query_cut": 5, "sorted": True},
        ],
    ),
    (seismic.Seismic(knn=seismic.KNN), [{"query_cut": 50, "heap_factor": 1.0, "n_knn": seismic.KNN}]),
    (kannolo.Kannolo(), [{"ef_search": 2000}, {"ef_search": 40}]),
]
SAFEST = {"bmp": 0.97, "seismic": 0.99, "kannolo": 0.99}
"""Recall@k the safest setting must reach (k = 10 and 100). BMP stores one-byte impacts and rescales each query to
integer weights of at most 32, so even alpha = beta = 1 ranks by those coarser scores: 0.984 here at both k
(SciFact's impacts reach 271), below 0.99 by quantisation alone, not by pruning."""


@pytest.mark.parametrize(("engine", "settings"), APPROXIMATE, ids=[e.label for e, _ in APPROXIMATE])
def test_approximate_engines_report_recall(scifact, tmp_path: Path, engine: Engine, settings: list[dict]) -> None:
    """Recall@10 in [0, 1] at every setting tried, and :data:`SAFEST` or more at the safest (the first)."""
    docs, queries, scores = scifact
    _built(engine, docs, tmp_path)
    recalls = []
    for setting in settings:
        engine.configure(**setting)
        answers = _answers(engine, queries, 10)
        assert all(len(a.rows) <= 10 and len(a.rows) == len(set(a.rows.tolist())) for a in answers)
        recalls.append(recall_at(answers, scores, 10))
    engine.close()
    assert all(0.0 <= r <= 1.0 for r in recalls)
    assert recalls[0] >= SAFEST[engine.system], f"{engine.system} at its safest setting: recall@10 {recalls}"


DEEP_K = 100
"""k well beyond 10 on the 1,000-document fixture (k = 1,000 would ask for the whole corpus)."""


@pytest.mark.parametrize(("engine", "settings"), APPROXIMATE, ids=[e.label for e, _ in APPROXIMATE])
def test_approximate_engines_answer_a_deep_k(scifact, tmp_path: Path, engine: Engine, settings: list[dict]) -> None:
    """At k = 100 the safest setting returns every hit the corpus has up to k (none stops at 10 or at a beam
    narrower than k) and reaches :data:`SAFEST` recall@100 too."""
    docs, queries, scores = scifact
    _built(engine, docs, tmp_path)
    engine.configure(**settings[0])
    answers = _answers(engine, queries, DEEP_K)
    engine.close()
    returned = np.array([len(a.rows) for a in answers])
    assert all(len(a.rows) == len(set(a.rows.tolist())) for a in answers)
    assert np.array_equal(returned, np.minimum(matching(scores), DEEP_K)) or (
        engine.system == "kannolo" and (returned == DEEP_K).all()  # a graph answers k nodes, matching or not
    ), f"{engine.label}: hits per query {returned.tolist()}"
    deep = recall_at(answers, scores, DEEP_K)
    assert deep >= SAFEST[engine.system], f"{engine.label}: recall@{DEEP_K} {deep}"


def test_kannolo_never_runs_a_beam_narrower_than_k(scifact, tmp_path: Path) -> None:
    """kANNolo widens ef_search to k by itself, so a setting below k would run under another setting's label:
    the sweep leaves such settings out and a search with one is refused."""
    docs, queries, _ = scifact
    engine = _built(kannolo.Kannolo(), docs, tmp_path)
    terms, weights = queries.row(0)
    narrow, wide = (engine._index.search(terms, weights, DEEP_K, ef)[1] for ef in (10, DEEP_K))
    assert np.array_equal(narrow, wide)  # the widening this guards against: ef_search 10 runs as ef_search k
    assert [s["ef_search"] for s in engine.grid(10)] == list(kannolo.LADDER)
    assert [s["ef_search"] for s in engine.grid(1000)] == [1000, 2000, 4000]
    assert min(s["ef_search"] for s in engine.grid(DEEP_K)) >= DEEP_K
    engine.configure(ef_search=DEEP_K // 2)
    with pytest.raises(ValueError, match="below k"):
        engine.search(*queries.row(0), DEEP_K)
    with pytest.raises(ValueError, match="below k"):
        engine.search_batch(queries, DEEP_K, threads=2)
    engine.configure(ef_search=DEEP_K)
    assert len(engine.search(*queries.row(0), DEEP_K).rows) == DEEP_K
    engine.close()


def test_every_engine_has_a_sweep_with_defaults() -> None:
    for engine in (pisa.Pisa(), bmp.Bmp(), seismic.Seismic(), seismic.Seismic(knn=10), kannolo.Kannolo()):
        for setting in engine.grid(10) + engine.grid(1000):
            engine.configure(**setting)
            assert set(engine.search_settings) == set(engine.defaults), engine.label
        with pytest.raises(ValueError, match="unknown"):
            engine.configure(no_such_knob=1)
    from lsr.eval.bench.engines import engine as by_name

    graph = by_name("seismic-knn")
    assert graph.system == "seismic-knn" and graph.settings["knn"] == seismic.KNN and graph.grid(10)[1]["n_knn"]
    assert {s.get("heap_factor") for s in seismic.Seismic().grid(10)} >= {0.7, 0.8}
    assert {s.get("sorted") for s in seismic.Seismic().grid(10)} == {None, False, True}  # the library's default too
    assert max(s.get("query_cut", 0) for s in seismic.Seismic().grid(10)) == 15
    assert max(s.get("query_cut", 0) for s in seismic.Seismic().grid(1000)) == max(DEEP_CUTS)
    from lsr.eval.bench.engines.lsr_engine import LsrEngine

    for k in (10, 1000):  # lsr's clustered sweep is Seismic's grid, as deep
        clustered = {(s["query_cut"], s["heap_factor"]) for s in LsrEngine().grid(k) if "query_cut" in s}
        assert clustered == {(s["query_cut"], s["heap_factor"]) for s in seismic.Seismic().grid(k) if s}
    with pytest.raises(ValueError, match="n_knn"):
        seismic.Seismic().configure(n_knn=5)


def test_an_engine_without_parallel_search_is_timed_with_one_process_per_thread(
    scifact: tuple[Vectors, Vectors, np.ndarray],
) -> None:
    """BMP's binding searches one query at a time and holds the GIL, so its throughput at 2 "threads" is timed with
    2 forked processes (each with the built index), and the row and the table say so. A JVM runs in this process
    first, as after a Lucene teacher or engine: its SIGTERM handler, inherited by forked children without the JVM
    thread that acts on it, once left the workers unkillable and the pool waiting on them forever."""
    from lsr.eval.bench.engines import engine
    from lsr.eval.bench.engines.harness import compare
    from lsr.eval.bench.engines.tables import exact_table

    if not installed("bmp"):
        pytest.skip("needs the package 'bmp' (lsr[bench])")
    docs, queries, _ = scifact
    try:
        from lsr.indexing.lucene.jvm import start_jvm

        start_jvm()
    except Exception as exc:  # noqa: BLE001 - no Java here: the workers are tested without one
        print(f"no JVM started ({exc})")
    assert not bmp.Bmp.parallel_batch and pisa.Pisa.parallel_batch and seismic.Seismic.parallel_batch
    report = compare([engine("lsr"), bmp.Bmp()], docs, queries, k=10, rounds=1, threads=2, settings=[[{}], [{}]])
    workers = {row.system: row.throughput_workers for row in report.rows if row.throughput_qps}
    assert workers == {"lsr": "2 threads", "bmp": "2 processes"}
    table = report.to_json()
    for row in table["rows"]:
        row["exact_scores_match"] = True  # the table lists checked-exact rows; mark BMP's to see its QPS cell
    assert "(2 processes)" in exact_table(table)


def test_lsr_clustered_search_reports_recall(scifact, tmp_path: Path) -> None:
    """lsr's clustered settings: exact at heap_factor 0 over every query term (the clusters keep whole lists of
    this small corpus), and recall@10 that falls as the settings get more aggressive."""
    from lsr.eval.bench.engines.lsr_engine import LsrEngine

    docs, queries, scores = scifact
    engine = LsrEngine()
    engine.build(docs, tmp_path, threads=2)
    recalls = []
    for setting in (
        {"query_cut": 1000, "heap_factor": 0.0},
        {"query_cut": 10, "heap_factor": 0.8},
        {"query_cut": 3, "heap_factor": 1.0},
    ):
        engine.configure(**setting)
        recalls.append(recall_at(_answers(engine, queries, 10), scores, 10))
    assert recalls[0] == 1.0 and recalls[0] >= recalls[1] >= recalls[2] > 0.5, recalls
