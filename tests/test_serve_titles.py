"""``lsr query`` shows titles beside ids by default: ``lsr index`` records the corpus in the index, ``lsr serve``
reports it in Stats, and the client reads the titles from it when its own machine can; anything else gives bare ids."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from conftest import DOCS, make_beir
from lsr.indexing.sparse.format import META, IndexMeta, write_meta
from lsr.serve.client import Client
from serve_support import Artifacts, build_inference_free, running
from typer.testing import CliRunner

from lsr.cli import app
from lsr.errors import LsrError

TITLES = {doc["_id"]: doc["title"] for doc in DOCS}
QUERY = "inverted index postings"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_inference_free(tmp_path_factory.mktemp("model"))


def index_corpus(model: Path, corpus: Path, output: Path) -> Path:
    """``lsr index`` over ``corpus``, as a user builds what they serve."""
    command = ["index", "--model", str(model), "--corpus", str(corpus), "--output", str(output), "--device", "cpu"]
    result = CliRunner().invoke(app, [*command, "--cache-dir", str(output.parent / "cache")])
    assert result.exit_code == 0, result.output
    return output


@contextlib.contextmanager
def serving(index: Path) -> Iterator[str]:
    """A real server over ``index`` on a free loopback port; yields its address."""
    with running(Artifacts(index, Path(), Path(), Path()), dense=False, recommender=False) as server:
        yield server.address


def lsr_query(address: str, *options: str) -> Result:
    return CliRunner().invoke(app, ["query", "--server", address, "--k", "5", *options, QUERY], env={"COLUMNS": "80"})


def hits_of(result: Result) -> list[dict]:
    assert result.exit_code == 0, result.output
    hits = [json.loads(line) for line in result.stdout.splitlines()]
    assert hits, "the query found nothing to show titles of"
    return hits


@pytest.fixture(scope="module")
def titled(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    """A BEIR folder with titles, the index ``lsr index`` built from it, and a server over that index."""
    root = tmp_path_factory.mktemp("titled")
    corpus = make_beir(root / "beir")
    index = index_corpus(model, corpus, root / "index")
    with serving(index) as address:
        yield corpus, index, address


def test_the_index_records_its_corpus_and_the_server_reports_it(titled: tuple[Path, Path, str]) -> None:
    corpus, index, address = titled
    assert IndexMeta.load(index).corpus == str(corpus.resolve())
    with Client(address) as client:
        assert client.stats().corpus == str(corpus.resolve())


def test_lsr_query_shows_titles_without_being_asked(titled: tuple[Path, Path, str]) -> None:
    _, _, address = titled
    for hit in hits_of(lsr_query(address, "--json")):
        assert hit["title"] == TITLES[hit["doc_id"]]
    table = lsr_query(address)
    assert table.exit_code == 0 and table.stderr == "", table.output
    shown = [title for title in TITLES.values() if f"│ {title} " in table.stdout]
    assert "title" in table.stdout and shown, table.stdout


def test_no_titles_and_titles_from_elsewhere(titled: tuple[Path, Path, str], tmp_path: Path) -> None:
    _, _, address = titled
    assert all("title" not in hit for hit in hits_of(lsr_query(address, "--json", "--no-titles")))
    table = lsr_query(address, "--no-titles")
    assert table.exit_code == 0 and "title" not in table.stdout and not any(t in table.stdout for t in TITLES.values())
    renamed = make_beir(tmp_path / "other", docs=[{**doc, "title": f"Other {doc['title']}"} for doc in DOCS])
    for hit in hits_of(lsr_query(address, "--json", "--titles", str(renamed))):
        assert hit["title"] == f"Other {TITLES[hit['doc_id']]}"
    both = lsr_query(address, "--titles", str(renamed), "--no-titles")
    assert isinstance(both.exception, LsrError) and "--titles and --no-titles" in str(both.exception)


def test_an_index_from_before_the_corpus_was_recorded_serves_bare_ids(
    titled: tuple[Path, Path, str], tmp_path: Path
) -> None:
    _, index, _ = titled
    old = Path(shutil.copytree(index, tmp_path / "old"))
    fields = json.loads((old / META).read_text())
    del fields["corpus"], fields["meta_crc32"]
    write_meta(old / META, fields)  # as an earlier lsr wrote it: no corpus field, a valid checksum
    assert IndexMeta.load(old).corpus == ""
    with serving(old) as address:
        result = lsr_query(address, "--json")
        assert all("title" not in hit for hit in hits_of(result)) and result.stderr == ""


def test_a_corpus_removed_after_indexing_gives_bare_ids(model: Path, tmp_path: Path) -> None:
    index = index_corpus(model, make_beir(tmp_path / "beir"), tmp_path / "index")
    shutil.rmtree(tmp_path / "beir")
    with serving(index) as address:
        result = lsr_query(address, "--json")
        assert all("title" not in hit for hit in hits_of(result)) and result.stderr == ""
        table = lsr_query(address)
        assert table.exit_code == 0 and "title" not in table.stdout and table.stderr == ""


def test_a_corrupt_corpus_gives_bare_ids_and_one_line_saying_why(model: Path, tmp_path: Path) -> None:
    corpus = make_beir(tmp_path / "beir")
    index = index_corpus(model, corpus, tmp_path / "index")
    (corpus / "corpus.jsonl").write_bytes(b"\xff\xfe not json\n" * 3)
    with serving(index) as address:
        result = lsr_query(address, "--json")
        assert all("title" not in hit for hit in hits_of(result))
        assert len(result.stderr.splitlines()) == 1 and str(corpus.resolve()) in result.stderr, result.stderr
        assert "could not be read" in result.stderr and "Traceback" not in result.output


def test_contradicting_title_options_are_refused_before_grpc_loads(tmp_path: Path) -> None:
    """In a process where importing grpc fails, the contradiction is still named: it is checked first."""
    no_grpc = "import sys; sys.modules['grpc'] = None; from lsr.cli import main; sys.argv[0] = 'lsr'; main()"
    command = [sys.executable, "-c", no_grpc, "query", "--titles", str(tmp_path), "--no-titles", QUERY]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--titles and --no-titles contradict each other" in done.stderr, done.stderr
