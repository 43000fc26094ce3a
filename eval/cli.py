"""``lsr eval``: baselines and scoring of run files on BEIR splits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="Evaluate retrievers on BEIR datasets and score TREC run files.", no_args_is_help=True)
console = Console()

DatasetOption = Annotated[str, typer.Option(help="BEIR folder or zip, or beir/<name> once downloaded.")]
SplitOption = Annotated[str, typer.Option(help="Qrels split: test, dev, train ...")]


@app.command("bm25")
def bm25_cmd(
    dataset: DatasetOption,
    output_dir: Annotated[Path, typer.Option(help="Where run.trec, metrics.json, per_query.tsv and the index go.")],
    split: SplitOption = "test",
    multifield: Annotated[
        bool, typer.Option(help="Index title and text as separate fields (BEIR multifield).")
    ] = False,
    k: Annotated[int, typer.Option(min=1, help="Hits per query.")] = 1000,
    k1: Annotated[float, typer.Option(help="BM25 k1.")] = 0.9,
    b: Annotated[float, typer.Option(help="BM25 b.")] = 0.4,
    index: Annotated[
        Path | None,
        typer.Option(help="Lucene index folder (default OUT/index-<convention>); reused if it holds this corpus."),
    ] = None,
    threads: Annotated[int, typer.Option(min=0, help="Indexing and search threads (0: all cores).")] = 0,
) -> None:
    """BM25 with Lucene (pyserini), BEIR flat or multifield, as in Anserini's BEIR regressions."""
    from eval.bm25 import run_bm25
    from eval.outputs import print_metrics
    from lsr.data.download import resolve_dataset

    _, evaluation = run_bm25(
        resolve_dataset(dataset),
        split,
        output_dir,
        multifield=multifield,
        k=k,
        k1=k1,
        b=b,
        index_dir=index,
        threads=threads,
    )
    print_metrics(evaluation, f"BM25 ({'multifield' if multifield else 'flat'}) on {dataset} {split}", console)
    console.print(f"wrote {output_dir}/run.trec and {output_dir}/metrics.json")


@app.command("score")
def score_cmd(
    run: Annotated[Path, typer.Option(help="TREC run file.", exists=True, dir_okay=False)],
    dataset: DatasetOption,
    split: SplitOption = "test",
    measure: Annotated[
        list[str] | None, typer.Option(help="ir-measures name; repeat for several (default: the standard five).")
    ] = None,
    keep_identical_ids: Annotated[
        bool, typer.Option(help="Count hits whose doc id equals the query id (BEIR drops them).")
    ] = False,
    complete: Annotated[bool, typer.Option(help="Judged queries without results count as 0 (trec_eval -c).")] = False,
) -> None:
    """Score an existing TREC run on a BEIR split, exactly as trec_eval would."""
    from eval.metrics import DEFAULT_MEASURES, evaluate
    from eval.outputs import print_metrics
    from eval.runs import read_run
    from lsr.data.beir import BeirDataset
    from lsr.data.download import resolve_dataset

    qrels = BeirDataset(resolve_dataset(dataset)).qrels(split)
    evaluation = evaluate(
        qrels,
        read_run(run),
        measure or DEFAULT_MEASURES,
        ignore_identical_ids=not keep_identical_ids,
        complete=complete,
    )
    print_metrics(evaluation, f"{run.name} on {dataset} {split}", console)
