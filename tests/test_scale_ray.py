"""``lsr encode --ray``: a local two-worker Ray cluster writes the shards a single process writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from tiny_models import tiny_bert
from typer.testing import CliRunner

from lsr.cli import app
from lsr.data.beir import corpus_source
from lsr.demo import demo_dataset
from lsr.encode.corpus import encode_corpus
from lsr.encode.distributed import CRASH_ONCE_ENV, encode_corpus_ray
from lsr.encode.shards import Manifest, iter_shards
from lsr.errors import LsrError
from lsr.models import SpladeEncoder

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """One local cluster of two CPU workers for the whole module: Ray's start-up is the slow part."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("bert") / "model")


@pytest.fixture(scope="module")
def single(bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("single") / "vec"
    encoder = SpladeEncoder.from_pretrained(bert_dir, device="cpu")
    encode_corpus(encoder, str(bert_dir), corpus_source(demo_dataset()), out, shard_size=7)
    return out


def _all(folder: Path) -> tuple[list[str], sp.csr_matrix]:
    ids, parts = [], []
    for shard_ids, vectors in iter_shards(folder):
        ids += shard_ids
        parts.append(vectors)
    return ids, sp.vstack(parts, format="csr")


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
    ids_a, va = _all(a)
    ids_b, vb = _all(b)
    assert ids_a == ids_b and len(set(ids_a)) == len(ids_a) == 40
    np.testing.assert_allclose(va.toarray(), vb.toarray(), rtol=1e-5, atol=1e-6)


def test_ray_shards_match_single_process(cluster: None, bert_dir: Path, single: Path, tmp_path: Path) -> None:
    manifest = encode_corpus_ray(str(bert_dir), corpus_source(demo_dataset()), tmp_path / "vec", shard_size=7)
    assert manifest.complete and manifest.documents == 40 and len(manifest.shards) == 6
    _same(tmp_path / "vec", single)


def test_crashed_worker_block_is_retried(cluster: None, bert_dir: Path, single: Path, tmp_path: Path) -> None:
    flag = tmp_path / "crashed"
    options = {"runtime_env": {"env_vars": {CRASH_ONCE_ENV: str(flag)}}}
    out = tmp_path / "vec"
    encode_corpus_ray(str(bert_dir), corpus_source(demo_dataset()), out, shard_size=7, task_options=options)
    assert flag.exists()  # a worker did die, and its block was encoded again elsewhere
    _same(out, single)


def test_no_retries_left_is_a_clear_error(cluster: None, bert_dir: Path, tmp_path: Path) -> None:
    options = {"runtime_env": {"env_vars": {CRASH_ONCE_ENV: str(tmp_path / "crashed")}}}
    with pytest.raises(LsrError, match="failed after 0 retries"):
        encode_corpus_ray(
            str(bert_dir), corpus_source(demo_dataset()), tmp_path / "v", max_retries=0, task_options=options
        )


def test_cli_encode_ray_then_index(cluster: None, bert_dir: Path, single: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "vec"
    args = ["encode", "--model", str(bert_dir), "--corpus", str(demo_dataset()), "--output", str(out)]
    result = runner.invoke(app, [*args, "--shard-size", "7", "--ray", "auto", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    _same(out, single)
    result = runner.invoke(app, ["index", "--vectors", str(out), "--output", str(tmp_path / "idx")])
    assert result.exit_code == 0, result.output
    assert "indexed 40 documents" in result.output
