"""Clustered search over clusters built two ways, in one process: recall@10 and latency of every setting.

Why: a change to how clusters are built (here ``keep_list_term``) moves both recall and speed, and this machine's
timings drift by up to 1.4x between runs minutes apart, so two ``lsr bench engines`` runs cannot tell a few percent
apart. Both variants are built from the same vectors, and each setting is timed on both back to back (which goes
first alternates round by round) on the same queries; each recall target is then met by the cheapest setting of
each variant (median of the rounds' median latencies).

    python -m lsr.eval.bench.clusters_search_ab VECTORS DATASET SPLIT [--queries N] [--rounds R] [--output JSON]

VECTORS is an `lsr encode` folder, DATASET a BEIR folder whose SPLIT's queries are encoded by the vectors' model.
The variants are ``keep_list_term`` off and on, every other setting the default; the grid is lsr's clustered
grid of ``lsr bench engines`` (:data:`CLUSTER_CUTS` x :data:`HEAP_FACTORS`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from lsr.eval.bench.engines.base import CLUSTER_CUTS, HEAP_FACTORS, Answer, Vectors
from lsr.eval.bench.engines.harness import recall
from lsr.eval.bench.engines.inputs import corpus_vectors, query_texts, query_vectors
from lsr.indexing.sparse.build import build_index
from lsr.indexing.sparse.cluster_build import build_clusters
from lsr.indexing.sparse.clusters import ClusterSettings
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.search import Searcher
from tqdm import tqdm

from lsr.data.beir import BeirDataset
from lsr.encode.shards import Manifest
from lsr.fsutil import atomic_file
from lsr.models import load_encoder

TARGETS = (0.90, 0.95, 0.97, 0.99)


def _answers(searcher: Searcher, queries: Vectors, **setting: Any) -> tuple[list[Answer], np.ndarray]:
    """Each query alone (batch 1, one thread) and its seconds."""
    answers, seconds = [], np.empty(len(queries))
    for i in range(len(queries)):
        started = time.perf_counter()
        docs, scores, sizes = searcher.search_vector(*queries.row(i), k=10, **setting)
        seconds[i] = time.perf_counter() - started
        answers.append(Answer(docs[0, : sizes[0]].astype(np.int64), scores[0, : sizes[0]]))
    return answers, seconds


def _cheapest(rows: list[dict[str, Any]], variant: str, target: float) -> dict[str, Any] | None:
    """The variant's setting of lowest median latency among those reaching ``target`` recall, or None."""
    reaching = [row for row in rows if row["variant"] == variant and row["recall"] >= target]
    if not reaching:
        return None
    row = min(reaching, key=lambda row: np.median(row["p50_ms"]))
    return {"p50_ms": float(np.median(row["p50_ms"])), "query_cut": row["query_cut"],
            "heap_factor": row["heap_factor"], "recall": row["recall"]}  # fmt: skip


def compare(docs: Vectors, queries: Vectors, rounds: int, workdir: Path) -> dict[str, Any]:
    """Recall and per-round median latency of every setting for each variant, and the cheapest at each target.

    Each variant's clusters sit in a copy of one index (a searcher keeps the clusters it first opened, so the two
    cannot share a folder); the exact top 10 every recall is measured against comes from that index."""
    build_index(lambda: [(docs.ids, docs.matrix)], workdir / "index", "bench", "splade", weights="float16")
    reference, _ = _answers(Searcher(SparseIndex.open(workdir / "index")), queries)
    variants: dict[str, Searcher] = {}
    builds = {}
    for keep in (False, True):
        folder = shutil.copytree(workdir / "index", workdir / f"keep-{keep}")
        index = SparseIndex.open(folder)
        started = time.perf_counter()
        clusters = build_clusters(index, ClusterSettings(keep_list_term=keep))
        clusters.save(index)
        name = f"keep_list_term={keep}"
        builds[name] = {"seconds": time.perf_counter() - started, "summary_entries": len(clusters.summary_terms)}
        variants[name] = Searcher(SparseIndex.open(folder), threads=1)
    grid = [{"query_cut": c, "heap_factor": h} for c in CLUSTER_CUTS for h in HEAP_FACTORS]
    cases = [(name, setting) for setting in grid for name in variants]  # a setting's two variants side by side
    rows = []
    for name, setting in tqdm(cases, desc="warm-up and recall", unit=" settings"):
        found, _ = _answers(variants[name], queries, **setting)
        rows.append({"variant": name, **setting, "recall": recall(docs, queries, reference, found, 10), "p50_ms": []})
    load = []
    for number in tqdm(range(rounds), desc="timed rounds", unit=" rounds"):
        load.append(list(os.getloadavg()))
        for pair in range(0, len(cases), 2):  # each setting's variants back to back, which goes first alternating
            for position in (pair, pair + 1) if number % 2 == 0 else (pair + 1, pair):
                name, setting = cases[position]
                seconds = _answers(variants[name], queries, **setting)[1]
                rows[position]["p50_ms"].append(float(np.median(seconds) * 1000))
    best = {name: {f"{target:.2f}": _cheapest(rows, name, target) for target in TARGETS} for name in variants}
    return {"documents": len(docs), "queries": len(queries), "rounds": rounds, "load_average": load,
            "builds": builds, "matched_recall": best, "rows": rows}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("vectors", type=Path)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("split")
    parser.add_argument("--queries", type=int, default=1000, help="the split's first N queries")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, help="the whole result as JSON")
    args = parser.parse_args()
    docs = corpus_vectors(args.vectors)
    texts = query_texts(BeirDataset(args.dataset), args.split, args.queries)
    encoded = load_encoder(Manifest.load(args.vectors).model, device="cpu").encode_query(list(texts.values()))
    with tempfile.TemporaryDirectory(prefix="lsr-clusters-search-ab-") as tmp:
        result = compare(docs, query_vectors(list(texts), encoded), args.rounds, Path(tmp))
    for target in TARGETS:
        cells = []
        for name, found in result["matched_recall"].items():
            entry = found[f"{target:.2f}"]
            cells.append(
                f"{name}: "
                + ("-" if entry is None else f"{entry['p50_ms']:.4f} ms [{entry['query_cut']}, {entry['heap_factor']}]")
            )
        print(f"recall >= {target:.2f}  " + "  ".join(cells))
    if args.output is not None:
        with atomic_file(args.output) as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
