"""``lsr encode``: corpus to vector shards, and ``lsr encode idf`` for inference-free models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from lsr.cli_force import writes

app = typer.Typer(help="Encode a corpus into vector shards (resumable), or compute an IDF table.")
console = Console()

ModelOption = Annotated[str, typer.Option(help="Encoder folder or Hugging Face id (all-minilm-l6-v2: embedded dense).")]
CorpusOption = Annotated[Path, typer.Option(help="BEIR folder or zip, or a corpus .jsonl[.gz] file.", exists=True)]
DeviceOption = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
BackendOption = Annotated[
    str, typer.Option(help="torch, or onnx / onnx-int8: SPLADE documents through ONNX Runtime on the CPU.")
]
StrideOption = Annotated[
    int | None,
    typer.Option(min=1, help="Encode long documents as windows of --max-length tokens starting this many apart."),
]
WindowPoolingOption = Annotated[str, typer.Option(help="With --stride: max or sum of the windows' vectors.")]


def encoder_overrides(max_length: int | None, stride: int | None, window_pooling: str) -> dict[str, Any]:
    """The ``load_encoder`` settings the encoding options give (only those set: the model's own stay otherwise)."""
    given = {"max_length": max_length, "stride": stride}
    return {k: v for k, v in given.items() if v} | ({"window_pooling": window_pooling} if stride else {})


@app.callback(invoke_without_command=True)
@writes("output")
def encode(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Encoder folder or Hugging Face id.")] = None,
    corpus: Annotated[Path | None, typer.Option(help="BEIR folder or zip, or a corpus .jsonl[.gz] file.")] = None,
    output: Annotated[Path | None, typer.Option(help="Vectors folder (resumed if interrupted).")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    shard_size: Annotated[int, typer.Option(min=1, help="Documents per shard file.")] = 10_000,
    max_length: Annotated[int | None, typer.Option(min=1, help="Token limit per document.")] = None,
    stride: StrideOption = None,
    window_pooling: WindowPoolingOption = "max",
    backend: BackendOption = "torch",
    device: DeviceOption = "auto",
    dtype: Annotated[str, typer.Option(help="auto (bf16 on GPU, fp32 on CPU), fp32, bf16 or fp16.")] = "auto",
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="Encode on a Ray cluster: its address, auto (the cluster this machine belongs to) or local.",
        ),
    ] = None,
    max_retries: Annotated[int, typer.Option(min=0, help="With --ray: reruns of a block whose worker failed.")] = 3,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Shared encodings cache (default $LSR_CACHE, else the platform cache).")
    ] = None,
) -> None:
    """Encode every document of a corpus into vector shards, with progress; rerun to resume. Encodings of the same
    model over the same corpus already in the cache (from lsr index, lsr eval run) are reused, not recomputed."""
    if ctx.invoked_subcommand is not None:
        return
    if model is None or corpus is None or output is None:
        raise typer.BadParameter("--model, --corpus and --output are required", param_hint="lsr encode")
    from lsr.cache import cache_root, find_vectors, materialise, publish_vectors
    from lsr.cache.vectors import encoding_settings
    from lsr.data.beir import corpus_source
    from lsr.encode.corpus import encode_corpus
    from lsr.encode.shards import Manifest
    from lsr.models import load_encoder

    if Path(model).is_dir():  # the manifest must name the model from anywhere, not relative to this directory
        model = str(Path(model).resolve())
    settings = encoding_settings(max_length, dtype, backend, stride, window_pooling)
    root, src = cache_root(cache_dir), corpus_source(corpus)
    cached = find_vectors(root, src, model, settings)
    if cached is not None:
        materialise(cached, output)
        console.print(f"{Manifest.load(output).documents:,} documents at {output}, from the cache (not encoded again)")
        return
    if ray is not None:
        if backend != "torch" or stride:
            raise typer.BadParameter("--ray encodes with torch and without windows", param_hint="--ray")
        from lsr.encode.distributed import encode_corpus_ray

        manifest = encode_corpus_ray(
            model, src, output, ray, shard_size, batch_size, device, dtype, max_length, max_retries
        )
        publish_vectors(output, root, src, model, settings, None)
        console.print(f"{manifest.documents:,} documents in {len(manifest.shards)} shard(s) at {output} (Ray)")
        return
    overrides = encoder_overrides(max_length, stride, window_pooling)
    encoder = load_encoder(model, device=device, backend=backend, dtype=dtype, **overrides)
    manifest = encode_corpus(encoder, model, src, output, shard_size, batch_size)
    publish_vectors(output, root, src, model, settings, encoder)
    console.print(f"{manifest.documents:,} documents in {len(manifest.shards)} shard(s) at {output}")


@app.command("idf")
@writes("output")
def idf(
    model: ModelOption,
    corpus: CorpusOption,
    output: Annotated[Path, typer.Option(help="Folder for the inference-free encoder (weights + idf.json).")],
) -> None:
    """Compute token IDF over a corpus and save an inference-free encoder (SPLADE documents, IDF queries)."""
    from lsr.data.beir import corpus_source, read_corpus
    from lsr.encode.corpus import document_text
    from lsr.models import InferenceFreeEncoder, SpladeEncoder
    from lsr.models.idf import corpus_idf

    documents = SpladeEncoder.from_pretrained(model, device="cpu")
    texts = (document_text(d) for d in read_corpus(corpus_source(corpus)))
    table, count = corpus_idf(documents.tokenizer, texts)
    InferenceFreeEncoder(documents, table).save_pretrained(output)
    console.print(f"IDF over {count:,} documents saved with the encoder at {output}")
