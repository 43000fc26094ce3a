"""Titles of a large corpus from a table built once per corpus content, instead of streaming the corpus each time.

Why: ``lsr query`` prints a title beside each hit, and :func:`lsr.data.titles.titles` streams the corpus until it
has found every id. A hit near the end of the packages corpus (1,038,337 documents) makes that a read of the whole
file, about 4 s per query. So the first lookup in a corpus of at least :data:`SMALL_CORPUS` bytes writes an SQLite
table of (id, title) into the cache, ``<cache>/titles/<corpus key>``, keyed by the corpus's content like its
encodings (``lsr cache ls`` lists it, ``lsr cache clear`` frees it); later lookups read only the rows asked for.
Smaller corpora and MovieLens item files are streamed as before.

Titles only decorate hits already in hand, so nothing here fails a command: a table another process is writing, an
unwritable cache or a full disk fall back to streaming, and a damaged table is rebuilt once, then streamed around.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from pathlib import Path

from tqdm.auto import tqdm

from lsr.cache.keys import cache_root, corpus_key
from lsr.cache.store import record_use
from lsr.data.beir import corpus_source, read_corpus
from lsr.data.textio import TextSource
from lsr.data.titles import item_file_of
from lsr.data.titles import titles as streamed_titles
from lsr.errors import LsrError
from lsr.fsutil import atomic_dir

SMALL_CORPUS = 2**20
"""Corpus files below this many bytes are streamed: reading one takes no longer than opening a table."""
TABLE = "titles.sqlite"
KIND = "titles"
_CHUNK = 500  # ids per query: well under SQLite's limit on bound parameters


def titles(path: str | Path, ids: Collection[str], cache_dir: str | Path | None = None) -> dict[str, str]:
    """The titles of ``ids`` in ``path`` (as :func:`lsr.data.titles.titles` finds them), from the cache's table of
    a large BEIR corpus, which the first call builds."""
    path = Path(path)
    if not ids or item_file_of(path) is not None:
        return streamed_titles(path, ids)
    source = corpus_source(path)
    if source.path.stat().st_size < SMALL_CORPUS:
        return streamed_titles(path, ids)
    try:
        root = cache_root(cache_dir)
        entry, wanted = root / KIND / corpus_key(root, source), list(dict.fromkeys(ids))
        try:
            found = _lookup(entry / TABLE, wanted)
        except sqlite3.DatabaseError:  # missing (built now) or damaged (replaced now), once
            _build(entry, source)
            found = _lookup(entry / TABLE, wanted)
        record_use(entry, {"corpus": str(source.path) + (f"!{source.member}" if source.member else "")})
        return found
    except (sqlite3.Error, OSError, LsrError):
        return streamed_titles(path, ids)


def _lookup(table: Path, ids: list[str]) -> dict[str, str]:
    """The titles of ``ids`` found in ``table``, opened read-only (a missing file is a DatabaseError, not a new
    empty table)."""
    connection = sqlite3.connect(table.absolute().as_uri() + "?mode=ro", uri=True)
    try:
        found: dict[str, str] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))  # placeholders only: the ids are bound, never spliced in
            found.update(connection.execute(f"SELECT id, title FROM titles WHERE id IN ({marks})", chunk))
        return found
    finally:
        connection.close()


def _build(entry: Path, source: TextSource) -> None:
    """Every non-empty title of the corpus into a fresh table, published atomically (a kill leaves no half table)."""
    with atomic_dir(entry, force=False) as tmp:
        connection = sqlite3.connect(tmp / TABLE)
        try:
            connection.execute("CREATE TABLE titles (id TEXT PRIMARY KEY, title TEXT NOT NULL) WITHOUT ROWID")
            documents = tqdm(read_corpus(source), desc="titles: indexing the corpus once", unit=" docs", leave=False)
            rows = ((doc.id, doc.title) for doc in documents if doc.title)
            connection.executemany("INSERT OR IGNORE INTO titles VALUES (?, ?)", rows)
            connection.commit()
        finally:
            connection.close()
