"""Synthetic corpora keep the fitted statistics of the vectors they imitate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
from lsr.eval.bench.synthetic import Profile, fit_profile, generate_documents, generate_queries
from lsr.indexing.sparse.format import SparseIndex
from typer.testing import CliRunner

from lsr.cli import app


def _real_vectors() -> sp.csr_matrix:
    rng = np.random.default_rng(0)
    vocab = 300
    popularity = 1.0 / np.arange(1, vocab + 1)  # Zipf-like term frequencies
    rows = []
    for _ in range(2000):
        terms = np.unique(rng.choice(vocab, size=rng.integers(20, 60), p=popularity / popularity.sum()))
        rows.append(
            sp.csr_matrix(
                (rng.gamma(2.0, 0.5, len(terms)).astype(np.float32), (np.zeros(len(terms)), terms)), shape=(1, vocab)
            )
        )
    return sp.vstack(rows, format="csr")


def test_generated_vectors_follow_the_fitted_profile(tmp_path: Path) -> None:
    real = _real_vectors()
    vocab = real.shape[1]
    profile = fit_profile(real, real[:300])
    profile.save(tmp_path / "p.json")
    profile = Profile.load(tmp_path / "p.json")
    shards = list(generate_documents(profile, 3000, shard_size=1000))
    assert [len(ids) for ids, _ in shards] == [1000, 1000, 1000] and shards[1][0][0] == "s1000"
    fake = sp.vstack([m for _, m in shards], format="csr")
    real_len, fake_len = np.diff(real.indptr).mean(), np.diff(fake.indptr).mean()
    assert abs(fake_len - real_len) / real_len < 0.15  # duplicates merged: a little shorter
    real_df, fake_df = np.bincount(real.indices, minlength=vocab), np.bincount(fake.indices, minlength=vocab)
    assert np.corrcoef(real_df, fake_df)[0, 1] > 0.95
    assert abs(np.median(fake.data) - np.median(real.data)) / np.median(real.data) < 0.1
    queries = generate_queries(profile, 50)
    assert queries.shape == (50, vocab) and queries.has_sorted_indices and (queries.data > 0).all()


def test_parallel_generation_makes_the_same_shards(tmp_path: Path) -> None:
    real = sp.random(400, 200, density=0.1, random_state=3, format="csr", dtype=np.float32)
    profile = fit_profile(real, real[:50])
    serial = list(generate_documents(profile, 900, shard_size=300))
    parallel = list(generate_documents(profile, 900, shard_size=300, workers=2))
    assert [ids for ids, _ in serial] == [ids for ids, _ in parallel]
    assert all((a != b).nnz == 0 for (_, a), (_, b) in zip(serial, parallel, strict=True))


def test_gpu_bench_builds_its_generated_index_from_the_cli(tmp_path: Path) -> None:
    """`lsr bench gpu` forwards to the GPU bench, whose build step runs anywhere (the timing needs a GPU)."""
    real = _real_vectors()
    fit_profile(real, real[:300]).save(tmp_path / "p.json")
    args = ["--profile", str(tmp_path / "p.json"), "--documents", "1500", "--index", str(tmp_path / "idx")]
    result = CliRunner().invoke(app, ["bench", "gpu", *args, "--build-only"])
    assert result.exit_code == 0, result.output
    assert SparseIndex.open(tmp_path / "idx").num_docs == 1500
    result = CliRunner().invoke(app, ["bench", "gpu", *args])  # built: measuring needs the card's bandwidth
    assert result.exit_code != 0 and "--bandwidth-gbs is needed" in result.output
    result = CliRunner().invoke(app, ["bench", "gpu", "--help"])
    assert result.exit_code == 0 and "usage: lsr bench gpu" in result.output and "--registers" in result.output
