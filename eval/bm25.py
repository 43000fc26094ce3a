"""The BM25 baseline on a BEIR split: index (or reuse), search, score, write the standard outputs."""

from __future__ import annotations

import time
from pathlib import Path

from lsr.indexing.lucene import bm25

from lsr import __version__
from lsr.data.beir import BeirDataset
from lsr.fsutil import claim_dir
from lsr.metrics import Evaluation, evaluate, write_evaluation
from lsr.runs import Run, drop_identical_ids


def run_bm25(
    dataset_path: str | Path,
    split: str,
    output_dir: str | Path,
    multifield: bool = False,
    k: int = 1000,
    k1: float = 0.9,
    b: float = 0.4,
    index_dir: str | Path | None = None,
    threads: int = 0,
) -> tuple[Run, Evaluation]:
    """Evaluate BM25 on ``split`` and return the run and its scores.

    The run drops a hit whose id equals its query's (BEIR's convention), so the
    written file scores the same under any trec_eval.
    """
    started = time.perf_counter()
    claim_dir(output_dir)  # before the index is built inside it
    dataset = BeirDataset(dataset_path)
    dataset.qrels_source(split)  # fail on a wrong split before spending time on indexing
    convention = "multifield" if multifield else "flat"
    index = Path(index_dir) if index_dir else Path(output_dir) / f"index-{convention}"
    bm25.build_index(dataset, index, convention, threads)
    queries, qrels = dataset.split(split)
    run = drop_identical_ids(bm25.search(index, queries, k=k, convention=convention, k1=k1, b=b, threads=threads))
    evaluation = evaluate(qrels, run)
    config = {
        "retriever": "bm25",
        "convention": convention,
        "dataset": str(dataset_path),
        "split": split,
        "k": k,
        "k1": k1,
        "b": b,
        "index": str(index),
        "queries": len(queries),
        "seconds": round(time.perf_counter() - started, 2),
        "lsr_version": __version__,
    }
    write_evaluation(output_dir, run, evaluation, config, tag=f"bm25-{convention}")
    return run, evaluation
