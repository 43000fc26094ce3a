"""The dense retriever: a bi-encoder's query embeddings searched over a dense index (hnswlib, faiss or exact).

Over a corpus, an approximate index also reports its recall@10 against exact search, measured on the very
queries it answered, so a run's ``config.json`` says what the index's settings cost in accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from lsr.indexing.cache import about, cached_index, encoded_corpus, entry, model_name
from lsr.indexing.dense import (
    BACKENDS,
    DenseIndex,
    build_dense_index,
    exact_top_k,
    normalise,
    open_dense_index,
    recall_at,
)
from lsr.indexing.dense.settings import DenseSettings
from lsr.indexing.filters import filter_mask
from lsr.indexing.retrieval import Corpus, DocFilter, Hits, Retriever, RetrieverOptions, register

from lsr.errors import LsrError
from lsr.models import DenseEncoder, load_encoder

EXACT = ("exact", "faiss-flat")


def dense_encoder(model: str, device: str = "auto") -> DenseEncoder:
    """The dense encoder ``model``, refused with a message if it is a sparse one."""
    encoder = load_encoder(model, device=device)
    if not isinstance(encoder, DenseEncoder):
        raise LsrError(f"{model} is not a dense encoder; give a sentence-transformers model (e.g. --dense-model)")
    return encoder


@register
class DenseRetriever(Retriever):
    """Queries embedded by a dense model, searched over one dense index with the settings' search knobs."""

    name = "dense"

    def __init__(
        self, index: DenseIndex, encoder: DenseEncoder, settings: DenseSettings, corpus_vectors: Path | None = None
    ) -> None:
        self.index = index
        self.encoder = encoder
        self.settings = settings
        self.corpus_vectors = corpus_vectors
        self.recall: float | None = None

    @classmethod
    def from_corpus(cls, corpus: Corpus, options: RetrieverOptions) -> DenseRetriever:
        settings = options.dense
        if settings.backend not in BACKENDS:
            raise LsrError(f"unknown dense index {settings.backend!r}; choose one of {', '.join(BACKENDS)}")
        name = model_name(options.dense_model)
        encoder = dense_encoder(name, options.device)
        vectors = encoded_corpus(corpus, name, encoder)
        build = settings.build()
        label = "-".join([settings.backend, *(f"{key}{value}" for key, value in build.items())])

        def build_index(out: Path) -> None:
            from lsr.encode.shards import iter_shards

            build_dense_index(lambda: iter_shards(vectors), out, name, encoder.similarity, settings.backend, build)

        index = cached_index(
            entry(corpus.cache, "index", corpus.dataset, name, label),
            lambda folder: open_dense_index(folder, device=settings.device),
            build_index,
            about(corpus, name, label),
        )
        return cls(index, encoder, settings, vectors if settings.backend not in EXACT else None)

    @classmethod
    def from_index(cls, path: Path, options: RetrieverOptions) -> DenseRetriever:
        index = open_dense_index(path, device=options.dense.device)
        name = options.dense_model if options.dense_model else index.meta.model
        encoder = dense_encoder(name, options.device)
        if encoder.dimension != index.meta.dimension:
            raise LsrError(
                f"{name} makes {encoder.dimension}-d vectors, the dense index holds {index.meta.dimension}-d"
            )
        settings = DenseSettings(index.meta.backend, options.dense.options, options.dense.device)
        return cls(index, encoder, settings)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode_query(list(texts))

    @property
    def num_docs(self) -> int:
        return self.index.meta.num_docs

    @property
    def longest_id(self) -> int:
        return max((len(doc.encode()) for doc in self.index.ids), default=0)

    @property
    def corpus(self) -> str:
        return self.index.meta.corpus

    @property
    def id_fingerprint(self) -> str:
        return self.index.id_fingerprint

    def search(self, queries: np.ndarray, k: int, allow: DocFilter | None = None) -> list[Hits]:
        filtering = (
            {} if allow is None else {"allow": filter_mask(allow, self.index.meta.num_docs, self.index.doc_numbers)}
        )
        rows, scores = self.index.search(queries, k, **self.settings.search(), **filtering)
        if self.corpus_vectors is not None and allow is None:
            self.recall = self._recall_vs_exact(queries, rows)
        return self.index.hits(rows, scores)

    def _recall_vs_exact(self, queries: np.ndarray, rows: np.ndarray) -> float:
        from lsr.encode.shards import iter_shards

        assert self.corpus_vectors is not None
        corpus = np.vstack([shard for _, shard in iter_shards(self.corpus_vectors)]).astype(np.float32)
        if self.index.meta.similarity == "cosine":
            corpus, queries = normalise(corpus), normalise(queries)
        return round(recall_at(rows, exact_top_k(corpus, queries, 10)[0], 10), 4)

    @property
    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "retriever": self.name,
            "model": self.index.meta.model,
            "index": self.settings.backend,
            **self.settings.build(),
            **self.settings.search(),
        }
        if self.recall is not None:
            info["recall@10_vs_exact"] = self.recall
        return info
