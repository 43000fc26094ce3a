"""The benchmark's inputs: a corpus's encoded vectors and a query set, quantised once for every engine.

Why here and not in each engine: the comparison is only fair if every engine indexes the
identical integer impacts (``round(100 w)``, Anserini's SPLADE quantisation, see
:func:`lsr.indexing.lucene.impact.quantise`) and answers the identical queries.
Queries are chosen without looking at results: a split's judged queries, or, for
efficiency runs on a corpus with unjudged queries (the packages corpus has 10,000),
the first ``limit`` queries that no split judges.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from lsr.eval.bench.engines.base import Vectors
from lsr.indexing.lucene.impact import quantise

from lsr.data.beir import BeirDataset
from lsr.encode.shards import Manifest, iter_shards, read_shard, stack
from lsr.errors import LsrError

UNJUDGED = "unjudged"


def _shards(folder: Path, limit: int | None) -> Iterator[tuple[list[str], sp.csr_matrix | np.ndarray]]:
    """A complete folder's shards; or, when only the first ``limit`` documents are wanted, the finished shards of a
    folder still being encoded that hold them (a benchmark can start on a corpus's first part)."""
    manifest = Manifest.load(folder)
    if manifest.complete or limit is None or manifest.documents < limit:
        yield from iter_shards(folder)
        return
    for entry in manifest.shards:
        yield read_shard(folder / entry["file"])


def corpus_vectors(folder: Path, limit: int | None = None) -> Vectors:
    """The quantised document vectors of an ``lsr encode`` output folder (its first ``limit`` documents)."""
    ids: list[str] = []
    parts: list[sp.csr_matrix] = []
    for shard_ids, vectors in _shards(folder, limit):
        if not sp.issparse(vectors):
            raise LsrError(f"{folder}: these vectors are dense; the sparse engines need a sparse encoder's shards")
        take = len(shard_ids) if limit is None else min(len(shard_ids), limit - len(ids))
        ids += shard_ids[:take]
        parts.append(sp.csr_matrix(vectors)[:take])
        if limit is not None and len(ids) >= limit:
            break
    if not ids:
        raise LsrError(f"{folder}: no encoded documents")
    return Vectors(ids, quantise(stack(parts)))


def query_texts(dataset: BeirDataset, split: str, limit: int | None = None) -> dict[str, str]:
    """Queries of ``split``, or with ``split="unjudged"`` the queries no split of the dataset judges."""
    queries = dataset.queries()
    if split == UNJUDGED:
        judged = {qid for name in dataset.splits() for qid in dataset.qrels(name, check_docs=False)}
        chosen = [qid for qid in queries if qid not in judged]
    else:
        chosen = [qid for qid in dataset.qrels(split, check_docs=False) if qid in queries]
    if not chosen:
        raise LsrError(f"{dataset.name}: no queries in {split!r}")
    return {qid: queries[qid] for qid in chosen[:limit]}


def query_vectors(ids: list[str], matrix: sp.csr_matrix) -> Vectors:
    """Quantised query vectors; queries left with no term after quantisation are dropped (no engine can answer)."""
    matrix = quantise(matrix)
    keep = np.flatnonzero(np.diff(matrix.indptr) > 0)
    return Vectors([ids[i] for i in keep], matrix[keep])
