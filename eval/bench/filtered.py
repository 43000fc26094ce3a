"""What a document filter costs inside exact sparse search: unfiltered vs filtered single-query latency.

Filters are tested inside the search kernels (:mod:`lsr.indexing.filters`); the server used to filter hits after
search, widening the search 4x a round until k allowed hits were left, so a one-id filter cost about 100x an
unfiltered search at 200k documents. This times one query at a time (one thread: a one-query search runs on one
thread whatever ``NUMBA_NUM_THREADS``, which the command sets to 1 anyway so the index build does not compete)
over an index of random vectors whose terms follow a Zipf law (a few terms in most documents, as in SPLADE
vectors) or a profile fitted by ``lsr bench synthetic``. The filter cases: none; allow one random document;
allow 1% and 10% of the documents (random); deny one document (the query's unfiltered best). For each query and
repetition, new masks are built from document ids (:meth:`~lsr.indexing.sparse.format.SparseIndex.doc_numbers`,
:func:`~lsr.indexing.filters.allow_mask`; timed apart), then the query is searched once per case, a different case
first each repetition. Reported per case: median and p99 milliseconds per query over all queries and
repetitions, and the median time to build the mask.

    NUMBA_NUM_THREADS=1 python -m lsr.eval.bench.filtered --documents 200000 --queries 200 --repeats 5 \\
        --index runs/bench/filtered-200k --output runs/bench/filtered-200k.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from lsr.eval.bench.output import json_output, save_json
from lsr.eval.bench.synthetic import BANDS, QUANTILES, Profile, Side, generate_documents, generate_queries
from lsr.indexing.filters import allow_mask
from lsr.indexing.sparse.build import build_index
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.search import Searcher

VOCAB = 30522  # BERT's, as SPLADE's


def zipf_profile(vocab: int = VOCAB, doc_terms: int = 230, query_terms: int = 30, seed: int = 0) -> Profile:
    """Random vectors shaped like SPLADE's: about ``doc_terms`` terms a document and ``query_terms`` a query, drawn
    by a Zipf law over the vocabulary (term rank r has probability proportional to 1 / r), rare terms weighing more.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(vocab)  # the most frequent terms are scattered over the vocabulary, as real ones are
    probability = np.empty(vocab)
    probability[order] = 1.0 / np.arange(1, vocab + 1)
    band = np.empty(vocab, dtype=np.int64)
    band[order] = np.arange(vocab) * BANDS // vocab
    levels = np.linspace(0, 1, QUANTILES)
    weights = [(0.05 + (0.5 + 0.2 * b) * levels).tolist() for b in range(BANDS)]

    def side(mean: int) -> Side:
        lengths = np.clip(rng.normal(mean, mean / 4, 20_000), 1, None).astype(int)
        return Side(lengths.tolist(), (probability / probability.sum()).tolist(), band.tolist(), weights)

    return Profile(vocab, side(doc_terms), side(query_terms))


def _timed(search: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Milliseconds of one call."""
    started = time.perf_counter()
    search(*args, **kwargs)
    return 1000 * (time.perf_counter() - started)


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"p50_ms": statistics.median(ordered), "p99_ms": ordered[int(0.99 * (len(ordered) - 1))]}


def bench_filtered(index: SparseIndex, queries: sp.csr_matrix, k: int = 10, repeats: int = 5, seed: int = 0) -> dict:
    """Per filter case, the median and p99 milliseconds of a one-query exact search, and of building its mask."""
    rng = np.random.default_rng(seed)
    n = index.num_docs
    searcher = Searcher(index)
    best, _, sizes = searcher.search(queries, k=1)  # compiles, builds the tiled copy if any query needs it
    ids = {
        "allow 1": lambda q: [index.doc_id(int(rng.integers(n)))],
        "allow 1%": lambda q: [index.doc_id(int(d)) for d in rng.choice(n, n // 100, replace=False)],
        "allow 10%": lambda q: [index.doc_id(int(d)) for d in rng.choice(n, n // 10, replace=False)],
        "deny 1": lambda q: [index.doc_id(int(best[q, 0] if sizes[q] else 0))],
    }
    index.doc_numbers([])  # the id lookup is built once per index, on first use
    cases: dict[str, list[float]] = {"unfiltered": [], **{name: [] for name in ids}}
    mask_ms: dict[str, list[float]] = {name: [] for name in ids}
    for repeat in range(repeats):
        for q in range(queries.shape[0]):
            masks: dict[str, np.ndarray | None] = {"unfiltered": None}
            for name, draw in ids.items():
                chosen = draw(q)
                started = time.perf_counter()
                numbers = index.doc_numbers(chosen)
                masks[name] = allow_mask(n, deny_numbers=numbers) if name.startswith("deny") else allow_mask(n, numbers)
                mask_ms[name].append(1000 * (time.perf_counter() - started))
            names = list(cases)
            turn = repeat % len(names)  # building the masks leaves caches cold: each case goes first in turn
            for name in names[turn:] + names[:turn]:
                cases[name].append(_timed(searcher.search, queries[q], k=k, allow=masks[name]))
    rows = []
    for name, times in cases.items():
        row = {"filter": name, **_summary(times)}
        if name in mask_ms:
            row["mask_p50_ms"] = statistics.median(mask_ms[name])
        rows.append(row)
    base = rows[0]["p50_ms"]
    for row in rows:
        row["vs_unfiltered_p50"] = row["p50_ms"] / base
    return {
        "documents": n,
        "postings": index.meta.nnz,
        "queries": queries.shape[0],
        "query_terms_avg": queries.nnz / max(queries.shape[0], 1),
        "k": k,
        "repeats": repeats,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lsr.eval.bench.filtered", description=__doc__)
    parser.add_argument("--documents", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--profile", type=Path, help="profile.json from `lsr bench synthetic` (default: Zipf terms)")
    parser.add_argument("--index", type=Path, required=True, help="index folder: built here unless it exists")
    parser.add_argument("--output", type=json_output, help="write the results as JSON here too")
    args = parser.parse_args(argv)
    profile = Profile.load(args.profile) if args.profile else zipf_profile()
    if not args.index.exists():
        build_index(lambda: generate_documents(profile, args.documents), args.index, "random", "splade")
    result = bench_filtered(SparseIndex.open(args.index), generate_queries(profile, args.queries), args.k, args.repeats)
    print(json.dumps(result, indent=2))
    if args.output:
        save_json(result, args.output)


if __name__ == "__main__":
    main()
