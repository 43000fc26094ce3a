"""``lsr export milvus`` and the Milvus retriever, against Milvus Lite (embedded, a local file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lsr.eval.demo import demo_dataset
from lsr.indexing.sparse.build import build_index
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.search import Searcher, hits
from tiny_models import tiny_bert
from typer.testing import CliRunner

from lsr.cli import app
from lsr.data.beir import BeirDataset, corpus_source
from lsr.encode.corpus import encode_corpus
from lsr.encode.shards import iter_shards
from lsr.errors import LsrError
from lsr.models import load_encoder

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from lsr.indexing.milvus import MilvusRetriever, export_milvus  # noqa: E402 - needs pymilvus


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny sparse model's index and MiniLM's dense vectors over the demo corpus, exported once."""
    root = tmp_path_factory.mktemp("milvus")
    model = tiny_bert(root / "bert")
    src = corpus_source(demo_dataset())
    encode_corpus(load_encoder(model, device="cpu"), str(model), src, root / "sparse", shard_size=16)
    encode_corpus(load_encoder("all-minilm-l6-v2", device="cpu"), "all-minilm-l6-v2", src, root / "dense")
    build_index(lambda: iter_shards(root / "sparse"), root / "index", str(model), "splade", "float16")
    uri = str(root / "lite.db")
    runner = CliRunner()
    args = ["export", "milvus", "--uri", uri, "--collection", "demo", "--index", str(root / "index")]
    result = runner.invoke(app, [*args, "--dense", str(root / "dense")])
    assert result.exit_code == 0, result.output
    assert "40 documents" in result.output
    return {"root": root, "model": model, "uri": Path(uri)}


def _queries() -> dict[str, str]:
    return BeirDataset(demo_dataset()).queries()


def test_exact_sparse_top10_matches_our_index(demo: dict[str, Path]) -> None:
    queries = _queries()
    ids = list(queries)
    encoder = load_encoder(demo["model"], device="cpu")
    vectors = encoder.encode_query([queries[q] for q in ids])
    index = SparseIndex.open(demo["root"] / "index")
    ours = {
        q: found.as_dict() for q, found in zip(ids, hits(index, *Searcher(index).search(vectors, k=10)), strict=True)
    }
    milvus = MilvusRetriever(str(demo["uri"]), "demo")
    theirs = dict(zip(ids, milvus.search_sparse(vectors, k=10), strict=True))
    # every score either engine gives, from our index: near-ties (within float rounding) may come in either order
    exact = (vectors @ index.to_csr().T).toarray()
    number = {index.doc_id(n): n for n in range(index.num_docs)}
    for row, qid in enumerate(ids):
        got = [d for d, _ in theirs[qid]]
        np.testing.assert_allclose([s for _, s in theirs[qid]], list(ours[qid].values()), rtol=1e-3, err_msg=qid)
        np.testing.assert_allclose(exact[row, [number[d] for d in got]], list(ours[qid].values()), rtol=1e-3)
        assert len(set(got)) == len(got) == len(ours[qid]), qid
    assert milvus.run(queries, k=10, retriever="sparse") == {q: dict(h) for q, h in theirs.items()}


def test_dense_and_hybrid(demo: dict[str, Path]) -> None:
    queries = _queries()
    milvus = MilvusRetriever(str(demo["uri"]), "demo")
    dense = milvus.run(queries, k=10, retriever="dense")
    # exact cosine top-10 for reference: 40 documents, HNSW must find them all
    encoder = load_encoder("all-minilm-l6-v2", device="cpu")
    ids, docs = [], []
    for shard_ids, vectors in iter_shards(demo["root"] / "dense"):
        ids += shard_ids
        docs.append(vectors)
    matrix = np.vstack(docs)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    q = encoder.encode_query(list(queries.values()))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    for row, qid in enumerate(queries):
        exact = {ids[i] for i in np.argsort(-(matrix @ q[row]))[:10]}
        assert set(dense[qid]) == exact
    for ranker in ("rrf", "weighted"):
        hybrid = milvus.run(queries, k=10, retriever="hybrid", ranker=ranker)
        sparse = milvus.run(queries, k=100, retriever="sparse")
        for qid, fused in hybrid.items():
            assert len(fused) == 10
            assert set(fused) <= set(sparse[qid]) | set(milvus.run({qid: queries[qid]}, k=100, retriever="dense")[qid])
            scores = list(fused.values())
            assert scores == sorted(scores, reverse=True)


def test_existing_collection_and_bad_input(demo: dict[str, Path]) -> None:
    with pytest.raises(LsrError, match="exists"):
        export_milvus(str(demo["uri"]), "demo", sparse=demo["root"] / "index")
    with pytest.raises(LsrError, match="no collection"):
        MilvusRetriever(str(demo["uri"]), "absent")
    with pytest.raises(LsrError, match=".db"):
        export_milvus("somewhere", "x", sparse=demo["root"] / "index")
    with pytest.raises(LsrError, match="dense vectors"):
        export_milvus(str(demo["uri"]), "x", sparse=demo["root"] / "dense")
    milvus = MilvusRetriever(str(demo["uri"]), "demo")
    with pytest.raises(LsrError, match="retriever 'both'"):
        milvus.run({"q": "x"}, retriever="both")


def test_scifact_exact_sparse_top10(shared: Path, tmp_path: Path) -> None:
    """The issue's check: Milvus's exact sparse search ranks SciFact as lsr's exact index does. Runs only
    where ../shared and eval's cached splade-tiny index of SciFact exist (building it is a separate job)."""
    from conftest import USER_CACHE
    from lsr.indexing import cache

    from lsr.cache.keys import platform_cache_dir

    dataset = BeirDataset(shared / "data" / "beir" / "scifact")
    model = shared / "models" / "splade-tiny"
    root = Path(USER_CACHE or platform_cache_dir() / "lsr")  # the user's cache, not the test's own
    index_dir = cache.entry(root, "index", dataset, cache.model_name(model), "sparse-float16")
    if not (index_dir / "meta.json").is_file():
        pytest.skip(f"no cached SciFact index at {index_dir} (run lsr eval run on SciFact with splade-tiny first)")
    uri = str(tmp_path / "scifact.db")
    assert export_milvus(uri, "scifact", sparse=index_dir) > 5000
    queries = dataset.queries()
    ids = list(queries)
    vectors = load_encoder(model, device="cpu").encode_query([queries[q] for q in ids])
    index = SparseIndex.open(index_dir)
    ours = {
        q: found.as_dict() for q, found in zip(ids, hits(index, *Searcher(index).search(vectors, k=10)), strict=True)
    }
    theirs = dict(zip(ids, MilvusRetriever(uri, "scifact").search_sparse(vectors, k=10), strict=True))
    differ = [q for q in ids if [d for d, _ in theirs[q]] != list(ours[q])]
    # float ties may swap neighbours; the sets and the scores must agree everywhere
    for q in differ:
        assert {d for d, _ in theirs[q]} == set(ours[q]) or np.allclose(
            sorted(s for _, s in theirs[q]), sorted(ours[q].values()), rtol=1e-3
        ), q
    assert len(differ) <= len(ids) // 100
