"""The ``lsr`` command. Each sub-command group lives beside the code it drives.

Heavy libraries (torch, pyserini, the JVM) are imported inside commands, so
``lsr --help`` stays instant.
"""

from __future__ import annotations

import sys
import warnings
from typing import Annotated

import typer

from lsr.cache.cli import app as cache_app
from lsr.data.cli import app as data_app
from lsr.encode.cli import app as encode_app
from lsr.errors import DataWarning, LsrError, print_problem
from lsr.eval.bench.cli import app as bench_app
from lsr.eval.cli import app as eval_app
from lsr.eval.demo import demo
from lsr.indexing.cli import export_app, index_app, search
from lsr.noise import lift_verbose, quiet_libraries
from lsr.push_cli import push
from lsr.recommend.cli import app as recommend_app
from lsr.serve.cli import query, serve
from lsr.train.cli import app as train_app

app = typer.Typer(
    help="lsr: learned sparse retrieval and recommendation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def options(
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show libraries' progress bars, logs and warnings (hidden by default).")
    ] = False,
) -> None:
    """lsr: learned sparse retrieval and recommendation."""
    if not verbose:
        quiet_libraries()


app.add_typer(data_app, name="data")
app.add_typer(eval_app, name="eval")
app.add_typer(encode_app, name="encode")
app.add_typer(bench_app, name="bench")
app.add_typer(export_app, name="export")
app.add_typer(recommend_app, name="recommend")
app.add_typer(train_app, name="train")
app.add_typer(cache_app, name="cache")
app.command("demo")(demo)
app.add_typer(index_app, name="index")
app.command("search")(search)
app.command("push")(push)
app.command("serve")(serve)
app.command("query")(query)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 - warnings' signature
    """Data warnings are for users: print them as one line, not with a source location."""
    if issubclass(category, DataWarning):
        print_problem("warning", "yellow", message)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


def main() -> None:
    """Console-script entry point: user-facing errors print as one red line and exit with status 2."""
    warnings.showwarning = _show_warning
    arguments, verbose = lift_verbose(sys.argv[1:])
    sys.argv[1:] = ["--verbose", *arguments] if verbose else arguments
    try:
        app()
    except LsrError as exc:
        print_problem("error", "red", exc)
        sys.exit(2)
