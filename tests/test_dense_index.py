"""Dense indexes: build from shards, save, reopen, search; recall against exact search; damage is caught."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lsr.indexing.dense import (
    DenseIndexError,
    build_dense_index,
    exact_top_k,
    normalise,
    open_dense_index,
    recall_at,
)

from lsr.errors import LsrError

RNG = np.random.default_rng(7)
CORPUS = RNG.standard_normal((1500, 24)).astype(np.float32) * RNG.uniform(0.5, 3, (1500, 1)).astype(np.float32)
QUERIES = RNG.standard_normal((40, 24)).astype(np.float32)
IDS = [f"doc{i}" for i in range(len(CORPUS))]


def shards(size: int = 400):  # noqa: ANN201 - the Shards callable's iterable
    return [(IDS[s : s + size], CORPUS[s : s + size]) for s in range(0, len(CORPUS), size)]


def reference(k: int = 10, similarity: str = "cosine") -> tuple[np.ndarray, np.ndarray]:
    if similarity == "cosine":
        return exact_top_k(normalise(CORPUS), normalise(QUERIES), k)
    return exact_top_k(CORPUS, QUERIES, k)


def test_hnsw_round_trip_and_recall(tmp_path: Path) -> None:
    meta = build_dense_index(shards, tmp_path / "hnsw", "some-model", "cosine", "hnsw", {"m": 16})
    assert (meta.num_docs, meta.dimension, meta.params) == (1500, 24, {"m": 16, "ef_construction": 200})
    index = open_dense_index(tmp_path / "hnsw")
    assert index.meta == meta and index.ids == IDS
    rows, scores = index.search(QUERIES, 10, ef=128)
    truth, truth_scores = reference()
    assert recall_at(rows, truth) >= 0.95
    both = rows == truth
    np.testing.assert_allclose(scores[both], truth_scores[both], rtol=1e-5)
    again = open_dense_index(tmp_path / "hnsw").search(QUERIES, 10, ef=128)
    np.testing.assert_array_equal(again[0], rows)
    (found,) = index.hits(rows[:1], scores[:1])
    assert found.ids == [IDS[r] for r in rows[0]]


def test_hnsw_returns_k_hits_beyond_ef_and_never_more_than_the_corpus(tmp_path: Path) -> None:
    build_dense_index(shards, tmp_path / "i", "m", "dot", "hnsw")
    index = open_dense_index(tmp_path / "i")
    rows, _ = index.search(QUERIES[:3], 600, ef=16)
    assert rows.shape == (3, 600) and (rows >= 0).all()
    assert index.search(QUERIES[:2], 5000)[0].shape == (2, 1500)


def test_exact_backend_equals_reference_for_dot_product(tmp_path: Path) -> None:
    build_dense_index(shards, tmp_path / "exact", "m", "dot", "exact")
    rows, scores = open_dense_index(tmp_path / "exact").search(QUERIES, 20)
    truth, truth_scores = reference(20, "dot")
    np.testing.assert_array_equal(rows, truth)
    np.testing.assert_allclose(scores, truth_scores, rtol=1e-6)


def test_faiss_flat_hnsw_and_ivf(tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    truth, _ = reference()
    build_dense_index(shards, tmp_path / "flat", "m", "cosine", "faiss-flat")
    assert recall_at(open_dense_index(tmp_path / "flat").search(QUERIES, 10)[0], truth) == 1.0
    build_dense_index(shards, tmp_path / "fh", "m", "cosine", "faiss-hnsw", {"m": 16, "ef_construction": 100})
    assert recall_at(open_dense_index(tmp_path / "fh").search(QUERIES, 10, ef=128)[0], truth) >= 0.95
    build_dense_index(shards, tmp_path / "ivf", "m", "cosine", "faiss-ivf", {"nlist": 16, "train": 1000})
    ivf = open_dense_index(tmp_path / "ivf")
    assert recall_at(ivf.search(QUERIES, 10, nprobe=16)[0], truth) == 1.0  # every list visited: exact
    assert recall_at(ivf.search(QUERIES, 10, nprobe=1)[0], truth) < 1.0


def test_damaged_or_foreign_indexes_fail_clearly(tmp_path: Path) -> None:
    build_dense_index(shards, tmp_path / "i", "m", "cosine", "hnsw")
    graph = tmp_path / "i" / "hnsw.bin"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(DenseIndexError, match="checksum mismatch"):
        open_dense_index(tmp_path / "i")
    graph.unlink()
    with pytest.raises(DenseIndexError, match="hnsw.bin is missing"):
        open_dense_index(tmp_path / "i")
    with pytest.raises(DenseIndexError, match="nothing: does not exist"):
        open_dense_index(tmp_path / "nothing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "meta.json").write_text('{"format": "lsr-index/1"}')
    with pytest.raises(DenseIndexError, match="not a readable dense index"):
        open_dense_index(tmp_path / "other")


def test_bad_build_requests_are_errors(tmp_path: Path) -> None:
    import scipy.sparse as sp

    with pytest.raises(LsrError, match="unknown dense index"):
        build_dense_index(shards, tmp_path / "x", "m", "cosine", "annoy")
    with pytest.raises(LsrError, match="no build parameter"):
        build_dense_index(shards, tmp_path / "x", "m", "cosine", "hnsw", {"nlist": 4})
    with pytest.raises(LsrError, match="needs dense vectors"):
        build_dense_index(lambda: [(["a"], sp.csr_matrix(np.ones((1, 3))))], tmp_path / "x", "m", "dot")
    assert not (tmp_path / "x").exists()


def test_gpu_placement_is_refused_clearly_where_it_cannot_run(tmp_path: Path) -> None:
    build_dense_index(shards, tmp_path / "hnsw", "m", "cosine", "hnsw")
    with pytest.raises(LsrError, match="only faiss-flat and faiss-ivf run on a GPU"):
        open_dense_index(tmp_path / "hnsw", device="cuda")
    faiss = pytest.importorskip("faiss")
    if faiss.get_num_gpus() == 0:
        build_dense_index(shards, tmp_path / "flat", "m", "cosine", "faiss-flat")
        with pytest.raises(LsrError, match="faiss sees no GPU"):
            open_dense_index(tmp_path / "flat", device="cuda")
