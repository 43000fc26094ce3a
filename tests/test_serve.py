"""The gRPC server on a free loopback port: every method against the library, health, reflection, bad input,
overload, deadlines, graceful shutdown, micro-batching, and the ``lsr query`` / ``lsr serve`` commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import REPO
from lsr.serve.client import Client
from lsr.serve.proto.lsr.v1 import lsr_pb2
from serve_support import Artifacts, demo_queries, running
from typer.testing import CliRunner

from lsr.cli import app


@pytest.fixture(scope="module")
def artifacts(serve_artifacts: Artifacts) -> Artifacts:
    return serve_artifacts


@pytest.fixture(scope="module")
def full(artifacts: Artifacts):  # noqa: ANN201 - a RunningServer with sparse, dense, hybrid and a recommender
    with running(artifacts) as server:
        yield server


def code_of(call) -> grpc.StatusCode:  # noqa: ANN001 - a zero-argument callable making one RPC
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()


def wait_until(condition, timeout: float = 10.0) -> None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.005)


def reference(artifacts: Artifacts, queries: list[str], k: int) -> tuple[list, list]:
    """Sparse and dense top-k straight from the library, for comparison with the server's answers."""
    from lsr.indexing.dense import open_dense_index
    from lsr.indexing.sparse.format import SparseIndex
    from lsr.indexing.sparse.search import Searcher

    from lsr.models import load_encoder

    index = SparseIndex.open(artifacts.sparse_index)
    docs, scores, sizes = Searcher(index).search(load_encoder(index.meta.model).encode_query(queries), k=k)
    sparse = [
        [(index.doc_id(int(d)), float(s)) for d, s in zip(docs[i, : sizes[i]], scores[i, : sizes[i]], strict=True)]
        for i in range(len(queries))
    ]
    dense_index = open_dense_index(artifacts.dense_index)
    rows, dscores = dense_index.search(load_encoder("all-minilm-l6-v2").encode_query(queries), k)
    dense = [
        [(dense_index.ids[r], float(s)) for r, s in zip(rows[i], dscores[i], strict=True) if r >= 0]
        for i in range(len(queries))
    ]
    return sparse, dense


def same_hits(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [d for d, _ in got] == [d for d, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-4, atol=1e-6)


def test_search_answers_what_the_library_answers(full, artifacts: Artifacts) -> None:  # noqa: ANN001
    from lsr.indexing.fusion import fuse

    from lsr.runs import ranked

    queries = demo_queries()[:4]
    sparse, dense = reference(artifacts, queries, 100)
    with Client(full.address) as client:
        for i, query in enumerate(queries):
            same_hits(client.search(query, k=10), sparse[i][:10])
            same_hits(client.search(query, k=10, retriever="dense"), dense[i][:10])
            fused = ranked(fuse([{"q": dict(sparse[i])}, {"q": dict(dense[i])}], "rrf", depth=10)["q"])
            same_hits(client.search(query, k=10, retriever="hybrid"), fused)
            zscore = ranked(fuse([{"q": dict(sparse[i])}, {"q": dict(dense[i])}], "zscore", [0.3, 0.7], depth=5)["q"])
            same_hits(client.search(query, k=5, retriever="hybrid", fusion="zscore", weights=[0.3, 0.7]), zscore)
        batch = client.batch_search(queries, k=7, retriever="dense")
        assert [[d for d, _ in hits] for hits in batch] == [[d for d, _ in dense[i][:7]] for i in range(len(queries))]


def test_encode_then_search_by_vector_equals_search_by_text(full) -> None:  # noqa: ANN001
    query = demo_queries()[1]
    with Client(full.address) as client:
        vector = client.encode([query, "inverted index"], with_tokens=True)
        assert len(vector) == 2 and len(vector[0]["indices"]) == len(vector[0]["tokens"]) > 0
        by_vector = client.search((vector[0]["indices"], vector[0]["values"]), k=10)
        assert by_vector == client.search(query, k=10) and by_vector


def test_filters_give_the_top_k_among_allowed_documents(full, artifacts: Artifacts) -> None:  # noqa: ANN001
    query = demo_queries()[2]
    sparse, dense = reference(artifacts, [query], 40)
    allowed = [doc for doc, _ in sparse[0][::3]]  # every third hit: filtering must search deeper than k
    excluded = [doc for doc, _ in sparse[0][:5]]
    with Client(full.address) as client:
        same_hits(client.search(query, k=4, doc_ids=allowed), [h for h in sparse[0] if h[0] in allowed][:4])
        same_hits(client.search(query, k=4, exclude_doc_ids=excluded), sparse[0][5:9])
        dense_allowed = [doc for doc, _ in dense[0][-6:]]  # the six worst: only the full depth finds them
        same_hits(client.search(query, k=3, retriever="dense", doc_ids=dense_allowed), dense[0][-6:-3])
        hybrid = client.search(query, k=5, retriever="hybrid", doc_ids=allowed)
        assert hybrid and {d for d, _ in hybrid} <= set(allowed)
        assert client.search(query, k=5, doc_ids=["no-such-document"]) == []


def test_recommend_excludes_seen_items_unless_asked(full, artifacts: Artifacts) -> None:  # noqa: ANN001
    from lsr.recommend.serve import Server

    local = Server(artifacts.recommender)
    seen = set(np.array(local.items)[local.train[local.user_index["3"]].indices].tolist())
    with Client(full.address) as client:
        items = client.recommend("3", k=5)
        assert [i for i, _ in items] == [i for i, _ in local.recommend("3", 5)]
        assert len(items) == 5 and not {i for i, _ in items} & seen
        everything = client.recommend("3", k=30, exclude_seen=False)
        assert {i for i, _ in everything} >= seen
        assert code_of(lambda: client.recommend("nobody", k=5)) == grpc.StatusCode.NOT_FOUND


def test_stats_describe_the_server_and_count_calls(full) -> None:  # noqa: ANN001
    with Client(full.address) as client:
        client.search("inverted index", k=3)
        with pytest.raises(grpc.RpcError):
            client.search("", k=3)
        stats = client.stats()
    assert (stats.num_docs, stats.dense_docs, stats.recommender) == (40, 40, True)
    assert list(stats.retrievers) == ["sparse", "dense", "hybrid"] and stats.dense_model == "all-minilm-l6-v2"
    assert stats.methods["Search"].requests >= 2 and stats.methods["Search"].errors >= 1
    assert stats.methods["Search"].p50_ms > 0 and stats.rss_bytes > 10_000_000 and stats.uptime_seconds > 0
    assert {b.name for b in stats.batchers} == {"sparse", "dense", "encode"}


def test_health_and_reflection(full) -> None:  # noqa: ANN001
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with grpc.insecure_channel(full.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "lsr.v1.Retrieval", "lsr.v1.Recommendation"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        unknown = lambda: health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)  # noqa: E731
        assert code_of(unknown) == grpc.StatusCode.NOT_FOUND
        database = ProtoReflectionDescriptorDatabase(channel)
        assert {"lsr.v1.Retrieval", "lsr.v1.Recommendation", "grpc.health.v1.Health"} <= set(database.get_services())
        search = database.FindFileContainingSymbol("lsr.v1.Retrieval")
        assert search.package == "lsr.v1" and {s.name for s in search.service} == {"Retrieval", "Recommendation"}


BAD_REQUESTS = [
    (lsr_pb2.SearchRequest(query="", k=5), "empty query"),
    (lsr_pb2.SearchRequest(query="   ", k=5), "empty query"),
    (lsr_pb2.SearchRequest(query="x" * 5000, k=5), "characters; the limit is 4096"),
    (lsr_pb2.SearchRequest(query="index", k=-1), "k must be between 1 and 1000"),
    (lsr_pb2.SearchRequest(query="index", k=1001), "k must be between 1 and 1000"),
    (lsr_pb2.SearchRequest(query="index", retriever="bm25"), "unknown retriever 'bm25'"),
    (lsr_pb2.SearchRequest(query="index", retriever="hybrid", fusion="max"), "unknown fusion 'max'"),
    (
        lsr_pb2.SearchRequest(query="index", retriever="hybrid", weights=[1.0]),
        "2 of them, one per retriever (sparse, dense)",
    ),
    (lsr_pb2.SearchRequest(query="index", retriever="hybrid", weights=[0.0, 0.0]), "not all zero"),
    (lsr_pb2.SearchRequest(vector=lsr_pb2.SparseVector(indices=[1, 2], values=[1.0])), "2 indices but 1 values"),
    (lsr_pb2.SearchRequest(vector=lsr_pb2.SparseVector()), "the vector has no terms"),
    (lsr_pb2.SearchRequest(vector=lsr_pb2.SparseVector(indices=[600], values=[1.0])), "term ids must be in [0, 600)"),
    (lsr_pb2.SearchRequest(vector=lsr_pb2.SparseVector(indices=[-3], values=[1.0])), "term ids must be in"),
    (lsr_pb2.SearchRequest(vector=lsr_pb2.SparseVector(indices=[4, 4], values=[1.0, 1.0])), "repeated term ids"),
    (lsr_pb2.SearchRequest(vector=lsr_pb2.SparseVector(indices=[4], values=[-1.0])), "non-negative"),
    (lsr_pb2.SearchRequest(vector=lsr_pb2.SparseVector(indices=[4], values=[float("nan")])), "finite"),
    (
        lsr_pb2.SearchRequest(vector=lsr_pb2.SparseVector(indices=[4], values=[1.0]), retriever="dense"),
        "searches the sparse index only",
    ),
]


@pytest.mark.parametrize(("request_", "message"), BAD_REQUESTS, ids=[m for _, m in BAD_REQUESTS])
def test_bad_search_requests_are_invalid_argument(full, request_, message: str) -> None:  # noqa: ANN001
    with Client(full.address) as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.retrieval.Search(request_, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in caught.value.details()
        assert client.search("inverted index", k=2)  # and the server carries on


def test_bad_batch_encode_and_recommend_requests(full) -> None:  # noqa: ANN001
    with Client(full.address) as client:
        invalid = grpc.StatusCode.INVALID_ARGUMENT
        assert code_of(lambda: client.batch_search([])) == invalid
        assert code_of(lambda: client.batch_search(["ok"] * 257)) == invalid
        with pytest.raises(grpc.RpcError) as caught:
            client.batch_search(["fine", ""])
        assert "request 1: empty query" in caught.value.details()
        assert code_of(lambda: client.encode([])) == invalid
        assert code_of(lambda: client.encode(["y" * 5000])) == invalid
        assert code_of(lambda: client.recommend("", k=3)) == invalid
        assert code_of(lambda: client.recommend("3", k=5000)) == invalid


def test_sparse_only_server(artifacts: Artifacts) -> None:
    with running(artifacts, dense=False, recommender=False) as server, Client(server.address) as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.search("inverted index", retriever="dense")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "--dense-index" in caught.value.details()
        assert code_of(lambda: client.recommend("3")) == grpc.StatusCode.UNIMPLEMENTED
        assert list(client.stats().retrievers) == ["sparse"]


def test_oversized_messages_are_refused(artifacts: Artifacts) -> None:
    with running(artifacts, dense=False, recommender=False, max_message_bytes=16 * 1024) as server:
        with Client(server.address) as client:
            big = [f"document-{i}" for i in range(5000)]  # about 80 kB of filter ids
            assert code_of(lambda: client.search("index", doc_ids=big)) == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert client.search("inverted index", k=2)


def test_overload_is_rejected_at_once(artifacts: Artifacts) -> None:
    # one call at a time; the test holds the query encoder, so the admitted call stays inside the server
    with running(artifacts, dense=False, recommender=False, max_in_flight=1) as server:
        with Client(server.address) as client, ThreadPoolExecutor(1) as pool:
            client.wait_ready()
            with server.engine.legs["sparse"].lock:
                first = pool.submit(client.search, "inverted index", 3)
                wait_until(lambda: server.engine.batchers["sparse"].pending == 1)
                started = time.monotonic()
                assert code_of(lambda: client.search("ranking", k=3)) == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert time.monotonic() - started < 0.5
            assert len(first.result(10)) == 3  # the admitted call is answered
            assert client.search("ranking", k=3)  # and capacity is back


def test_deadlines_are_honoured_and_expired_work_is_dropped(artifacts: Artifacts) -> None:
    with running(artifacts, dense=False, recommender=False) as server:
        with Client(server.address) as client, Client(server.address, timeout=0.15) as hurried:
            client.wait_ready()
            sparse = server.engine.batchers["sparse"]
            with ThreadPoolExecutor(1) as pool, server.engine.legs["sparse"].lock:  # the encoder is busy
                first = pool.submit(client.search, "inverted index", 3)
                wait_until(lambda: sparse.pending == 1)
                started = time.monotonic()
                assert code_of(lambda: hurried.search("ranking")) == grpc.StatusCode.DEADLINE_EXCEEDED
                assert time.monotonic() - started < 0.5
            assert len(first.result(10)) == 3
            wait_until(lambda: sparse.pending == 0)
            assert (sparse.stats.batches, sparse.stats.items, sparse.stats.expired) == (1, 1, 1)  # not computed


def test_graceful_shutdown_finishes_calls_in_flight(artifacts: Artifacts) -> None:
    with running(artifacts, dense=False, recommender=False) as server:
        with Client(server.address) as client, ThreadPoolExecutor(1) as pool:
            client.wait_ready()
            with server.engine.legs["sparse"].lock:
                in_flight = pool.submit(client.search, "inverted index", 3)
                wait_until(lambda: server.engine.batchers["sparse"].pending == 1)
                stopper = threading.Thread(target=server.stop, kwargs={"grace": 10})
                stopper.start()
                time.sleep(0.2)
                assert stopper.is_alive()  # waiting for the call in flight
            assert len(in_flight.result(10)) == 3
            stopper.join(10)
            assert not stopper.is_alive()
            assert code_of(lambda: client.search("ranking", k=3)) == grpc.StatusCode.UNAVAILABLE


def test_concurrent_searches_are_micro_batched(artifacts: Artifacts) -> None:
    queries = demo_queries()
    sparse, _ = reference(artifacts, queries, 10)
    with running(artifacts, dense=False, recommender=False, window_ms=100) as server:
        with Client(server.address) as client:
            client.wait_ready()
            # every call sent before any reply is awaited: client threads taking turns on a loaded machine could
            # otherwise each find the server idle, and a lone request rightly pays no batch window
            futures = [client.search_future(query, k=10) for query in queries]
            answers = [[(hit.doc_id, hit.score) for hit in future.result().hits] for future in futures]
            stats = {b.name: b for b in client.stats().batchers}["sparse"]
    for got, want in zip(answers, sparse, strict=True):
        same_hits(got, want)
    assert stats.items == len(queries) and stats.batches < len(queries) and stats.largest > 1


def test_lsr_query_prints_hits(full) -> None:  # noqa: ANN001
    with Client(full.address) as client:
        expected = client.search("inverted index postings", k=3, retriever="hybrid")
    runner = CliRunner()
    args = ["query", "--server", full.address, "--k", "3", "--retriever", "hybrid", "--json", "inverted index postings"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(h["rank"], h["doc_id"]) for h in lines] == [(i + 1, d) for i, (d, _) in enumerate(expected)]
    table = runner.invoke(app, ["query", "--server", full.address, "--k", "2", "inverted index"])
    assert table.exit_code == 0 and "rank" in table.output
    recommended = runner.invoke(app, ["query", "--server", full.address, "--user", "3", "--k", "2", "--json"])
    assert recommended.exit_code == 0 and len(recommended.output.splitlines()) == 2
    assert "item_id" in json.loads(recommended.output.splitlines()[0])
    failed = runner.invoke(app, ["query", "--server", full.address, "--retriever", "bm25", "index"])
    assert failed.exit_code != 0 and "INVALID_ARGUMENT" in str(failed.exception)


def test_lsr_serve_runs_and_stops_gracefully_on_sigterm(artifacts: Artifacts, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-c",
        "from lsr.cli import main; main()",
        "serve",
        "--index",
        str(artifacts.sparse_index),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [*command, "--port", str(port), "--grace", "5"], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        with Client(f"127.0.0.1:{port}") as client:
            client.wait_ready(timeout=60)
            assert len(client.search("inverted index", k=4)) == 4
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert f"127.0.0.1:{port}" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_load_generator_and_soak_report(full) -> None:  # noqa: ANN001
    from lsr.eval.bench.serve import closed_loop, soak

    queries = demo_queries()
    result = closed_loop(full.address, queries, ["sparse", "hybrid"], concurrency=4, requests=40)
    assert (result["requests"], result["answered"], result["errors"]) == (40, 40, {})
    assert result["qps"] > 0 and 0 < result["p50_ms"] <= result["p99_ms"]
    bad = closed_loop(full.address, ["", "inverted index"], ["sparse"], concurrency=2, requests=10)
    assert bad["answered"] == 5 and bad["errors"] == {"INVALID_ARGUMENT": 5}
    report = soak(full.address, queries, ["sparse"], concurrency=2, seconds=1.0, interval=0.1)
    assert len(report["samples"]) >= 5 and report["load"]["answered"] > 0
    assert report["memory_stable"] and report["rss_mb"]["max"] > 10
