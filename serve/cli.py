"""``lsr serve`` (start a gRPC server over an index) and ``lsr query`` (ask one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from lsr.indexing.cli import HeapFactorOption, QueryCutOption
from rich.console import Console

if TYPE_CHECKING:
    from lsr.serve.client import Client

console = Console()
err_console = Console(stderr=True, soft_wrap=True)
SWITCH_INTERVAL_S = 0.0005


def serve(
    index: Annotated[
        Path | None, typer.Option(help="Sparse index folder from `lsr index` (its model encodes queries).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Query encoder instead of the one the index names.")] = None,
    dense_index: Annotated[
        Path | None, typer.Option(help="Dense index folder (`lsr index` with a dense model): dense and hybrid search.")
    ] = None,
    dense_model: Annotated[str | None, typer.Option(help="Dense query encoder instead of the index's.")] = None,
    retriever: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME=FOLDER", help="Serve the registered retriever NAME over FOLDER too (repeatable)."),
    ] = None,
    imports: Annotated[
        list[str] | None,
        typer.Option(
            "--import",
            metavar="MODULE",
            help="Import this module first, so that the retrievers it registers are served.",
        ),
    ] = None,
    hybrid_legs: Annotated[
        str | None, typer.Option(help="The retrievers hybrid search fuses, comma-separated (default: all served).")
    ] = None,
    recommender: Annotated[
        Path | None, typer.Option(help="Trained recommender folder (`lsr recommend train`): the Recommend call.")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback warns without TLS and token.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one, printed).")] = 50051,
    workers: Annotated[int, typer.Option(min=1, help="Handler threads.")] = 32,
    max_in_flight: Annotated[
        int, typer.Option(min=1, help="Calls accepted at once; more get RESOURCE_EXHAUSTED at once.")
    ] = 128,
    batch_window_ms: Annotated[
        float, typer.Option(min=0.0, help="How long a batch waits for more concurrent queries (ms).")
    ] = 2.0,
    max_batch: Annotated[int, typer.Option(min=1, help="Largest micro-batch.")] = 64,
    max_k: Annotated[int, typer.Option(min=1, help="Largest k a request may ask for.")] = 1000,
    max_batch_queries: Annotated[
        int, typer.Option(min=1, help="Most queries (BatchSearch) or texts (Encode) one call may carry.")
    ] = 256,
    max_request_cost: Annotated[
        int,
        typer.Option(
            min=1, help="Work one call may ask for: query terms or text tokens (chars/4), plus hits; more: refused."
        ),
    ] = 65_536,
    slice_ms: Annotated[
        float, typer.Option(min=0.1, help="Longest kernel call; larger requests are cut into turns of this size.")
    ] = 10.0,
    express_cost: Annotated[
        int, typer.Option(min=0, help="Calls costing at most this get a sparse searcher of their own (0: none).")
    ] = 512,
    bulk_nice: Annotated[
        int,
        typer.Option(
            min=0, max=19, help="Nice value added to large requests' workers (Linux), so small ones get a core first."
        ),
    ] = 10,
    fusion: Annotated[str, typer.Option(help="Default hybrid fusion: rrf, minmax or zscore.")] = "rrf",
    hybrid_depth: Annotated[int, typer.Option(min=1, help="Hits per leg fused by hybrid search.")] = 100,
    device: Annotated[str, typer.Option(help="Sparse search: cpu (Numba) or cuda (GPU kernel).")] = "cpu",
    heap_factor: HeapFactorOption = None,
    query_cut: QueryCutOption = None,
    encode_device: Annotated[str, typer.Option(help="Query encoders' device: cpu, cuda or auto.")] = "cpu",
    max_message_mb: Annotated[float, typer.Option(min=0.001, help="Largest request or response (MiB).")] = 4.0,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM server certificate (chain): serve over TLS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")] = None,
    token: Annotated[
        str | None, typer.Option(envvar="LSR_TOKEN", help="Require `authorization: Bearer TOKEN` on every call.")
    ] = None,
    grace: Annotated[float, typer.Option(min=0.0, help="Seconds to finish calls in flight on SIGTERM/SIGINT.")] = 10.0,
) -> None:
    """Serve search (sparse, dense, any registered retriever, and their hybrid), query encoding and recommendations
    over gRPC (lsr.v1)."""
    import importlib
    import logging
    import os
    import sys

    from lsr.indexing.sparse.settings import Pruning
    from lsr.serve.engine import Engine, EngineConfig, Limits
    from lsr.serve.server import ServerOptions, check_options, serve_until_signalled, start_server
    from rich.logging import RichHandler

    from lsr.errors import LsrError

    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=err_console)])
    # A thread building a large reply keeps the interpreter lock until the switch interval asks for it (5 ms by
    # default), and a small search needs the lock several times on its way through: a shorter interval bounds
    # what each of those waits costs it, for a little throughput.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # A batch of texts is tokenized on one core, not all of them, so that large Encode calls leave cores to
    # searches, the express lane's among them (lsr.serve.engine keeps one core from the main searcher likewise).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if token is None and os.environ.get("LSR_TOKEN") == "":
        token = ""  # click reads an empty variable as unset: kept empty, check_options refuses it
    options = ServerOptions(
        host=host,
        port=port,
        workers=workers,
        max_in_flight=max_in_flight,
        max_message_bytes=int(max_message_mb * 1024 * 1024),
        tls_cert=tls_cert,
        tls_key=tls_key,
        token=token,
        grace=grace,
    )
    check_options(options)
    others = []
    for pair in retriever or ():
        name, _, folder = pair.partition("=")
        if not name or not folder:
            raise LsrError(f"--retriever takes NAME=FOLDER, not {pair!r}")
        others.append((name, Path(folder)))
    for module in imports or ():  # the user's own choice of code to run, as with `python -m` or `pytest -p`
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise LsrError(f"--import {module}: {exc}") from exc
    engine = Engine(
        EngineConfig(
            index=index,
            model=model,
            dense_index=dense_index,
            dense_model=dense_model,
            retrievers=tuple(others),
            hybrid_legs=tuple(hybrid_legs.split(",")) if hybrid_legs else None,
            recommender=recommender,
            device=device,
            encode_device=encode_device,
            fusion=fusion,
            hybrid_depth=hybrid_depth,
            max_batch=max_batch,
            window_ms=batch_window_ms,
            slice_ms=slice_ms,
            express_cost=express_cost,
            bulk_nice=bulk_nice,
            limits=Limits(max_k=max_k, max_batch_queries=max_batch_queries, max_request_cost=max_request_cost),
            pruning=Pruning(heap_factor=heap_factor, query_cut=query_cut),
        )
    )
    running = start_server(engine, options)
    what = ", ".join(engine.retrievers) + (", recommend" if engine.recommender is not None else "")
    if heap_factor is not None:
        from lsr.indexing.sparse.search import DEFAULT_QUERY_CUT

        cut = DEFAULT_QUERY_CUT if query_cut is None else query_cut
        what += f"; sparse by clustered search, heap factor {heap_factor}, query cut {cut}"
    scheme = "TLS" if tls_cert else "plaintext"
    err_console.print(
        f"serving {engine.describe()['num_docs']:,} documents ({what}) on {running.address} ({scheme}"
        f"{', token required' if token else ''}); Ctrl-C stops",
        highlight=False,
    )
    serve_until_signalled(running, grace)


def query(
    text: Annotated[str | None, typer.Argument(help="Query text.")] = None,
    server: Annotated[str, typer.Option(help="HOST:PORT of an `lsr serve`.")] = "127.0.0.1:50051",
    k: Annotated[int, typer.Option(min=1, help="Hits wanted.")] = 10,
    retriever: Annotated[str, typer.Option(help="sparse, dense, hybrid, or another retriever the server has.")] = (
        "sparse"
    ),
    user: Annotated[str | None, typer.Option(help="Recommend for this user id instead of searching.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per hit and line.")] = False,
    token: Annotated[str | None, typer.Option(envvar="LSR_TOKEN", help="Bearer token the server requires.")] = None,
    tls_ca: Annotated[
        Path | None, typer.Option(help="PEM root certificate to trust (the server's own when self-signed).")
    ] = None,
    tls: Annotated[bool, typer.Option(help="TLS with the system's root certificates.")] = False,
    timeout: Annotated[float, typer.Option(min=0.001, help="Deadline (seconds).")] = 30.0,
    titles: Annotated[
        Path | None,
        typer.Option(
            help="Show titles from this BEIR corpus (folder, zip, corpus.jsonl) or MovieLens items file (default: "
            "the corpus the server's index was built from, when this machine can read it)."
        ),
    ] = None,
    no_titles: Annotated[bool, typer.Option("--no-titles", help="Bare ids: no titles from any corpus.")] = False,
) -> None:
    """Search an `lsr serve` server (or ask it for recommendations) and print the hits, with the titles of the
    corpus the server's index was built from when this machine can read it (--titles names another)."""
    from lsr.errors import LsrError

    if (text is None) == (user is None):
        raise LsrError("give query text, or --user for recommendations")
    if titles is not None and no_titles:
        raise LsrError("--titles and --no-titles contradict each other; give one of them")
    import grpc
    from lsr.serve.client import Client

    with Client(server, token=token, tls_ca=tls_ca, tls=tls or None, timeout=timeout) as client:
        try:
            hits = client.recommend(user, k) if user is not None else client.search(text, k, retriever=retriever)
        except grpc.RpcError as exc:
            raise LsrError(f"{server}: {exc.code().name}: {exc.details()}") from None
        # recommendations are items, not the documents of the server's corpus
        recorded = _server_corpus(client, retriever) if titles is None and not no_titles and user is None else ""
    from lsr.cache.titles import titles as read_titles
    from lsr.data.titles import ranked_table, recorded_titles

    key = "item_id" if user is not None else "doc_id"
    ids = [doc for doc, _ in hits]
    if titles is not None:
        names, problem = read_titles(titles, ids), None
    else:
        names, problem = recorded_titles(recorded, ids, read_titles)
    if problem is not None:
        err_console.print(problem, style="dim", markup=False, highlight=False)
    if as_json:
        for rank, (doc, score) in enumerate(hits, start=1):
            title = {"title": names[doc]} if doc in names else {}
            typer.echo(json.dumps({"rank": rank, key: doc, **title, "score": score}))
        return
    caption = f"{'user ' + user if user is not None else repr(text)}: top {len(hits)} ({server})"
    console.print(ranked_table(caption, hits, key, names))


def _server_corpus(client: Client, retriever: str) -> str:
    """The corpus the documents of ``retriever`` came from, as the server's Stats reply says: its leg's (a server may
    hold legs of different corpora), else the server's (a hybrid's legs hold the same documents; a server older than
    ``legs``). Empty when it does not know or refuses Stats: titles are not worth failing a search that has its
    hits."""
    import grpc

    try:
        stats = client.stats()
    except grpc.RpcError:
        return ""
    return next((leg.corpus for leg in stats.legs if leg.name == retriever), stats.corpus)
