"""The synthetic generator's corpora against the real vectors they are fitted to, at equal size (issue 21).

Why: the generator (:mod:`lsr.eval.bench.synthetic`) draws each document's terms independently, by corpus
frequency. Real SPLADE documents share topics, so a real corpus has near neighbours, queries that align with a
few documents, and top-k lists that stand out from the rest, which is what clustering and skipping engines
(Seismic, BMP, dynamic pruning) exploit. The 200k, 1M and 8.8M rows of eval/RESULTS.md run on generated corpora,
so they are scaling probes only; this module measures how far the generated statistics are from the real ones:

* nearest-neighbour cosine: each document of a seeded sample against every other document, exactly;
* query alignment and score gaps: each query's exact top :data:`DEEP` dot products, and the cosine of its top-1;
* Seismic's recall@10 against lsr's exact top 10 at one fixed setting, its authors' guide's, with its median
  latency and lsr exact's (the cost yardstick), under the engines benchmark's protocol
  (:func:`lsr.eval.bench.engines.harness.compare`).

Both corpora are the integer impacts every engine indexes (``round(100 w)``). Products run in blocks of rows of at
most :data:`CELLS` scores, so memory stays bounded at any corpus size.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from lsr.eval.bench.engines import engine
from lsr.eval.bench.engines.base import Vectors
from lsr.eval.bench.engines.harness import compare
from lsr.eval.bench.engines.inputs import query_vectors
from lsr.eval.bench.figures import save_png
from lsr.eval.bench.synthetic import Profile, generate_documents, generate_queries
from lsr.indexing.lucene.impact import quantise

CELLS = 1 << 22
"""Scores held at once by a blocked product (32 MiB of float64)."""
CUT = 10
"""The k of recall and of the score gaps' shallow end."""
DEEP = 100
"""How many exact scores per query the score gaps read."""


def normalised(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit length (float64), so dot products are cosines; an empty row stays empty."""
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ matrix)


def top_k(
    left: sp.csr_matrix, right: sp.csr_matrix, k: int, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``left``'s ``k`` largest dot products with rows of ``right`` (rows and scores, best first).

    ``exclude[i]`` is a row of ``right`` left out for row ``i`` of ``left`` (a document's own row, when the
    nearest *other* document is wanted). Exact: every score is computed, in blocks of rows of ``left`` holding
    at most :data:`CELLS` scores.
    """
    count = right.shape[0] - (exclude is not None)
    if count < k:
        raise ValueError(f"top {k} asked of {count} rows")
    transposed = sp.csr_matrix(right.T, dtype=np.float64)
    block = max(1, CELLS // right.shape[0])
    rows = np.empty((left.shape[0], k), dtype=np.int64)
    scores = np.empty((left.shape[0], k))
    for start in range(0, left.shape[0], block):
        stop = min(start + block, left.shape[0])
        dense = (left[start:stop] @ transposed).toarray()
        if exclude is not None:
            dense[np.arange(stop - start), exclude[start:stop]] = -np.inf
        best = np.argpartition(-dense, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(dense, best, axis=1), axis=1, kind="stable")
        rows[start:stop] = np.take_along_axis(best, order, axis=1)
        scores[start:stop] = np.take_along_axis(dense, rows[start:stop], axis=1)
    return rows, scores


def nearest_neighbour_cosine(docs: sp.csr_matrix, sample: int, seed: int) -> np.ndarray:
    """The cosine of each of ``sample`` documents (drawn with ``seed``) to its nearest other document."""
    chosen = np.sort(np.random.default_rng(seed).choice(docs.shape[0], size=min(sample, docs.shape[0]), replace=False))
    unit = normalised(docs)
    return top_k(unit[chosen], unit, 1, exclude=chosen)[1][:, 0]


def query_alignment(docs: sp.csr_matrix, queries: sp.csr_matrix, deep: int = DEEP) -> tuple[np.ndarray, np.ndarray]:
    """Each query's cosine to its top-1 document by dot product (the one retrieval returns first), and its top
    ``deep`` exact dot products, best first."""
    rows, scores = top_k(queries, docs, min(deep, docs.shape[0]))
    doc_norms = np.sqrt(np.asarray(docs.multiply(docs).sum(axis=1)).ravel())
    query_norms = np.sqrt(np.asarray(queries.multiply(queries).sum(axis=1)).ravel())
    lengths = query_norms * doc_norms[rows[:, 0]]
    return np.divide(scores[:, 0], lengths, out=np.zeros(len(lengths)), where=lengths > 0), scores


def score_gaps(scores: np.ndarray, cut: int = CUT) -> dict[str, float | int]:
    """How far each query's best scores stand out: medians of s1/s_cut, (s1 - s_cut)/s1 and s_last/s_cut over the
    queries whose ``cut``-th score is positive (one matching fewer documents has no top ``cut`` to compare).

    ``scores`` holds each query's top exact scores, best first; ``last`` is its final column (:data:`DEEP`). A flat
    top list (ratios near 1, gap near 0) is where a pruning engine cannot tell the top k from the rest early.
    """
    cut = min(cut, scores.shape[1])  # a corpus of fewer documents than the cut
    first, at_cut, last = scores[:, 0], scores[:, cut - 1], scores[:, -1]
    keep = at_cut > 0
    return {
        "cut": cut,
        "deep": scores.shape[1],
        "queries": int(np.count_nonzero(keep)),
        "first_over_cut": _median(first[keep] / at_cut[keep]),
        "relative_gap": _median((first[keep] - at_cut[keep]) / first[keep]),
        "last_over_cut": _median(last[keep] / at_cut[keep]),
    }


def _median(values: np.ndarray) -> float:
    """The median, or NaN where no query qualifies (numpy would warn and give NaN too)."""
    return float(np.median(values)) if len(values) else math.nan


def _summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "median": float(np.median(values))}


def seismic_at_guide(docs: Vectors, queries: Vectors, rounds: int) -> dict[str, Any]:
    """Seismic's recall@:data:`CUT` and batch-1 latency at its guide's build and search setting (the engines
    benchmark's build, ``query_cut`` 10, ``heap_factor`` 0.8: the adapter's defaults), and lsr exact's latency in
    the same interleaved rounds, so the two corpora are compared at one fixed cost setting rather than at a recall
    each was tuned to."""
    approximate = engine("seismic")
    guide = dict(approximate.search_settings)  # the adapter's defaults, named so the result's row records them
    report = compare([engine("lsr"), approximate], docs, queries, k=CUT, rounds=rounds, settings=[[{}], [guide]])
    exact, seismic = report.rows
    return {
        "setting": seismic.label,
        "query_cut": seismic.settings["query_cut"],
        "heap_factor": seismic.settings["heap_factor"],
        "recall": seismic.recall,
        "p50_ms": seismic.p50_ms,
        "mean_ms": seismic.mean_ms,
        "lsr_exact_p50_ms": exact.p50_ms,
        "builds": report.builds,
        "load_average": report.load_average,
    }


def corpus_stats(docs: Vectors, queries: Vectors, sample: int, seed: int, rounds: int, seismic: bool) -> dict:
    """Every statistic of one corpus and its queries (Seismic's only when ``seismic``)."""
    neighbours = nearest_neighbour_cosine(docs.matrix, sample, seed)
    alignment, scores = query_alignment(docs.matrix, queries.matrix)
    out: dict[str, Any] = {
        "documents": len(docs),
        "queries": len(queries),
        "postings_per_document": docs.matrix.nnz / len(docs),
        "terms_per_query": queries.matrix.nnz / len(queries),
        "nearest_neighbour_cosine": {**_summary(neighbours), "values": neighbours.tolist()},
        "query_top1_cosine": _summary(alignment),
        "score_gaps": score_gaps(scores),
    }
    if seismic:
        out["seismic"] = seismic_at_guide(docs, queries, rounds)
    return out


def twin(profile: Profile, documents: int, queries: int, seed: int) -> tuple[Vectors, Vectors]:
    """A generated corpus and query set of the given sizes, seeded as `lsr bench synthetic` seeds them (documents
    ``seed``, queries ``seed + 1``), quantised as the real vectors are."""
    shards = list(generate_documents(profile, documents, seed=seed))
    docs = Vectors([i for ids, _ in shards for i in ids], quantise(sp.vstack([m for _, m in shards], format="csr")))
    generated = generate_queries(profile, queries, seed + 1)
    return docs, query_vectors([f"q{i}" for i in range(queries)], generated)


def compare_with_twin(
    docs: Vectors,
    queries: Vectors,
    profile: Profile,
    sample: int = 1000,
    seed: int = 1,
    rounds: int = 3,
    seismic: bool = True,
) -> dict[str, Any]:
    """The statistics of real ``docs`` and ``queries`` and of a generated twin of the same size from ``profile``."""
    fake_docs, fake_queries = twin(profile, len(docs), len(queries), seed)
    return {
        "seed": seed,
        "sample": sample,
        "load_average_start": list(os.getloadavg()),
        "real": corpus_stats(docs, queries, sample, seed, rounds, seismic),
        "synthetic": corpus_stats(fake_docs, fake_queries, sample, seed, rounds, seismic),
        "load_average_end": list(os.getloadavg()),
    }


def table_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The table's rows: a statistic, its real value, its synthetic value."""
    real, fake = result["real"], result["synthetic"]
    gaps = real["score_gaps"]
    cut, deep = gaps["cut"], gaps["deep"]

    def row(label: str, pick: Any, style: str = "{:.3f}") -> tuple[str, str, str]:
        return label, style.format(pick(real)), style.format(pick(fake))

    out = [
        row("documents", lambda s: s["documents"], "{:,}"),
        row("queries", lambda s: s["queries"], "{:,}"),
        row("postings per document, mean", lambda s: s["postings_per_document"], "{:.1f}"),
        row("terms per query, mean", lambda s: s["terms_per_query"], "{:.1f}"),
        row(f"NN cosine, mean ({result['sample']:,} docs)", lambda s: s["nearest_neighbour_cosine"]["mean"]),
        row("NN cosine, median", lambda s: s["nearest_neighbour_cosine"]["median"]),
        row("query to top-1 doc cosine, mean", lambda s: s["query_top1_cosine"]["mean"]),
        row("query to top-1 doc cosine, median", lambda s: s["query_top1_cosine"]["median"]),
        row(f"s1 / s{cut}, median", lambda s: s["score_gaps"]["first_over_cut"]),
        row(f"(s1 - s{cut}) / s1, median", lambda s: s["score_gaps"]["relative_gap"]),
        row(f"s{deep} / s{cut}, median", lambda s: s["score_gaps"]["last_over_cut"]),
    ]
    if "seismic" in real:
        setting = f"cut {real['seismic']['query_cut']}, heap {real['seismic']['heap_factor']}"
        out += [
            row(f"Seismic recall@{cut} ({setting})", lambda s: s["seismic"]["recall"]),
            row("Seismic p50 ms (batch 1, one thread)", lambda s: s["seismic"]["p50_ms"]),
            row("lsr exact p50 ms (same rounds)", lambda s: s["seismic"]["lsr_exact_p50_ms"]),
        ]
    return out


def table(result: dict[str, Any]) -> str:
    """The result as one Markdown table of at most 80 columns (printed, and pasted into eval/RESULTS.md as is)."""
    lines = [("statistic", "real", "synthetic"), *table_rows(result)]
    width = max(len(label) for label, _, _ in lines)
    cells = [f"| {label:<{width}} | {real:>9} | {fake:>9} |" for label, real, fake in lines]
    return "\n".join([cells[0], f"| {'-' * width} | {'-' * 8}: | {'-' * 8}: |", *cells[1:]])


def plot(result: dict[str, Any], path: Path, title: str) -> None:
    """Histograms of the sampled documents' nearest-neighbour cosines, real and synthetic, at ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    bins = np.linspace(0.0, 1.0, 51)
    for number, side in enumerate(("real", "synthetic")):
        cosine = result[side]["nearest_neighbour_cosine"]
        label = f"{side} (mean {cosine['mean']:.3f}, median {cosine['median']:.3f})"
        ax.hist(cosine["values"], bins=bins, alpha=0.55, color=f"C{number}", label=label)
        ax.axvline(cosine["mean"], color=f"C{number}", linestyle="--", linewidth=1)
    ax.set_xlabel("cosine of a document to its nearest other document (exact)")
    ax.set_ylabel(f"documents (of {result['sample']:,} sampled)")
    ax.set_title(
        f"{title}\nnearest-neighbour cosine, real vs synthetic, {result['real']['documents']:,} documents each"
    )
    save_png(fig, ax, path)
