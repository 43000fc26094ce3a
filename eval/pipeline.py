"""``lsr eval run``: encode, index, search, fuse and score a retriever on BEIR splits in one call.

Retrievers are ``bm25``, ``sparse``, ``dense`` and ``hybrid`` (a fusion of any of
the other three, its "legs"). Encodings and indexes are cached (:mod:`lsr.indexing.cache`),
so a rerun, another split or a hybrid over legs already run costs only the queries.
Hybrid weights can be tuned on another split of the same dataset (optionally a
seeded sample of its queries) and are then applied, fixed, to the evaluated split.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lsr.indexing.cache import cache_root
from lsr.indexing.dense.settings import DenseSettings
from lsr.indexing.retrieval import Corpus, Hybrid, Retriever, RetrieverOptions, check_names, open_retriever
from lsr.indexing.sparse.settings import EXACT, Pruning

from lsr import __version__
from lsr.data.beir import BeirDataset
from lsr.defaults import DEFAULT_DENSE, DEFAULT_SPARSE
from lsr.errors import LsrError
from lsr.fsutil import claim_dir
from lsr.metrics import Evaluation, evaluate, write_evaluation
from lsr.runs import Run, drop_identical_ids

TUNE_MEASURE = "nDCG@10"


@dataclass
class RunSpec:
    """Everything that decides a run, recorded in ``config.json``."""

    retriever: str
    model: str | None = None
    dense_model: str = DEFAULT_DENSE
    legs: tuple[str, ...] = ("sparse", "dense")
    fusion: str = "rrf"
    weights: tuple[float, ...] | None = None
    tune_split: str | None = None
    tune_queries: int | None = None
    tune_seed: int = 0
    tune_step: float = 0.1
    multifield: bool = False
    k: int = 1000
    dense: DenseSettings = field(default_factory=DenseSettings)
    device: str = "auto"
    encoding: dict[str, Any] = field(default_factory=dict)
    """The sparse model's encoding settings (backend, max_length, stride, window_pooling), as ``lsr encode`` takes."""
    pruning: Pruning = EXACT
    """How the sparse leg searches: exact, or clustered (``--heap-factor``, clusters built beside the cached index)."""

    def check(self) -> None:
        """Reject impossible combinations before any time is spent."""
        check_names([self.retriever], also=[Hybrid.name])
        if self.retriever != Hybrid.name and (self.weights is not None or self.tune_split):
            raise LsrError("--weights and --tune-split apply to --retriever hybrid")
        if self.retriever == Hybrid.name:
            check_names(self.legs, "hybrid leg")
            if len(self.legs) < 2 or len(set(self.legs)) != len(self.legs):
                raise LsrError("a hybrid needs two or more different legs")
            if self.weights is not None and len(self.weights) != len(self.legs):
                raise LsrError(f"{len(self.weights)} weights for {len(self.legs)} legs")
            if self.weights is not None and self.tune_split:
                raise LsrError("give fixed --weights or --tune-split, not both")

    @property
    def used_legs(self) -> tuple[str, ...]:
        return self.legs if self.retriever == Hybrid.name else (self.retriever,)

    def options(self) -> RetrieverOptions:
        """What the retrievers of this run are opened with (the sparse model resolved only when one is used)."""
        model = self.sparse_model() if "sparse" in self.used_legs else self.model
        return RetrieverOptions(
            model,
            self.dense_model,
            self.dense,
            self.multifield,
            self.device,
            encoding=dict(self.encoding),
            pruning=self.pruning,
        )

    def sparse_model(self) -> str:
        """``--model``, else the embedded default (an error naming the fix while it is not in the checkout)."""
        if self.model:
            return self.model
        if DEFAULT_SPARSE.is_dir():
            return str(DEFAULT_SPARSE)
        raise LsrError(
            f"no sparse model given and the default ({DEFAULT_SPARSE}) is not in this checkout; pass --model"
        )


def tuning_queries(dataset: BeirDataset, spec: RunSpec, evaluated: set[str]) -> dict[str, str]:
    """The queries weights are tuned on: the tune split's judged queries not in the evaluated split, optionally a
    seeded sample of ``tune_queries`` of them (how a dev set is carved from a train split)."""
    assert spec.tune_split is not None
    qids = sorted(set(dataset.qrels(spec.tune_split, check_docs=False)) - evaluated)
    if spec.tune_queries is not None and spec.tune_queries < len(qids):
        qids = sorted(random.Random(spec.tune_seed).sample(qids, spec.tune_queries))
    if not qids:
        raise LsrError(f"split {spec.tune_split!r} has no judged queries outside the evaluated split to tune on")
    texts = dataset.queries()
    return {qid: texts[qid] for qid in qids}


def _subset(run: Run, qids: dict[str, str] | set[str]) -> Run:
    return {qid: run.get(qid, {}) for qid in qids}


def retrieve(dataset: BeirDataset, split: str, spec: RunSpec, root: Path) -> tuple[Run, dict[str, Any]]:
    """The run of ``spec``'s retriever on ``split``'s judged queries, and what to record about how it was made."""
    from lsr.indexing.fusion import tune_weights

    queries, _ = dataset.split(split)
    corpus, options = Corpus(dataset, root), spec.options()
    legs: list[Retriever] = [open_retriever(name, corpus, options) for name in spec.used_legs]
    if spec.retriever != Hybrid.name:
        run = legs[0].retrieve(queries, spec.k)
        return run, {"legs": {legs[0].name: legs[0].info}}
    hybrid = Hybrid(legs, spec.fusion, spec.weights, depth=spec.k, prepare=drop_identical_ids)
    tune = tuning_queries(dataset, spec, set(queries)) if spec.tune_split else {}
    runs = hybrid.runs(queries | tune, spec.k)
    info: dict[str, Any] = {}
    if spec.tune_split:
        qrels = dataset.qrels(spec.tune_split, check_docs=False)

        def score(run: Run) -> float:
            return evaluate(qrels, run, [TUNE_MEASURE]).aggregate[TUNE_MEASURE]

        hybrid.weights, tuned = tune_weights([_subset(run, tune) for run in runs], score, spec.fusion, spec.tune_step)
        info["tuning"] = {"split": spec.tune_split, "queries": len(tune), TUNE_MEASURE: round(tuned, 4)}
    described = hybrid.info
    info |= {"legs": described["legs"], "weights": described["weights"]}
    return hybrid.fuse([_subset(run, queries) for run in runs], spec.k), info


def run_pipeline(
    dataset_path: str | Path, split: str, spec: RunSpec, output_dir: str | Path, cache_dir: str | Path | None = None
) -> tuple[Run, Evaluation]:
    """Evaluate ``spec`` on one dataset split and write run.trec, metrics.json, per_query.tsv and config.json."""
    spec.check()
    claim_dir(output_dir)  # a user's folder is refused before any encoding
    started = time.perf_counter()
    dataset = BeirDataset(dataset_path)
    dataset.qrels_source(split)  # a wrong split fails before any encoding
    root = cache_root(cache_dir)
    run, info = retrieve(dataset, split, spec, root)
    run = drop_identical_ids(run)
    evaluation = evaluate(dataset.qrels(split), run)
    config = {
        "dataset": str(dataset_path),
        "split": split,
        **asdict(spec),
        **info,
        "cache": str(root),
        "queries": len(evaluation.per_query),
        "unanswered": len(evaluation.unanswered),
        "seconds": round(time.perf_counter() - started, 2),
        "lsr_version": __version__,
    }
    write_evaluation(output_dir, run, evaluation, config, tag=f"lsr-{spec.retriever}")
    return run, evaluation


def run_many(
    datasets: list[tuple[str, str]], spec: RunSpec, output_dir: str | Path, cache_dir: str | Path | None = None
) -> dict[str, dict[str, float]]:
    """Run ``spec`` on every ``(dataset, split)``, each into ``OUT/<dataset name>``, and write ``OUT/summary.json``
    with each dataset's metrics and their unweighted mean (BEIR's convention for an average over datasets)."""
    import json

    from lsr.fsutil import atomic_file

    summary: dict[str, dict[str, float]] = {}
    for path, split in datasets:
        name = BeirDataset(path).name
        if name in summary:
            raise LsrError(f"two datasets are named {name!r}; their outputs would collide")
        _, evaluation = run_pipeline(path, split, spec, Path(output_dir) / name, cache_dir)
        summary[name] = evaluation.aggregate
    measures = next(iter(summary.values())).keys()
    summary["average"] = {m: sum(v[m] for v in summary.values()) / len(summary) for m in measures}
    with atomic_file(Path(output_dir) / "summary.json") as handle:
        json.dump(summary, handle, indent=2)
    return summary
