"""``lsr eval``: BM25 baselines, any retriever or hybrid on BEIR splits, scoring and comparing run files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from lsr.indexing.cli import HeapFactorOption, QueryCutOption
from rich.console import Console

from lsr.cli_force import writes
from lsr.encode.cli import BackendOption, StrideOption, WindowPoolingOption, encoder_overrides

app = typer.Typer(help="Evaluate retrievers on BEIR datasets and score TREC run files.", no_args_is_help=True)
console = Console()

DatasetOption = Annotated[str, typer.Option(help="BEIR folder or zip, or beir/<name> once downloaded.")]
SplitOption = Annotated[str, typer.Option(help="Qrels split: test, dev, train ...")]


@app.command("bm25")
@writes("output_dir", in_place=True)
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
    from lsr.eval.bm25 import run_bm25
    from lsr.eval.outputs import print_metrics

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
@writes("output_dir", in_place=True)
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
    output_dir: Annotated[
        Path | None, typer.Option(help="Also write an evaluation folder here (what `lsr eval compare` reads).")
    ] = None,
) -> None:
    """Score an existing TREC run on a BEIR split, exactly as trec_eval would."""
    from lsr.eval.outputs import print_metrics

    from lsr.data.beir import BeirDataset
    from lsr.data.download import resolve_dataset
    from lsr.metrics import DEFAULT_MEASURES, evaluate
    from lsr.runs import read_run

    qrels = BeirDataset(resolve_dataset(dataset)).qrels(split)
    hits = read_run(run)
    evaluation = evaluate(
        qrels, hits, measure or DEFAULT_MEASURES, ignore_identical_ids=not keep_identical_ids, complete=complete
    )
    print_metrics(evaluation, f"{run.name} on {dataset} {split}", console)
    if output_dir is not None:
        from lsr.metrics import write_evaluation

        config = {"run": str(run), "dataset": dataset, "split": split, "complete": complete}
        write_evaluation(output_dir, hits, evaluation, config, "scored")
        console.print(f"wrote {output_dir}/metrics.json and {output_dir}/per_query.tsv")


def _floats(text: str | None) -> tuple[float, ...] | None:
    from lsr.errors import LsrError

    if text is None:
        return None
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise LsrError(f"--weights must be comma-separated numbers, got {text!r}") from None


@app.command("run")
@writes("output_dir", in_place=True)
def run_cmd(
    dataset: Annotated[
        list[str], typer.Option(help="BEIR folder or zip (or beir/<name>); repeat for a multi-dataset run.")
    ],
    output_dir: Annotated[Path, typer.Option(help="Where run.trec, metrics.json, per_query.tsv, config.json go.")],
    split: Annotated[
        list[str] | None, typer.Option(help="Qrels split; once for all datasets or once per dataset (default test).")
    ] = None,
    retriever: Annotated[str, typer.Option(help="bm25, sparse, dense or hybrid.")] = "dense",
    model: Annotated[str | None, typer.Option(help="Sparse encoder (default: the embedded sparse model).")] = None,
    dense_model: Annotated[str, typer.Option(help="Dense encoder (default: embedded all-MiniLM-L6-v2).")] = "",
    legs: Annotated[str, typer.Option(help="Hybrid: comma-separated retrievers to fuse.")] = "sparse,dense",
    fusion: Annotated[str, typer.Option(help="Hybrid: rrf, minmax or zscore (normalised weighted sum).")] = "rrf",
    weights: Annotated[str | None, typer.Option(help="Hybrid: one weight per leg, e.g. 0.3,0.7.")] = None,
    tune_split: Annotated[
        str | None, typer.Option(help="Hybrid: tune the weights by nDCG@10 on this split (never the one reported).")
    ] = None,
    tune_queries: Annotated[
        int | None, typer.Option(min=1, help="Tune on a seeded sample of this many of the split's queries.")
    ] = None,
    tune_seed: Annotated[int, typer.Option(help="Seed of that sample.")] = 0,
    tune_step: Annotated[float, typer.Option(help="Weight grid step.")] = 0.1,
    multifield: Annotated[bool, typer.Option(help="BM25: title and text as separate fields.")] = False,
    k: Annotated[int, typer.Option(min=1, help="Hits per query.")] = 1000,
    index: Annotated[
        str, typer.Option(help="Dense index: hnsw (hnswlib), exact, faiss-flat, faiss-hnsw or faiss-ivf.")
    ] = "hnsw",
    hnsw_m: Annotated[int | None, typer.Option(help="HNSW links per node (M).")] = None,
    ef_construction: Annotated[int | None, typer.Option(help="HNSW build candidate list.")] = None,
    ef: Annotated[int | None, typer.Option(help="HNSW search candidate list (at least k is used).")] = None,
    nlist: Annotated[int | None, typer.Option(help="IVF lists.")] = None,
    nprobe: Annotated[int | None, typer.Option(help="IVF lists visited per query.")] = None,
    index_device: Annotated[str, typer.Option(help="cpu, or cuda for faiss-flat/faiss-ivf on the GPU.")] = "cpu",
    cache_dir: Annotated[
        Path | None, typer.Option(help="Encodings and indexes cache (default $LSR_CACHE or ~/.cache/lsr).")
    ] = None,
    device: Annotated[str, typer.Option(help="Encoder device: auto, cpu or cuda.")] = "auto",
    backend: BackendOption = "torch",
    max_length: Annotated[int | None, typer.Option(min=1, help="Sparse model's token limit (window length).")] = None,
    stride: StrideOption = None,
    window_pooling: WindowPoolingOption = "max",
    heap_factor: HeapFactorOption = None,
    query_cut: QueryCutOption = None,
) -> None:
    """Encode, index, search and score a retriever on BEIR split(s) in one go; encodings are cached."""
    from lsr.eval.outputs import print_metrics, print_tuning
    from lsr.eval.pipeline import RunSpec, run_many, run_pipeline
    from lsr.indexing.dense.settings import DenseSettings
    from lsr.indexing.sparse.settings import Pruning

    from lsr.data.download import resolve_dataset
    from lsr.defaults import DEFAULT_DENSE
    from lsr.errors import LsrError

    splits = split or ["test"]
    if len(splits) not in (1, len(dataset)):
        raise LsrError(f"give one --split for all datasets or one per dataset ({len(dataset)})")
    per_dataset = splits * len(dataset) if len(splits) == 1 else splits
    pairs = [(str(resolve_dataset(d)), s) for d, s in zip(dataset, per_dataset, strict=True)]
    knobs = {"m": hnsw_m, "ef_construction": ef_construction, "ef": ef, "nlist": nlist, "nprobe": nprobe}
    spec = RunSpec(
        retriever=retriever,
        model=model,
        dense_model=dense_model or DEFAULT_DENSE,
        legs=tuple(part.strip() for part in legs.split(",")),
        fusion=fusion,
        weights=_floats(weights),
        tune_split=tune_split,
        tune_queries=tune_queries,
        tune_seed=tune_seed,
        tune_step=tune_step,
        multifield=multifield,
        k=k,
        dense=DenseSettings(index, {name: value for name, value in knobs.items() if value is not None}, index_device),
        device=device,
        encoding=encoder_overrides(max_length, stride, window_pooling) | {"backend": backend},
        pruning=Pruning(heap_factor=heap_factor, query_cut=query_cut),
    )
    if len(pairs) == 1:
        _, evaluation = run_pipeline(*pairs[0], spec, output_dir, cache_dir)
        print_metrics(evaluation, f"{retriever} on {pairs[0][0]} {pairs[0][1]}", console)
        print_tuning(output_dir, console)
        console.print(f"wrote {output_dir}/run.trec and {output_dir}/metrics.json")
        return
    summary = run_many(pairs, spec, output_dir, cache_dir)
    from rich.table import Table

    table = Table(title=f"{retriever} over {len(pairs)} datasets")
    measures = list(summary["average"])
    for column in ("dataset", *measures):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    for name, values in summary.items():
        table.add_row(name, *(f"{values[m]:.4f}" for m in measures))
    console.print(table)
    for name in summary:
        print_tuning(output_dir / name, console)
    console.print(f"wrote {output_dir}/<dataset>/ and {output_dir}/summary.json")


@app.command("compare")
@writes("plot", file_kind="image")
def compare_cmd(
    runs: Annotated[list[Path], typer.Argument(help="Evaluation folders (the first is the baseline).")],
    measure: Annotated[
        list[str] | None, typer.Option(help="Measure to compare; repeat for several (default: all five).")
    ] = None,
    name: Annotated[list[str] | None, typer.Option(help="Display name per run, in order (default: folder).")] = None,
    plot: Annotated[Path | None, typer.Option(help="Save a bar chart to this image (.png, .svg, .pdf).")] = None,
) -> None:
    """Runs side by side with a paired t-test of each against the first, and a bar chart."""
    from lsr.eval.compare import compare, load_run_scores, table
    from lsr.eval.compare import plot as save_plot

    from lsr.errors import LsrError
    from lsr.metrics import DEFAULT_MEASURES

    if len(runs) < 2:
        raise LsrError("give at least two evaluation folders")
    if name and len(name) != len(runs):
        raise LsrError(f"{len(name)} names for {len(runs)} runs")
    scores = [load_run_scores(folder, label) for folder, label in zip(runs, name or [None] * len(runs), strict=True)]
    measures = measure or list(DEFAULT_MEASURES)
    console.print(table(scores, compare(scores, measures), measures, console.width))
    if plot is not None:
        console.print(f"plot saved to {save_plot(scores, measures, plot)}")
