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

Build settings: ``encoding`` (default ``block_simdbp``), ``block_size`` (64). Search setting:
``algorithm`` ``maxscore`` (the default) | ``block_max_wand`` | ``block_max_maxscore``, all exact (the
same top-k scores as exhaustive search, ties in any order), swept by :meth:`Pisa.grid` over one index.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from lsr.eval.bench.engines.base import ENGINES, Answer, Built, Vectors
from lsr.eval.bench.engines.support import Tunable, answer, disk_bytes, require, term_strings

ALGORITHMS = ("maxscore", "block_max_wand", "block_max_maxscore")


def _documents(docs: Vectors) -> Any:
    for row in range(len(docs)):
        terms, impacts = docs.row(row)
        yield {"docno": str(row), "toks": dict(zip(term_strings(terms), impacts.tolist(), strict=True))}


@ENGINES.add
class Pisa(Tunable):
    """PISA's exact dynamic pruning (MaxScore, BlockMax-WAND, BlockMax-MaxScore) over quantised impacts."""

    system = "pisa"
    exact = True
    parallel_batch = True
    package = "pyterrier_pisa"
    defaults = {"algorithm": ALGORITHMS[0]}

    def __init__(self, encoding: str = "block_simdbp", block_size: int = 64) -> None:
        super().__init__(encoding=encoding, block_size=block_size)
        self._context: Any = None

    def grid(self, k: int) -> list[dict[str, Any]]:
        """Every exact algorithm over the one index (the empty setting is the default, MaxScore), at any k."""
        return [{}, *({"algorithm": a} for a in ALGORITHMS[1:])]

    def configure(self, **search_settings: Any) -> None:
        if search_settings.get("algorithm", ALGORITHMS[0]) not in ALGORITHMS:
            raise ValueError(f"algorithm {search_settings['algorithm']!r}: one of {', '.join(ALGORITHMS)}")
        super().configure(**search_settings)

    def build(self, docs: Vectors, workdir: Path, threads: int = 1) -> Built:
        require(self.package, "pyterrier-pisa")
        from pyterrier_pisa import _pisathon
        from pyterrier_pisa.indexers import PisaToksIndexer

        started = time.perf_counter()
        folder = Path(workdir) / "pisa"
        PisaToksIndexer(folder, text_field="toks", threads=threads, scale=1.0).index(_documents(docs))
        context = _pisathon.RetrievalContext()
        # builds the block-max metadata and the compressed index, then maps them
        _pisathon.prepare_index(
            context,
            str(folder),
            self.settings["encoding"],
            "quantized",
            "",
            block_size=self.settings["block_size"],
            quantize=0,
            stop_fname="",
        )
        self._context = context
        return Built(time.perf_counter() - started, disk_bytes(folder))

    def _retrieve(self, queries: list[tuple[int, dict[str, float]]], k: int, threads: int) -> list[Answer]:
        from pyterrier_pisa import _pisathon

        size = max(len(queries) * k, 1)
        qidx = np.empty(size, dtype=np.int32)
        docnos = np.empty(size, dtype=object)
        ranks = np.empty(size, dtype=np.int32)
        scores = np.empty(size, dtype=np.float32)
        found = _pisathon.retrieve(
            self._context,
            self.search_settings["algorithm"],
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
