"""The single retrievers ``lsr eval run`` combines: BM25, learned sparse and dense, each returning a run.

Each one encodes (or indexes) the corpus once into the cache (:mod:`eval.cache`) and
reuses it on later calls, so evaluating another split, tuning fusion weights or
rerunning a hybrid costs only the query side.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval import cache
from lsr.data.beir import BeirDataset
from lsr.encode.shards import iter_shards
from lsr.fsutil import forcing
from lsr.runs import Run

if TYPE_CHECKING:
    from lsr.models import DenseEncoder, SparseEncoder

    Encoder = SparseEncoder | DenseEncoder

SHARD_SIZE = 4096  # documents per cached shard: an interrupted encoding loses at most this many


@dataclass
class DenseSettings:
    """Which dense index answers queries and any knob overrides (m, ef_construction, ef, nlist, nprobe, train);
    a knob the backend does not have is ignored, the rest keep the backend's defaults. ``device`` cuda puts a
    faiss flat or IVF index on the GPU (the gpu extra)."""

    backend: str = "hnsw"
    options: dict[str, int] = field(default_factory=dict)
    device: str = "cpu"

    def _pick(self, defaults: dict[str, int]) -> dict[str, int]:
        return {name: self.options.get(name, value) for name, value in defaults.items()}

    def build(self) -> dict[str, int]:
        from indexing.dense import BACKENDS

        return self._pick(BACKENDS[self.backend].build_params)

    def search(self) -> dict[str, int]:
        from indexing.dense import BACKENDS

        return self._pick(BACKENDS[self.backend].search_params)


@dataclass
class LegResult:
    """A retriever's run and what to record about it in ``config.json``."""

    run: Run
    info: dict[str, Any] = field(default_factory=dict)


@functools.lru_cache(maxsize=4)
def load_model(name: str, device: str) -> Encoder:
    """An encoder, loaded once per process: a hybrid and its single legs in one run share it."""
    from lsr.models import load_encoder

    return load_encoder(name, device=device)


def encoded_corpus(dataset: BeirDataset, model: str, encoder: Encoder, root: Path, batch_size: int = 32) -> Path:
    """The cached vectors folder of ``model`` (loaded as ``encoder``) over ``dataset``'s corpus, encoded (or
    resumed) if needed."""
    from lsr.encode.corpus import encode_corpus
    from lsr.encode.shards import Manifest

    folder = cache.entry(root, "vectors", dataset, model)
    if (folder / "manifest.json").is_file() and Manifest.load(folder).complete:
        return folder
    encode_corpus(encoder, cache.model_name(model), dataset.corpus_source, folder, SHARD_SIZE, batch_size)
    return folder


def bm25_run(dataset: BeirDataset, queries: dict[str, str], root: Path, k: int, multifield: bool = False) -> LegResult:
    """Lucene BM25 (k1 0.9, b 0.4, as Anserini's BEIR regressions), the index cached per corpus and convention."""
    from indexing.lucene import bm25

    convention = "multifield" if multifield else "flat"
    index = cache.entry(root, "index", dataset, "bm25", convention)
    with forcing():  # the cache is lsr's: an entry from an older lsr (without the output marker) is replaced
        bm25.build_index(dataset, index, convention)
    run = bm25.search(index, queries, k=k, convention=convention)
    return LegResult(run, {"retriever": "bm25", "convention": convention, "index": str(index)})


def sparse_run(
    dataset: BeirDataset, queries: dict[str, str], model: str, root: Path, k: int, device: str = "auto"
) -> LegResult:
    """Exact top-k from lsr's inverted index over the model's cached document vectors."""
    from indexing.sparse.build import build_index
    from indexing.sparse.format import SparseIndex
    from indexing.sparse.search import Searcher, to_run
    from lsr.errors import LsrError
    from lsr.models import SparseEncoder

    name = cache.model_name(model)
    encoder = load_model(name, device)
    if not isinstance(encoder, SparseEncoder):
        raise LsrError(f"{model} is a dense encoder; use it with --dense-model")
    vectors = encoded_corpus(dataset, model, encoder, root)
    index_dir = cache.entry(root, "index", dataset, model, "sparse-float16")
    index = cache.cached_index(
        index_dir, SparseIndex.open, lambda out: build_index(lambda: iter_shards(vectors), out, name, encoder.kind)
    )
    ids = list(queries)
    docs, scores, sizes = Searcher(index).search(encoder.encode_query([queries[q] for q in ids]), k=k)
    return LegResult(to_run(index, ids, docs, scores, sizes), {"retriever": "sparse", "model": name})


def dense_run(
    dataset: BeirDataset,
    queries: dict[str, str],
    model: str,
    root: Path,
    k: int,
    settings: DenseSettings,
    device: str = "auto",
) -> LegResult:
    """Top-k from a dense index over the model's cached document vectors, with its recall@10 against exact search.

    The recall is measured on these very queries, so the index settings are
    reported with what they cost in accuracy. Similarity follows the model
    (all-MiniLM-L6-v2: cosine, i.e. inner product of normalised vectors).
    """
    import numpy as np

    from indexing.dense import BACKENDS, build_dense_index, exact_top_k, normalise, open_dense_index, recall_at
    from lsr.errors import LsrError
    from lsr.models import DenseEncoder

    if settings.backend not in BACKENDS:
        raise LsrError(f"unknown dense index {settings.backend!r}; choose one of {', '.join(BACKENDS)}")
    name = cache.model_name(model)
    encoder = load_model(name, device)
    if not isinstance(encoder, DenseEncoder):
        raise LsrError(f"{model} is not a dense encoder; use it with --model")
    vectors = encoded_corpus(dataset, model, encoder, root)
    build, backend = settings.build(), settings.backend
    label = "-".join([settings.backend, *(f"{key}{value}" for key, value in build.items())])
    index_dir = cache.entry(root, "index", dataset, model, label)
    index = cache.cached_index(
        index_dir,
        lambda folder: open_dense_index(folder, device=settings.device),
        lambda out: build_dense_index(lambda: iter_shards(vectors), out, name, encoder.similarity, backend, build),
    )
    ids = list(queries)
    matrix = encoder.encode_query([queries[q] for q in ids])
    rows, scores = index.search(matrix, k, **settings.search())
    info: dict[str, Any] = {
        "retriever": "dense",
        "model": name,
        "index": settings.backend,
        **build,
        **settings.search(),
    }
    if settings.backend not in ("exact", "faiss-flat"):
        corpus = np.vstack([shard for _, shard in iter_shards(vectors)]).astype(np.float32)
        if index.meta.similarity == "cosine":
            corpus, matrix = normalise(corpus), normalise(matrix)
        info["recall@10_vs_exact"] = round(recall_at(rows, exact_top_k(corpus, matrix, 10)[0], 10), 4)
    return LegResult(index.to_run(ids, rows, scores), info)
