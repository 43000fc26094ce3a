"""Search speed and the recall cost of pruning, for one index and one query set.

Exact search is timed in batches (all threads) and one query at a time (latency
percentiles); each pruning budget is reported with its recall@10 against exact
search. Competitor columns (Lucene impact search, Seismic) are measured by
their own benchmark runs.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.search import Searcher


def recall_at(reference: np.ndarray, found: np.ndarray, sizes: np.ndarray) -> float:
    """Mean share of each query's reference top-k that ``found`` also returns."""
    shares = []
    for row in range(len(reference)):
        want = set(reference[row, : sizes[row]].tolist())
        if want:
            shares.append(len(want & set(found[row].tolist())) / len(want))
    return float(np.mean(shares)) if shares else 1.0


def _latencies(searcher: Searcher, queries: sp.csr_matrix, k: int, budget: int) -> dict[str, float]:
    times = []
    for row in range(queries.shape[0]):
        started = time.perf_counter()
        searcher.search(queries[row], k=k, budget=budget)
        times.append(time.perf_counter() - started)
    times.sort()
    return {"p50_ms": 1000 * statistics.median(times), "p99_ms": 1000 * times[int(0.99 * (len(times) - 1))]}


def bench_search(
    index: SparseIndex, queries: sp.csr_matrix, k: int = 10, budgets: tuple[int, ...] = ()
) -> dict[str, Any]:
    searcher = Searcher(index)
    searcher.search(queries[:2], k=k)  # compile
    started = time.perf_counter()
    exact, _, sizes = searcher.search(queries, k=k)
    batch_s = time.perf_counter() - started
    rows = [
        {
            "mode": "exact",
            "budget": 0,
            "recall@10": 1.0,
            "batch_ms_per_query": 1000 * batch_s / queries.shape[0],
            **_latencies(searcher, queries, k, 0),
        }
    ]
    for budget in budgets:
        searcher.search(queries[:2], k=k, budget=budget)  # the pruned kernel's compile, outside the timing
        started = time.perf_counter()
        found, _, _ = searcher.search(queries, k=k, budget=budget)
        batch_s = time.perf_counter() - started
        rows.append(
            {
                "mode": "pruned",
                "budget": budget,
                "recall@10": recall_at(exact, found, sizes),
                "batch_ms_per_query": 1000 * batch_s / queries.shape[0],
                **_latencies(searcher, queries, k, budget),
            }
        )
    disk = sum(
        (index.path / name).stat().st_size for name in ("postings_docs.npy", "postings_codes.npy", "offsets.npy")
    )
    return {
        "documents": index.num_docs,
        "postings": index.meta.nnz,
        "queries": queries.shape[0],
        "query_terms_avg": queries.nnz / max(queries.shape[0], 1),
        "index_mib": disk / 2**20,
        "threads": searcher.threads,
        "rows": rows,
    }
