"""``lsr bench``: benchmarks that run lsr and its competitor side by side and report the ratio."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="Benchmarks against the real competitors, in the same run.", no_args_is_help=True)
console = Console()


def _report(result: dict, output: Path | None) -> None:
    """Print a benchmark's result, and keep it as JSON when asked."""
    console.print_json(json.dumps(result))
    if output:
        output.write_text(json.dumps(result, indent=2))


@app.command("encode")
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
    from eval.bench.encode import bench_splade, load_texts, random_splade

    texts = load_texts(corpus, docs)
    with tempfile.TemporaryDirectory() as tmp:
        if model is None:
            if tokenizer is None:
                raise typer.BadParameter("give --model, or --tokenizer for a random model", param_hint="--model")
            model = random_splade(tokenizer, Path(tmp) / "random", texts)
        result = bench_splade(model, texts, device, dtype, batch_size, max_length)
    _report(result, output)


@app.command("idf-query")
def idf_query_bench(
    model: Annotated[Path, typer.Option(help="Inference-free encoder folder (with idf.json).")],
    queries: Annotated[Path, typer.Option(help="BEIR folder whose queries are encoded.")],
    output: Annotated[Path | None, typer.Option(help="Write the result as JSON here too.")] = None,
) -> None:
    """Microseconds per query of the inference-free (IDF) query encoder, one query at a time, one thread."""
    from eval.bench.encode import bench_idf_queries
    from lsr.data.beir import BeirDataset
    from lsr.models import InferenceFreeEncoder

    encoder = InferenceFreeEncoder.from_pretrained(model, device="cpu")
    result = bench_idf_queries(encoder, list(BeirDataset(queries).queries().values()))
    _report(result, output)


@app.command("search")
def search_bench(
    index: Annotated[Path, typer.Option(help="Index folder from `lsr index`.")],
    queries: Annotated[Path, typer.Option(help="BEIR folder (its queries are used) or queries.jsonl.")],
    k: Annotated[int, typer.Option(min=1)] = 10,
    budget: Annotated[
        list[int] | None, typer.Option(help="Pruning budget (postings per term); repeat for several.")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Write the result as JSON here too.")] = None,
) -> None:
    """ms/query of exact search (batch and single-query p50/p99) and recall@10 of pruned search."""
    from eval.bench.search import bench_search
    from indexing.sparse.format import SparseIndex
    from lsr.data.beir import BeirDataset, read_queries
    from lsr.data.textio import TextSource
    from lsr.models import load_encoder

    opened = SparseIndex.open(index)
    texts = BeirDataset(queries).queries() if queries.is_dir() else read_queries(TextSource(queries))
    vectors = load_encoder(opened.meta.model, device="cpu").encode_query(list(texts.values()))
    result = bench_search(opened, vectors, k, tuple(budget or ()))
    _report(result, output)
