"""``lsr encode --ray``: a local two-worker Ray cluster writes the shards a single process writes.

Every Ray driver here runs in a subprocess, never in pytest's process: Ray's core worker installs its own
SIGSEGV handler, which replaces the JVM's (pyserini, started by other tests) and turns the JVM's deliberate
segmentation faults into a crash of the whole test run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from lsr.eval.demo import demo_dataset
from test_encode import read_all
from tiny_models import tiny_bert
from typer.testing import CliRunner

from lsr.cli import app
from lsr.data.beir import corpus_source
from lsr.encode.corpus import encode_corpus
from lsr.encode.distributed import CRASH_ONCE_ENV
from lsr.encode.shards import Manifest

pytest.importorskip("ray")

DRIVER = """
import json, sys
import ray
from lsr.data.beir import corpus_source
from lsr.eval.demo import demo_dataset
from lsr.encode.distributed import encode_corpus_ray
from lsr.errors import LsrError

args = json.loads(sys.argv[1])
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # two CPU workers
try:
    if args.get("cli"):
        from lsr.cli import app
        app(args["cli"], standalone_mode=False)
        print("RESULT", json.dumps({"ok": True}))
    else:
        m = encode_corpus_ray(
            args["model"], corpus_source(demo_dataset()), args["out"], shard_size=7,
            max_retries=args.get("retries", 3), task_options=args.get("options"),
        )
        print("RESULT", json.dumps({"documents": m.documents, "shards": len(m.shards)}))
except LsrError as exc:
    print("RESULT", json.dumps({"error": str(exc)}))
finally:
    ray.shutdown()
"""


def _driver(**args: object) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(args)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Ray's raylet may print its own warnings to stdout (a killed worker's, here on purpose): take the marked line
    results = [line.removeprefix("RESULT ") for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(results) == 1, done.stdout[-3000:]
    return json.loads(results[0])


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("bert") / "model")


@pytest.fixture(scope="module")
def single(bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lsr.models import SpladeEncoder

    out = tmp_path_factory.mktemp("single") / "vec"
    encoder = SpladeEncoder.from_pretrained(bert_dir, device="cpu")
    encode_corpus(encoder, str(bert_dir), corpus_source(demo_dataset()), out, shard_size=7)
    return out


def _same(a: Path, b: Path) -> None:
    ma, mb = Manifest.load(a), Manifest.load(b)
    assert (ma.model, ma.kind, ma.dimension, ma.shard_size, ma.corpus) == (
        mb.model,
        mb.kind,
        mb.dimension,
        mb.shard_size,
        mb.corpus,
    )
    assert [s["file"] for s in ma.shards] == [s["file"] for s in mb.shards]
    ids_a, va = read_all(a)
    ids_b, vb = read_all(b)
    assert ids_a == ids_b and len(set(ids_a)) == len(ids_a) == 40
    np.testing.assert_allclose(va.toarray(), vb.toarray(), rtol=1e-5, atol=1e-6)


def test_ray_shards_match_single_process(bert_dir: Path, single: Path, tmp_path: Path) -> None:
    got = _driver(model=str(bert_dir), out=str(tmp_path / "vec"))
    assert got == {"documents": 40, "shards": 6}
    _same(tmp_path / "vec", single)


def test_crashed_worker_block_is_retried(bert_dir: Path, single: Path, tmp_path: Path) -> None:
    flag = tmp_path / "crashed"
    options = {"runtime_env": {"env_vars": {CRASH_ONCE_ENV: str(flag)}}}
    out = tmp_path / "vec"
    assert _driver(model=str(bert_dir), out=str(out), options=options) == {"documents": 40, "shards": 6}
    assert flag.exists()  # a worker did die, and its block was encoded again elsewhere
    _same(out, single)


def test_no_retries_left_is_a_clear_error(bert_dir: Path, tmp_path: Path) -> None:
    options = {"runtime_env": {"env_vars": {CRASH_ONCE_ENV: str(tmp_path / "crashed")}}}
    got = _driver(model=str(bert_dir), out=str(tmp_path / "v"), retries=0, options=options)
    assert "failed after 0 retries" in got["error"]


def test_cli_encode_ray_then_index(bert_dir: Path, single: Path, tmp_path: Path) -> None:
    out = tmp_path / "vec"
    args = ["encode", "--model", str(bert_dir), "--corpus", str(demo_dataset()), "--output", str(out)]
    assert _driver(cli=[*args, "--shard-size", "7", "--ray", "auto", "--device", "cpu"]) == {"ok": True}
    _same(out, single)
    result = CliRunner().invoke(app, ["index", "--vectors", str(out), "--output", str(tmp_path / "idx")])
    assert result.exit_code == 0, result.output
    assert "indexed 40 documents" in result.output
