"""Lucene impact search as a benchmark engine: on real SciFact vectors its top 10 and top 1,000 are exact.

The engine indexes lsr's integer impacts with Anserini and searches them in a Java program that times each
query inside the JVM; the scores must equal a brute-force dot product over the same impacts (ties may
differ in which document only), and the in-JVM latencies must be one positive time per query.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED

pytest.importorskip("pyserini")

from lsr.eval.bench.engines.base import ENGINES, Answer, Vectors  # noqa: E402
from lsr.eval.bench.engines.lucene import LuceneImpact, Warmup, find_jdk  # noqa: E402
from lsr.indexing.lucene.impact import quantise  # noqa: E402
from lsr.indexing.lucene.jvm import LuceneUnavailable  # noqa: E402

DOCS, QUERIES, K = 1000, 50, 10
DEEP_K = 1000  # the whole 1,000-document sample: every matching document, in score order
WORDS = 64  # each document's first words: real text, encoded in seconds rather than minutes on two cores


@pytest.fixture(scope="module")
def scifact() -> tuple[Vectors, Vectors]:
    """The first 1,000 SciFact documents (first 64 words) and 50 test queries by splade-tiny, as impacts x 100."""
    if not (SHARED / "data" / "beir" / "scifact").is_dir() or not (SHARED / "models" / "splade-tiny").is_dir():
        pytest.skip(f"SciFact or splade-tiny not found under {SHARED} (set LSR_SHARED)")
    try:
        find_jdk()
    except LuceneUnavailable as exc:
        pytest.skip(str(exc))
    from lsr.data.beir import BeirDataset
    from lsr.encode.corpus import document_text
    from lsr.models import load_encoder

    data = BeirDataset(SHARED / "data" / "beir" / "scifact")
    docs = list(islice(data.corpus(), DOCS))
    queries = list(islice(data.split("test", check_docs=False)[0].items(), QUERIES))
    encoder = load_encoder(SHARED / "models" / "splade-tiny", device="cpu")
    doc_vectors = quantise(encoder.encode_document([" ".join(document_text(d).split()[:WORDS]) for d in docs]))
    query_vectors = quantise(encoder.encode_query([text for _, text in queries]))
    width = max(doc_vectors.shape[1], query_vectors.shape[1])
    doc_vectors.resize((doc_vectors.shape[0], width))
    query_vectors.resize((query_vectors.shape[0], width))
    return Vectors([d.id for d in docs], doc_vectors), Vectors([q for q, _ in queries], query_vectors)


def assert_exact(answer: Answer, products: np.ndarray, k: int) -> None:
    """``answer`` holds the best ``k`` matching scores, each the true product of the row it names."""
    best = np.sort(products[products > 0])[::-1][:k]
    assert np.array_equal(answer.scores, best.astype(np.float32))
    assert np.array_equal(products[answer.rows], answer.scores)  # a tie may name another row, never a wrong score
    assert len(set(answer.rows.tolist())) == len(answer.rows)


@pytest.mark.parametrize("ties", ["anserini", "lucene"])
def test_lucene_top_k_equals_brute_force_with_in_jvm_latencies(
    scifact: tuple[Vectors, Vectors], ties: str, tmp_path: Path
) -> None:
    docs, queries = scifact
    assert ENGINES.factories["lucene-impact"] is LuceneImpact
    engine = LuceneImpact(ties=ties, heap="512m", warmup=Warmup(min_seconds=0.5, max_seconds=20))
    try:
        built = engine.build(docs, tmp_path, threads=1)
        assert built.seconds > 0 and built.index_bytes > 0
        products = (queries.matrix.astype(np.float64) @ docs.matrix.T.astype(np.float64)).toarray()

        latencies = engine.latencies(queries, K)
        assert latencies.shape == (len(queries),) and (latencies > 0).all()
        assert engine.last_cpu_seconds.shape == latencies.shape and (engine.last_cpu_seconds >= 0).all()
        batch = engine.search_batch(queries, K, threads=2)
        assert len(batch) == len(queries)
        for i, answer in enumerate(batch):
            assert_exact(answer, products[i], K)
        for i in range(0, len(queries), 10):  # one query at a time, through the running program
            one = engine.search(*queries.row(i), K)
            assert_exact(one, products[i], K)
            assert np.array_equal(one.scores, batch[i].scores)

        measured = engine.describe()["measured"]
        assert [m["mode"] for m in measured] == ["latency", "throughput"]
        assert all(m["seconds"] > 0 and m["warmup_ms"] for m in measured)

        for i, answer in enumerate(engine.search_batch(queries, DEEP_K, threads=2)):
            assert_exact(answer, products[i], DEEP_K)
    finally:
        engine.close()
