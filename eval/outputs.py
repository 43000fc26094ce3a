"""What every evaluation command prints, so all runs read the same way (what they write:
:func:`lsr.metrics.write_evaluation`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lsr.metrics import Evaluation


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
        counted = "count as 0 in the mean (trec_eval -c)" if evaluation.complete else "are left out of the mean"
        default = "" if evaluation.complete else " (trec_eval's default)"
        console.print(f"[yellow]{len(evaluation.unanswered)} judged queries got no results and {counted}{default}[/]")


def tuned_weights(config: Mapping[str, Any]) -> str | None:
    """A hybrid's tuned weights as one line (``sparse 0.3, dense 0.7``, the split and score they were tuned on),
    or None when the run tuned nothing: the weights decide the hybrid, so they belong on screen, not only in
    ``config.json``."""
    tuning, weights, legs = config.get("tuning"), config.get("weights"), config.get("legs")
    if not isinstance(tuning, dict) or not isinstance(weights, list) or not isinstance(legs, dict):
        return None
    pairs = ", ".join(f"{leg} {weight:.2f}" for leg, weight in zip(legs, weights, strict=True))
    score = ", ".join(f"{k} {v}" for k, v in tuning.items() if k not in ("split", "queries"))
    fusion = config.get("fusion", "")
    return f"tuned {fusion} weights: {pairs} ({score} on {tuning.get('queries')} {tuning.get('split')} queries)"


def print_tuning(folder: Path, console: Console) -> None:
    """Print :func:`tuned_weights` of the evaluation written in ``folder``, if it tuned any."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return
    line = tuned_weights(config)
    if line:
        console.print(line, highlight=False)
