"""The learned-sparse retriever: a sparse encoder's queries searched over lsr's inverted index.

:class:`SparseSearcher` is the one place where exact or pruned (:class:`~lsr.indexing.sparse.settings.Pruning`),
CPU (Numba) or GPU (CUDA) search is chosen; ``lsr search``, ``lsr eval run`` and ``lsr serve`` all come through here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from lsr.indexing.cache import about, cached_index, encoded_corpus, entry, model_name
from lsr.indexing.filters import filter_mask
from lsr.indexing.retrieval import Corpus, DocFilter, Hits, Retriever, RetrieverOptions, register
from lsr.indexing.sparse.cluster_build import build_clusters
from lsr.indexing.sparse.clustered import ClusteredSearch
from lsr.indexing.sparse.clusters import FOLDER as CLUSTERS
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.search import hits
from lsr.indexing.sparse.settings import EXACT, Pruning

from lsr.cache.vectors import encoding_settings
from lsr.errors import LsrError
from lsr.models import SparseEncoder, load_encoder


class SparseSearcher:
    """Sparse query vectors to :class:`~lsr.indexing.retrieval.Hits` over one index, on the CPU or the GPU."""

    def __init__(
        self,
        index: SparseIndex,
        device: str = "cpu",
        pruning: Pruning = EXACT,
        threads: int | None = None,
        tiled: bool = True,
    ) -> None:
        """``threads``: CPU threads of one search (default: all of Numba's); ``tiled``: whether the CPU kernel may
        build its tiled copy of the index (:class:`~lsr.indexing.sparse.search.Searcher`)."""
        self.index, self.pruning, self.device = index, pruning, device
        if device == "cpu":
            from lsr.indexing.sparse.search import Searcher

            if pruning.alpha is not None and (pruning.alpha <= 0 or pruning.budget):
                raise LsrError("--approximate takes an alpha in (0, 1] and does not combine with --budget")
            others = pruning.budget or pruning.query_terms or pruning.rerank or pruning.alpha is not None
            if pruning.heap_factor is not None and others:
                raise LsrError("--heap-factor (clustered search) does not combine with other pruning options")
            if pruning.query_cut is not None and pruning.heap_factor is None:
                raise LsrError("--query-cut is an option of clustered search: give --heap-factor too")
            self.kernel: Any = Searcher(index, threads=threads, tiled=tiled)
            if pruning.heap_factor is not None:  # missing or corrupt clusters stop start-up, not the first query
                ClusteredSearch.of(index)
        elif device == "cuda":
            from lsr.indexing.sparse.gpu import STRATEGIES, GpuSearcher
            from numba import cuda

            if not cuda.is_available():
                raise LsrError("--device cuda: no CUDA GPU is visible")
            if (
                pruning.query_terms is not None
                or pruning.rerank
                or pruning.alpha is not None
                or pruning.heap_factor is not None
            ):
                raise LsrError("--query-terms, --rerank, --approximate and --heap-factor are CPU options")
            if pruning.gpu_kernel not in STRATEGIES:
                raise LsrError(f"--gpu-kernel must be one of {', '.join(STRATEGIES)}, not {pruning.gpu_kernel!r}")
            if pruning.budget and pruning.gpu_kernel != "postings":
                raise LsrError("--budget on the GPU needs --gpu-kernel postings")
            self.kernel = GpuSearcher(index, strategy=pruning.gpu_kernel)
        else:
            raise LsrError(f"--device must be cpu or cuda, not {device!r}")

    def warm_up(self, queries: sp.csr_matrix, k: int) -> float:
        """Search the first query once and return the seconds it took: Numba (and CUDA) compile a kernel on its
        first call, which takes seconds and must not be reported as per-query search speed."""
        started = time.perf_counter()
        if queries.shape[0]:
            self.search(queries[:1], k)
        return time.perf_counter() - started

    def search(self, queries: sp.csr_matrix, k: int, allow: np.ndarray | None = None) -> list[Hits]:
        """Top ``k`` per query row; ``allow`` is a mask over document numbers (True: may be returned)."""
        p = self.pruning
        filtering = {} if allow is None else {"allow": allow}
        if self.device == "cpu":
            rerank = max(p.rerank, 100) if p.alpha is not None else p.rerank
            if p.heap_factor is not None:
                found = self.kernel.search(queries, k=k, query_cut=p.query_cut, heap_factor=p.heap_factor, **filtering)
            else:
                found = self.kernel.search(
                    queries, k=k, budget=p.budget, query_terms=p.query_terms, rerank=rerank, alpha=p.alpha, **filtering
                )
        else:
            found = self.kernel.search(queries, k=k, budget=p.budget, **filtering)
        return hits(self.index, *found)


def sparse_encoder(
    model: str, vocabulary_size: int | None = None, device: str = "auto", **encoding: Any
) -> SparseEncoder:
    """The sparse encoder ``model``, refused with a message if it is dense or does not match the index's terms;
    ``encoding``: ``load_encoder`` settings (backend, max_length, stride, window_pooling)."""
    encoder = load_encoder(model, device=device, **encoding)
    if not isinstance(encoder, SparseEncoder):
        raise LsrError(f"{model} is not a sparse encoder; a sparse index needs a sparse model (e.g. --model)")
    if vocabulary_size is not None and len(encoder.vocabulary) != vocabulary_size:
        raise LsrError(f"{model} has {len(encoder.vocabulary)} terms, the index {vocabulary_size}: not its model")
    return encoder


@register
class SparseRetriever(Retriever):
    """Queries encoded by the index's own sparse model, searched exactly (or pruned) on the CPU or GPU."""

    name = "sparse"

    def __init__(
        self,
        index: SparseIndex,
        encoder: SparseEncoder,
        device: str = "cpu",
        pruning: Pruning = EXACT,
        threads: int | None = None,
        tiled: bool = True,
    ) -> None:
        self.index = index
        self.encoder = encoder
        self.searcher = SparseSearcher(index, device, pruning, threads, tiled)

    @classmethod
    def from_corpus(cls, corpus: Corpus, options: RetrieverOptions) -> SparseRetriever:
        if not options.model:
            raise LsrError("the sparse retriever needs a model (--model)")
        name = model_name(options.model)
        encoder = sparse_encoder(name, device=options.device, **options.encoding)
        settings = encoding_settings(**options.encoding)
        vectors = encoded_corpus(corpus, name, encoder, settings=settings)
        folder = entry(corpus.cache, "index", corpus.dataset, name, "-".join(["sparse-float16", *settings]))

        def build(out: Path) -> None:
            from lsr.indexing.sparse.build import build_index

            from lsr.encode.shards import iter_shards

            build_index(lambda: iter_shards(vectors), out, name, encoder.kind)

        index = cached_index(folder, SparseIndex.open, build, about(corpus, name, "sparse-float16"))
        if options.pruning.heap_factor is not None and not (index.path / CLUSTERS).exists():
            build_clusters(index).save(index)  # the cache's own index: its default clusters, built once beside it
        return cls(index, encoder, "cuda" if options.gpu else "cpu", options.pruning, options.threads)

    @classmethod
    def from_index(cls, path: Path, options: RetrieverOptions) -> SparseRetriever:
        index = SparseIndex.open(path)
        encoder = sparse_encoder(options.model or index.meta.model, index.meta.vocab_size, options.device)
        return cls(index, encoder, "cuda" if options.gpu else "cpu", options.pruning, options.threads)

    def express(self) -> SparseRetriever | None:
        """On the CPU, a searcher of one thread without the tiled copy (its memory is a score buffer the size of the
        corpus) over the same index and encoder."""
        if self.searcher.device != "cpu":
            return None
        return SparseRetriever(self.index, self.encoder, "cpu", self.searcher.pruning, threads=1, tiled=False)

    @property
    def num_docs(self) -> int:
        return self.index.num_docs

    @property
    def longest_id(self) -> int:
        return self.index.longest_id

    @property
    def corpus(self) -> str:
        return self.index.meta.corpus

    @property
    def id_fingerprint(self) -> str:
        return self.index.id_fingerprint

    def encode(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self.encoder.encode_query(list(texts))

    def search(self, queries: sp.csr_matrix, k: int, allow: DocFilter | None = None) -> list[Hits]:
        mask = None if allow is None else filter_mask(allow, self.index.num_docs, self.index.doc_numbers)
        return self.searcher.search(queries, k, mask)

    @property
    def info(self) -> dict[str, Any]:
        return {"retriever": self.name, "model": self.index.meta.model}
