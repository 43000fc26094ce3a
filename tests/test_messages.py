"""The wording of the errors a user meets first: a misspelt path says it does not exist and what is there."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_beir
from typer.testing import CliRunner

from lsr.cli import app


def error(*args: str | Path) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code != 0
    return str(result.exception)


def test_a_missing_index_does_not_exist(tmp_path: Path) -> None:
    queries = make_beir(tmp_path / "data") / "queries.jsonl"
    (tmp_path / "runs" / "scifact").mkdir(parents=True)
    search = ("search", "--queries", queries, "--output", tmp_path / "run.trec", "--index")
    message = error(*search, tmp_path / "runs" / "scifcat")
    assert message == f"{tmp_path / 'runs' / 'scifcat'}: does not exist; {tmp_path / 'runs'} holds scifact"
    assert "does not exist either" in error(*search, tmp_path / "nowhere" / "index")
    assert error(*search, queries) == f"{queries}: is a file, not an index folder"
    assert error(*search, tmp_path / "runs" / "scifact").endswith("scifact: not an lsr index (no meta.json)")


def test_a_missing_dense_or_bm25_index_does_not_exist(tmp_path: Path) -> None:
    from lsr.indexing.dense import open_dense_index
    from lsr.indexing.lucene.retriever import BM25Retriever
    from lsr.indexing.retrieval import RetrieverOptions

    from lsr.errors import LsrError

    with pytest.raises(LsrError, match="dense: does not exist"):
        open_dense_index(tmp_path / "dense")
    with pytest.raises(LsrError, match="bm25: does not exist"):
        BM25Retriever.from_index(tmp_path / "bm25", RetrieverOptions())


def test_a_misspelt_model_path_says_so(tmp_path: Path) -> None:
    data = make_beir(tmp_path / "data")
    (tmp_path / "models" / "splade-tiny").mkdir(parents=True)
    message = error("index", "--model", tmp_path / "models" / "splade-tni", "--corpus", data,
                    "--output", tmp_path / "index", "--cache-dir", tmp_path / "cache")  # fmt: skip
    assert "splade-tni: no such model folder" in message and "holds splade-tiny" in message


def test_model_loading_is_quiet_unless_verbose(tmp_path: Path) -> None:
    """A fresh process (libraries read their switches at import): no "Loading weights" bar and no library warnings
    without --verbose; with it, typed after the sub-command, the bar is back."""
    from tiny_models import tiny_bert

    model, data = tiny_bert(tmp_path / "model"), make_beir(tmp_path / "data")

    def encode(*extra: str) -> str:
        paths = ["--model", model, "--corpus", data, "--output", tmp_path / "v", "--cache-dir", tmp_path / "c"]
        command = [sys.executable, "-m", "lsr", "encode", *map(str, paths), "--device", "cpu", *extra]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    quiet = encode()
    assert "Loading weights" not in quiet and "Warning" not in quiet and "encode corpus.jsonl" in quiet
    (tmp_path / "v").rename(tmp_path / "first")
    shutil.rmtree(tmp_path / "c")  # encoded again, so the model is loaded again
    # Whether a library draws its bar with --verbose depends on its version (a clean CI install's transformers did not
    # for this tiny model), so only the option's acceptance after the sub-command is checked here.
    assert "encode corpus.jsonl" in encode("--verbose")


def test_arguments_are_checked_before_torch_loads(tmp_path: Path) -> None:
    """A wrong argument is reported at once, not after seconds of importing torch: in a process where importing
    torch fails, `lsr --help` works and `lsr eval run` names the misspelt leg (it would fail on the import were
    torch loaded first)."""
    data = make_beir(tmp_path / "data")
    no_torch = "import sys; sys.modules['torch'] = None; from lsr.cli import main; sys.argv[0] = 'lsr'; main()"

    def lsr(*args: str | Path) -> subprocess.CompletedProcess:
        command = [sys.executable, "-c", no_torch, *map(str, args)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    shown = lsr("--help")
    assert shown.returncode == 0 and "eval" in shown.stdout, shown.stderr
    wrong = lsr("eval", "run", "--dataset", data, "--retriever", "hybrid", "--legs", "sparse,bm52", "--output-dir",
                tmp_path / "run")  # fmt: skip
    assert wrong.returncode == 2, wrong.stderr
    assert "unknown hybrid leg 'bm52'; choose one of bm25, sparse, dense" in wrong.stderr


def test_the_error_line_prints_square_brackets_as_written(tmp_path: Path) -> None:
    """The one red line is plain text: `pip install 'lsr[lucene]'` or a folder called `[old]` keeps its brackets."""
    missing = tmp_path / "[old]" / "index"
    command = [sys.executable, "-c", "from lsr.cli import main; main()", "search", "--index", str(missing)]
    command += ["--queries", str(make_beir(tmp_path / "data") / "queries.jsonl"), "--output", str(tmp_path / "r.trec")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"error: {missing}: does not exist")
