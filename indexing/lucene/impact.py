"""Learned sparse vectors in Lucene: export as Anserini's ``JsonVectorCollection`` and impact search.

Weights become integer impacts (``round(100 w)``, the quantisation Anserini uses for
SPLADE), keyed by the vocabulary's token strings, so pyserini users can index
lsr's vectors with their own tools (``-collection JsonVectorCollection -impact
-pretokenized``) and search them with the same integer query weights.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from lsr.indexing.lucene.jvm import lucene_search_module

from lsr.fsutil import atomic_dir

SCALE = 100


def quantise(matrix: sp.csr_matrix, scale: float = SCALE) -> sp.csr_matrix:
    """Integer impacts ``round(scale w)`` (``round(100 w)`` by default) as float32, zeros dropped, indices sorted."""
    out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.data = np.rint(out.data * scale).astype(np.float32)
    out.eliminate_zeros()
    out.sort_indices()
    return out


def token_names(vocabulary: list[str] | None, size: int) -> list[str]:
    """Lucene terms for vocabulary ids: the tokens themselves, or ``t<id>`` when there is no vocabulary."""
    return list(vocabulary) if vocabulary is not None else [f"t{i}" for i in range(size)]


def write_json_vectors(
    shards: Iterable[tuple[list[str], sp.csr_matrix]], folder: str | Path, tokens: list[str], scale: float = SCALE
) -> int:
    """Write ``JsonVectorCollection`` files (one per shard) into ``folder``, atomically; return the document count.

    Weights are quantised by ``scale``; ``scale=1`` writes vectors that already hold integer impacts as they are.
    """
    count = 0
    with atomic_dir(folder) as tmp:
        for number, (ids, vectors) in enumerate(shards):
            impacts = quantise(vectors, scale)
            with open(tmp / f"part-{number:05d}.jsonl", "w", encoding="utf-8") as out:
                for row, doc_id in enumerate(ids):
                    start, end = impacts.indptr[row], impacts.indptr[row + 1]
                    vector = {
                        tokens[t]: int(w)
                        for t, w in zip(impacts.indices[start:end], impacts.data[start:end], strict=True)
                    }
                    out.write(json.dumps({"id": doc_id, "contents": "", "vector": vector}, ensure_ascii=False) + "\n")
            count += len(ids)
    return count


def build_impact_index(collection: str | Path, index: str | Path, threads: int = 1) -> float:
    """Index a ``JsonVectorCollection`` folder with Anserini (impact, pretokenized); return the seconds it took."""
    lucene_search_module()
    from jnius import autoclass

    started = time.perf_counter()
    # Anserini reads every file of its input folder: it is given links to the vector files alone, not the marker
    # lsr leaves in folders it wrote (which it would log as a document it cannot parse)
    with atomic_dir(index) as tmp, tempfile.TemporaryDirectory(prefix="lsr-impact-input-") as parts:
        for part in sorted(Path(collection).glob("part-*.jsonl")):
            (Path(parts) / part.name).symlink_to(part.resolve())
        autoclass("io.anserini.index.IndexCollection").main(
            [
                "-collection",
                "JsonVectorCollection",
                "-input",
                parts,
                "-index",
                str(tmp),
                "-generator",
                "DefaultLuceneDocumentGenerator",
                "-impact",
                "-pretokenized",
                "-threads",
                str(threads),
                "-quiet",
            ]
        )
    return time.perf_counter() - started


class ImpactSearcher:
    """Anserini's ``SimpleImpactSearcher`` fed lsr query vectors (quantised the same way as the documents)."""

    def __init__(self, index: str | Path, tokens: list[str], threads: int = 1) -> None:
        lucene_search_module()
        from jnius import autoclass

        self.searcher = autoclass("io.anserini.search.SimpleImpactSearcher")(str(index))
        self._map = autoclass("java.util.HashMap")
        self._list = autoclass("java.util.ArrayList")
        self._int = autoclass("java.lang.Integer")
        self.tokens = tokens
        self.threads = threads

    def _query(self, impacts: sp.csr_matrix, row: int):  # noqa: ANN202 - a java.util.Map
        jmap = self._map()
        start, end = impacts.indptr[row], impacts.indptr[row + 1]
        for t, w in zip(impacts.indices[start:end], impacts.data[start:end], strict=True):
            jmap.put(self.tokens[t], self._int(int(w)))
        return jmap

    def search(self, impacts: sp.csr_matrix, row: int, k: int) -> list[str]:
        """Top ``k`` document ids for one already-quantised query row."""
        return [hit.docid for hit in self.searcher.search(self._query(impacts, row), k)]

    def batch(self, impacts: sp.csr_matrix, k: int) -> list[list[tuple[str, float]]]:
        """Top ``k`` (document id, score) for every already-quantised query row, searched by Anserini's thread pool."""
        queries, ids = self._list(), self._list()
        for row in range(impacts.shape[0]):
            queries.add(self._query(impacts, row))
            ids.add(str(row))
        results = self.searcher.batch_search(queries, ids, k, self.threads)
        return [[(hit.docid, hit.score) for hit in results.get(str(row))] for row in range(impacts.shape[0])]
