"""``lsr demo``: the main job on an embedded default, offline, on CPU.

For now the pipeline is BM25 (Lucene through pyserini) over a small corpus
shipped inside the package: index, search every query, show the top hits of a
few, and score the run against the shipped qrels.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def demo_dataset() -> Path:
    """The small BEIR-format dataset shipped with lsr (40 documents on retrieval topics, 12 judged queries)."""
    return Path(str(files("lsr") / "resources" / "demo"))


def demo(
    dataset: Annotated[
        Path | None, typer.Option(help="BEIR folder or zip with a test split (default: the embedded one).")
    ] = None,
    output_dir: Annotated[Path, typer.Option(help="Where the index, run and metrics go.")] = Path("runs/demo"),
    show: Annotated[int, typer.Option(min=0, help="How many queries to show with their top hits.")] = 3,
) -> None:
    """Run the whole pipeline on a small corpus: index, search, show hits, evaluate."""
    from eval.bm25 import run_bm25
    from eval.outputs import print_metrics
    from eval.runs import ranked
    from lsr.data.beir import BeirDataset

    console = Console()
    data = BeirDataset(dataset or demo_dataset())
    run, evaluation = run_bm25(data.path, "test", output_dir, k=100)
    titles = {doc.id: doc.title or doc.text[:60] for doc in data.corpus()}
    queries = data.queries()
    for qid in list(run)[:show]:
        table = Table(title=f"{qid}: {queries[qid]}", title_justify="left")
        for column, justify in (("rank", "right"), ("doc", "left"), ("title", "left"), ("score", "right")):
            table.add_column(column, justify=justify)
        for rank, (did, score) in enumerate(ranked(run[qid])[:3], start=1):
            table.add_row(str(rank), did, titles.get(did, ""), f"{score:.3f}")
        console.print(table)
    print_metrics(evaluation, f"BM25 on {data.name} test", console)
    console.print(f"run, metrics and index are in {output_dir}/")
