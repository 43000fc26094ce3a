"""Titles of a large corpus come from a cached table built once (``lsr query`` on a million documents), and
nothing about that table can fail a lookup: a damaged one is rebuilt, an unwritable cache falls back to streaming."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lsr.cache.titles import KIND, SMALL_CORPUS, TABLE, titles
from lsr.cli import app
from lsr.data.titles import titles as streamed_titles

DOCS = 20_000


@pytest.fixture(scope="module")
def large_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BEIR folder whose corpus file is over the streaming threshold; every tenth document has no title."""
    folder = tmp_path_factory.mktemp("large")
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for i in range(DOCS):
            title = "" if i % 10 == 0 else f"package-{i}"
            handle.write(
                json.dumps({"_id": f"d{i}", "title": title, "text": f"summary number {i} of a package"}) + "\n"
            )
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "package"}) + "\n")
    assert (folder / "corpus.jsonl").stat().st_size >= SMALL_CORPUS
    return folder


def _table(cache: Path) -> Path:
    (entry,) = (cache / KIND).iterdir()
    return entry / TABLE


def test_the_first_lookup_builds_the_table_and_later_ones_read_it(large_corpus: Path, tmp_path: Path) -> None:
    ids = ["d1", "d19999", "d10", "missing", "d1"]
    expected = streamed_titles(large_corpus, ids)
    assert expected == {"d1": "package-1", "d19999": "package-19999"}  # untitled and unknown ids left out
    cache = tmp_path / "cache"
    assert titles(large_corpus, ids, cache) == expected
    table = _table(cache)
    with sqlite3.connect(table) as connection:  # the table answers now, not the corpus: change a title there
        assert connection.execute("SELECT count(*) FROM titles").fetchone() == (DOCS - DOCS // 10,)
        connection.execute("UPDATE titles SET title = 'from the table' WHERE id = 'd19999'")
    connection.close()
    assert titles(large_corpus, ids, cache)["d19999"] == "from the table"
    listed = CliRunner().invoke(app, ["cache", "ls", "--cache-dir", str(cache)], terminal_width=200)
    assert listed.exit_code == 0 and "titles of" in listed.output, listed.output


def test_a_damaged_table_is_rebuilt(large_corpus: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    titles(large_corpus, ["d5"], cache)
    _table(cache).write_bytes(b"not a database at all" * 100)
    assert titles(large_corpus, ["d5", "d7"], cache) == {"d5": "package-5", "d7": "package-7"}
    with sqlite3.connect(_table(cache)) as connection:
        assert connection.execute("SELECT title FROM titles WHERE id = 'd7'").fetchone() == ("package-7",)
    connection.close()


def test_an_unwritable_cache_falls_back_to_streaming(large_corpus: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache cannot be made under a file\n")
    assert titles(large_corpus, ["d3", "d4"], blocker / "cache") == {"d3": "package-3", "d4": "package-4"}


def test_small_corpora_are_streamed_without_a_table(tmp_path: Path) -> None:
    (tmp_path / "small").mkdir()
    (tmp_path / "small" / "corpus.jsonl").write_text(json.dumps({"_id": "a", "title": "A", "text": "x"}) + "\n")
    (tmp_path / "small" / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "x"}) + "\n")
    assert titles(tmp_path / "small", ["a"], tmp_path / "cache") == {"a": "A"}
    assert not (tmp_path / "cache" / KIND).exists()
