"""Before/after figures of label-free adaptation, so ``lsr train adapt`` ends by showing whether it helped.

The starting and the adapted model each encode the target corpus once and answer every target split by exact
search (top 100): the pseudo-queries the prepared folder held out of training (label-free: each one's relevant
document is the one it was cut from) and any qrels splits of the corpus the user names. Measures are trec_eval's
with ``-c`` (every judged query counts, a query without hits as zero), so both models are scored on the same
queries, and after is paired with before in a two-sided t-test. Each model's evaluation folder is written as every
lsr evaluation writes one, so ``lsr eval compare`` reads them too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lsr.data.beir import BeirDataset
from lsr.data.qrels import Qrels
from lsr.encode.corpus import document_text
from lsr.fsutil import atomic_file
from lsr.metrics import evaluate, paired_test, write_evaluation
from lsr.runs import Run
from lsr.train.evaluate import ExactSearch
from lsr.train.pseudo import PSEUDO_SPLIT

MEASURES = ("nDCG@10", "RR@10", "R@100")
DEPTH = 100
REPORT_FILE = "adapt_report.json"


@dataclass
class Target:
    """One split both models answer: its queries and qrels, and the dataset folder they come from."""

    split: str
    dataset: str
    queries: dict[str, str]
    qrels: Qrels


@dataclass
class Comparison:
    """Before and after on one target: aggregate measures and the paired t-test p-value per measure."""

    split: str
    queries: int
    before: dict[str, float]
    after: dict[str, float]
    p_value: dict[str, float]


def targets(data: str | Path, corpus: str | Path, splits: Sequence[str]) -> list[Target]:
    """The held-out pseudo-queries of the prepared folder ``data`` (if it has any), then ``splits`` of ``corpus``."""
    found = []
    prepared = BeirDataset(data)
    if PSEUDO_SPLIT in prepared.splits():
        found.append(Target(PSEUDO_SPLIT, str(data), *prepared.split(PSEUDO_SPLIT)))
    dataset = BeirDataset(corpus)
    found.extend(Target(split, str(corpus), *dataset.split(split)) for split in splits)
    return found


def model_runs(
    model: str | Path, corpus: str | Path, chosen: Sequence[Target], device: str
) -> tuple[dict[str, Run], float]:
    """Exact top-``DEPTH`` runs of ``model`` for every target, the corpus encoded once, and the mean non-zeros
    per document (what adaptation did to the index's size and search cost)."""
    from lsr.models import load_encoder
    from lsr.models.base import document_batch_size, pick_device

    encoder = load_encoder(str(model), device=device)
    where = pick_device(device)
    batch = document_batch_size(encoder)
    docs = list(BeirDataset(corpus).corpus())
    doc_vectors = encoder.encode_document([document_text(d) for d in docs], batch_size=batch)
    search = ExactSearch(doc_vectors, [d.id for d in docs], where)
    runs = {}
    for target in chosen:
        qids = list(target.queries)
        vectors = encoder.encode_query([target.queries[q] for q in qids], batch_size=batch)
        runs[target.split] = search.run(vectors, qids, DEPTH)
    return runs, doc_vectors.nnz / max(len(docs), 1)


def adaptation_report(
    before: str | Path,
    after: str | Path,
    corpus: str | Path,
    chosen: Sequence[Target],
    output: str | Path,
    device: str = "auto",
) -> tuple[list[Comparison], dict[str, float]]:
    """Score both models on ``chosen``, write ``OUTPUT/report/<split>-{before,after}/`` and ``OUTPUT/REPORT_FILE``;
    returns the comparisons and each model's mean non-zeros per document."""
    output = Path(output)
    (runs_before, nnz_before), (runs_after, nnz_after) = (
        model_runs(m, corpus, chosen, device) for m in (before, after)
    )
    runs = {"before": runs_before, "after": runs_after}
    models = {"before": str(before), "after": str(after)}
    doc_nnz = {"before": nnz_before, "after": nnz_after}
    comparisons = []
    for target in chosen:
        scored = {}
        for stage, by_split in runs.items():
            scored[stage] = evaluate(target.qrels, by_split[target.split], MEASURES, complete=True)
            config = {"dataset": target.dataset, "split": target.split, "model": models[stage], "search": "exact"}
            config |= {"depth": DEPTH, "complete": True}
            write_evaluation(
                output / "report" / f"{target.split}-{stage}",
                by_split[target.split],
                scored[stage],
                config,
                f"adapt-{stage}",
            )
        per_measure = {
            m: paired_test(
                {q: v[m] for q, v in scored["before"].per_query.items()},
                {q: v[m] for q, v in scored["after"].per_query.items()},
            ).p_value
            for m in MEASURES
        }
        comparisons.append(
            Comparison(
                target.split, len(target.qrels), scored["before"].aggregate, scored["after"].aggregate, per_measure
            )
        )
    with atomic_file(output / REPORT_FILE) as handle:
        json.dump(
            {"models": models, "corpus": str(corpus), "doc_nnz": doc_nnz, "targets": [asdict(c) for c in comparisons]},
            handle,
            indent=2,
        )
    return comparisons, doc_nnz


def print_report(comparisons: Sequence[Comparison], doc_nnz: dict[str, float], console: Console) -> None:
    """One row per split and measure: before, after, the difference and its paired t-test p-value; then the
    documents' mean non-zeros before and after."""
    table = Table(title="adaptation: before -> after (exact search, trec_eval -c)")
    for name in ("split", "queries", "measure", "before", "after", "delta", "p"):
        table.add_column(name, justify="left" if name in ("split", "measure") else "right")
    for c in comparisons:
        for m in MEASURES:
            delta = c.after[m] - c.before[m]
            table.add_row(
                c.split,
                str(c.queries),
                m,
                f"{c.before[m]:.4f}",
                f"{c.after[m]:.4f}",
                f"{delta:+.4f}",
                f"{c.p_value[m]:.3g}",
            )
    console.print(table)
    console.print(f"non-zeros per document: {doc_nnz['before']:.1f} before, {doc_nnz['after']:.1f} after")
