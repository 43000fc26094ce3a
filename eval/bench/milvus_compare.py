"""lsr's own indexes against Milvus Lite on one machine, on SciFact's test queries (the eval cache's artefacts).

Sparse: lsr's exact inverted index (Numba) against Milvus's SPARSE_INVERTED_INDEX searched exactly, both
over the same float16 weights, so recall@10 against lsr's exact top-10 measures agreement. Dense:
lsr's hnswlib index (M 32, ef_construction 200, ef 256) against Milvus HNSW with the same settings, recall@10
against the exact cosine top-10. Reported: single-query p50/p99 latency and QPS (one query a call, as a
server sees them), batch QPS (all queries in one call), recall@10, and build (export) time.

The lsr rows call its index in this process, while every Milvus call is a gRPC round trip: milvus-lite 3.x
(pure Python and NumPy, faiss for HNSW) starts its server as a gRPC thread pool inside the calling process
(``milvus_lite.server_manager``: ``start_server_in_thread`` on ``127.0.0.1``, a free port) and pymilvus reaches
it at ``http://127.0.0.1:PORT``, TCP loopback, not a Unix socket. So the row "lsr serve (gRPC), sparse exact"
times lsr over the same kind of transport: a real ``lsr serve`` subprocess over the same float16 index on
127.0.0.1, sent the same pre-encoded query vectors one per call through :class:`lsr.serve.client.Client`
(a sparse vector in the request: neither side encodes text), and all of them in as few BatchSearch calls as
the server's default limits allow (256 queries a call: two calls for SciFact's 300). What still differs:
Milvus's server shares this process (and its interpreter lock) with its client, lsr's runs in a process of its
own; each engine's own client library (pymilvus, lsr's client, both on grpcio) serialises its own messages
(Milvus a placeholder group of packed vectors plus search parameters, lsr repeated term ids and weights). Same
machine, same queries, same k, one call per query. Dense has no such row: ``lsr serve`` searches dense by text only
(a vector in a request goes to the sparse index), and encoding queries on one side only would time a different
thing. The load average is recorded, nothing is pinned.

Run: ``PYTHONPATH=. python -m lsr.eval.bench.milvus_compare [SHARED] [OUT.json]``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from lsr.eval.bench.output import save_json
from lsr.eval.bench.serve import start_server, stop_server
from lsr.indexing import cache
from lsr.indexing.dense import open_dense_index
from lsr.indexing.dense.exact import exact_top_k
from lsr.indexing.milvus import MilvusRetriever, export_milvus
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.search import Searcher
from lsr.serve.client import Client
from lsr.serve.engine import Limits

from lsr.data.beir import BeirDataset
from lsr.fsutil import check_file_replaceable
from lsr.models import load_encoder


def _timed(single: Callable[[int], list[str]], batch: Callable[[], list[list[str]]], n: int) -> dict[str, Any]:
    latencies, tops = [], []
    for i in range(n):
        start = time.perf_counter()
        tops.append(single(i))
        latencies.append(time.perf_counter() - start)
    start = time.perf_counter()
    batch()
    batch_s = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100)
    return {
        "p50_ms": 1000 * q[49],
        "p99_ms": 1000 * q[98],
        "qps_single": n / sum(latencies),
        "qps_batch": n / batch_s,
        "tops": tops,
    }


def _recall(tops: list[list[str]], exact: list[list[str]]) -> float:
    return float(
        np.mean([len(set(t[:10]) & set(e[:10])) / max(len(e[:10]), 1) for t, e in zip(tops, exact, strict=True)])
    )


def _sparse_input(row: sp.csr_matrix) -> tuple[list[int], list[float]]:
    """One encoded query row as the client's sparse vector (term ids, weights)."""
    return row.indices.tolist(), row.data.tolist()


def batch_calls(terms: list[int], k: int, limits: Limits) -> list[range]:
    """Consecutive queries of ``terms`` terms each, grouped into as few BatchSearch calls as a server with ``limits``
    accepts: at most ``max_batch_queries`` a call and at most ``max_request_cost`` work, each query costing its terms
    plus ``k`` (:meth:`lsr.serve.engine.Engine.query_cost`)."""
    calls, start, cost = [], 0, 0
    for number, size in enumerate(terms):
        if number > start and (number - start == limits.max_batch_queries or cost + size + k > limits.max_request_cost):
            calls.append(range(start, number))
            start, cost = number, 0
        cost += size + k
    return [*calls, range(start, len(terms))] if terms else calls


def lsr_serve_sparse(index_dir: Path, vectors: sp.csr_matrix, k: int = 10) -> dict[str, Any]:
    """``lsr serve`` over ``index_dir`` in a subprocess on 127.0.0.1, timed as :func:`_timed` does on the rows of
    ``vectors`` (one Search a row, then all of them in as few BatchSearch calls as the server's limits allow:
    :func:`batch_calls`); with the single calls' top-``k`` ids as ``tops``. The server is stopped before returning,
    whatever happens."""
    n = vectors.shape[0]
    calls = batch_calls(np.diff(vectors.indptr).tolist(), k, Limits())  # the server's defaults, as started here
    process, address = start_server(["--index", str(index_dir)])
    try:
        with Client(address) as client:

            def single(i: int) -> list[str]:
                return [d for d, _ in client.search(_sparse_input(vectors[i]), k=k)]

            def batch() -> list[list[str]]:
                inputs = [_sparse_input(vectors[i]) for i in range(n)]
                return [
                    [d for d, _ in found]
                    for call in calls
                    for found in client.batch_search(inputs[call.start : call.stop], k=k)
                ]

            single(0)  # the first call opens the connection
            return _timed(single, batch, n)
    finally:
        stop_server(process)


def main(shared: Path, out: Path | None) -> dict[str, Any]:
    if out is not None:
        check_file_replaceable(out, "json")
    root = cache.cache_root()
    dataset = BeirDataset(shared / "data" / "beir" / "scifact")
    sparse_model = cache.model_name(shared / "models" / "splade-tiny")
    dense_model = "all-minilm-l6-v2"
    sparse_dir = cache.entry(root, "index", dataset, sparse_model, "sparse-float16")
    dense_dir = cache.entry(root, "index", dataset, dense_model, "hnsw-m32-ef_construction200")
    dense_vectors = cache.entry(root, "vectors", dataset, dense_model)
    queries = dataset.queries()
    qrels = dataset.qrels("test")
    ids = [q for q in queries if q in qrels]
    texts = [queries[q] for q in ids]
    n = len(ids)
    sq = load_encoder(sparse_model, device="cpu").encode_query(texts)
    dq = load_encoder(dense_model, device="cpu").encode_query(texts)
    results: dict[str, Any] = {"dataset": "scifact", "queries": n, "rows": [], "load_average_start": os.getloadavg()}

    index = SparseIndex.open(sparse_dir)
    searcher = Searcher(index)
    searcher.search(sq[:1], k=10)  # compile

    def ours_sparse(i: int) -> list[str]:
        docs, _, sizes = searcher.search(sq[i], k=10)
        return [index.doc_id(int(d)) for d in docs[0, : sizes[0]]]

    lsr_sparse = _timed(ours_sparse, lambda: searcher.search(sq, k=10), n)
    exact_sparse = lsr_sparse["tops"]
    served_sparse = lsr_serve_sparse(sparse_dir, sq)

    dense = open_dense_index(dense_dir)
    dense.search(dq[:1], k=10)
    exact_rows, _ = exact_top_k(np.vstack([v for _, v in _dense_shards(dense_vectors)]), _unit(dq), 10)
    all_ids = [i for ids_, _ in _dense_shards(dense_vectors, ids_only=True) for i in ids_]
    exact_dense = [[all_ids[r] for r in row if r >= 0] for row in exact_rows]

    def ours_dense(i: int) -> list[str]:
        rows, _ = dense.search(dq[i : i + 1], k=10)
        return [dense.ids[r] for r in rows[0] if r >= 0]

    lsr_dense = _timed(ours_dense, lambda: dense.search(dq, k=10), n)

    with tempfile.TemporaryDirectory() as tmp:
        uri = str(Path(tmp) / "bench.db")
        start = time.perf_counter()
        export_milvus(uri, "scifact", sparse=sparse_dir, dense=dense_vectors, hnsw=(32, 200))
        export_s = time.perf_counter() - start
        milvus = MilvusRetriever(uri, "scifact")
        milvus.search_sparse(sq[:1], k=10)

        def theirs_sparse(i: int) -> list[str]:
            return [d for d, _ in milvus.search_sparse(sq[i], k=10)[0]]

        def theirs_dense(i: int) -> list[str]:
            return [d for d, _ in milvus.search_dense(dq[i : i + 1], k=10, ef=256)[0]]

        mil_sparse = _timed(theirs_sparse, lambda: milvus.search_sparse(sq, k=10), n)
        mil_dense = _timed(theirs_dense, lambda: milvus.search_dense(dq, k=10, ef=256), n)
        milvus.milvus.close()

    for engine, kind, timing, exact in (
        ("lsr (Numba inverted index, exact)", "sparse", lsr_sparse, exact_sparse),
        ("lsr serve (gRPC), sparse exact", "sparse", served_sparse, exact_sparse),
        ("Milvus Lite (SPARSE_INVERTED_INDEX, exact)", "sparse", mil_sparse, exact_sparse),
        ("lsr (hnswlib HNSW, ef 256)", "dense", lsr_dense, exact_dense),
        ("Milvus Lite (HNSW, ef 256)", "dense", mil_dense, exact_dense),
    ):
        tops = timing.pop("tops")
        results["rows"].append({"engine": engine, "kind": kind, **timing, "recall@10": _recall(tops, exact)})
    results["milvus_export_s"] = export_s
    results["load_average_end"] = os.getloadavg()
    if out is not None:
        save_json(results, out)
    return results


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _dense_shards(folder: Path, ids_only: bool = False) -> list[tuple[list[str], np.ndarray]]:
    from lsr.encode.shards import iter_shards

    return [(ids, None if ids_only else _unit(v)) for ids, v in iter_shards(folder)]


if __name__ == "__main__":
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[3] / "shared"
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).with_name("results-milvus-scifact.json")
    report = main(shared, target)
    for row in report["rows"]:
        print(json.dumps(row))
    print("milvus export s", report["milvus_export_s"])
