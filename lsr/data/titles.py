"""Titles to print beside document and item ids, from the data that has them.

A ranked list of bare ids (``4983``, ``1682``) tells a reader nothing; the BEIR corpus has a title per document and
MovieLens names every movie. :func:`titles` reads them for the ids being shown only, streaming the file and
stopping once every id is found, so a large corpus costs one partial read. :func:`recorded_titles` reads them from a
path another machine recorded (the corpus a server's index was built from), where failing is no error.
"""

from __future__ import annotations

import csv
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lsr.data.beir import corpus_source, read_corpus
from lsr.errors import LsrError

if TYPE_CHECKING:
    from rich.table import Table

ITEM_FILES = ("u.item", "movies.dat", "movies.csv")
"""MovieLens item files by release: 100K (``id|title|...``), 1M/10M (``id::title::genres``), the CSV releases."""


def _movielens(path: Path) -> Iterator[tuple[str, str]]:
    """``(item id, title)`` pairs of a MovieLens item file (100K and 1M are Latin-1, the CSV releases UTF-8)."""
    if path.name == "movies.csv":
        with open(path, encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                yield str(row.get("movieId", "")), str(row.get("title", ""))
        return
    separator = "|" if path.name == "u.item" else "::"
    with open(path, encoding="latin-1") as handle:
        for line in handle:
            parts = line.rstrip("\n").split(separator)
            if len(parts) >= 2:
                yield parts[0], parts[1]


def item_file(folder: Path) -> Path | None:
    """The MovieLens item file in ``folder``, if there is one."""
    return next((folder / name for name in ITEM_FILES if (folder / name).is_file()), None)


def item_file_of(path: Path) -> Path | None:
    """The MovieLens item file ``path`` is or holds, if any (else it is a BEIR corpus)."""
    return item_file(path) if path.is_dir() else (path if path.name in ITEM_FILES else None)


def titles(path: str | Path, ids: Collection[str]) -> dict[str, str]:
    """The titles of ``ids`` found in ``path``: a MovieLens item file (or a folder with one), else a BEIR corpus
    (folder, zip or corpus file). Ids without a title (or an empty one) are left out."""
    path = Path(path)
    wanted = set(ids)
    items = item_file_of(path)
    if items is not None:
        pairs: Iterator[tuple[str, str]] = _movielens(items)
    else:
        pairs = ((doc.id, doc.title) for doc in read_corpus(corpus_source(path)))
    found: dict[str, str] = {}
    for key, title in pairs:
        if key in wanted and title:
            found[key] = title
            if len(found) == len(wanted):
                break
    return found


UNREADABLE = (LsrError, OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error)
"""What reading titles from a file that is unreadable, damaged or no corpus at all raises: lsr's own format errors,
permissions and I/O, a truncated gzip, a bad path or encoding, a damaged zip or deflate stream."""


def recorded_titles(
    source: str, ids: Collection[str], reader: Callable[[Path, Collection[str]], dict[str, str]] = titles
) -> tuple[dict[str, str], str | None]:
    """The titles of ``ids`` from a corpus path recorded on another machine (the one a server's index was built
    from), and what went wrong reading them, if anything. A path this machine lacks gives no titles and no problem:
    the server's corpus is often elsewhere. Any other failure is a problem to mention, never an error: titles only
    decorate hits already in hand. ``reader`` reads them (``lsr query`` passes the cache's table lookup)."""
    if not source:
        return {}, None
    try:
        path = Path(source)
        if not path.is_dir() and not path.is_file():
            return {}, None
        return reader(path, ids), None
    except UNREADABLE as exc:
        return {}, f"no titles: the server's corpus {source} could not be read ({exc})"


def source_folder(source: str) -> Path | None:
    """The folder of the first file a recorded data source names (``a/u1.base + a/u1.test``, ``a/u.data (random
    split, seed 0)``): where a trained recommender's item names are looked for."""
    first = source.split(" + ")[0].split(" (")[0].strip()
    folder = Path(first).parent if first else None
    return folder if folder is not None and folder.is_dir() else None


def ranked_table(
    caption: str, hits: Sequence[tuple[str, float]], key: str, names: dict[str, str], width: int | None = None
) -> Table:
    """Rank, id, title (when any hit has one) and score: what ``lsr query`` and ``lsr recommend user`` print. Titles
    are cut with an ellipsis to what ``width`` (the terminal's, by default) leaves beside the other columns, which
    are shown whole: left to itself, rich squeezed the ids and scores to nothing beside a long title."""
    from rich.console import Console
    from rich.table import Table

    scores = [f"{score:.4f}" for _, score in hits]
    table = Table(title=caption, title_justify="left")
    table.add_column("rank", justify="right", no_wrap=True)
    table.add_column(key, no_wrap=True)
    if names:
        ranks = len(str(len(hits)))
        others = (
            max(len("rank"), ranks)
            + max(map(len, [key, *(doc for doc, _ in hits)]))
            + max(map(len, ["score", *scores]))
        )
        room = (width or Console().width) - others - 3 * 4 - 1  # four columns: a border and two spaces each, one more
        table.add_column("title", overflow="ellipsis", no_wrap=True, max_width=max(room, 10))
    table.add_column("score", justify="right", no_wrap=True)
    for rank, ((doc, _), score) in enumerate(zip(hits, scores, strict=True), start=1):
        title = [names.get(doc, "")] if names else []
        table.add_row(str(rank), doc, *title, score)
    return table
