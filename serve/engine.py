"""The search engine behind the servicers: indexes and encoders opened once, shared read-only, micro-batched.

It holds a sparse index (whose metadata names the model its queries must be encoded with; for an
inference-free model that is a tokenizer and an IDF lookup, no network), optionally a dense index
and its encoder, and optionally a trained recommender folder. Hybrid search fuses the sparse and
dense legs with :mod:`indexing.fusion` (RRF by default), as ``lsr eval run`` does.

Every kernel and encoder is driven by one :class:`~serve.batching.MicroBatcher` worker, so
concurrent requests share kernel calls and no kernel is entered from two threads at once.
Document-id filters are applied after search, with the search depth widened (4x a round) until
``k`` allowed hits are found or the leg has nothing more to return, so filtered results are the
exact top ``k`` among the allowed documents.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from serve.batching import BatcherClosed, DeadlineExpired, MicroBatcher, wait
from serve.errors import DeadlineExceeded, InvalidArgument, NotFound, Unavailable

RETRIEVERS = ("sparse", "dense", "hybrid")
DEFAULT_K = 10

Hits = list[tuple[str, float]]


@dataclass
class Limits:
    """What one request may ask for; beyond these it is INVALID_ARGUMENT rather than a slow or huge answer."""

    max_k: int = 1000
    max_query_chars: int = 4096
    max_query_terms: int = 4096
    max_batch_queries: int = 256
    max_filter_ids: int = 100_000


@dataclass
class EngineConfig:
    """What the server loads and how it batches; ``model`` overrides the model named by the sparse index."""

    index: Path
    model: str | None = None
    dense_index: Path | None = None
    dense_model: str | None = None
    recommender: Path | None = None
    device: str = "cpu"
    encode_device: str = "cpu"
    fusion: str = "rrf"
    hybrid_depth: int = 100
    max_batch: int = 64
    window_ms: float = 2.0
    verify: bool = True
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class Query:
    """One search, validated by :meth:`Engine.check`: text, or a sparse vector as (indices, values)."""

    text: str | None = None
    vector: tuple[np.ndarray, np.ndarray] | None = None
    k: int = DEFAULT_K
    retriever: str = "sparse"
    allow: frozenset[str] | None = None
    deny: frozenset[str] = frozenset()
    fusion: str | None = None
    weights: tuple[float, ...] | None = None


def rss_bytes() -> int:
    """This process's resident memory (Linux ``/proc``; elsewhere the peak from ``getrusage``)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Engine:
    """Loads everything once; ``search``, ``encode`` and ``recommend`` are safe to call from many threads."""

    def __init__(self, config: EngineConfig) -> None:
        from indexing.fusion import METHODS
        from indexing.sparse.format import SparseIndex
        from lsr.errors import LsrError
        from lsr.models import SparseEncoder, load_encoder

        if config.fusion not in METHODS:
            raise LsrError(f"unknown fusion {config.fusion!r}; choose one of {', '.join(METHODS)}")
        self.config = config
        self.limits = config.limits
        self.started = time.monotonic()
        self.index = SparseIndex.open(config.index, verify=config.verify)
        self.model = config.model or self.index.meta.model
        encoder = load_encoder(self.model, device=config.encode_device)
        if not isinstance(encoder, SparseEncoder):
            raise LsrError(f"{self.model} is not a sparse encoder; the sparse index needs its sparse model")
        if len(encoder.vocabulary) != self.index.meta.vocab_size:
            raise LsrError(
                f"{self.model} has {len(encoder.vocabulary)} terms, the index {self.index.meta.vocab_size}: "
                "not the index's model"
            )
        self.encoder = encoder
        self._encode_lock = threading.Lock()  # the sparse encoder serves two workers (search and Encode)
        self.searcher = self._searcher(config.device)
        self.active = 0  # calls inside search_many/encode: the batchers wait for more only while others are active
        self._active_lock = threading.Lock()
        batching = {"max_batch": config.max_batch, "window_ms": config.window_ms, "callers": lambda: self.active}
        self.batchers: dict[str, MicroBatcher] = {
            "sparse": MicroBatcher("sparse", self._sparse_batch, **batching),
            "encode": MicroBatcher("encode", self._encode_batch, **batching),
        }
        self.dense_index = self.dense_encoder = None
        if config.dense_index is not None:
            self._open_dense(config)
            self.batchers["dense"] = MicroBatcher("dense", self._dense_batch, **batching)
        self.recommender = None
        self._recommend_lock = threading.Lock()
        if config.recommender is not None:
            from lsr.recommend.serve import Server

            self.recommender = Server(config.recommender)
            if self.recommender.model.dot_product:
                self.recommender.index()  # built (or loaded) now, not by the first request
        self.warm_up()

    def warm_up(self) -> None:
        """One query through every kernel and encoder, so JIT compilation and lazy loading happen at start-up,
        not inside the first caller's deadline."""
        probe = Query(text="warm up", k=1)
        self._sparse_batch([(probe, 1)])
        self._encode_batch(["warm up"])
        if self.dense_index is not None:
            self._dense_batch([(probe, 1)])

    def _searcher(self, device: str):  # noqa: ANN202 - Searcher or GpuSearcher
        from indexing.sparse.search import Searcher
        from lsr.errors import LsrError

        if device == "cpu":
            return Searcher(self.index)
        if device == "cuda":
            from numba import cuda

            from indexing.sparse.gpu import GpuSearcher

            if not cuda.is_available():
                raise LsrError("--device cuda: no CUDA GPU is visible")
            return GpuSearcher(self.index)
        raise LsrError(f"--device must be cpu or cuda, not {device!r}")

    def _open_dense(self, config: EngineConfig) -> None:
        from indexing.dense import open_dense_index
        from lsr.errors import LsrError
        from lsr.models import DenseEncoder, load_encoder

        self.dense_index = open_dense_index(config.dense_index, verify=config.verify)
        name = config.dense_model or self.dense_index.meta.model
        encoder = load_encoder(name, device=config.encode_device)
        if not isinstance(encoder, DenseEncoder):
            raise LsrError(f"{name} is not a dense encoder; the dense index needs its dense model")
        if encoder.dimension != self.dense_index.meta.dimension:
            held = self.dense_index.meta.dimension
            raise LsrError(f"{name} makes {encoder.dimension}-d vectors, the dense index holds {held}-d")
        self.dense_model = name
        self.dense_encoder = encoder

    @property
    def retrievers(self) -> tuple[str, ...]:
        return RETRIEVERS if self.dense_index is not None else ("sparse",)

    # -- batch functions, each run by its batcher's single worker thread --------------------------------

    def _encode_sparse(self, texts: list[str]) -> sp.csr_matrix:
        with self._encode_lock:
            return sp.csr_matrix(self.encoder.encode_query(texts, batch_size=max(len(texts), 1)), dtype=np.float32)

    def _sparse_batch(self, items: list[tuple[Query, int]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Encode the batch's texts in one call, stack them with the given vectors, search once."""
        vocab = self.index.meta.vocab_size
        texts = [q.text for q, _ in items if q.vector is None]
        encoded = iter(self._encode_sparse(texts)) if texts else iter(())
        rows = []
        for query, _ in items:
            if query.vector is None:
                rows.append(next(encoded))
            else:
                indices, values = query.vector
                rows.append(sp.csr_matrix((values, indices, [0, len(indices)]), shape=(1, vocab)))
        depth = max(d for _, d in items)
        docs, scores, sizes = self.searcher.search(sp.vstack(rows, format="csr"), k=depth)
        return [(docs[i, : min(sizes[i], d)], scores[i, : min(sizes[i], d)]) for i, (_, d) in enumerate(items)]

    def _dense_batch(self, items: list[tuple[Query, int]]) -> list[tuple[np.ndarray, np.ndarray]]:
        matrix = self.dense_encoder.encode_query([q.text for q, _ in items], batch_size=max(len(items), 1))
        rows, scores = self.dense_index.search(matrix, max(d for _, d in items))
        out = []
        for i, (_, depth) in enumerate(items):
            keep = rows[i, :depth] >= 0
            out.append((rows[i, :depth][keep], scores[i, :depth][keep]))
        return out

    def _encode_batch(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        matrix = self._encode_sparse(texts)
        bounds = matrix.indptr
        return [(matrix.indices[a:b], matrix.data[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    # -- validation ---------------------------------------------------------------------------------------

    def check(self, query: Query) -> None:
        """Reject what cannot be answered, with a message saying why (INVALID_ARGUMENT)."""
        from indexing.fusion import METHODS

        limits = self.limits
        if query.retriever not in RETRIEVERS:
            raise InvalidArgument(f"unknown retriever {query.retriever!r}; choose one of {', '.join(self.retrievers)}")
        if query.retriever not in self.retrievers:
            raise InvalidArgument(
                f"retriever {query.retriever!r} needs a dense index, and this server has none (lsr serve --dense-index)"
            )
        if not 1 <= query.k <= limits.max_k:
            raise InvalidArgument(f"k must be between 1 and {limits.max_k}, not {query.k}")
        if query.vector is None:
            if query.text is None or not query.text.strip():
                raise InvalidArgument("empty query: give query text or a sparse vector")
            if len(query.text) > limits.max_query_chars:
                raise InvalidArgument(f"query of {len(query.text)} characters; the limit is {limits.max_query_chars}")
        else:
            if query.retriever != "sparse":
                raise InvalidArgument(f"a pre-encoded vector searches the sparse index only, not {query.retriever}")
            self.check_vector(*query.vector)
        filters = len(query.allow or ()) + len(query.deny)
        if filters > limits.max_filter_ids:
            raise InvalidArgument(f"{filters} document ids in filters; the limit is {limits.max_filter_ids}")
        if query.fusion is not None and query.fusion not in METHODS:
            raise InvalidArgument(f"unknown fusion {query.fusion!r}; choose one of {', '.join(METHODS)}")
        if query.weights is not None:
            if query.retriever != "hybrid" or len(query.weights) != 2:
                raise InvalidArgument("weights apply to hybrid search: two of them, sparse then dense")
            if not all(math.isfinite(w) and w >= 0 for w in query.weights) or not any(query.weights):
                raise InvalidArgument("weights must be finite, non-negative and not all zero")

    def check_vector(self, indices: np.ndarray, values: np.ndarray) -> None:
        vocab = self.index.meta.vocab_size
        if len(indices) != len(values):
            raise InvalidArgument(f"malformed vector: {len(indices)} indices but {len(values)} values")
        if len(indices) == 0:
            raise InvalidArgument("empty query: the vector has no terms")
        if len(indices) > self.limits.max_query_terms:
            raise InvalidArgument(f"vector of {len(indices)} terms; the limit is {self.limits.max_query_terms}")
        if indices.min() < 0 or indices.max() >= vocab:
            raise InvalidArgument(f"malformed vector: term ids must be in [0, {vocab})")
        if len(np.unique(indices)) != len(indices):
            raise InvalidArgument("malformed vector: repeated term ids")
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise InvalidArgument("malformed vector: weights must be finite and non-negative")

    # -- requests -----------------------------------------------------------------------------------------

    def search(self, query: Query, deadline: float | None = None) -> Hits:
        """The top ``query.k`` hits (document id, score), best first."""
        return self.search_many([query], deadline)[0]

    def search_many(self, queries: list[Query], deadline: float | None = None) -> list[Hits]:
        """Several searches submitted together, so they share kernel calls."""
        if len(queries) > self.limits.max_batch_queries:
            raise InvalidArgument(f"{len(queries)} queries in one batch; the limit is {self.limits.max_batch_queries}")
        for number, query in enumerate(queries):
            try:
                self.check(query)
            except InvalidArgument as exc:
                raise InvalidArgument(f"request {number}: {exc}" if len(queries) > 1 else str(exc)) from None
        with self._activity(len(queries)), _mapped_errors():
            plans = [self._start(query, deadline) for query in queries]
            return [finish() for finish in plans]

    @contextlib.contextmanager
    def _activity(self, count: int) -> Iterator[None]:
        with self._active_lock:
            self.active += count
        try:
            yield
        finally:
            with self._active_lock:
                self.active -= count

    def _start(self, query: Query, deadline: float | None) -> Callable[[], Hits]:
        """Submit a query's first kernel work now; the returned function waits for it and finishes the query."""
        legs = ("sparse", "dense") if query.retriever == "hybrid" else (query.retriever,)
        want = max(self.config.hybrid_depth, query.k) if query.retriever == "hybrid" else query.k
        first = {leg: self._submit(leg, query, self._first_depth(leg, query, want), deadline) for leg in legs}

        def finish() -> Hits:
            hits = {leg: self._filtered(leg, query, want, deadline, first[leg]) for leg in legs}
            if query.retriever != "hybrid":
                return hits[query.retriever]
            from eval.runs import ranked
            from indexing.fusion import fuse

            runs = [{"q": dict(hits[leg])} for leg in legs]
            fused = fuse(runs, query.fusion or self.config.fusion, query.weights, depth=query.k)
            return ranked(fused.get("q", {}))

        return finish

    def _leg_size(self, leg: str) -> int:
        return self.index.num_docs if leg == "sparse" else self.dense_index.meta.num_docs

    def _first_depth(self, leg: str, query: Query, k: int) -> int:
        if query.allow is None and not query.deny:
            return k
        return max(min(self._leg_size(leg), max(4 * k, k + len(query.deny))), 1)

    def _submit(self, leg: str, query: Query, depth: int, deadline: float | None):  # noqa: ANN202 - a Future
        return (self.batchers[leg].submit((query, depth), deadline), depth)

    def _hits(self, leg: str, docs: np.ndarray, scores: np.ndarray) -> Hits:
        if leg == "sparse":
            return [(self.index.doc_id(int(d)), float(s)) for d, s in zip(docs, scores, strict=True)]
        ids = self.dense_index.ids
        return [(ids[int(r)], float(s)) for r, s in zip(docs, scores, strict=True)]

    def _filtered(self, leg: str, query: Query, k: int, deadline: float | None, first: tuple) -> Hits:
        """The leg's top ``k`` among allowed documents, searching deeper while filters leave too few."""
        future, depth = first
        limit = self._leg_size(leg)
        while True:
            found = self._hits(leg, *wait(future, deadline))
            kept = [hit for hit in found if _allowed(hit[0], query)]
            if len(kept) >= k or len(found) < depth or depth >= limit:
                return kept[:k]
            depth = min(limit, depth * 4)
            future = self.batchers[leg].submit((query, depth), deadline)

    def encode(self, texts: list[str], deadline: float | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Sparse query vectors (term ids, weights) of ``texts``, as the server's own searches encode them."""
        if not texts:
            raise InvalidArgument("no texts to encode")
        if len(texts) > self.limits.max_batch_queries:
            raise InvalidArgument(f"{len(texts)} texts in one call; the limit is {self.limits.max_batch_queries}")
        limit = self.limits.max_query_chars
        for number, text in enumerate(texts):
            if len(text) > limit:
                raise InvalidArgument(f"text {number}: {len(text)} characters; the limit is {limit}")
        with self._activity(len(texts)), _mapped_errors():
            futures = [self.batchers["encode"].submit(text, deadline) for text in texts]
            return [wait(future, deadline) for future in futures]

    def recommend(self, user: str, k: int, exclude_seen: bool = True) -> Hits:
        """Top ``k`` items for a user of the recommender's training data (NOT_FOUND for anyone else)."""
        from lsr.recommend.serve import UnknownUser

        if self.recommender is None:
            raise Unavailable("this server has no recommender (lsr serve --recommender)")
        if not user:
            raise InvalidArgument("empty user id")
        if not 1 <= k <= self.limits.max_k:
            raise InvalidArgument(f"k must be between 1 and {self.limits.max_k}, not {k}")
        try:
            with self._recommend_lock:  # hnswlib's ef setting is index-wide state
                return self.recommender.recommend(user, k, exclude_seen=exclude_seen)
        except UnknownUser as exc:
            raise NotFound(str(exc)) from None

    def describe(self) -> dict[str, Any]:
        """What the server holds, and its batchers' counters (the Stats call)."""
        return {
            "model": self.model,
            "num_docs": self.index.num_docs,
            "vocab_size": self.index.meta.vocab_size,
            "retrievers": list(self.retrievers),
            "dense_model": getattr(self, "dense_model", "") if self.dense_index is not None else "",
            "dense_docs": self.dense_index.meta.num_docs if self.dense_index is not None else 0,
            "recommender": self.recommender is not None,
            "uptime_seconds": time.monotonic() - self.started,
            "rss_bytes": rss_bytes(),
        }

    def close(self) -> None:
        """Stop the batchers once queued work is done (call after the server has finished its requests)."""
        for batcher in self.batchers.values():
            batcher.close()


def _allowed(doc_id: str, query: Query) -> bool:
    return (query.allow is None or doc_id in query.allow) and doc_id not in query.deny


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    """Batcher outcomes as serve errors: an expired deadline, a batcher closed by shutdown."""
    try:
        yield
    except DeadlineExpired as exc:
        raise DeadlineExceeded(str(exc)) from None
    except BatcherClosed:
        raise Unavailable("the server is shutting down") from None
