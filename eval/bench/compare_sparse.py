"""lsr's inverted index against Lucene impact search (pyserini) and Seismic on the same vectors and queries.

All three systems get the same integer-quantised vectors (weights x 100, rounded: the
quantisation Anserini uses for SPLADE), so their exact top-10 lists must agree and
recall@10 of approximate settings is measured against one exact reference (lsr's,
which equals a brute-force product). Reported per system and setting: batch
ms/query (all queries in one call, all threads), single-query p50/p99 latency,
recall@10, build time and index size.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from lsr.eval.bench.search import recall_at
from lsr.indexing.lucene.impact import ImpactSearcher, build_impact_index, quantise, token_names, write_json_vectors
from lsr.indexing.sparse.build import build_index
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.search import Searcher
from tqdm.auto import tqdm


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
    dynamic_settings: tuple[tuple[float, int], ...] = ((1.0, 100), (0.5, 100), (0.4, 100), (0.3, 300)),
    seismic_settings: tuple[tuple[int, float], ...] = ((10, 0.9), (20, 0.9), (40, 1.0)),
    lucene: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run every system on the same quantised vectors; returns rows and the context of the run."""
    threads = threads or os.cpu_count() or 1
    raw_docs = docs  # the Lucene export quantises by itself
    docs, queries = quantise(docs), quantise(queries)
    queries = queries[np.diff(queries.indptr) > 0]
    n = queries.shape[0]
    rows: list[dict[str, Any]] = []
    top_score_gap = None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # Every index is built before anything searches: after lsr's parallel (OpenMP) search the worker
        # threads spin for a while, and on a 2-core machine that starved the JVM's indexing threads.
        started = time.perf_counter()
        build_index(lambda: [(ids, docs)], root / "lsr", "bench", "splade")
        builds = {"lsr": time.perf_counter() - started}
        sizes_mib = {"lsr": _folder_size(root / "lsr") / 2**20}
        tokens = token_names(None, docs.shape[1])
        if lucene:
            write_json_vectors([(ids, raw_docs)], root / "collection", tokens)
            builds["lucene-impact"] = build_impact_index(root / "collection", root / "lucene", threads)
            sizes_mib["lucene-impact"] = _folder_size(root / "lucene") / 2**20
        seismic_index, builds["seismic"] = _seismic(ids, docs, threads)

        searcher = Searcher(SparseIndex.open(root / "lsr"), threads=threads)
        started = time.perf_counter()
        searcher.search(queries[:2], k=k)  # compiles the exact kernel and tiles the postings, outside the timed batch
        builds["lsr-warm-up"] = time.perf_counter() - started
        searcher.search(queries[:2], k=k, budget=10, rerank=k)  # compile
        searcher.search(queries[:2], k=k, alpha=1.0, rerank=k)
        started = time.perf_counter()
        exact, exact_scores, sizes = searcher.search(queries, k=k)
        batch = time.perf_counter() - started
        reference = [{ids[d] for d in exact[i, : sizes[i]]} for i in range(n)]

        def recall(found: list[list[str]]) -> float:
            shares = [len(ref & set(got)) / len(ref) for ref, got in zip(reference, found, strict=True) if ref]
            return float(np.mean(shares))

        rows.append(_row("lsr", "exact", batch, n, _latency(lambda r: searcher.search(queries[r], k=k), n), 1.0))
        approximate = [(f"budget={b} rerank={r}", {"budget": b, "rerank": r}) for b, r in lsr_settings]
        approximate += [(f"alpha={a} rerank={r}", {"alpha": a, "rerank": r}) for a, r in dynamic_settings]
        for setting, options in approximate:
            started = time.perf_counter()
            found, _, _ = searcher.search(queries, k=k, **options)
            batch = time.perf_counter() - started
            lat = _latency(lambda r, o=options: searcher.search(queries[r], k=k, **o), n)
            rows.append(_row("lsr", setting, batch, n, lat, recall_at(exact, found, sizes)))
        if lucene:
            engine = ImpactSearcher(root / "lucene", tokens, threads)
            engine.batch(queries[:2], k)
            started = time.perf_counter()
            hits = engine.batch(queries, k)
            batch = time.perf_counter() - started
            lat = _latency(lambda r: engine.search(queries, r, k), n)
            rows.append(_row("lucene-impact", "exact", batch, n, lat, recall([[d for d, _ in h] for h in hits])))
            # the same impacts on both sides: the best scores must agree exactly, query by query
            lucene_best = np.array([h[0][1] if h else 0.0 for h in hits])
            top_score_gap = float(np.abs(lucene_best - np.where(sizes > 0, exact_scores[:, 0], 0.0)).max())
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
            setting = f"query_cut={cut} heap_factor={heap}"
            rows.append(_row("seismic", setting, batch, n, lat, recall(_by_query(out, n))))
    return {
        "documents": len(ids),
        "postings": int(docs.nnz),
        "queries": n,
        "k": k,
        "threads": threads,
        "index_mib": sizes_mib,
        "build_s": builds,
        "lucene_top_score_gap": top_score_gap,
        "rows": rows,
    }
