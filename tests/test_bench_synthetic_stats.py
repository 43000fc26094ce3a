"""`lsr bench synthetic-stats`: the statistics on matrices checked by hand, and a corpus of planted near-duplicates
whose nearest neighbours are nearer than those of its synthetic twin (terms drawn independently cannot cluster)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from bench_support import encoded_vectors_folder
from lsr.eval.bench import synthetic_stats
from lsr.eval.bench.engines.base import Vectors
from lsr.eval.bench.engines.support import installed
from lsr.eval.bench.synthetic import fit_profile
from lsr.eval.bench.synthetic_stats import (
    compare_with_twin,
    nearest_neighbour_cosine,
    plot,
    query_alignment,
    score_gaps,
    table,
    top_k,
)
from lsr.indexing.lucene.impact import quantise
from typer.testing import CliRunner

from lsr.cli import app

VOCAB, CLUSTERS, PER_CLUSTER, QUERIES = 500, 30, 20, 40


def test_nearest_neighbour_cosine_by_hand() -> None:
    """a = (1, 1, 0), b = (1, 0, 0), c = (0, 0, 1), d = 2a: a and d are each other's neighbour (cosine 1, their own
    row left out), b's nearest is a or d (1/sqrt 2), and c shares no term with anything (0)."""
    docs = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1], [2, 2, 0]], dtype=np.float32))
    assert nearest_neighbour_cosine(docs, sample=4, seed=0) == pytest.approx([1.0, 1 / math.sqrt(2), 0.0, 1.0])


def test_blocked_top_k_equals_a_full_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    """With blocks of one row (the memory bound at its smallest), every row's top k is a full sort's."""
    left = sp.random(9, 40, density=0.3, random_state=1, format="csr")
    right = sp.random(12, 40, density=0.3, random_state=2, format="csr")
    monkeypatch.setattr(synthetic_stats, "CELLS", 12)
    rows, scores = top_k(left, right, 4)
    full = (left @ right.T).toarray()
    assert np.allclose(scores, -np.sort(-full, axis=1)[:, :4])
    assert np.allclose(np.take_along_axis(full, rows, axis=1), scores)


def test_query_alignment_and_score_gaps_by_hand() -> None:
    """Documents (3, 0, 0), (1, 1, 0), (0, 2, 0). Query (1, 0, 0) scores 3, 1, 0: its top-1 is the first document,
    cosine 1; s1/s2 = 3, (s1 - s2)/s1 = 2/3, s3/s2 = 0. Query (1, 1, 0) scores 3, 2, 2: cosine 3 / (sqrt 2 x 3),
    1.5, 1/3, 1. Query (0, 0, 1) matches nothing: cosine 0, and no second score, so the gaps leave it out."""
    docs = sp.csr_matrix(np.array([[3, 0, 0], [1, 1, 0], [0, 2, 0]], dtype=np.float32))
    queries = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1]], dtype=np.float32))
    cosine, scores = query_alignment(docs, queries)
    assert cosine == pytest.approx([1.0, 1 / math.sqrt(2), 0.0])
    assert scores == pytest.approx(np.array([[3, 1, 0], [3, 2, 2], [0, 0, 0]]))
    gaps = score_gaps(scores, cut=2)
    assert gaps["queries"] == 2 and gaps["deep"] == 3
    assert gaps["first_over_cut"] == pytest.approx((3 + 1.5) / 2)
    assert gaps["relative_gap"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert gaps["last_over_cut"] == pytest.approx(0.5)


def _planted(seed: int = 0) -> tuple[Vectors, Vectors, sp.csr_matrix]:
    """Documents that are noisy copies of a few topics (near-duplicates, as real corpora have), queries that are
    pieces of those topics, and the unquantised documents and queries stacked (what a profile is fitted to).

    Each topic has 40 Zipf-drawn terms with weights; a copy keeps each term with probability 0.8, jitters its
    weight by up to 20 %, and adds 5 terms of its own.
    """
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, VOCAB + 1)
    popularity /= popularity.sum()
    topics = [np.unique(rng.choice(VOCAB, size=40, p=popularity)) for _ in range(CLUSTERS)]
    weights = [rng.gamma(2.0, 0.5, len(terms)) for terms in topics]
    docs = sp.lil_matrix((CLUSTERS * PER_CLUSTER, VOCAB))
    for row in range(CLUSTERS * PER_CLUSTER):
        topic = row % CLUSTERS
        keep = rng.random(len(topics[topic])) < 0.8
        docs[row, topics[topic][keep]] = weights[topic][keep] * rng.uniform(0.8, 1.2, keep.sum())
        docs[row, rng.choice(VOCAB, size=5, p=popularity)] = rng.gamma(2.0, 0.5, 5)
    queries = sp.lil_matrix((QUERIES, VOCAB))
    for row in range(QUERIES):
        topic = row % CLUSTERS
        chosen = rng.choice(len(topics[topic]), size=8, replace=False)
        queries[row, topics[topic][chosen]] = weights[topic][chosen]
    docs, queries = sp.csr_matrix(docs), sp.csr_matrix(queries)
    as_vectors = Vectors([f"d{i}" for i in range(docs.shape[0])], quantise(docs))
    return as_vectors, Vectors([f"q{i}" for i in range(QUERIES)], quantise(queries)), (docs, queries)


def test_planted_clusters_are_nearer_than_their_synthetic_twin(tmp_path: Path) -> None:
    docs, queries, (raw_docs, raw_queries) = _planted()
    result = compare_with_twin(docs, queries, fit_profile(raw_docs, raw_queries, 1), sample=200, seismic=False)
    real, fake = result["real"], result["synthetic"]
    assert (fake["documents"], fake["queries"]) == (real["documents"], real["queries"]) == (600, QUERIES)
    assert len(real["nearest_neighbour_cosine"]["values"]) == 200
    assert real["nearest_neighbour_cosine"]["mean"] > 0.6
    assert real["nearest_neighbour_cosine"]["mean"] > fake["nearest_neighbour_cosine"]["mean"] + 0.3
    assert real["query_top1_cosine"]["mean"] > fake["query_top1_cosine"]["mean"]
    assert "seismic" not in real
    text = table(result)
    assert max(len(line) for line in text.splitlines()) <= 80 and "NN cosine, mean (200 docs)" in text
    plot(result, tmp_path / "nn.png", "planted")
    assert (tmp_path / "nn.png").stat().st_size > 0


def test_seismic_at_the_guides_setting_on_both_corpora() -> None:
    if not installed("seismic"):
        pytest.skip("Seismic needs the package 'seismic' (pyseismic-lsr, lsr[bench])")
    docs, queries, (raw_docs, raw_queries) = _planted()
    result = compare_with_twin(docs, queries, fit_profile(raw_docs, raw_queries, 1), sample=50, rounds=1)
    for side in ("real", "synthetic"):
        seismic = result[side]["seismic"]
        assert (seismic["query_cut"], seismic["heap_factor"]) == (10, 0.8)
        assert 0.0 <= seismic["recall"] <= 1.0 and seismic["p50_ms"] > 0 and seismic["lsr_exact_p50_ms"] > 0
    assert "Seismic recall@10 (cut 10, heap 0.8)" in table(result)


def test_lsr_bench_synthetic_stats_end_to_end(tmp_path: Path, beir_dir: Path) -> None:
    """The command line over a vectors folder and a BEIR folder's queries, encoded with a real sparse model."""
    from lsr.data.beir import BeirDataset

    docs = list(BeirDataset(beir_dir).corpus())
    encoded_vectors_folder(tmp_path / "vectors", beir_dir)
    out = tmp_path / "bench" / "stats.json"
    args = ["bench", "synthetic-stats", "--vectors", str(tmp_path / "vectors"), "--dataset", str(beir_dir)]
    result = CliRunner().invoke(app, [*args, "--no-seismic", "--output", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["real"]["documents"] == data["synthetic"]["documents"] == len(docs)
    assert data["split"] == "test" and "| statistic" in result.output
    assert out.with_suffix(".png").stat().st_size > 0
