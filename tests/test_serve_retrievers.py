"""The server on the one retriever contract: a user's retriever (registered by one class) served by ``lsr serve``
alone and in a hybrid with a built-in one, and document filters searched as masks, each query of a batch with its
own, giving the top k among the admitted documents."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import retriever_support  # noqa: F401 - registers the 'overlap' retriever
from conftest import REPO
from lsr.eval.demo import demo_dataset
from lsr.serve.client import Client
from lsr.serve.proto.lsr.v1 import lsr_pb2
from serve_support import Artifacts, demo_queries, running

Hits = list[tuple[str, float]]
OVERLAP = (("overlap", demo_dataset()),)


@pytest.fixture(scope="module")
def artifacts(serve_artifacts: Artifacts) -> Artifacts:
    return serve_artifacts


@pytest.fixture(scope="module")
def overlap_only(artifacts: Artifacts):  # noqa: ANN201 - a RunningServer whose one retriever is the user's
    with running(artifacts, sparse=False, dense=False, recommender=False, retrievers=OVERLAP) as server:
        yield server


@pytest.fixture(scope="module")
def with_sparse(artifacts: Artifacts):  # noqa: ANN201 - the user's retriever beside lsr's sparse one, and their hybrid
    with running(artifacts, dense=False, recommender=False, retrievers=OVERLAP, window_ms=50) as server:
        yield server


def admitted(hits: Hits, allow: set[str] | None = None, deny: set[str] = frozenset()) -> Hits:
    return [(doc, score) for doc, score in hits if (allow is None or doc in allow) and doc not in deny]


def filters_for(everything: Hits) -> list[tuple[set[str] | None, set[str]]]:
    """An allow list of every third hit (the top k among them lies deeper than k) and a deny list of the top five."""
    docs = [doc for doc, _ in everything]
    return [(set(docs[::3]), set()), (None, set(docs[:5])), (set(docs[::2]), set(docs[:4]))]


def check_filters(client: Client, query: str, retriever: str, k: int = 4) -> None:
    """Filtered searches return admitted documents only, and the top k of the unfiltered ranking restricted to them."""
    everything = client.search(query, k=40, retriever=retriever)
    assert len(everything) > 2 * k
    for allow, deny in filters_for(everything):
        got = client.search(query, k=k, retriever=retriever, doc_ids=sorted(allow or ()), exclude_doc_ids=sorted(deny))
        assert got == admitted(everything, allow, deny)[:k], (allow, deny)
    assert client.search(query, k=k, retriever=retriever, doc_ids=["no-such-document"]) == []


def test_a_users_retriever_served_alone(overlap_only) -> None:  # noqa: ANN001
    query = demo_queries()[0]
    with Client(overlap_only.address) as client:
        stats = client.stats()
        assert list(stats.retrievers) == ["overlap"] and stats.num_docs == 40
        reply = client.retrieval.Search(client.request(query, k=5), timeout=10)  # no retriever named: its only one
        assert reply.retriever == "overlap" and len(reply.hits) == 5
        assert [h.doc_id for h in reply.hits] == [d for d, _ in client.search(query, k=5, retriever="overlap")]
        check_filters(client, query, "overlap")
        with pytest.raises(grpc.RpcError) as caught:
            client.encode(["inverted index"])
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE and "--index" in caught.value.details()
        with pytest.raises(grpc.RpcError) as caught:
            client.search("index", retriever="hybrid")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "unknown retriever" in caught.value.details()


def test_a_users_retriever_in_a_hybrid_with_a_built_in_one(with_sparse) -> None:  # noqa: ANN001
    from lsr.indexing.fusion import fuse

    from lsr.runs import ranked

    query = demo_queries()[2]
    with Client(with_sparse.address) as client:
        assert list(client.stats().retrievers) == ["sparse", "overlap", "hybrid"]
        check_filters(client, query, "sparse")
        check_filters(client, query, "overlap")
        legs = [dict(client.search(query, k=40, retriever=name)) for name in ("sparse", "overlap")]
        fused = ranked(fuse([{"q": leg} for leg in legs], "zscore", [0.3, 0.7], depth=5)["q"])
        got = client.search(query, k=5, retriever="hybrid", fusion="zscore", weights=[0.3, 0.7])
        assert [d for d, _ in got] == [d for d, _ in fused]
        # a filtered hybrid fuses its legs' filtered searches (each leg searched with the mask, at the usual depth)
        for allow, deny in filters_for(client.search(query, k=40, retriever="sparse")):
            options = {"doc_ids": sorted(allow or ()), "exclude_doc_ids": sorted(deny)}
            filtered = [dict(client.search(query, k=40, retriever=name, **options)) for name in ("sparse", "overlap")]
            want = ranked(fuse([{"q": leg} for leg in filtered], "rrf", depth=6)["q"])
            got = client.search(query, k=6, retriever="hybrid", **options)
            assert got and [d for d, _ in got] == [d for d, _ in want]
            assert all(admitted([hit], allow, deny) for hit in got)
        with pytest.raises(grpc.RpcError) as caught:
            client.search(query, retriever="hybrid", weights=[1.0])
        assert "2 of them, one per retriever (sparse, overlap)" in caught.value.details()


def test_queries_with_different_filters_in_one_batch_each_get_their_own(with_sparse) -> None:  # noqa: ANN001
    """One BatchSearch and concurrent Searches, every query with another filter (or none): the batcher searches them
    together, and each answer is what the query gets alone."""
    queries = demo_queries()[:6]
    with Client(with_sparse.address) as client:
        requests, alone = [], []
        for number, query in enumerate(queries):
            everything = [d for d, _ in client.search(query, k=40, retriever="overlap")]
            options = [{}, {"doc_ids": everything[1::2]}, {"exclude_doc_ids": everything[:3]}][number % 3]
            for retriever in ("sparse", "overlap"):
                requests.append(client.request(query, k=3, retriever=retriever, **options))
                alone.append(client.search(query, k=3, retriever=retriever, **options))
        before = {b.name: b.items for b in client.stats().batchers}
        batch = client.retrieval.BatchSearch(lsr_pb2.BatchSearchRequest(requests=requests), timeout=30)
        assert [[(h.doc_id, h.score) for h in r.hits] for r in batch.responses] == alone
        with ThreadPoolExecutor(len(requests)) as pool:
            concurrent = list(pool.map(lambda r: client.retrieval.Search(r, timeout=30), requests))
        assert [[(h.doc_id, h.score) for h in r.hits] for r in concurrent] == alone
        after = {b.name: b for b in client.stats().batchers}
    assert after["overlap"].items - before["overlap"] == 2 * len(queries)
    assert after["overlap"].largest > 1  # queries with different filters shared batches


def test_lsr_serve_imports_a_users_retriever_and_serves_it_in_a_hybrid(artifacts: Artifacts) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tests = Path(__file__).parent
    command = [sys.executable, "-c", "from lsr.cli import main; main()", "serve", "--port", str(port)]
    command += ["--index", str(artifacts.sparse_index), "--import", "retriever_support"]
    command += ["--retriever", f"overlap={demo_dataset()}", "--hybrid-legs", "overlap,sparse"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tests), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        with Client(f"127.0.0.1:{port}") as client:
            client.wait_ready(timeout=90)
            assert list(client.stats().retrievers) == ["sparse", "overlap", "hybrid"]
            query = demo_queries()[0]
            alone = client.search(query, k=5, retriever="overlap")
            assert len(alone) == 5 and len(client.search(query, k=5, retriever="hybrid")) == 5
            allowed = [doc for doc, _ in client.search(query, k=40, retriever="overlap")][2::2]
            hybrid = client.search(query, k=5, retriever="hybrid", doc_ids=allowed)
            assert hybrid and {doc for doc, _ in hybrid} <= set(allowed)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_lsr_serve_refuses_an_unknown_retriever_and_a_failed_import(artifacts: Artifacts) -> None:
    from typer.testing import CliRunner

    from lsr.cli import app

    runner = CliRunner()
    started = time.monotonic()
    result = runner.invoke(app, ["serve", "--retriever", f"overlap2={demo_dataset()}", "--port", "0"])
    assert result.exit_code != 0 and "unknown retriever 'overlap2'" in str(result.exception)
    result = runner.invoke(app, ["serve", "--import", "no_such_module_here", "--retriever", "overlap=x"])
    assert result.exit_code != 0 and "--import no_such_module_here" in str(result.exception)
    result = runner.invoke(app, ["serve", "--retriever", "overlap"])
    assert result.exit_code != 0 and "NAME=FOLDER" in str(result.exception)
    assert time.monotonic() - started < 30  # refused before any model or index loads


@pytest.fixture(scope="module")
def bm25_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Lucene BM25 index of the demo corpus, as `lsr eval bm25` builds it."""
    pytest.importorskip("pyserini")
    from lsr.indexing.lucene import bm25

    from lsr.data.beir import BeirDataset

    return bm25.build_index(BeirDataset(demo_dataset()), tmp_path_factory.mktemp("bm25") / "index")


@pytest.fixture(scope="module")
def subset_sparse(artifacts: Artifacts, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sparse index of the demo corpus's first 30 documents (of 40) by the same model, through `lsr index`: another
    corpus than the dense index's."""
    from typer.testing import CliRunner

    from lsr.cli import app

    folder = tmp_path_factory.mktemp("subset")
    (folder / "corpus").mkdir()
    lines = (demo_dataset() / "corpus.jsonl").read_text().splitlines()
    (folder / "corpus" / "corpus.jsonl").write_text("\n".join(lines[:30]) + "\n")
    shutil.copy(demo_dataset() / "queries.jsonl", folder / "corpus" / "queries.jsonl")
    args = ["index", "--model", str(artifacts.model), "--corpus", str(folder / "corpus")]
    result = CliRunner().invoke(app, [*args, "--output", str(folder / "sparse"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return folder / "sparse"


def test_legs_over_different_documents_are_not_fused(
    artifacts: Artifacts, subset_sparse: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A hybrid refuses legs that hold different documents (fusion adds scores by document id): in the library, and
    in a server where the legs are named for the hybrid; a server given them by default serves each leg alone, says
    so, and its Stats list every leg's size and corpus."""
    from lsr.indexing.retrieval import Hybrid, RetrieverOptions, open_retriever
    from lsr.serve.engine import Engine, EngineConfig
    from typer.testing import CliRunner

    from lsr.cli import app
    from lsr.errors import LsrError

    options = RetrieverOptions(device="cpu")
    dense = open_retriever("dense", artifacts.dense_index, options)
    same = open_retriever("sparse", artifacts.sparse_index, options)
    other = open_retriever("sparse", subset_sparse, options)
    assert same.id_fingerprint == dense.id_fingerprint != other.id_fingerprint
    assert len(Hybrid([same, dense]).search(Hybrid([same, dense]).encode(demo_queries()[:2]), 5)) == 2
    refused = r"the sparse and dense retrievers hold different documents \(30 and 40 ids"
    with pytest.raises(LsrError, match=refused):
        Hybrid([other, dense])
    with pytest.raises(LsrError, match=refused):
        Engine(EngineConfig(index=subset_sparse, dense_index=artifacts.dense_index, hybrid_legs=("sparse", "dense")))
    apart = dataclasses.replace(artifacts, sparse_index=subset_sparse)
    with caplog.at_level("WARNING", logger="lsr.serve"), running(apart, recommender=False) as server:
        with Client(server.address) as client:
            stats = client.stats()
            assert list(stats.retrievers) == ["sparse", "dense"]
            legs = [(leg.name, leg.num_docs, leg.corpus) for leg in stats.legs]
            corpora = [str((subset_sparse.parent / "corpus").resolve()), str(demo_dataset().resolve())]
            assert legs == [("sparse", 30, corpora[0]), ("dense", 40, corpora[1])]
            assert len(client.search(demo_queries()[0], k=5, retriever="sparse")) == 5
        # `lsr query` shows each leg's hits with the titles of that leg's own corpus
        for leg, count in (("sparse", 30), ("dense", 40)):
            shown = CliRunner().invoke(
                app, ["query", demo_queries()[0], "--server", server.address, "--retriever", leg, "--k", "40", "--json"]
            )
            assert shown.exit_code == 0, shown.output
            hits = [json.loads(line) for line in shown.stdout.splitlines()]
            assert 0 < len(hits) <= count and all(hit.get("title") for hit in hits), (leg, shown.output)
            assert leg == "sparse" or len(hits) == 40  # the dense leg returns the 10 documents the sparse one lacks
        with Client(server.address) as client:
            with pytest.raises(grpc.RpcError) as error:
                client.search(demo_queries()[0], k=5, retriever="hybrid")
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    said = [record.getMessage() for record in caplog.records]
    assert any("hold different documents" in line and "without 'hybrid'" in line for line in said)


def test_bm25_served_alone_filtered_and_in_a_hybrid_with_sparse(artifacts: Artifacts, bm25_index: Path) -> None:
    """The built-in BM25 retriever is servable like any other: the answers are the library's, filters give the top k
    among the admitted documents, and the hybrid fuses it with the sparse leg."""
    from lsr.indexing.fingerprint import ids_fingerprint
    from lsr.indexing.fusion import fuse
    from lsr.indexing.lucene.retriever import BM25Retriever
    from lsr.indexing.retrieval import RetrieverOptions

    from lsr.runs import ranked

    library = BM25Retriever.from_index(bm25_index, RetrieverOptions())
    ids = [json.loads(line)["_id"] for line in (demo_dataset() / "corpus.jsonl").read_text().splitlines()]
    assert library.num_docs == len(ids) and library.longest_id == max(len(doc.encode()) for doc in ids)
    assert library.id_fingerprint == ids_fingerprint(ids)
    queries = demo_queries()
    broad = max(queries, key=lambda q: len(library.search([q], 40)[0].ids))
    with running(artifacts, dense=False, recommender=False, retrievers=(("bm25", bm25_index),)) as server:
        with Client(server.address) as client:
            assert list(client.stats().retrievers) == ["sparse", "bm25", "hybrid"]
            assert [(leg.name, leg.num_docs) for leg in client.stats().legs] == [("sparse", 40), ("bm25", 40)]
            for query in queries:
                want = library.search([query], 10)[0]
                got = client.search(query, k=10, retriever="bm25")
                assert [d for d, _ in got] == want.ids
                assert [s for _, s in got] == pytest.approx(want.scores.tolist(), rel=1e-6)
            check_filters(client, broad, "bm25")
            legs = [dict(client.search(broad, k=40, retriever=name)) for name in ("sparse", "bm25")]
            fused = ranked(fuse([{"q": leg} for leg in legs], "rrf", depth=5)["q"])
            assert [d for d, _ in client.search(broad, k=5, retriever="hybrid")] == [d for d, _ in fused]
