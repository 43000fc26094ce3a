"""Shared fixtures: tiny BEIR datasets written per test, and the optional real data beside the repo."""

from __future__ import annotations

import gzip
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LSR_SHARED", REPO.parent / "shared"))
USER_CACHE = os.environ.get("LSR_CACHE")
"""The cache a test of real data may read (what ``LSR_CACHE`` was before :func:`own_cache` replaced it)."""


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The cache of module- and session-scoped fixtures (an index built once for a file's tests): they are set up
    before a test's :func:`own_cache`, and without this they wrote into the user's own cache."""
    folder = tmp_path_factory.mktemp("lsr-session-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LSR_CACHE", str(folder))
        yield folder


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own encodings cache: the cache is keyed by content, and the tiny test models and corpora are
    the same bytes in every test, so a shared cache would let one test's encodings answer another's command (and
    tests would fill the user's own cache)."""
    folder = tmp_path_factory.mktemp("lsr-cache")
    monkeypatch.setenv("LSR_CACHE", str(folder))
    return folder


DOCS = [
    {"_id": "d1", "title": "Inverted index", "text": "An inverted index maps terms to postings lists of documents."},
    {"_id": "d2", "title": "BM25", "text": "BM25 ranks documents by term frequency and inverse document frequency."},
    {"_id": "d3", "title": "Dense retrieval", "text": "Dense retrievers embed queries and documents as vectors."},
    {"_id": "d4", "title": "Recommendation", "text": "Matrix factorisation learns user and item embeddings."},
    {"_id": "q2", "title": "Echo", "text": "postings lists and inverted index terms documents"},
]
QUERIES = [
    {"_id": "q1", "text": "inverted index postings"},
    {"_id": "q2", "text": "inverted index postings lists"},
    {"_id": "q3", "text": "user item embeddings"},
]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq2\td1\t1\nq3\td4\t1\n"


def write_jsonl(path: Path, rows: list[dict], compress: bool = False) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if compress:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def make_beir(
    folder: Path, docs: list[dict] = DOCS, queries: list[dict] = QUERIES, qrels: str = QRELS, compress: bool = False
) -> Path:
    """Write a BEIR folder; ``compress`` gzips the corpus as BEIR mirrors sometimes do."""
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "corpus.jsonl", docs, compress=compress)
    write_jsonl(folder / "queries.jsonl", queries)
    (folder / "qrels").mkdir(exist_ok=True)
    (folder / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    return folder


def zip_folder(folder: Path, archive: Path) -> Path:
    """Zip ``folder`` the way BEIR does: every member under ``<name>/``."""
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out.write(path, f"{folder.name}/{path.relative_to(folder)}")
    return archive


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    return make_beir(tmp_path / "tiny")


@pytest.fixture
def shared() -> Path:
    """The real data beside the checkout; tests that need it skip when it is absent."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"shared data not found at {SHARED} (set LSR_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def serve_artifacts(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - serve_support.Artifacts
    """Indexes over the demo corpus and a trained recommender, built once for every serving test."""
    from serve_support import build_artifacts

    return build_artifacts(tmp_path_factory.mktemp("serve"))
