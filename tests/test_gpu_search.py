"""The CUDA search kernel agrees with the CPU kernel: on the GPU where there is one, else in Numba's simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from indexing.sparse.build import build_index
from indexing.sparse.format import SparseIndex
from indexing.sparse.search import Searcher

CHECK = """
import sys, numpy as np, scipy.sparse as sp
from indexing.sparse.format import SparseIndex
from indexing.sparse.gpu import GpuSearcher
from indexing.sparse.search import Searcher
index = SparseIndex.open(sys.argv[1])
queries = sp.load_npz(sys.argv[2])
for strategy, budget in (("postings", 0), ("postings", 7), ("forward", 0)):
    cpu = Searcher(index).search(queries, k=10, budget=budget)
    gpu = GpuSearcher(index, batch_size=4, strategy=strategy).search(queries, k=10, budget=budget)
    assert np.array_equal(cpu[2], gpu[2]), (strategy, cpu[2], gpu[2])
    assert np.array_equal(cpu[0], gpu[0]), strategy
    np.testing.assert_allclose(cpu[1], gpu[1], rtol=1e-5)
print("agree")
"""


def _index(tmp_path: Path) -> tuple[Path, Path]:
    matrix = sp.random(300, 50, density=0.1, random_state=0, format="csr", dtype=np.float32)
    matrix[11] = matrix[3]  # an exact tie
    matrix = sp.csr_matrix(matrix)
    build_index(lambda: [([f"d{i}" for i in range(300)], matrix)], tmp_path / "idx", "m", "splade")
    queries = sp.vstack([sp.random(9, 50, density=0.2, random_state=1, format="csr", dtype=np.float32), matrix[3]])
    sp.save_npz(tmp_path / "q.npz", sp.csr_matrix(queries))
    return tmp_path / "idx", tmp_path / "q.npz"


@pytest.mark.parametrize("mode", ["simulator", "gpu"])
def test_gpu_kernel_matches_cpu(tmp_path: Path, mode: str) -> None:
    if mode == "gpu":
        from numba import cuda

        if not cuda.is_available():
            pytest.skip("no GPU")
    index, queries = _index(tmp_path)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1" if mode == "simulator" else "0")
    result = subprocess.run(
        [sys.executable, "-c", CHECK, str(index), str(queries)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode == 0 and "agree" in result.stdout, result.stderr[-3000:]
    docs, _, _ = Searcher(SparseIndex.open(index)).search(sp.load_npz(queries), k=2)
    assert list(docs[-1]) == [3, 11]
