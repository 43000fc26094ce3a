"""What every evaluation command writes and prints, so all runs can be compared the same way.

``OUT/run.trec`` (TREC run), ``OUT/metrics.json`` (a flat object of aggregate
values keyed by trec_eval-style measure names), ``OUT/per_query.tsv`` (the
``trec_eval -q`` layout: measure, query, value) and ``OUT/config.json`` (what
produced them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lsr.fsutil import atomic_file, claim_dir
from lsr.metrics import Evaluation
from lsr.runs import Run, write_run


def write_outputs(output_dir: str | Path, run: Run, evaluation: Evaluation, config: dict[str, Any], tag: str) -> None:
    """Write the run, the aggregate and per-query metrics, and the configuration."""
    out = claim_dir(output_dir)
    write_run(run, out / "run.trec", tag=tag)
    with atomic_file(out / "metrics.json") as handle:
        json.dump(evaluation.aggregate, handle, indent=2)
    with atomic_file(out / "per_query.tsv") as handle:
        for qid, values in evaluation.per_query.items():
            for name, value in values.items():
                handle.write(f"{name}\t{qid}\t{value:.6f}\n")
        for name, value in evaluation.aggregate.items():
            handle.write(f"{name}\tall\t{value:.6f}\n")
    with atomic_file(out / "config.json") as handle:
        json.dump(config, handle, indent=2, default=str)


def print_metrics(evaluation: Evaluation, title: str, console: Console | None = None) -> None:
    """A one-row table of aggregate metrics, plus a note of judged queries that got no results."""
    console = console or Console()
    table = Table(title=title)
    table.add_column("queries", justify="right")
    for name in evaluation.aggregate:
        table.add_column(name, justify="right")
    table.add_row(str(len(evaluation.per_query)), *(f"{v:.4f}" for v in evaluation.aggregate.values()))
    console.print(table)
    if evaluation.unanswered:
        console.print(
            f"[yellow]{len(evaluation.unanswered)} judged queries got no results and are left out of the mean "
            "(trec_eval's default)[/]"
        )
