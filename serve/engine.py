"""The search engine behind the servicers: indexes and encoders opened once, shared read-only, micro-batched.

It holds a sparse index (whose metadata names the model its queries must be encoded with; for an
inference-free model that is a tokenizer and an IDF lookup, no network), optionally a dense index
and its encoder, and optionally a trained recommender folder. Hybrid search fuses the sparse and
dense legs with :mod:`lsr.indexing.fusion` (RRF by default), as ``lsr eval run`` does.

Every kernel and encoder is driven by :class:`~lsr.serve.batching.MicroBatcher` workers, so concurrent
requests share kernel calls and no kernel is entered from two threads at once; sparse search has two,
each with its own searcher: one for large requests and an express lane for small ones.

The work a request may cause is bounded, not only its size: every query and text gets a cost estimate
(:func:`text_cost`, :meth:`Engine.query_cost`), a request whose total exceeds ``Limits.max_request_cost``
is refused before any work (RESOURCE_EXHAUSTED), and the batchers cut the work of the requests they
accept into slices of about ``slice_ms`` served in fair order, so a large request never holds a worker
for longer than a slice while others wait, and never delays a small search at all (the express lane).

Document-id filters are applied after search, with the search depth widened (4x a round) until
``k`` allowed hits are found or the leg has nothing more to return, so filtered results are the
exact top ``k`` among the allowed documents.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from lsr.serve.batching import BatcherClosed, DeadlineExpired, MicroBatcher, wait
from lsr.serve.errors import DeadlineExceeded, InvalidArgument, NotFound, ResourceExhausted, Unavailable

RETRIEVERS = ("sparse", "dense", "hybrid")
DEFAULT_K = 10
CHARS_PER_TOKEN = 4  # a rough average for word pieces of English text: costs are estimates, not token counts

Hits = list[tuple[str, float]]


@dataclass
class Limits:
    """What one request may ask for. Beyond the shape limits it is INVALID_ARGUMENT (never answerable as
    sent); beyond ``max_request_cost``, the estimated work of the whole request (see :func:`text_cost` and
    :meth:`Engine.query_cost`), it is RESOURCE_EXHAUSTED: a server's capacity, which a smaller request or a
    server configured for more (``lsr serve --max-request-cost``) does not exceed."""

    max_k: int = 1000
    max_query_chars: int = 4096
    max_query_terms: int = 4096
    max_batch_queries: int = 256
    max_filter_ids: int = 100_000
    max_request_cost: int = 65_536


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
    slice_ms: float = 10.0
    express_cost: int = 512
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


@dataclass(eq=False)
class _Call:
    """One request in the batchers' fair queues (its items' group), with its estimated cost, which decides
    whether its searches take the express lane."""

    cost: int


def text_cost(text: str) -> int:
    """The estimated work of encoding ``text``: its tokens, estimated from its length (no tokenizer call)."""
    return len(text) // CHARS_PER_TOKEN + 1


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
        from lsr.indexing.fusion import METHODS
        from lsr.indexing.sparse.format import SparseIndex
        from lsr.indexing.sparse.retriever import sparse_encoder

        from lsr.errors import LsrError

        if config.fusion not in METHODS:
            raise LsrError(f"unknown fusion {config.fusion!r}; choose one of {', '.join(METHODS)}")
        self.config = config
        self.limits = config.limits
        self.started = time.monotonic()
        self.index = SparseIndex.open(config.index, verify=config.verify)
        self.model = config.model or self.index.meta.model
        encoder = sparse_encoder(self.model, self.index.meta.vocab_size, config.encode_device)
        self.encoder = encoder
        self._encode_lock = threading.Lock()  # the sparse encoder serves three workers (see _encode_sparse)
        self._lock_shared = not _thread_safe(encoder)
        # Small searches get a second CPU searcher of their own (one thread, no tiled copy: its memory is a score
        # buffer the size of the corpus), so they never wait for a large request's slice on the first one, which
        # leaves them a core.
        self.express = None
        if config.device == "cpu" and config.express_cost > 0:
            from lsr.indexing.sparse.search import Searcher

            self.express = Searcher(self.index, threads=1, tiled=False)
        self.searcher = self._searcher(config.device)
        self.arriving = 0  # queries inside search_many/encode not yet submitted: a batch waits only for those
        self._arriving_lock = threading.Lock()
        express = None if self.express is None else functools.partial(self._sparse_batch, searcher=self.express)
        self.batchers: dict[str, MicroBatcher] = {
            "sparse": self._batcher("sparse", self._sparse_batch, express),
            "encode": self._batcher("encode", self._encode_batch),
        }
        self.dense_index = self.dense_encoder = None
        self.id_bytes = {"sparse": _longest_id(self.index)}
        self._heaviest = float(np.max(self.index.codebook, initial=0.0))  # bounds a vector's scores
        if config.dense_index is not None:
            self._open_dense(config)
            self.batchers["dense"] = self._batcher("dense", self._dense_batch)
            self.id_bytes["dense"] = max((len(doc.encode()) for doc in self.dense_index.ids), default=0)
        self.recommender = None
        self._recommend_lock = threading.Lock()
        if config.recommender is not None:
            from lsr.recommend.serve import Server

            self.recommender = Server(config.recommender)
            if self.recommender.model.dot_product:
                self.recommender.index()  # built (or loaded) now, not by the first request
        self.warm_up()

    def _batcher(self, name: str, fn: Callable, express: Callable | None = None) -> MicroBatcher:
        """A batcher whose window waits only while a request is on its way to submitting (not for requests
        whose items already wait in another batcher), slicing its work by ``slice_ms``."""
        config = self.config

        def callers() -> int:
            return self.arriving + batcher.pending

        batcher = MicroBatcher(
            name, fn, config.max_batch, config.window_ms, callers, config.slice_ms, express, config.express_cost
        )
        return batcher

    def warm_up(self) -> None:
        """One query through every kernel and encoder, so JIT compilation and lazy loading happen at start-up,
        not inside the first caller's deadline; then once more, timed, so each batcher starts with a measured
        throughput to size its slices by."""
        probe = Query(text="warm up", k=1)
        for name, batcher in self.batchers.items():
            item = probe.text if name == "encode" else (probe, 1)
            cost = text_cost(probe.text) if name == "encode" else self.query_cost(probe, name, 1)
            batcher.fn([item])
            batcher.calibrate([item], [cost])

    def _searcher(self, device: str):  # noqa: ANN202 - Searcher or GpuSearcher
        """The main kernel, chosen where ``lsr search`` and the retrievers choose theirs; on the CPU it leaves the
        express lane a core."""
        import numba
        from lsr.indexing.sparse.retriever import SparseSearcher

        threads = max(numba.get_num_threads() - (self.express is not None), 1)
        return SparseSearcher(self.index, device, threads=threads).kernel

    def _open_dense(self, config: EngineConfig) -> None:
        from lsr.indexing.dense import open_dense_index
        from lsr.indexing.dense.retriever import dense_encoder

        from lsr.errors import LsrError

        self.dense_index = open_dense_index(config.dense_index, verify=config.verify)
        name = config.dense_model or self.dense_index.meta.model
        encoder = dense_encoder(name, config.encode_device)
        if encoder.dimension != self.dense_index.meta.dimension:
            held = self.dense_index.meta.dimension
            raise LsrError(f"{name} makes {encoder.dimension}-d vectors, the dense index holds {held}-d")
        self.dense_model = name
        self.dense_encoder = encoder

    @property
    def retrievers(self) -> tuple[str, ...]:
        return RETRIEVERS if self.dense_index is not None else ("sparse",)

    # -- batch functions, each run by its batcher's single worker thread --------------------------------

    def _encode_sparse(self, texts: list[str], lock: bool) -> sp.csr_matrix:
        """Encode with the sparse encoder, under its lock if ``lock``. The express lane always takes it (holding
        the lock pauses small searches, as tests do); the Encode worker and the main search worker only when the
        encoder is not thread-safe, so with one that is, a small search never waits for their encoding."""
        with self._encode_lock if lock else contextlib.nullcontext():
            return sp.csr_matrix(self.encoder.encode_query(texts, batch_size=max(len(texts), 1)), dtype=np.float32)

    def _sparse_batch(
        self, items: list[tuple[Query, int]], searcher: Any = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Encode the batch's texts in one call, stack them with the given vectors, search once (with the express
        lane's ``searcher``, or the main one)."""
        vocab = self.index.meta.vocab_size
        texts = [q.text for q, _ in items if q.vector is None]
        encoded = (
            iter(self._encode_sparse(texts, lock=searcher is not None or self._lock_shared)) if texts else iter(())
        )
        rows = []
        for query, _ in items:
            if query.vector is None:
                rows.append(next(encoded))
            else:
                indices, values = query.vector
                rows.append(sp.csr_matrix((values, indices, [0, len(indices)]), shape=(1, vocab)))
        depth = max(d for _, d in items)
        docs, scores, sizes = (searcher or self.searcher).search(sp.vstack(rows, format="csr"), k=depth)
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
        matrix = self._encode_sparse(texts, lock=self._lock_shared)
        bounds = matrix.indptr
        return [(matrix.indices[a:b], matrix.data[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    # -- validation ---------------------------------------------------------------------------------------

    def check(self, query: Query) -> None:
        """Reject what cannot be answered, with a message saying why (INVALID_ARGUMENT)."""
        from lsr.indexing.fusion import METHODS

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
        if values.sum(dtype=np.float64) * self._heaviest >= np.finfo(np.float32).max:
            # the kernel would fail the whole batch it shares with other requests; refuse the one query instead
            raise InvalidArgument("malformed vector: weights so large that scores overflow 32-bit floats")

    # -- requests -----------------------------------------------------------------------------------------

    def search(self, query: Query, deadline: float | None = None) -> Hits:
        """The top ``query.k`` hits (document id, score), best first."""
        return self.search_many([query], deadline)[0]

    def search_many(self, queries: list[Query], deadline: float | None = None) -> list[Hits]:
        """Several searches submitted together, so they share kernel calls."""
        self.admit(queries)
        return self.run(queries, deadline)

    def admit(self, queries: list[Query]) -> int:
        """Check a request before any work: INVALID_ARGUMENT for what cannot be answered, RESOURCE_EXHAUSTED
        when its estimated cost exceeds the budget. Returns that cost."""
        if len(queries) > self.limits.max_batch_queries:
            raise InvalidArgument(f"{len(queries)} queries in one batch; the limit is {self.limits.max_batch_queries}")
        for number, query in enumerate(queries):
            try:
                self.check(query)
            except InvalidArgument as exc:
                raise InvalidArgument(f"request {number}: {exc}" if len(queries) > 1 else str(exc)) from None
        cost = sum(self.query_cost(query) for query in queries)
        self._within_budget(cost, f"{len(queries)} {'queries' if len(queries) > 1 else 'query'}")
        return cost

    def query_cost(self, query: Query, leg: str | None = None, depth: int | None = None) -> int:
        """The estimated work of a query (of one ``leg`` at ``depth``, or of all its legs at their first depth):
        the terms to encode or look up, plus the hits to rank and return."""
        if leg is None:
            return sum(self.query_cost(query, leg, depth) for leg, depth in self._first_depths(query).items())
        terms = len(query.vector[0]) if query.vector is not None else text_cost(query.text or "")
        return terms + (depth or query.k)

    def reply_shape(self, query: Query) -> tuple[int, int]:
        """At most how many hits an admitted ``query`` returns, and at most how many bytes each hit's id has."""
        legs = self._first_depths(query)
        return min(query.k, sum(map(self._leg_size, legs))), max(self.id_bytes[leg] for leg in legs)

    def _within_budget(self, cost: int, what: str) -> None:
        budget = self.limits.max_request_cost
        if cost > budget:
            raise ResourceExhausted(
                f"{what} would cost about {cost:,} units of work (query terms or text tokens, plus hits); this server "
                f"allows {budget:,} per request (--max-request-cost): split the request or ask for fewer hits"
            )

    def run(self, queries: list[Query], deadline: float | None = None) -> list[Hits]:
        """Search queries that :meth:`admit` accepted, as one group: its slices take turns with other requests'."""
        call = _Call(sum(self.query_cost(query) for query in queries))
        with _mapped_errors():
            with self._arrival(len(queries)):
                plans = [self._start(query, deadline, call) for query in queries]
            return [finish() for finish in plans]

    @contextlib.contextmanager
    def _arrival(self, count: int) -> Iterator[None]:
        with self._arriving_lock:
            self.arriving += count
        try:
            yield
        finally:
            with self._arriving_lock:
                self.arriving -= count

    def _first_depths(self, query: Query) -> dict[str, int]:
        """The legs a query searches, and how deep each searches first (deeper when filters may drop hits)."""
        legs = ("sparse", "dense") if query.retriever == "hybrid" else (query.retriever,)
        want = self._wanted(query)
        return {leg: self._first_depth(leg, query, want) for leg in legs}

    def _wanted(self, query: Query) -> int:
        return max(self.config.hybrid_depth, query.k) if query.retriever == "hybrid" else query.k

    def _start(self, query: Query, deadline: float | None, call: _Call) -> Callable[[], Hits]:
        """Submit a query's first kernel work now; the returned function waits for it and finishes the query."""
        want, depths = self._wanted(query), self._first_depths(query)
        # the dense leg is queued first, as a small sparse leg runs in this thread when the express lane is idle
        queued = {leg: self._submit(leg, query, depths[leg], deadline, call) for leg in reversed(depths)}
        first = {leg: queued[leg] for leg in depths}

        def finish() -> Hits:
            hits = {leg: self._filtered(leg, query, want, deadline, first[leg], call) for leg in first}
            if query.retriever != "hybrid":
                return hits[query.retriever]
            from lsr.indexing.fusion import fuse

            from lsr.runs import ranked

            runs = [{"q": dict(hits[leg])} for leg in first]
            fused = fuse(runs, query.fusion or self.config.fusion, query.weights, depth=query.k)
            return ranked(fused.get("q", {}))

        return finish

    def _leg_size(self, leg: str) -> int:
        return self.index.num_docs if leg == "sparse" else self.dense_index.meta.num_docs

    def _first_depth(self, leg: str, query: Query, k: int) -> int:
        if query.allow is None and not query.deny:
            return k
        return max(min(self._leg_size(leg), max(4 * k, k + len(query.deny))), 1)

    def _submit(self, leg: str, query: Query, depth: int, deadline: float | None, call: _Call):  # noqa: ANN202
        """A (future, depth) pair: the leg's search of ``query`` at ``depth``, queued in the request's group."""
        cost = self.query_cost(query, leg, depth)
        return (self.batchers[leg].submit((query, depth), deadline, call, cost, call.cost), depth)

    def _hits(self, leg: str, docs: np.ndarray, scores: np.ndarray) -> Hits:
        if leg == "sparse":
            return list(zip(_doc_ids(self.index, docs), scores.tolist(), strict=True))
        ids = self.dense_index.ids
        return [(ids[r], s) for r, s in zip(docs.tolist(), scores.tolist(), strict=True)]

    def _filtered(self, leg: str, query: Query, k: int, deadline: float | None, first: tuple, call: _Call) -> Hits:
        """The leg's top ``k`` among allowed documents, searching deeper while filters leave too few."""
        future, depth = first
        limit = self._leg_size(leg)
        while True:
            found = self._hits(leg, *wait(future, deadline))
            kept = [hit for hit in found if _allowed(hit[0], query)]
            if len(kept) >= k or len(found) < depth or depth >= limit:
                return kept[:k]
            future, depth = self._submit(leg, query, min(limit, depth * 4), deadline, call)

    def encode(self, texts: list[str], deadline: float | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Sparse query vectors (term ids, weights) of ``texts``, as the server's own searches encode them."""
        self.admit_texts(texts)
        with contextlib.closing(self.encode_each(texts, deadline)) as vectors:
            return list(vectors)

    def admit_texts(self, texts: list[str]) -> int:
        """Check an Encode request before any work, as :meth:`admit` does a search; returns its cost."""
        if not texts:
            raise InvalidArgument("no texts to encode")
        if len(texts) > self.limits.max_batch_queries:
            raise InvalidArgument(f"{len(texts)} texts in one call; the limit is {self.limits.max_batch_queries}")
        limit = self.limits.max_query_chars
        for number, text in enumerate(texts):
            if len(text) > limit:
                raise InvalidArgument(f"text {number}: {len(text)} characters; the limit is {limit}")
        cost = sum(text_cost(text) for text in texts)
        self._within_budget(cost, f"encoding {len(texts)} texts")
        return cost

    def encode_each(self, texts: list[str], deadline: float | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The vectors of admitted ``texts`` in order, each as soon as its slice is done; closing the iterator
        early (the caller found the reply too large) drops the texts not yet encoded."""
        call = _Call(sum(map(text_cost, texts)))
        with _mapped_errors():
            with self._arrival(len(texts)):
                futures = [self.batchers["encode"].submit(t, deadline, call, text_cost(t)) for t in texts]
            try:
                for future in futures:
                    yield wait(future, deadline)
            finally:
                for future in futures:
                    future.cancel()

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


def _thread_safe(encoder: Any) -> bool:
    """Whether two threads may encode queries with ``encoder`` at once. An inference-free encoder's queries are its
    Rust tokenizer's ``encode_batch``, which changes no state, and an IDF lookup; a model's tokenizer call sets the
    shared tokenizer's truncation first (two at once fail with "Already borrowed")."""
    from lsr.models import InferenceFreeEncoder

    return isinstance(encoder, InferenceFreeEncoder)


# SparseIndex looks ids up one at a time; a reply of many hits reads them here from the same arrays (its id blob and
# offsets) in one gather, about eight times faster, which matters because it runs holding the interpreter lock.


def _longest_id(index: Any) -> int:
    """Bytes of the longest document id of a sparse index (read once, at start-up)."""
    offsets = index._id_offsets
    return int(np.diff(offsets).max()) if len(offsets) > 1 else 0


def _doc_ids(index: Any, numbers: np.ndarray) -> list[str]:
    """The document ids of document ``numbers`` of a sparse index."""
    offsets, blob = index._id_offsets, index._ids
    starts = np.asarray(offsets[numbers], dtype=np.int64)
    lengths = np.asarray(offsets[numbers + 1], dtype=np.int64) - starts
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    data = np.asarray(blob[np.repeat(starts - bounds[:-1], lengths) + np.arange(bounds[-1])]).tobytes()
    ends = bounds.tolist()
    return [data[a:b].decode() for a, b in zip(ends[:-1], ends[1:], strict=True)]


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
