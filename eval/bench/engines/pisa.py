"""PISA (Mallia et al., ECIR 2019) through ``pyterrier-pisa``, over the integer impacts as given.

How its authors run learned sparse retrieval (pyterrier-pisa's README and ``PisaIndex.quantized``): a
pre-tokenised index built with ``stemmer='none'`` by its ``toks`` indexer (here ``scale=1``, so the
impacts are indexed unchanged: no re-scoring), the ``quantized`` scorer (a document's score is the
sum of query weight x impact, PISA's dot product for learned sparse vectors, Nguyen et al., ECIR 2023),
``query_weighted`` queries whose integer weights repeat each term, the default ``block_simdbp`` posting
compression and 64-posting fixed blocks for the block-max metadata (``prepare_index``'s default), and
stopwords off (the terms are token ids). Search calls ``_pisathon.retrieve``, the call behind
``PisaRetrieve.transform``, without the DataFrame around it, so the timing is PISA's plus the Python
call, not pandas.

Settings: ``algorithm`` ``maxscore`` | ``block_max_wand`` | ``block_max_maxscore`` (all exact: the
same top-k scores as exhaustive search, ties in any order); ``encoding`` (default ``block_simdbp``);
``block_size`` (64). Build is shared by the three algorithms (:class:`~.support.BuildCache`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from lsr.eval.bench.engines.base import ENGINES, Answer, Built, Engine, Vectors
from lsr.eval.bench.engines.support import BuildCache, answer, disk_bytes, grid, require, term_strings

ALGORITHMS = ("maxscore", "block_max_wand", "block_max_maxscore")
_BUILDS = BuildCache()


def _documents(docs: Vectors) -> Any:
    for row in range(len(docs)):
        terms, impacts = docs.row(row)
        yield {"docno": str(row), "toks": dict(zip(term_strings(terms), impacts.tolist(), strict=True))}


@ENGINES.add
class Pisa(Engine):
    """PISA's exact dynamic pruning (MaxScore, BlockMax-WAND, BlockMax-MaxScore) over quantised impacts."""

    system = "pisa"
    exact = True
    package = "pyterrier_pisa"

    def __init__(self, algorithm: str = "maxscore", encoding: str = "block_simdbp", block_size: int = 64) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm {algorithm!r}: one of {', '.join(ALGORITHMS)}")
        super().__init__(algorithm=algorithm, encoding=encoding, block_size=block_size)
        self._context: Any = None

    @classmethod
    def grid(cls) -> list[dict[str, Any]]:
        """The settings a benchmark runs: each exact algorithm."""
        return grid(algorithm=ALGORITHMS)

    def build(self, docs: Vectors, workdir: Path, threads: int = 1) -> Built:
        require(self.package, "pyterrier-pisa")
        from pyterrier_pisa import _pisathon
        from pyterrier_pisa.indexers import PisaToksIndexer

        key = (self.settings["encoding"], self.settings["block_size"])
        cached = _BUILDS.get(docs, key)
        if cached is not None:
            self._context, built = cached
            return built
        started = time.perf_counter()
        folder = Path(workdir) / "pisa"
        PisaToksIndexer(folder, text_field="toks", threads=threads, scale=1.0).index(_documents(docs))
        _pisathon.log_level(0)  # PISA logs every step to stderr by default
        context = _pisathon.RetrievalContext()
        # builds the block-max metadata and the compressed index, then maps them
        _pisathon.prepare_index(
            context, str(folder), key[0], "quantized", "", block_size=key[1], quantize=0, stop_fname=""
        )
        built = Built(time.perf_counter() - started, disk_bytes(folder))
        _BUILDS.put(docs, key, context, built)
        self._context = context
        return built

    def _retrieve(self, queries: list[tuple[int, dict[str, float]]], k: int, threads: int) -> list[Answer]:
        from pyterrier_pisa import _pisathon

        size = max(len(queries) * k, 1)
        qidx = np.empty(size, dtype=np.int32)
        docnos = np.empty(size, dtype=object)
        ranks = np.empty(size, dtype=np.int32)
        scores = np.empty(size, dtype=np.float32)
        found = _pisathon.retrieve(
            self._context,
            self.settings["algorithm"],
            queries,
            k=k,
            threads=threads,
            pretokenised=True,
            query_weighted=1,
            result_qidxs=qidx,
            result_docnos=docnos,
            result_ranks=ranks,
            result_scores=scores,
        )
        rows = np.array([int(d) for d in docnos[:found]], dtype=np.int64)
        out = []
        for number in range(len(queries)):
            mine = np.flatnonzero(qidx[:found] == number)
            mine = mine[np.argsort(ranks[mine], kind="stable")]
            out.append(answer(rows[mine], scores[mine]))
        return out

    @staticmethod
    def _query(terms: np.ndarray, weights: np.ndarray) -> dict[str, float]:
        # floats: pyterrier-pisa reads each weight as a C double and repeats the term that many times
        return dict(zip(term_strings(terms), (float(w) for w in weights), strict=True))

    def search(self, terms: np.ndarray, weights: np.ndarray, k: int) -> Answer:
        return self._retrieve([(0, self._query(terms, weights))], k, 1)[0]

    def search_batch(self, queries: Vectors, k: int, threads: int) -> list[Answer]:
        """PISA's own parallel batch (TBB threads over queries)."""
        batch = [(i, self._query(*queries.row(i))) for i in range(len(queries))]
        return self._retrieve(batch, k, threads)

    def close(self) -> None:
        self._context = None
