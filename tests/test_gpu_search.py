"""The CUDA search kernel agrees with the CPU kernel: on the GPU where there is one, else in Numba's simulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from gpu_support import run_gpu_check
from lsr.indexing.sparse.build import build_index
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.search import Searcher, brute_force
from lsr.indexing.sparse.tiles import CPU_TILE, MAX_TILE, TILE, build_tiles

CHECK = """
import sys, numpy as np, scipy.sparse as sp
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.gpu import GpuSearcher
from lsr.indexing.sparse.search import Searcher
index = SparseIndex.open(sys.argv[1])
queries = sp.load_npz(sys.argv[2])
cases = [("tiles", 0, None), ("tiles", 0, 32)]  # 32: the kernel compiled with a register cap (GPU only)
cases += [("postings", 0, None), ("postings", 7, None), ("forward", 0, None)][: int(sys.argv[3])]
tiled = []
for strategy, budget, registers in cases:
    cpu = Searcher(index).search(queries, k=10, budget=budget)
    gpu = GpuSearcher(index, batch_size=4, strategy=strategy, registers=registers).search(queries, k=10, budget=budget)
    assert np.array_equal(cpu[2], gpu[2]), (strategy, cpu[2], gpu[2])
    assert np.array_equal(cpu[0], gpu[0]), strategy
    np.testing.assert_allclose(cpu[1], gpu[1], rtol=1e-5)
    if strategy == "tiles":
        tiled.append(gpu)
assert np.array_equal(tiled[0][1], tiled[1][1])  # a register cap changes where values live, not the sums
if int(sys.argv[3]) > 0:  # beyond what a tile keeps: the forward kernel
    wide = GpuSearcher(index, strategy="tiles").search(queries, k=20)[0]
    assert np.array_equal(Searcher(index).search(queries, k=20)[0], wide)
print("agree")
"""


def _index(tmp_path: Path, n_docs: int = 300, density: float = 0.1, weights: str = "float16") -> tuple[Path, Path]:
    matrix = sp.random(n_docs, 50, density=density, random_state=0, format="csr", dtype=np.float32)
    matrix[11] = matrix[3]  # an exact tie
    matrix = sp.csr_matrix(matrix)
    build_index(lambda: [([f"d{i}" for i in range(n_docs)], matrix)], tmp_path / "idx", "m", "splade", weights)
    queries = sp.vstack([sp.random(9, 50, density=0.2, random_state=1, format="csr", dtype=np.float32), matrix[3]])
    sp.save_npz(tmp_path / "q.npz", sp.csr_matrix(queries))
    return tmp_path / "idx", tmp_path / "q.npz"


def _check(index: Path, queries: Path, mode: str, cases: int) -> None:
    """Run CHECK in a subprocess: the simulator is chosen by an environment variable read at import.

    The tiles kernel is checked against the CPU kernel, uncapped and with a register cap, then the first
    ``cases`` of the other kernels' cases; with any of those, also ``k = 20`` (handed over to ``forward``).
    """
    run_gpu_check(CHECK, [str(index), str(queries), str(cases)], mode)


@pytest.mark.parametrize("mode", ["simulator", "gpu"])
def test_gpu_kernel_matches_cpu(tmp_path: Path, mode: str) -> None:
    index, queries = _index(tmp_path)
    _check(index, queries, mode, cases=3)
    docs, _, _ = Searcher(SparseIndex.open(index)).search(sp.load_npz(queries), k=2)
    assert list(docs[-1]) == [3, 11]


@pytest.mark.parametrize("mode", ["simulator", "gpu"])
def test_tiles_kernel_on_8_bit_weights(tmp_path: Path, mode: str) -> None:
    """8-bit codes reach the kernel decoded to float32; float16 codes as float16: both exact."""
    index, queries = _index(tmp_path, weights="uint8")
    _check(index, queries, mode, cases=0)


@pytest.mark.parametrize("mode", ["simulator", "gpu"])
def test_tiles_kernel_across_tiles(tmp_path: Path, mode: str) -> None:
    """Three tiles, the last one partial: every tile's candidates reach the final selection."""
    index, queries = _index(tmp_path, n_docs=2 * TILE + 500, density=0.02)
    _check(index, queries, mode, cases=0)


@pytest.mark.parametrize(("tile", "n_tiles"), [(TILE, 3), (CPU_TILE, 1), (5000, 4)])
def test_cpu_tiled_search_is_bit_identical(tmp_path: Path, tile: int, n_tiles: int) -> None:
    """The tiled CPU kernel adds in the same order as the plain one, so scores are equal, not just close."""
    index, queries = _index(tmp_path, n_docs=2 * TILE + 500, density=0.02)
    opened, vectors = SparseIndex.open(index), sp.load_npz(queries)
    tiled = Searcher(opened, tiled=True, tile=tile)
    plain = Searcher(opened, tiled=False).search(vectors, k=10)
    for got, expected in zip(tiled.search(vectors, k=10), plain, strict=True):
        assert np.array_equal(got, expected)
    assert tiled._tiles is not None and tiled._tiles.n_tiles == n_tiles
    brute, _ = brute_force(opened.to_csr(), vectors, 10)
    assert np.array_equal(plain[0][:, :5], brute[:, :5])


@pytest.mark.parametrize("size", [TILE, CPU_TILE, 5000])
def test_tiles_hold_every_posting_in_document_order(tmp_path: Path, size: int) -> None:
    index, _ = _index(tmp_path, n_docs=2 * TILE + 500, density=0.02)
    opened = SparseIndex.open(index)
    tiles = build_tiles(opened, size)
    assert tiles.tile == size and tiles.n_tiles == -(-opened.num_docs // size)
    rows, cols, values = [], [], []
    width = opened.meta.vocab_size + 1
    for tile in range(tiles.n_tiles):
        for term in range(opened.meta.vocab_size):
            start, end = tiles.offsets[tile * width + term], tiles.offsets[tile * width + term + 1]
            local = tiles.docs[start:end].astype(np.int64)
            assert np.all(np.diff(local) > 0)
            rows.append(tile * size + local)
            cols.append(np.full(len(local), term))
            values.append(opened.codebook[tiles.codes[start:end]])
    rebuilt = sp.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=opened.to_csr().shape
    )
    assert (rebuilt != opened.to_csr()).nnz == 0


def test_tile_size_must_fit_16_bit_offsets(tmp_path: Path) -> None:
    index, _ = _index(tmp_path)
    for size in (0, MAX_TILE + 1):
        with pytest.raises(ValueError, match="tile"):
            build_tiles(SparseIndex.open(index), size)


def test_tiles_kernel_on_long_and_empty_segments(tmp_path: Path) -> None:
    """Segments of several rounds of four postings per thread (1,024), of exactly one and two rounds, and
    empty ones between non-empty ones: where the kernel's loop and its remainder path change hands."""
    rng = np.random.default_rng(0)
    n_docs, vocab = TILE + 1500, 12
    dense = np.zeros((n_docs, vocab), dtype=np.float32)
    dense[:, 0:3] = (rng.random((n_docs, 3)) < 0.45) * rng.random((n_docs, 3))  # about 3,700 a tile: 4 rounds
    dense[rng.choice(TILE, 1024, replace=False), 3] = 0.5  # exactly one round in tile 0
    dense[rng.choice(TILE, 2048, replace=False), 4] = 0.25  # exactly two
    dense[:, 5:7] = (rng.random((n_docs, 2)) < 0.002) * rng.random((n_docs, 2))  # a few a tile
    dense[TILE:, 7] = rng.random(n_docs - TILE)  # only in the last tile; 8 and up: in none
    matrix = sp.csr_matrix(dense)
    build_index(lambda: [([f"d{i}" for i in range(n_docs)], matrix)], tmp_path / "idx", "m", "splade")
    queries = sp.csr_matrix(
        np.array(
            [
                [0.3, 0.0, 1.0, 0.7, 0.2, 0.9, 0.0, 0.4, 0.5, 0.0, 0.0, 0.0],  # rounds, then sparse and empty terms
                [0.0, 0.0, 0.0, 0.0, 0.0, 0.6, 0.8, 0.0, 0.0, 0.3, 0.0, 0.2],  # short and empty segments only
                [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.7, 0.0, 0.0, 0.0],  # nothing anywhere
            ],
            dtype=np.float32,
        )
    )
    # query terms in a non-ascending order too: the kernels add in the order the query lists them
    queries = sp.vstack(
        [queries, sp.csr_matrix((queries.data[:5][::-1], queries.indices[:5][::-1], [0, 5]), (1, vocab))]
    )
    sp.save_npz(tmp_path / "q.npz", sp.csr_matrix(queries))
    _check(tmp_path / "idx", tmp_path / "q.npz", "simulator", cases=0)


@pytest.mark.parametrize("mode", ["simulator", "gpu"])
def test_tiles_kernel_on_tied_scores(tmp_path: Path, mode: str) -> None:
    """A tile whose documents all tie has more candidates at its threshold than the kernel ranks directly:
    its per-thread lists are merged instead. Partly tied and untied tiles take the direct path. Every tile's
    best k must still order by score, then document number."""
    rng = np.random.default_rng(0)
    n_docs, vocab = TILE + 700, 4
    dense = np.zeros((n_docs, vocab), dtype=np.float32)
    dense[:, 0] = 0.5  # in every document, the same weight
    dense[:, 1] = (rng.random(n_docs) < 0.01) * 0.25  # a few ties broken upwards
    dense[:, 2] = rng.random(n_docs) * (rng.random(n_docs) < 0.3)
    matrix = sp.csr_matrix(dense)
    build_index(lambda: [([f"d{i}" for i in range(n_docs)], matrix)], tmp_path / "idx", "m", "splade")
    queries = sp.csr_matrix(np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [1, 0, 1, 0]], dtype=np.float32))
    sp.save_npz(tmp_path / "q.npz", queries)
    _check(tmp_path / "idx", tmp_path / "q.npz", mode, cases=0)
    docs, _, _ = Searcher(SparseIndex.open(tmp_path / "idx")).search(queries[:1], k=10)
    assert list(docs[0]) == list(range(10))


def test_register_cap_is_checked(tmp_path: Path) -> None:
    from lsr.indexing.sparse.gpu import GpuSearcher

    index, _ = _index(tmp_path)
    with pytest.raises(ValueError, match="registers per thread must be in 16..255"):
        GpuSearcher(SparseIndex.open(index), registers=8)
