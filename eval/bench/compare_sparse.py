"""lsr's inverted index against Lucene impact search (pyserini) and Seismic on the same vectors and queries.

All three systems get the same integer-quantised vectors (weights x 100, rounded: the
quantisation Anserini uses for SPLADE), so their exact top-10 lists must agree and
recall@10 of approximate settings is measured against one exact reference (lsr's,
which equals a brute-force product). Reported per system and setting: batch
ms/query (all queries in one call, all threads), single-query p50/p99 latency,
recall@10, build time and index size.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from eval.bench.search import recall_at
from indexing.sparse.build import build_index
from indexing.sparse.format import SparseIndex
from indexing.sparse.search import Searcher

SCALE = 100


def quantise(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Integer weights ``round(100 w)`` as float32, zeros dropped."""
    out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.data = np.rint(out.data * SCALE).astype(np.float32)
    out.eliminate_zeros()
    out.sort_indices()
    return out


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _latency(run_one: Callable[[int], Any], count: int) -> dict[str, float]:
    times = []
    for row in range(count):
        started = time.perf_counter()
        run_one(row)
        times.append(time.perf_counter() - started)
    times.sort()
    return {"p50_ms": 1000 * statistics.median(times), "p99_ms": 1000 * times[int(0.99 * (len(times) - 1))]}


def _row(system: str, setting: str, batch_s: float, n: int, latency: dict[str, float], recall: float) -> dict[str, Any]:
    return {
        "system": system,
        "setting": setting,
        "batch_ms_per_query": 1000 * batch_s / n,
        **latency,
        "recall@10": recall,
    }


class LuceneImpact:
    """Anserini's impact index and searcher over ``JsonVectorCollection`` documents (``t<id>`` tokens)."""

    def __init__(self, ids: list[str], docs: sp.csr_matrix, folder: Path, threads: int) -> None:
        from indexing.lucene.jvm import lucene_search_module

        lucene_search_module()
        from jnius import autoclass

        collection = folder / "collection"
        collection.mkdir(parents=True)
        with open(collection / "docs.jsonl", "w") as out:
            for row, doc_id in enumerate(ids):
                start, end = docs.indptr[row], docs.indptr[row + 1]
                vector = {f"t{t}": int(w) for t, w in zip(docs.indices[start:end], docs.data[start:end], strict=True)}
                out.write(json.dumps({"id": doc_id, "contents": "", "vector": vector}) + "\n")
        started = time.perf_counter()
        autoclass("io.anserini.index.IndexCollection").main(
            [
                "-collection",
                "JsonVectorCollection",
                "-input",
                str(collection),
                "-index",
                str(folder / "index"),
                "-generator",
                "DefaultLuceneDocumentGenerator",
                "-impact",
                "-pretokenized",
                "-threads",
                str(threads),
                "-quiet",
            ]
        )
        self.build_s = time.perf_counter() - started
        shutil.rmtree(collection)
        self.size = _folder_size(folder / "index")
        self.searcher = autoclass("io.anserini.search.SimpleImpactSearcher")(str(folder / "index"))
        self._map = autoclass("java.util.HashMap")
        self._list = autoclass("java.util.ArrayList")
        self._int = autoclass("java.lang.Integer")
        self.threads = threads

    def _query(self, queries: sp.csr_matrix, row: int):  # noqa: ANN202 - a Java map
        jmap = self._map()
        start, end = queries.indptr[row], queries.indptr[row + 1]
        for t, w in zip(queries.indices[start:end], queries.data[start:end], strict=True):
            jmap.put(f"t{t}", self._int(int(w)))
        return jmap

    def batch(self, queries: sp.csr_matrix, k: int) -> list[list[str]]:
        jqueries, jids = self._list(), self._list()
        for row in range(queries.shape[0]):
            jqueries.add(self._query(queries, row))
            jids.add(str(row))
        results = self.searcher.batch_search(jqueries, jids, k, self.threads)
        return [[hit.docid for hit in results.get(str(row))] for row in range(queries.shape[0])]

    def one(self, queries: sp.csr_matrix, row: int, k: int) -> list[str]:
        return [hit.docid for hit in self.searcher.search(self._query(queries, row), k)]


def _by_query(results: list[list[tuple[str, float, str]]], n: int) -> list[list[str]]:
    """Seismic's batch results as document ids per query, in query order (it returns them unordered)."""
    hits = {group[0][0]: [hit[2] for hit in group] for group in results if group}
    return [hits.get(str(row), []) for row in range(n)]


def _seismic(ids: list[str], docs: sp.csr_matrix, threads: int) -> tuple[Any, float]:
    import seismic

    dataset = seismic.SeismicDataset()
    dataset.add_documents_by_id(
        ids, docs.indices.astype(np.int64), docs.data.astype(np.float32), docs.indptr.astype(np.int64)
    )
    started = time.perf_counter()
    index = seismic.SeismicIndex.build_from_dataset(dataset, num_threads=threads)
    return index, time.perf_counter() - started


def compare(
    ids: list[str],
    docs: sp.csr_matrix,
    queries: sp.csr_matrix,
    k: int = 10,
    lsr_settings: tuple[tuple[int, int], ...] = ((400, 50),),
    seismic_settings: tuple[tuple[int, float], ...] = ((10, 0.9), (20, 0.9), (40, 1.0)),
    lucene: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run every system on the same quantised vectors; returns rows and the context of the run."""
    threads = threads or os.cpu_count() or 1
    docs, queries = quantise(docs), quantise(queries)
    queries = queries[np.diff(queries.indptr) > 0]
    n = queries.shape[0]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        build_index(lambda: [(ids, docs)], Path(tmp) / "lsr", "bench", "splade")
        lsr_build = time.perf_counter() - started
        index = SparseIndex.open(Path(tmp) / "lsr")
        searcher = Searcher(index, threads=threads)
        searcher.search(queries[:2], k=k, budget=10, rerank=k)  # compile
        started = time.perf_counter()
        exact, _, sizes = searcher.search(queries, k=k)
        batch = time.perf_counter() - started
        reference = [{ids[d] for d in exact[i, : sizes[i]]} for i in range(n)]

        def recall(found: list[list[str]]) -> float:
            shares = [len(ref & set(got)) / len(ref) for ref, got in zip(reference, found, strict=True) if ref]
            return float(np.mean(shares))

        rows.append(_row("lsr", "exact", batch, n, _latency(lambda r: searcher.search(queries[r], k=k), n), 1.0))
        for budget, rerank in lsr_settings:
            started = time.perf_counter()
            found, _, _ = searcher.search(queries, k=k, budget=budget, rerank=rerank)
            batch = time.perf_counter() - started
            lat = _latency(lambda r, b=budget, rr=rerank: searcher.search(queries[r], k=k, budget=b, rerank=rr), n)
            rows.append(_row("lsr", f"budget={budget} rerank={rerank}", batch, n, lat, recall_at(exact, found, sizes)))
        sizes_mib = {"lsr": _folder_size(Path(tmp) / "lsr") / 2**20}
        builds = {"lsr": lsr_build}
        if lucene:
            engine = LuceneImpact(ids, docs, Path(tmp) / "lucene", threads)
            engine.batch(queries[:2], k)
            started = time.perf_counter()
            found = engine.batch(queries, k)
            batch = time.perf_counter() - started
            rows.append(
                _row(
                    "lucene-impact", "exact", batch, n, _latency(lambda r: engine.one(queries, r, k), n), recall(found)
                )
            )
            sizes_mib["lucene-impact"] = engine.size / 2**20
            builds["lucene-impact"] = engine.build_s
        seismic_index, builds["seismic"] = _seismic(ids, docs, threads)
        import seismic

        text = seismic.get_seismic_string()
        qids = np.array([str(i) for i in range(n)], dtype=text)
        comps = [queries.indices[queries.indptr[i] : queries.indptr[i + 1]].astype(text) for i in range(n)]
        vals = [queries.data[queries.indptr[i] : queries.indptr[i + 1]].astype(np.float32) for i in range(n)]
        for cut, heap in tqdm(seismic_settings, desc="seismic", leave=False):
            started = time.perf_counter()
            out = seismic_index.batch_search(qids, comps, vals, k, cut, heap, num_threads=threads)
            batch = time.perf_counter() - started
            lat = _latency(lambda r, c=cut, h=heap: seismic_index.search(qids[r], comps[r], vals[r], k, c, h), n)
            rows.append(
                _row(
                    "seismic",
                    f"query_cut={cut} heap_factor={heap}",
                    batch,
                    n,
                    lat,
                    recall(_by_query(out, n)),
                )
            )
    return {
        "documents": len(ids),
        "postings": int(docs.nnz),
        "queries": n,
        "k": k,
        "threads": threads,
        "index_mib": sizes_mib,
        "build_s": builds,
        "rows": rows,
    }
