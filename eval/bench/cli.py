"""``lsr bench``: benchmarks that run lsr and its competitor side by side and report the ratio."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from lsr.cli_force import writes

app = typer.Typer(help="Benchmarks against the real competitors, in the same run.", no_args_is_help=True)
console = Console()


def _query_texts(queries: Path) -> list[str]:
    """The query texts of a BEIR folder or a queries file."""
    from lsr.data.beir import BeirDataset, read_queries
    from lsr.data.textio import TextSource

    return list((BeirDataset(queries).queries() if queries.is_dir() else read_queries(TextSource(queries))).values())


def _query_vectors(queries: Path, model: str):  # noqa: ANN202 - a scipy CSR matrix
    """Query vectors from a ``.npz`` file, or a BEIR folder / queries file encoded with ``model``."""
    import scipy.sparse as sp

    from lsr.models import load_encoder

    if queries.suffix == ".npz":
        return sp.load_npz(queries)
    return load_encoder(model, device="cpu").encode_query(_query_texts(queries))


def _server_arguments(
    index: Path, model: str | None, dense_index: Path | None, server_option: list[str] | None
) -> list[str]:
    """The `lsr serve` arguments of a serving benchmark."""
    arguments = ["--index", str(index), *(["--model", model] if model else [])]
    arguments += ["--dense-index", str(dense_index)] if dense_index else []
    return arguments + list(server_option or [])


def _report(result: dict, output: Path | None) -> None:
    """Print a benchmark's result, and keep it as JSON when asked."""
    console.print_json(json.dumps(result))
    _save(result, output)


def _save(result: dict, output: Path | None) -> None:
    """Keep a benchmark's whole result as JSON when asked (what a table on screen leaves out is there)."""
    from lsr.eval.bench.output import save_json

    if output:
        save_json(result, output)
        console.print(f"the whole result is in {output}")


def _serve_table(result: dict) -> None:
    """``lsr bench serve`` as a table: one row per retriever, then the soak run's memory in one line."""
    from rich.table import Table

    table = Table(title=f"lsr serve, {result['queries']:,} queries, k={result['k']}", title_justify="left")
    for column in ("retriever", "QPS", "p50 ms", "p90 ms", "p99 ms", "batch", "errors"):
        table.add_column(column, justify="left" if column == "retriever" else "right")
    for name, run in result.get("retrievers", {}).items():
        batch = ", ".join(f"{v:g}" for v in run.get("mean_batch", {}).values()) or "-"
        errors = sum(run.get("errors", {}).values())
        table.add_row(name, f"{run['qps']:,.1f}", *(f"{run[p]:.2f}" for p in ("p50_ms", "p90_ms", "p99_ms")),
                      batch, str(errors))  # fmt: skip
    console.print(table)
    soak = result.get("soak")
    if soak:
        rss = soak["rss_mb"]
        verdict = "stable" if soak["memory_stable"] else f"NOT stable (over {soak['max_growth_mb']} MB)"
        console.print(
            f"soak {soak['seconds']:g} s at {soak['load']['qps']:,.1f} QPS: RSS {rss['first_quarter_median']} -> "
            f"{rss['last_quarter_median']} MB (growth {rss['growth']} MB, max {rss['max']} MB): {verdict}"
        )


@app.command("encode")
@writes("output", file_kind="json")
def encode_bench(
    corpus: Annotated[Path, typer.Option(help="BEIR folder or corpus file whose first documents are encoded.")],
    model: Annotated[
        Path | None, typer.Option(help="SPLADE model folder (default: a random BERT-base-size one).")
    ] = None,
    tokenizer: Annotated[Path | None, typer.Option(help="Tokenizer folder for the random model.")] = None,
    docs: Annotated[int, typer.Option(min=1)] = 1000,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16 (the same for both systems).")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    max_length: Annotated[int, typer.Option(min=1)] = 256,
    output: Annotated[Path | None, typer.Option(help="Write the result as JSON here too.")] = None,
) -> None:
    """Documents/s of lsr's SPLADE vs sentence-transformers' SparseEncoder on the same texts and model."""
    from lsr.eval.bench.encode import bench_splade, load_texts, random_splade

    texts = load_texts(corpus, docs)
    with tempfile.TemporaryDirectory() as tmp:
        if model is None:
            if tokenizer is None:
                raise typer.BadParameter("give --model, or --tokenizer for a random model", param_hint="--model")
            model = random_splade(tokenizer, Path(tmp) / "random", texts)
        result = bench_splade(model, texts, device, dtype, batch_size, max_length)
    _report(result, output)


@app.command("onnx")
@writes("output", file_kind="json")
def onnx_bench(
    model: Annotated[Path, typer.Option(help="SPLADE or inference-free model folder.")],
    corpus: Annotated[Path, typer.Option(help="BEIR folder or corpus file whose first documents are encoded.")],
    docs: Annotated[int, typer.Option(min=1)] = 128,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    rounds: Annotated[int, typer.Option(min=1, help="Interleaved rounds; medians are reported.")] = 3,
    output: Annotated[Path | None, typer.Option(help="Write the result as JSON here too.")] = None,
) -> None:
    """Documents/s on the CPU of the torch, ONNX fp32 and ONNX int8 backends (and sentence-transformers' ONNX)."""
    from lsr.eval.bench.encode import load_texts
    from lsr.eval.bench.onnx import bench_backends

    _report(bench_backends(model, load_texts(corpus, docs), batch_size, rounds), output)


@app.command("idf-query")
@writes("output", file_kind="json")
def idf_query_bench(
    model: Annotated[Path, typer.Option(help="Inference-free encoder folder (with idf.json).")],
    queries: Annotated[Path, typer.Option(help="BEIR folder whose queries are encoded.")],
    output: Annotated[Path | None, typer.Option(help="Write the result as JSON here too.")] = None,
) -> None:
    """Microseconds per query of the inference-free (IDF) query encoder, one query at a time, one thread."""
    from lsr.eval.bench.encode import bench_idf_queries

    from lsr.data.beir import BeirDataset
    from lsr.models import InferenceFreeEncoder

    encoder = InferenceFreeEncoder.from_pretrained(model, device="cpu")
    result = bench_idf_queries(encoder, list(BeirDataset(queries).queries().values()))
    _report(result, output)


@app.command("replies")
@writes("output", file_kind="json")
def replies_bench(
    index: Annotated[Path, typer.Option(help="Sparse index folder (`lsr index`).", exists=True, file_okay=False)],
    queries: Annotated[int, typer.Option(min=1, help="Queries in the BatchSearch reply.")] = 32,
    k: Annotated[int, typer.Option(min=1, help="Hits per query.")] = 1000,
    repeat: Annotated[int, typer.Option(min=1, help="Runs of each piece; the best is kept.")] = 20,
    output: Annotated[Path | None, typer.Option(help="Write the result as JSON here too.")] = None,
) -> None:
    """Milliseconds of one large search reply under the interpreter lock: ids, hit-by-hit vs wire layout."""
    from lsr.eval.bench.replies import bench_replies

    _report(bench_replies(index, queries, k, repeat), output)


@app.command("search")
@writes("output", file_kind="json")
def search_bench(
    index: Annotated[Path, typer.Option(help="Index folder from `lsr index`.")],
    queries: Annotated[
        Path, typer.Option(help="BEIR folder or queries.jsonl (encoded with the index's model), or .npz vectors.")
    ],
    k: Annotated[int, typer.Option(min=1)] = 10,
    budget: Annotated[
        list[int] | None, typer.Option(help="Pruning budget (postings per term); repeat for several.")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Write the result as JSON here too.")] = None,
) -> None:
    """ms/query of exact search (batch and single-query p50/p99) and recall@10 of pruned search."""
    from lsr.eval.bench.search import bench_search
    from lsr.indexing.sparse.format import SparseIndex

    opened = SparseIndex.open(index)
    result = bench_search(opened, _query_vectors(queries, opened.meta.model), k, tuple(budget or ()))
    _report(result, output)


@app.command("engines")
@writes("output", file_kind="json")
def engines_bench(
    vectors: Annotated[Path, typer.Option(help="Vectors folder from `lsr encode` (a sparse model's).")],
    dataset: Annotated[Path, typer.Option(help="BEIR folder whose queries are encoded with the vectors' model.")],
    split: Annotated[str, typer.Option(help="Queries of this split, or 'unjudged' (efficiency queries).")] = "test",
    engine: Annotated[
        list[str] | None,
        typer.Option(
            help="Engines to compare after lsr (repeat): pisa, bmp, seismic, seismic-knn, kannolo, lucene-impact."
        ),
    ] = None,
    k: Annotated[int, typer.Option(min=1)] = 10,
    rounds: Annotated[int, typer.Option(min=1, help="Interleaved timed repetitions.")] = 3,
    threads: Annotated[int, typer.Option(min=1, help="Threads for builds and the throughput column.")] = 1,
    docs: Annotated[int | None, typer.Option(min=1, help="Only the first DOCS documents.")] = None,
    queries: Annotated[int | None, typer.Option(min=1, help="Only the first QUERIES queries.")] = None,
    reference_only: Annotated[
        bool,
        typer.Option(
            "--reference-only",
            help="Time lsr at its exact setting only (the reference), not its pruned sweep: for a run per engine. "
            "The same as --lsr-grid exact.",
        ),
    ] = False,
    lsr_grid: Annotated[
        str,
        typer.Option(
            help="lsr's settings: all (exact, pruned, clustered), clustered (exact and clustered, not the pruned "
            "ones) or exact."
        ),
    ] = "all",
    output: Annotated[Path | None, typer.Option(help="Write the result as JSON here (and a .png plot beside).")] = None,
) -> None:
    """lsr and the field's engines on identical quantised vectors: batch-1 latency, recall at matched quality.

    ``--reference-only`` exists for runs of one engine each (a shell ``timeout`` around each, where one engine's
    build may not finish in the time there is): lsr's pruned settings are then timed once, not in every run.
    ``--lsr-grid clustered`` fits lsr's clustered search and an approximate engine into one such run.
    """
    from lsr.eval.bench.engines import engine as make_engine
    from lsr.eval.bench.engines.harness import Report, compare
    from lsr.eval.bench.engines.inputs import corpus_vectors, query_texts, query_vectors
    from lsr.eval.bench.engines.lsr_engine import LsrEngine
    from lsr.eval.bench.engines.plot import plot

    from lsr.data.beir import BeirDataset
    from lsr.encode.shards import Manifest
    from lsr.models import load_encoder

    if reference_only and lsr_grid not in ("all", "exact"):
        raise typer.BadParameter(f"--reference-only is --lsr-grid exact, not {lsr_grid}", param_hint="--lsr-grid")
    lsr_grid = "exact" if reference_only else lsr_grid
    reference = LsrEngine()
    try:
        lsr_settings = reference.grid(k, lsr_grid)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--lsr-grid") from None
    chosen = [reference, *(make_engine(name) for name in engine or [])]
    beir = BeirDataset(dataset)
    texts = query_texts(beir, split, queries)
    encoded = load_encoder(Manifest.load(vectors).model, device="cpu").encode_query(list(texts.values()))
    grids = [lsr_settings, *(e.grid(k) for e in chosen[1:])]
    context = {"dataset": beir.name, "split": split, "cpu_count": os.cpu_count()}

    def snapshot(partial: Report) -> None:
        """Each finished round kept on disk, so a run cut short by a time limit leaves what it measured."""
        _save({**context, **partial.to_json()}, output)

    report = compare(
        chosen,
        corpus_vectors(vectors, docs),
        query_vectors(list(texts), encoded),
        k,
        rounds,
        threads,
        settings=grids,
        on_round=snapshot if output else None,
    )
    result = {**context, **report.to_json()}
    _report(result, output)
    if output:
        plot(result, output.with_suffix(".png"), f"{beir.name} ({split})")


@app.command("engines-table")
@writes("plot", file_kind="image")
def engines_table(
    result: Annotated[Path, typer.Argument(help="JSON written by `lsr bench engines --output`.")],
    plot: Annotated[Path | None, typer.Option(help="Draw the recall-latency plot here too (PNG).")] = None,
    title: Annotated[str, typer.Option(help="The plot's title.")] = "",
    families: Annotated[
        bool,
        typer.Option(
            "--families",
            help="A matched-recall row per kind of search (lsr exact / pruned / clustered, Seismic sorted or not).",
        ),
    ] = False,
) -> None:
    """The matched-recall and exact-engine tables of an `lsr bench engines` result, as Markdown."""
    from lsr.eval.bench.engines.plot import plot as draw
    from lsr.eval.bench.engines.tables import exact_table, matched_table

    from lsr.errors import LsrError

    try:
        data = json.loads(result.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LsrError(f"{result}: not a readable benchmark result ({exc})") from exc
    if data.get("complete") is False:  # results written before the flag are whole runs
        print(f"partial result: {data.get('rounds_done', 0)} of {data.get('rounds')} timed rounds, no throughput\n")
    print(matched_table(data, families) + "\n\n" + exact_table(data))
    if plot:
        draw(data, plot, title or f"{data.get('dataset', '')} ({data.get('split', '')})")


@app.command("synthetic")
@writes("output")
def synthetic(
    fit_vectors: Annotated[Path, typer.Option(help="Real document vectors (a folder from `lsr encode`) to fit.")],
    fit_queries: Annotated[Path, typer.Option(help="BEIR folder whose queries, encoded, are fitted.")],
    documents: Annotated[int, typer.Option(min=1, help="How many documents to generate.")],
    output: Annotated[Path, typer.Option(help="Vectors folder to write (lsr shard format).")],
    queries: Annotated[int, typer.Option(min=1, help="How many queries to generate.")] = 1000,
    seed: Annotated[int, typer.Option()] = 1,
) -> None:
    """Generate a corpus and queries with statistics fitted to real SPLADE vectors."""
    import scipy.sparse as sp
    from lsr.eval.bench.synthetic import (
        encoded_queries,
        fit_profile,
        generate_documents,
        generate_queries,
        real_vectors,
    )
    from tqdm.auto import tqdm

    from lsr.encode.shards import Manifest, write_shard

    manifest = Manifest.load(fit_vectors)
    profile = fit_profile(real_vectors(fit_vectors), encoded_queries(fit_vectors, fit_queries)[1], seed)
    output.mkdir(parents=True, exist_ok=True)
    profile.save(output / "profile.json")
    out = Manifest(
        model=manifest.model,
        kind="synthetic",
        dense=False,
        dimension=profile.vocab_size,
        shard_size=100_000,
        corpus={"fitted_to": str(fit_vectors), "documents": documents, "seed": seed},
    )
    for number, (ids, matrix) in enumerate(
        tqdm(generate_documents(profile, documents, seed=seed), unit=" shards", desc="generate")
    ):
        out.shards.append(write_shard(output, number, ids, matrix))
    out.complete = True
    out.save(output)
    sp.save_npz(output / "queries.npz", generate_queries(profile, queries, seed + 1))
    console.print(f"{documents:,} documents ({out.documents:,} written) and {queries:,} queries at {output}")


@app.command("synthetic-stats")
@writes("output", file_kind="json")
def synthetic_stats(
    vectors: Annotated[
        Path, typer.Option(help="Real document vectors (a folder from `lsr encode`) to fit and compare.")
    ],
    dataset: Annotated[Path, typer.Option(help="BEIR folder whose queries are encoded with the vectors' model.")],
    split: Annotated[str, typer.Option(help="The real side's queries: this split's, or 'unjudged'.")] = "test",
    sample: Annotated[int, typer.Option(min=1, help="Documents whose nearest neighbour is found (seeded).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the fit, the generation and the sample.")] = 1,
    rounds: Annotated[int, typer.Option(min=1, help="Interleaved timed repetitions of Seismic and lsr.")] = 3,
    seismic: Annotated[bool, typer.Option(help="Measure Seismic's recall and latency (needs pyseismic-lsr).")] = True,
    output: Annotated[Path | None, typer.Option(help="Write the result as JSON here (and a .png plot beside).")] = None,
) -> None:
    """The synthetic generator against the real vectors it is fitted to, at equal size: nearest-neighbour cosine,
    query-document alignment, score gaps, and Seismic's recall@10 at its guide's setting. The profile is fitted
    to every query of the dataset, as `lsr bench synthetic` fits it; the real side is measured on --split's."""
    from lsr.eval.bench.engines.inputs import corpus_vectors, query_texts, query_vectors
    from lsr.eval.bench.synthetic import encoded_queries, fit_profile, real_vectors
    from lsr.eval.bench.synthetic_stats import compare_with_twin, plot, table

    from lsr.data.beir import BeirDataset

    beir = BeirDataset(dataset)
    ids, encoded = encoded_queries(vectors, dataset)
    chosen = list(query_texts(beir, split))
    position = {qid: row for row, qid in enumerate(ids)}
    queries = query_vectors(chosen, encoded[[position[qid] for qid in chosen]])
    profile = fit_profile(real_vectors(vectors), encoded, seed)
    result = {"dataset": beir.name, "split": split, "vectors": str(vectors), "cpu_count": os.cpu_count()}
    result |= compare_with_twin(corpus_vectors(vectors), queries, profile, sample, seed, rounds, seismic)
    print(table(result))
    _save(result, output)
    if output:
        plot(result, output.with_suffix(".png"), f"{beir.name} ({split} queries)")


@app.command("train-step")
@writes("output", file_kind="json")
def train_step_bench(
    preset: Annotated[str, typer.Option(help="Model shape: tiny (CPU tests) or 7b (Mistral-7B's).")] = "tiny",
    batch_size: Annotated[int, typer.Option(min=1, help="Query-document pairs per step.")] = 8,
    sweep: Annotated[
        str | None, typer.Option(help="Comma-separated batch sizes measured in one process (overrides --batch-size).")
    ] = None,
    query_length: Annotated[int, typer.Option(min=1, help="Query tokens (the echo input doubles it).")] = 32,
    doc_length: Annotated[int, typer.Option(min=1, help="Document tokens (the echo input doubles it).")] = 256,
    steps: Annotated[int, typer.Option(min=1, help="Timed steps.")] = 5,
    warmup_steps: Annotated[int, typer.Option(min=0, help="Untimed steps first.")] = 2,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto (bf16 on a GPU), fp32 or bf16.")] = "auto",
    gradient_checkpointing: Annotated[bool, typer.Option(help="Checkpoint every decoder layer.")] = True,
    compare_checkpointing: Annotated[bool, typer.Option(help="Run every batch size with and without.")] = False,
    lr: Annotated[float, typer.Option(help="AdamW learning rate of the LoRA adapters.")] = 1e-4,
    output: Annotated[Path | None, typer.Option(help="Write the result as JSON here too.")] = None,
) -> None:
    """Mistral-SPLADE LoRA training step (random weights): step time, throughput, peak memory."""
    from lsr.eval.bench.train_step import parse_sizes, run_bench

    try:
        sizes = parse_sizes(sweep) if sweep else [batch_size]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--sweep") from exc
    result = run_bench(
        preset=preset,
        batch_sizes=sizes,
        query_length=query_length,
        doc_length=doc_length,
        steps=steps,
        warmup_steps=warmup_steps,
        device=device,
        dtype=dtype,
        checkpointing=(True, False) if compare_checkpointing else (gradient_checkpointing,),
        lr=lr,
    )
    _report(result, output)


@app.command("serve")
@writes("output", file_kind="json")
def serve_bench(
    index: Annotated[Path, typer.Option(help="Sparse index folder (`lsr index`) the server searches.")],
    queries: Annotated[Path, typer.Option(help="BEIR folder or queries.jsonl whose query texts are sent.")],
    model: Annotated[str | None, typer.Option(help="Query encoder instead of the one the index names.")] = None,
    dense_index: Annotated[Path | None, typer.Option(help="Dense index folder: adds dense and hybrid.")] = None,
    retriever: Annotated[
        list[str] | None, typer.Option(help="Retrievers to load-test, in turn (default: all the server has).")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Client threads (closed loop).")] = 8,
    requests: Annotated[int, typer.Option(min=1, help="Measured requests per retriever.")] = 2000,
    warmup: Annotated[int, typer.Option(min=0, help="Unmeasured requests per retriever first.")] = 200,
    k: Annotated[int, typer.Option(min=1)] = 10,
    soak_seconds: Annotated[float, typer.Option(min=0, help="Soak run length over all retrievers (0: none).")] = 0,
    soak_interval: Annotated[float, typer.Option(min=0.1, help="Seconds between memory samples.")] = 5.0,
    max_growth_mb: Annotated[float, typer.Option(help="Soak: largest RSS growth still called stable.")] = 50.0,
    server_option: Annotated[
        list[str] | None, typer.Option(help="Extra `lsr serve` option, e.g. --server-option=--batch-window-ms=1.")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Write the result as JSON here too.")] = None,
) -> None:
    """QPS and p50/p99 latency of `lsr serve` on 127.0.0.1 per retriever, and a soak run watching its memory."""
    from lsr.eval.bench.serve import machine, run_retriever, soak, start_server, stop_server

    texts = _query_texts(queries)
    arguments = _server_arguments(index, model, dense_index, server_option)
    chosen = retriever or (["sparse", "dense", "hybrid"] if dense_index else ["sparse"])
    result: dict = {"machine": machine(), "server_arguments": arguments, "queries": len(texts), "k": k}
    result["settings"] = {"concurrency": concurrency, "requests": requests, "warmup": warmup}
    process, address = start_server(arguments)
    try:
        result["retrievers"] = {}
        for name in chosen:
            result["retrievers"][name] = run_retriever(address, texts, name, concurrency, requests, k, warmup)
            console.print(f"{name}: {result['retrievers'][name]['qps']:,.1f} QPS")
        if soak_seconds:
            result["soak"] = soak(
                address, texts, chosen, concurrency, soak_seconds, k, soak_interval, max_growth_mb=max_growth_mb
            )
    finally:
        result["server_exit_status"] = stop_server(process)
    _serve_table(result)
    _save(result, output)


def _short(value: float) -> str:
    """A number in at most 6 characters, to 3 significant digits below 100 (a table cell of 80 columns)."""
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"


def _open_loop_table(result: dict) -> None:
    """``lsr bench serve-open`` as one table of at most 80 columns: a row per offered rate."""
    from rich import box
    from rich.table import Table

    settings, cpus = result["settings"], result["cpus"]
    title = (
        f"lsr serve open loop: {result['retriever']}, {settings['arrivals']} arrivals, {settings['seconds']:g} s a "
        f"rate; server on CPU {cpus['server']}, client on CPU {cpus['client']}; latency ms from due time"
    )
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=0, show_edge=False)
    for column in ("offered", "done/s", "p50", "p90", "p99", "p99.9", "max", "late", "lag", "errors", "load"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in result["rates"]:
        table.add_row(
            _short(row["offered_qps"]),
            _short(row["achieved_qps"]),
            *(_short(row[p]) for p in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")),
            str(row["late_sends"]),
            _short(row["max_send_lag_ms"]),
            str(sum(row["errors"].values())),
            f"{row['load_average_start'][0]:.1f}-{row['load_average_end'][0]:.1f}",
        )
    console.print(table, width=80)
    console.print(
        "offered, done/s: queries/s sent, answered; late: calls sent over 1 ms after their due time; lag: the "
        "largest, ms; load: 1-minute load average at start-end",
        width=80,
    )
    for row in result["rates"]:
        if row["errors"]:
            console.print(f"errors at {row['offered_qps']:g}/s: {row['errors']}", width=80)


@app.command("serve-open")
@writes("output", file_kind="json")
def serve_open_bench(
    index: Annotated[Path, typer.Option(help="Sparse index folder (`lsr index`) the server searches.")],
    queries: Annotated[Path, typer.Option(help="BEIR folder or queries.jsonl whose query texts are sent.")],
    rates: Annotated[
        str, typer.Option("--rates", "--rate", help="Offered queries/s; comma-separated for a sweep (50,100,200).")
    ],
    seconds: Annotated[float, typer.Option(help="Measured seconds per rate.")] = 20.0,
    warmup: Annotated[float, typer.Option(help="Unmeasured seconds at each rate first.")] = 2.0,
    arrivals: Annotated[str, typer.Option(help="constant (evenly spaced) or poisson (seeded).")] = "constant",
    seed: Annotated[int, typer.Option(help="Seed of the Poisson arrivals.")] = 1,
    retriever: Annotated[str, typer.Option(help="Retriever every request asks for.")] = "sparse",
    model: Annotated[str | None, typer.Option(help="Query encoder instead of the one the index names.")] = None,
    dense_index: Annotated[Path | None, typer.Option(help="Dense index folder: adds dense and hybrid.")] = None,
    k: Annotated[int, typer.Option(min=1)] = 10,
    server_cpus: Annotated[
        str | None, typer.Option(help="CPUs of the server, e.g. 0 or 0-2 (default: all but the client's).")
    ] = None,
    client_cpus: Annotated[
        str | None, typer.Option(help="CPUs of the load generator (default: the last one this process may use).")
    ] = None,
    server_option: Annotated[
        list[str] | None, typer.Option(help="Extra `lsr serve` option, e.g. --server-option=--batch-window-ms=1.")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Write the result as JSON here (and a .png plot beside).")] = None,
) -> None:
    """Open-loop load on `lsr serve`: calls sent at a fixed rate without waiting for replies, latency from each
    call's due time, server and generator pinned to disjoint CPUs (Linux); one row per offered rate."""
    from lsr.eval.bench.open_loop import make_plan, plot, sweep

    from lsr.errors import LsrError

    try:
        plan = make_plan(rates, seconds, warmup, arrivals, seed, server_cpus, client_cpus)
    except ValueError as exc:
        raise LsrError(str(exc)) from None
    result = sweep(
        _server_arguments(index, model, dense_index, server_option), _query_texts(queries), retriever, plan, k
    )
    _open_loop_table(result)
    _save(result, output)
    if output:
        plot(result, output.with_suffix(".png"))


@app.command("serve-fairness")
@writes("output", file_kind="json")
def serve_fairness_bench(
    index: Annotated[Path, typer.Option(help="Sparse index folder (`lsr index`) the server searches.")],
    dataset: Annotated[
        Path, typer.Option(help="BEIR folder: its queries are the small searches, its corpus the long texts.")
    ],
    seconds: Annotated[float, typer.Option(min=1, help="Length of each measured phase (idle, under load).")] = 60.0,
    rounds: Annotated[
        int, typer.Option(min=1, help="Alternate idle and loaded parts this many times, pooling each phase.")
    ] = 6,
    k: Annotated[int, typer.Option(min=1, help="Hits of each small search.")] = 10,
    max_texts: Annotated[int, typer.Option(min=1, help="Texts/queries per call the server advertises.")] = 256,
    max_chars: Annotated[int, typer.Option(min=1, help="Characters per text the server advertises.")] = 4096,
    max_k: Annotated[int, typer.Option(min=1, help="Largest k the server advertises.")] = 1000,
    server_option: Annotated[
        list[str] | None, typer.Option(help="Extra `lsr serve` option, e.g. --server-option=--slice-ms=5.")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Write the result as JSON here too.")] = None,
) -> None:
    """Small-Search p50/p99 on an idle `lsr serve`, and while a background client keeps the largest Encode and
    BatchSearch the server accepts running."""
    from lsr.eval.bench.serve_fairness import run

    result = run(index, dataset, seconds, k, max_texts, max_chars, max_k, list(server_option or []), rounds=rounds)
    _report(result, output)


@app.command(
    "gpu",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def gpu_bench(ctx: typer.Context) -> None:
    """GPU search kernels on a generated corpus against the card's bandwidth bound, and lsr's CPU kernel on the same
    queries. Takes the arguments of `python -m lsr.eval.bench.gpu_search` (which runs on bare GPU machines without
    typer): `lsr bench gpu --help` lists them."""
    from lsr.eval.bench.gpu_search import main

    main(ctx.args, prog="lsr bench gpu")
