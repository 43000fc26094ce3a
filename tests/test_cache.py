"""The shared cache: a corpus is encoded once, whichever of lsr encode, lsr index or lsr eval run comes first, and
found by content (a copied model or corpus too); ``lsr cache ls`` and ``lsr cache clear`` never touch a user's files."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from conftest import make_beir
from tiny_models import tiny_bert
from typer.testing import CliRunner

from lsr.cli import app
from lsr.fsutil import MARKER
from lsr.models import SpladeEncoder


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("bert") / "model")


@pytest.fixture
def encoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of documents each corpus-encoding call encoded (queries are not counted)."""
    calls: list[int] = []
    original = SpladeEncoder.encode_document

    def counting(self: SpladeEncoder, texts: list[str], *args: object, **kwargs: object) -> object:
        calls.append(len(texts))
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(SpladeEncoder, "encode_document", counting)
    return calls


def lsr(*args: str | Path) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def never_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the encoder was loaded although its encodings were cached")

    monkeypatch.setattr(SpladeEncoder, "from_pretrained", classmethod(refuse))


def test_encode_once_then_index_and_eval_run_reuse_it(
    model: Path, tmp_path: Path, encoded: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    data = make_beir(tmp_path / "tiny")
    lsr(
        "encode",
        "--model",
        model,
        "--corpus",
        data,
        "--output",
        tmp_path / "v",
        "--cache-dir",
        cache,
        "--device",
        "cpu",
    )
    assert sum(encoded) == 5
    with monkeypatch.context() as patch:  # lsr index over a copy of the model and of the corpus: keys are content
        never_loaded(patch)
        other = shutil.copytree(model, tmp_path / "copied-model")
        output = lsr("index", "--model", other, "--corpus", shutil.copytree(data, tmp_path / "copy"),
                     "--output", tmp_path / "index", "--cache-dir", cache)  # fmt: skip
    assert "indexed 5 documents" in output
    lsr("eval", "run", "--dataset", data, "--retriever", "sparse", "--model", model, "--cache-dir", cache,
        "--output-dir", tmp_path / "run")  # fmt: skip
    assert sum(encoded) == 5  # the run encoded its queries only
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_eval_run_first_then_index_and_encode_reuse_it(
    model: Path, tmp_path: Path, encoded: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    data = make_beir(tmp_path / "tiny")
    lsr("eval", "run", "--dataset", data, "--retriever", "sparse", "--model", model, "--cache-dir", cache,
        "--output-dir", tmp_path / "run")  # fmt: skip
    assert sum(encoded) == 5
    never_loaded(monkeypatch)
    lsr("index", "--model", model, "--corpus", data, "--output", tmp_path / "index", "--cache-dir", cache)
    output = lsr("encode", "--model", model, "--corpus", data, "--output", tmp_path / "v", "--cache-dir", cache)
    assert "from the cache" in output and sum(encoded) == 5
    assert (tmp_path / "v" / "manifest.json").is_file()


def test_an_edited_corpus_is_encoded_again(model: Path, tmp_path: Path, encoded: list[int]) -> None:
    cache = tmp_path / "cache"
    data = make_beir(tmp_path / "tiny")
    lsr("index", "--model", model, "--corpus", data, "--output", tmp_path / "a", "--cache-dir", cache)
    make_beir(data, docs=[{"_id": "x", "title": "", "text": "one new document"}])
    lsr("index", "--model", model, "--corpus", data, "--output", tmp_path / "b", "--cache-dir", cache)
    assert sum(encoded) == 6


def test_cache_ls_and_clear(model: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    data = make_beir(tmp_path / "tiny")
    lsr("eval", "run", "--dataset", data, "--retriever", "sparse", "--model", model, "--cache-dir", cache,
        "--output-dir", tmp_path / "run")  # fmt: skip
    foreign = cache / "vectors" / "mine" / "notes"  # where an entry would be, but not lsr's
    foreign.mkdir(parents=True)
    (foreign / "keep.txt").write_text("a user's file")
    listing = lsr("cache", "ls", "--cache-dir", cache)
    assert "vectors of model over" in listing and "index of model" in listing and "sparse-float16" in listing
    assert "3 entries" in listing
    assert max(map(len, listing.splitlines())) <= 80  # keys whole, each on a line of its own
    assert re.search(r"^ +index/[0-9a-f]+/[0-9a-f]+/sparse-float16 *$", listing, re.MULTILINE), listing
    (index,) = cache.glob("index/*/*/sparse-float16")
    old = time.time() - 3 * 86400
    os.utime(index / "lsr-cache.json", (old, old))
    cleared = lsr("cache", "clear", "--older-than", "2d", "--cache-dir", cache)
    assert "removed 1 entries" in cleared and not index.exists()
    assert list(cache.glob("vectors/*/*/manifest.json"))
    key = next(cache.glob("vectors/*/*/manifest.json")).parent.parent.name
    assert "removed 1 entries" in lsr("cache", "clear", key, "--cache-dir", cache)
    cleared = lsr("cache", "clear", "--cache-dir", cache)
    assert "not written by lsr" in cleared and (foreign / "keep.txt").is_file()
    assert not (foreign / MARKER).exists()
    bad = CliRunner().invoke(app, ["cache", "clear", "--older-than", "soon", "--cache-dir", str(cache)])
    assert bad.exit_code != 0 and "30d" in str(bad.exception)


@pytest.fixture(scope="module")
def cache_seen_by_a_module_fixture() -> str | None:
    """What a module-scoped fixture (an index built once for a file's tests) would write into."""
    return os.environ.get("LSR_CACHE")


def test_fixtures_built_once_per_file_never_write_the_users_cache(cache_seen_by_a_module_fixture: str | None) -> None:
    from conftest import USER_CACHE

    assert cache_seen_by_a_module_fixture, "a module fixture must see a cache of the test session's own"
    assert cache_seen_by_a_module_fixture != USER_CACHE
    assert Path(cache_seen_by_a_module_fixture).is_dir()
