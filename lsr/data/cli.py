"""``lsr data``: download, convert and check datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lsr.cli_force import writes

app = typer.Typer(help="Download, convert and check datasets (BEIR format).", no_args_is_help=True)
console = Console()


@app.command("download")
def download(
    name: Annotated[str, typer.Argument(help="Dataset, e.g. beir/scifact.")],
    dest: Annotated[
        Path | None, typer.Option(help="Parent folder (default: $LSR_DATA/beir or ~/.cache/lsr/datasets/beir).")
    ] = None,
    url: Annotated[str | None, typer.Option(help="Mirror URL of the zip instead of the official one.")] = None,
    md5: Annotated[str | None, typer.Option(help="Expected MD5 when using a mirror with a different file.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server before giving up.")] = 30.0,
) -> None:
    """Fetch an official BEIR zip, verify its published MD5 and extract it."""
    from lsr.data.download import download_beir

    folder = download_beir(name, dest=dest, url=url, md5=md5, timeout=timeout)
    console.print(f"[green]{name}[/] is at {folder}")


@app.command("convert-smart")
@writes("output")
def convert_smart_cmd(
    source: Annotated[
        Path,
        typer.Argument(help="Folder with a SMART collection (e.g. Cranfield, CISI).", exists=True, file_okay=False),
    ],
    output: Annotated[Path, typer.Argument(help="BEIR folder to write.")],
    collection: Annotated[str, typer.Option(help="auto, cranfield or cisi.")] = "auto",
) -> None:
    """Convert a classic SMART collection to BEIR format (corpus.jsonl, queries.jsonl, qrels/test.tsv)."""
    from lsr.data.smart import COLLECTIONS, convert_smart

    if collection != "auto" and collection not in COLLECTIONS:
        raise typer.BadParameter(f"choose auto or one of {', '.join(COLLECTIONS)}", param_hint="--collection")
    counts = convert_smart(source, output, collection)
    console.print(f"wrote {output}: " + ", ".join(f"{v:,} {k}" for k, v in counts.items()))


@app.command("stats")
def stats(
    dataset: Annotated[str, typer.Argument(help="BEIR folder or zip, or beir/<name> once downloaded.")],
) -> None:
    """Validate a BEIR dataset end to end and print its size per split."""
    from tqdm.auto import tqdm

    from lsr.data.beir import BeirDataset
    from lsr.data.download import resolve_dataset

    data = BeirDataset(resolve_dataset(dataset))
    docs = sum(1 for _ in tqdm(data.corpus(), desc="corpus", unit=" docs"))
    table = Table(title=f"{data.name}: {docs:,} documents, {len(data.queries()):,} queries")
    for column in ("split", "queries", "judgements", "relevant"):
        table.add_column(column, justify="right")
    for split in data.splits():
        qrels = data.qrels(split)
        judged = sum(map(len, qrels.values()))
        relevant = sum(1 for docs_ in qrels.values() for rel in docs_.values() if rel > 0)
        table.add_row(split, f"{len(qrels):,}", f"{judged:,}", f"{relevant:,}")
    console.print(table)
