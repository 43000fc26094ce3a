"""What every evaluation command prints, so all runs read the same way (what they write:
:func:`lsr.metrics.write_evaluation`)."""

from __future__ import annotations

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
        console.print(
            f"[yellow]{len(evaluation.unanswered)} judged queries got no results and are left out of the mean "
            "(trec_eval's default)[/]"
        )
