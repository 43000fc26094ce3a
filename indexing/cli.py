"""``lsr index`` and ``lsr search``: the learned-sparse inverted index from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from lsr.cli_force import writes
from lsr.encode.cli import BackendOption, StrideOption, WindowPoolingOption

console = Console()
HeapFactorOption = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        help="Clustered search (CPU, after `lsr index cluster`): score the blocks whose summary reaches this "
        "factor x the k-th best; lower is slower with higher recall (Seismic's heap_factor, 0.7-1.0).",
    ),
]
QueryCutOption = Annotated[
    int | None, typer.Option(min=1, help="Clustered search: visit the lists of this many heaviest query terms.")
]


index_app = typer.Typer(help="Build an index (the options below), or export and import one (the commands).")


@index_app.callback(invoke_without_command=True)
@writes("output")
def index(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option(help="Index folder to write (replaced atomically).")] = None,
    model: Annotated[str | None, typer.Option(help="Encoder folder or Hugging Face id (sparse, or dense).")] = None,
    corpus: Annotated[Path | None, typer.Option(help="BEIR folder or zip, or a corpus .jsonl[.gz] file.")] = None,
    vectors: Annotated[
        list[Path] | None,
        typer.Option(help="Index ready shards from `lsr encode` instead; repeat to merge several machines' folders."),
    ] = None,
    weights: Annotated[str, typer.Option(help="float16 (exact half precision) or uint8 (quantised).")] = "float16",
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    device: Annotated[str, typer.Option(help="Encoding device: auto, cpu or cuda.")] = "auto",
    max_length: Annotated[int | None, typer.Option(min=1, help="Token limit per document (window length).")] = None,
    stride: StrideOption = None,
    window_pooling: WindowPoolingOption = "max",
    backend: BackendOption = "torch",
    keep_vectors: Annotated[bool, typer.Option(help="Also put the encoded shards next to the index.")] = False,
    dense_backend: Annotated[
        str, typer.Option(help="Dense models: hnsw, exact, faiss-flat, faiss-hnsw or faiss-ivf (default settings).")
    ] = "hnsw",
    cache_dir: Annotated[
        Path | None, typer.Option(help="Shared encodings cache (default $LSR_CACHE, else the platform cache).")
    ] = None,
) -> None:
    """Encode a corpus (or take encoded shards) and build an on-disk inverted index (a dense index for a dense
    model, as `lsr serve --dense-index` takes). Encodings already in the cache (from lsr encode or lsr eval run of
    the same model over the same corpus) are used without loading the model."""
    if ctx.invoked_subcommand is not None:
        return
    if output is None:
        raise typer.BadParameter("--output is required", param_hint="lsr index")
    from lsr.indexing.sparse.build import build_index

    from lsr.encode.shards import iter_merged, merged_manifest

    loaded: list = []
    folders = list(vectors or [])
    source = ""  # the corpus, recorded in the index so that `lsr query` can show its titles
    if not folders:
        if model is None or corpus is None:
            raise typer.BadParameter("give --model and --corpus, or --vectors", param_hint="lsr index")
        from lsr.cache import cache_root, cached_vectors, materialise
        from lsr.cache.vectors import encoding_settings
        from lsr.data.beir import corpus_source
        from lsr.encode.cli import encoder_overrides

        model = str(Path(model).resolve()) if Path(model).is_dir() else model

        def load() -> Any:  # only on a cache miss: a hit never loads the model
            loaded.append(_encoder(model, device, backend, **encoder_overrides(max_length, stride, window_pooling)))
            return loaded[0]

        settings = encoding_settings(max_length, "auto", backend, stride, window_pooling)
        src, source = corpus_source(corpus), str(corpus.resolve())
        folders = [cached_vectors(cache_root(cache_dir), src, model, load, batch_size, settings)]
        if keep_vectors:
            materialise(folders[0], output.with_name(output.name + ".vectors"))
    manifest = merged_manifest(folders)
    name = model or manifest.model
    if manifest.dense:
        from lsr.indexing.dense import build_dense_index

        from lsr.cache.vectors import similarity as recorded

        similarity = recorded(folders[0]) or (loaded[0] if loaded else _encoder(manifest.model)).similarity
        dense = build_dense_index(lambda: iter_merged(folders), output, name, similarity, dense_backend, corpus=source)
        summary = f"indexed {dense.num_docs:,} {dense.dimension}-d vectors ({dense_backend}, {similarity})"
    else:
        meta = build_index(lambda: iter_merged(folders), output, name, manifest.kind, weights, corpus=source)
        summary = f"indexed {meta.num_docs:,} documents, {meta.nnz:,} postings"
    console.print(f"{summary}, at {output}")


def _encoder(model: str, device: str = "cpu", backend: str = "torch", **overrides: Any) -> Any:
    from lsr.models import load_encoder

    return load_encoder(model, device=device, backend=backend, **overrides)


@writes("output", file_kind="trec")
def search(
    index_dir: Annotated[Path, typer.Option("--index", help="Index folder from `lsr index`.")],
    queries: Annotated[Path, typer.Option(help="BEIR queries.jsonl (or .gz).", exists=True, dir_okay=False)],
    output: Annotated[Path, typer.Option(help="TREC run file to write.")],
    k: Annotated[int, typer.Option(min=1, help="Hits per query.")] = 1000,
    device: Annotated[str, typer.Option(help="cpu (Numba) or cuda (GPU kernel).")] = "cpu",
    budget: Annotated[
        int, typer.Option(min=0, help="Approximate: read at most this many postings per term (0: exact).")
    ] = 0,
    query_terms: Annotated[
        int | None, typer.Option(min=1, help="Approximate: keep the heaviest query terms only.")
    ] = None,
    rerank: Annotated[int, typer.Option(min=0, help="Approximate: rescore this many candidates exactly (CPU).")] = 0,
    approximate: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Dynamic pruning with this alpha in (0, 1]: smaller is faster, lower recall (CPU; rerank >= 100).",
        ),
    ] = None,
    heap_factor: HeapFactorOption = None,
    query_cut: QueryCutOption = None,
    encode_device: Annotated[str, typer.Option(help="Device for the query encoder.")] = "auto",
    gpu_kernel: Annotated[
        str,
        typer.Option(help="With --device cuda: tiles (exact, shared-memory tiles), forward or postings (--budget)."),
    ] = "tiles",
    tag: Annotated[str, typer.Option(help="Run tag.")] = "lsr",
    split: Annotated[
        str | None,
        typer.Option(help="Only the queries this split judges: qrels/SPLIT.tsv beside the queries file (BEIR layout)."),
    ] = None,
) -> None:
    """Search an index with a BEIR queries file, encoding queries with the index's own model."""
    import time

    from lsr.indexing.sparse.format import SparseIndex
    from lsr.indexing.sparse.retriever import SparseSearcher, sparse_encoder
    from lsr.indexing.sparse.settings import Pruning

    from lsr.data.beir import judged_queries, read_queries
    from lsr.data.textio import TextSource
    from lsr.runs import write_run

    opened = SparseIndex.open(index_dir)
    pruning = Pruning(budget, query_terms, rerank, approximate, gpu_kernel, heap_factor, query_cut)
    searcher = SparseSearcher(opened, device, pruning)  # options checked before the model loads
    encoder = sparse_encoder(opened.meta.model, opened.meta.vocab_size, encode_device)
    texts = read_queries(TextSource(queries))
    if split is not None:
        texts = judged_queries(texts, queries.parent / "qrels" / f"{split}.tsv")
    ids = list(texts)
    vectors = encoder.encode_query([texts[q] for q in ids], show_progress=True)
    first = searcher.warm_up(vectors, k)  # the kernels' JIT compile, kept out of the reported speed
    started = time.perf_counter()
    hits = searcher.search(vectors, k)
    seconds = time.perf_counter() - started
    write_run({qid: found.as_dict() for qid, found in zip(ids, hits, strict=True)}, output, tag=tag)
    console.print(
        f"{len(ids):,} queries in {seconds:.2f} s ({1000 * seconds / max(len(ids), 1):.2f} ms/query; a first "
        f"untimed query took {first:.2f} s with the kernels' compile), run at {output}"
    )


def _model_tokens(model: str, size: int | None = None) -> list[str]:
    """The model's tokens for term ids 0..size-1 (default: its vocabulary): the names other engines know."""
    from lsr.indexing.lucene.impact import token_names
    from transformers import AutoTokenizer

    from lsr.models.hub import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(model), trust_remote_code=False)
    size = tokenizer.vocab_size if size is None else size
    return token_names(tokenizer.convert_ids_to_tokens(list(range(size))), size)


TermsOption = Annotated[
    str, typer.Option(help="Name terms by the model's tokens (tokens) or by decimal term ids (ids).")
]
_EXPORT_KINDS = {"ciff": "ciff", "seismic-jsonl": "json"}


@index_app.command("export")
def export_index(
    index_dir: Annotated[Path, typer.Option("--index", help="Sparse index folder from `lsr index`.")],
    output: Annotated[Path, typer.Option(help="File to write (replaced atomically).")],
    format: Annotated[str, typer.Option("--format", help="ciff or seismic-jsonl.")] = "ciff",
    terms: TermsOption = "tokens",
    force: Annotated[bool, typer.Option("--force", help="Replace the output even if lsr did not write it.")] = False,
) -> None:
    """Write a sparse index's postings as integer impacts round(100 w): CIFF (PISA, Anserini, BMP, Terrier read
    it) or Seismic's JSONL."""
    from lsr.indexing.sparse.ciff import export_ciff
    from lsr.indexing.sparse.format import IndexMeta
    from lsr.indexing.sparse.seismic_jsonl import export_seismic_jsonl

    from lsr.fsutil import check_file_replaceable, forcing, writing

    if format not in _EXPORT_KINDS:
        raise typer.BadParameter(f"{format!r}: choose ciff or seismic-jsonl", param_hint="--format")
    if terms not in ("tokens", "ids"):
        raise typer.BadParameter(f"{terms!r}: choose tokens or ids", param_hint="--terms")
    with forcing(force):
        check_file_replaceable(output, _EXPORT_KINDS[format])
        meta = IndexMeta.load(index_dir)
        vocabulary = _model_tokens(meta.model, meta.vocab_size) if terms == "tokens" else None
        with writing(output):
            if format == "ciff":
                counts = export_ciff(index_dir, output, vocabulary)
                console.print(
                    f"{counts['documents']:,} documents, {counts['postings_lists']:,} postings lists at {output}"
                )
            else:
                console.print(f"{export_seismic_jsonl(index_dir, output, vocabulary):,} documents at {output}")


@index_app.command("cluster")
def cluster_index(
    index_dir: Annotated[Path, typer.Option("--index", help="Sparse index folder from `lsr index`.")],
    max_postings: Annotated[int, typer.Option(min=1, help="Postings kept per term (its heaviest).")] = 18_000,
    centroid_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Blocks per list, as a fraction of its kept postings.")
    ] = 0.2,
    summary_energy: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of a block summary's L1 mass kept.")
    ] = 0.5,
    doc_cut: Annotated[int, typer.Option(min=1, help="Heaviest terms per document used to cluster.")] = 15,
    seed: Annotated[int, typer.Option(help="Seed of the centroids' choice.")] = 0,
    min_cluster_size: Annotated[
        int, typer.Option(min=0, help="Clusters of this many documents or fewer are merged into others.")
    ] = 2,
    keep_list_term: Annotated[
        bool, typer.Option(help="Keep each block's own list term in its summary, whatever the energy cut.")
    ] = True,
    force: Annotated[
        bool, typer.Option("--force", help="Replace INDEX/clusters even if lsr did not write it.")
    ] = False,
) -> None:
    """Group each term's heaviest postings into blocks of similar documents with summaries (INDEX/clusters), for
    the fast approximate search of `lsr search --heap-factor` (Seismic's structure, lsr's code)."""
    import time

    from lsr.indexing.sparse.cluster_build import build_clusters
    from lsr.indexing.sparse.clusters import ClusterSettings, describe
    from lsr.indexing.sparse.format import SparseIndex

    from lsr.fsutil import forcing

    opened = SparseIndex.open(index_dir)
    try:
        settings = ClusterSettings(
            max_postings, centroid_fraction, summary_energy, doc_cut, seed, min_cluster_size, keep_list_term
        )
        settings.check()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    started = time.perf_counter()
    with forcing(force):
        clusters = build_clusters(opened, settings)
        folder = clusters.save(opened)
    console.print(f"{describe(clusters)} in {time.perf_counter() - started:.1f} s, at {folder}")


@index_app.command("import")
@writes("output")
def import_index(
    ciff: Annotated[Path, typer.Option(help="CIFF file (from lsr or another engine).", exists=True, dir_okay=False)],
    output: Annotated[Path, typer.Option(help="Index folder to write (replaced atomically).")],
    model: Annotated[
        str | None, typer.Option(help="The model whose vocabulary the terms are (default: what lsr recorded).")
    ] = None,
    terms: TermsOption = "tokens",
    weights: Annotated[str, typer.Option(help="float16 (exact half precision) or uint8 (quantised).")] = "float16",
) -> None:
    """Build a sparse index from a CIFF file; weights are its impacts / 100 (the scale lsr recorded, if any)."""
    from lsr.indexing.sparse.ciff import import_ciff, read_header

    if terms not in ("tokens", "ids"):
        raise typer.BadParameter(f"{terms!r}: choose tokens or ids", param_hint="--terms")
    vocabulary = None
    if terms == "tokens":
        recorded = read_header(ciff)["lsr"]
        name = model or recorded.get("model")
        if not isinstance(name, str):
            raise typer.BadParameter("the file names no model: give --model, or --terms ids", param_hint="--model")
        vocabulary = _model_tokens(name)
    meta = import_ciff(ciff, output, vocabulary, model=model, weights=weights)
    console.print(f"indexed {meta.num_docs:,} documents, {meta.nnz:,} postings, at {output}")


export_app = typer.Typer(help="Export vectors to other engines.", no_args_is_help=True)


@export_app.command("lucene")
@writes("output")
def export_lucene(
    vectors: Annotated[Path, typer.Option(help="Sparse vectors folder from `lsr encode`.")],
    output: Annotated[Path, typer.Option(help="JsonVectorCollection folder to write.")],
    index_dir: Annotated[Path | None, typer.Option("--index", help="Also build an Anserini impact index here.")] = None,
    threads: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Write vectors as Anserini's JsonVectorCollection (impacts = round(100 w), model tokens as terms)."""
    from lsr.indexing.lucene.impact import build_impact_index, write_json_vectors

    from lsr.encode.shards import Manifest, iter_shards

    manifest = Manifest.load(vectors)
    count = write_json_vectors(iter_shards(vectors), output, _model_tokens(manifest.model, manifest.dimension))
    console.print(f"{count:,} documents written to {output}")
    if index_dir is not None:
        seconds = build_impact_index(output, index_dir, threads)
        console.print(f"Anserini impact index at {index_dir} ({seconds:.1f} s)")


@export_app.command("milvus")
def export_milvus(
    uri: Annotated[str, typer.Option(help="Milvus Lite file (*.db, embedded) or a Milvus server, http://host:19530.")],
    collection: Annotated[str, typer.Option(help="Collection to create.")],
    sparse: Annotated[
        Path | None, typer.Option("--index", "--sparse", help="Sparse index folder (`lsr index`) or sparse vectors.")
    ] = None,
    dense: Annotated[Path | None, typer.Option("--dense", help="Dense vectors folder from `lsr encode`.")] = None,
    dense_metric: Annotated[str, typer.Option(help="auto (the model's similarity), cosine, dot or l2.")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing collection of that name.")] = False,
    token: Annotated[str | None, typer.Option(envvar="MILVUS_TOKEN", help="Milvus user:password.")] = None,
) -> None:
    """Write documents with their sparse vector (inverted index) and/or dense vector (HNSW) into Milvus."""
    from lsr.indexing.milvus import export_milvus as export

    count = export(uri, collection, sparse, dense, dense_metric, overwrite, token=token)
    console.print(f"{count:,} documents written to Milvus collection {collection!r} at {uri}")
