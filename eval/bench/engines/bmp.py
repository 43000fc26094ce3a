"""BMP, block-max pruning (Mallia, Suel and Tonellotto, SIGIR 2024), through its Python package ``bmp``.

How its authors run it (pisa-engine/BMP README): a CIFF file converted by ``ciff2bmp`` (here from
lsr's CIFF writer, :func:`lsr.indexing.sparse.ciff.write_ciff`), searched one query at a time by
``Searcher.search(query, k, alpha, beta)`` with integer query weights. Its index stores 8-bit impacts
("the impact scores of the CIFF files have to be quantized to 8 bits", README) and it rescales every
query to integer weights of at most 32 (``MAX_TERM_WEIGHT``), summing scores in 16 bits. The impacts
here (``round(100 w)``) reach beyond 255, so they are re-quantised linearly to 1..255 (``max_impact``
maps to 255) before the CIFF is written, as its authors' CIFF files are. Its scores are therefore on
its own scale and even its safe setting is exact only over those 8-bit impacts: it is an approximate
engine here, and recall@10 against lsr's exact top-k is what measures it.

Build settings: ``bsize`` documents per block (32: the README's and pyterrier's default; the paper
sweeps 8-128), ``compress_range`` (off, the Python default). Search settings: ``alpha`` (block
termination: 1.0 is safe, smaller prunes more) and ``beta`` (fraction of query terms kept, heaviest
first; 1.0 keeps all; terms of equal weight are kept in hash order, so beta < 1 can differ run to run).
:meth:`Bmp.grid` sweeps alpha x beta, the safe setting first.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from lsr.eval.bench.engines.base import ENGINES, Answer, Built, Vectors
from lsr.eval.bench.engines.support import Tunable, answer, disk_bytes, grid, require, term_strings
from lsr.indexing.sparse.ciff import write_ciff

LEVELS = 255
"""BMP's impacts are one byte."""


def eight_bit(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Impacts re-quantised linearly into 1..255 when any exceeds 255 (unchanged otherwise)."""
    top = float(matrix.data.max(initial=0.0))
    if top <= LEVELS:
        return matrix
    out = matrix.copy()
    out.data = np.clip(np.rint(out.data * (LEVELS / top)), 1, LEVELS).astype(np.float32)
    return out


@ENGINES.add
class Bmp(Tunable):
    """Block-max pruning over 8-bit impacts; alpha = beta = 1 is its safe setting."""

    system = "bmp"
    exact = False
    package = "bmp"
    defaults = {"alpha": 1.0, "beta": 1.0}

    def __init__(self, bsize: int = 32, compress_range: bool = False) -> None:
        super().__init__(bsize=bsize, compress_range=compress_range)
        self._searcher: Any = None
        self._known: np.ndarray | None = None

    def grid(self, k: int) -> list[dict[str, Any]]:
        """Safe first (alpha = beta = 1), then alpha (block termination) x beta (query terms kept), at any k."""
        return grid(alpha=(1.0, 0.9, 0.8, 0.7, 0.6, 0.5), beta=(1.0, 0.8, 0.6))

    def build(self, docs: Vectors, workdir: Path, threads: int = 1) -> Built:
        require(self.package, "bmp")
        import bmp

        started = time.perf_counter()
        folder = Path(workdir) / "bmp"
        folder.mkdir(parents=True, exist_ok=True)
        impacts = eight_bit(docs.matrix).tocsc()
        names = term_strings(np.arange(impacts.shape[1]))
        write_ciff(folder / "index.ciff", impacts, [str(i) for i in range(len(docs))], names, {"scale": "8-bit"})
        bmp.ciff2bmp(
            str(folder / "index.ciff"),
            str(folder / "index.bmp"),
            self.settings["bsize"],
            self.settings["compress_range"],
        )
        (folder / "index.ciff").unlink()
        self._searcher = bmp.Searcher(str(folder / "index.bmp"))
        self._known = np.diff(impacts.indptr) > 0
        return Built(time.perf_counter() - started, disk_bytes(folder))

    def search(self, terms: np.ndarray, weights: np.ndarray, k: int) -> Answer:
        assert self._known is not None, "build first"
        keep = (terms < len(self._known)) & (weights > 0)
        keep[keep] = self._known[terms[keep]]
        if not keep.any():  # BMP panics on a query with no indexed term
            return answer(np.zeros(0), np.zeros(0))
        query = {str(t): int(w) for t, w in zip(terms[keep].tolist(), weights[keep].tolist(), strict=True)}
        docnos, scores = self._searcher.search(query, k=k, **self.search_settings)
        return answer([int(d) for d in docnos], scores)

    def close(self) -> None:
        self._searcher = None
