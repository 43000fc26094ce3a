"""The search engine behind the servicers: retrievers opened once, shared read-only, micro-batched.

Its legs are retrievers opened by name from the registry (:func:`~lsr.indexing.retrieval.open_retriever`) over
index folders: ``sparse`` (``--index``: the index's metadata names the model its queries are encoded with; for an
inference-free model that is a tokenizer and an IDF lookup, no network), ``dense`` (``--dense-index``), and any
other registered name (``--retriever NAME=FOLDER``, a user's own retriever included, see ``lsr serve --import``).
With two legs or more, ``hybrid`` fuses them with :class:`~lsr.indexing.retrieval.Hybrid`, the fusion
``lsr eval run`` uses, where they hold the same documents (:mod:`lsr.indexing.fingerprint`). The sparse leg also
answers Encode and searches by pre-encoded vector; a trained recommender folder answers Recommend.

Every leg and the Encode call are driven by :class:`~lsr.serve.batching.MicroBatcher` workers, so concurrent
requests share kernel calls and no kernel is entered from two threads at once; a leg whose retriever offers an
express copy (:meth:`~lsr.indexing.retrieval.Retriever.express`: the sparse one on the CPU) has two workers, each
with its own searcher: one for large requests and an express lane for small ones.

The work a request may cause is bounded, not only its size: every query and text gets a cost estimate
(:func:`text_cost`, :meth:`Engine.query_cost`), a request whose total exceeds ``Limits.max_request_cost``
is refused before any work (RESOURCE_EXHAUSTED), and the batchers cut the work of the requests they
accept into slices of about ``slice_ms`` served in fair order, so a large request never holds a worker
for longer than a slice while others wait, and never delays a small search at all (the express lane).

Document-id filters go into the search as a :class:`~lsr.indexing.hits.DocFilter`: each retriever turns it into
a mask its kernel tests (:mod:`lsr.indexing.filters`), so a filtered search is one search of the usual depth and
returns the exact top ``k`` among the admitted documents.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from lsr.indexing.fingerprint import check_same_documents
from lsr.indexing.hits import DocFilter, Hits
from lsr.indexing.retrieval import Hybrid, Retriever
from lsr.indexing.sparse.settings import EXACT, Pruning
from lsr.serve.batching import BatcherClosed, DeadlineExpired, MicroBatcher, wait
from lsr.serve.errors import DeadlineExceeded, InvalidArgument, NotFound, ResourceExhausted, Unavailable

log = logging.getLogger("lsr.serve")
SPARSE, DENSE, HYBRID, ENCODE = "sparse", "dense", Hybrid.name, "encode"
DEFAULT_K = 10
CHARS_PER_TOKEN = 4  # a rough average for word pieces of English text: costs are estimates, not token counts


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
    """What the server loads and how it batches. ``index`` is the sparse leg, ``dense_index`` the dense one,
    ``retrievers`` (name, folder) pairs of any other registered retrievers; ``model`` and ``dense_model`` override
    the models the indexes name; ``hybrid_legs`` are the legs ``hybrid`` fuses, in order (default: all of them)."""

    index: Path | None = None
    model: str | None = None
    dense_index: Path | None = None
    dense_model: str | None = None
    retrievers: tuple[tuple[str, Path], ...] = ()
    hybrid_legs: tuple[str, ...] | None = None
    recommender: Path | None = None
    device: str = "cpu"
    encode_device: str = "cpu"
    fusion: str = "rrf"
    hybrid_depth: int = 100
    max_batch: int = 64
    window_ms: float = 2.0
    slice_ms: float = 10.0
    express_cost: int = 512
    bulk_nice: int = 10
    limits: Limits = field(default_factory=Limits)
    pruning: Pruning = EXACT
    """How the sparse leg searches (exact, or clustered with ``heap_factor``); its express lane searches alike."""


@dataclass(frozen=True)
class Query:
    """One search, validated by :meth:`Engine.check`: text, or a sparse vector as (indices, values)."""

    text: str | None = None
    vector: tuple[np.ndarray, np.ndarray] | None = None
    k: int = DEFAULT_K
    retriever: str = SPARSE
    filter: DocFilter | None = None
    fusion: str | None = None
    weights: tuple[float, ...] | None = None


@dataclass(eq=False)
class Leg:
    """One retriever the server searches: its batcher, the lock of its encoder, and what bounds its replies."""

    retriever: Retriever
    lock: threading.Lock
    thread_safe: bool  # whether two workers may encode at once (see Engine._encode)
    num_docs: int
    id_bytes: int
    batcher: MicroBatcher | None = None


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

        from lsr.errors import LsrError

        if config.fusion not in METHODS:
            raise LsrError(f"unknown fusion {config.fusion!r}; choose one of {', '.join(METHODS)}")
        self.config = config
        self.limits = config.limits
        self.started = time.monotonic()
        self.arriving = 0  # queries inside search_many/encode not yet submitted: a batch waits only for those
        self._arriving_lock = threading.Lock()
        self.legs = self._open_legs(config)
        self.hybrid_legs = self._hybrid_legs(config)
        self.batchers: dict[str, MicroBatcher] = {}
        for name, leg in self.legs.items():
            express = leg.retriever.express() if config.device == "cpu" and config.express_cost > 0 else None
            lane = None if express is None else functools.partial(self._leg_batch, leg, retriever=express)
            leg.batcher = self.batchers[name] = self._batcher(name, functools.partial(self._leg_batch, leg), lane)
        # the sparse leg also encodes (Encode) and searches pre-encoded vectors
        sparse = self.legs.get(SPARSE)
        self.sparse = sparse if sparse is not None and _lsr_sparse(sparse.retriever) else None
        self.index = self.encoder = self.model = None
        if self.sparse is not None:
            self.index, self.encoder = self.sparse.retriever.index, self.sparse.retriever.encoder
            self.model = config.model or self.index.meta.model
            self._heaviest = float(np.max(self.index.codebook, initial=0.0))  # bounds a vector's scores
            self.batchers[ENCODE] = self._batcher(ENCODE, self._encode_batch)
        self.recommender = None
        self._recommend_lock = threading.Lock()
        if config.recommender is not None:
            from lsr.recommend.serve import Server

            self.recommender = Server(config.recommender)
            if self.recommender.model.dot_product:
                self.recommender.index()  # built (or loaded) now, not by the first request
        self.warm_up()

    @staticmethod
    def _open_legs(config: EngineConfig) -> dict[str, Leg]:
        """Every leg's retriever, opened from the registry by name over its folder; names are checked before any
        model or index loads. With an express lane, a leg's main searcher leaves it a core."""
        import numba
        from lsr.indexing.retrieval import RetrieverOptions, check_names, open_retriever

        from lsr.errors import LsrError

        named = [(SPARSE, config.index), (DENSE, config.dense_index), *config.retrievers]
        folders = [(name, Path(folder)) for name, folder in named if folder is not None]
        names = [name for name, _ in folders]
        if not folders:
            raise LsrError("nothing to serve: give --index, --dense-index or --retriever NAME=FOLDER")
        if len(set(names)) != len(names) or ENCODE in names:
            raise LsrError(f"each retriever is served once, and none may be called {ENCODE!r}: {', '.join(names)}")
        check_names(names)
        express = config.device == "cpu" and config.express_cost > 0
        options = RetrieverOptions(
            model=config.model,
            dense_model=config.dense_model or "",  # the dense index's own model unless overridden
            device=config.encode_device,
            gpu=config.device == "cuda",
            threads=max(numba.get_num_threads() - 1, 1) if express else None,
            pruning=config.pruning,
        )
        legs = {}
        for name, folder in folders:
            retriever = open_retriever(name, folder, options)
            safe = _thread_safe(retriever)
            legs[name] = Leg(retriever, threading.Lock(), safe, retriever.num_docs, retriever.longest_id)
        return legs

    def _hybrid_legs(self, config: EngineConfig) -> tuple[str, ...]:
        """The legs ``hybrid`` fuses (none: no hybrid). Legs holding different documents are not fused: legs named
        for the hybrid are then an error; by default (every leg) the server runs without a hybrid, and says so."""
        from lsr.errors import LsrError

        legs = tuple(config.hybrid_legs) if config.hybrid_legs is not None else tuple(self.legs)
        unknown = [name for name in legs if name not in self.legs]
        if unknown or (config.hybrid_legs is not None and (len(set(legs)) != len(legs) or len(legs) < 2)):
            raise LsrError(f"hybrid legs must be two or more of the served retrievers ({', '.join(self.legs)})")
        if len(legs) < 2:
            return ()
        try:
            check_same_documents([(name, self.legs[name].retriever.id_fingerprint) for name in legs])
        except LsrError as exc:
            if config.hybrid_legs is not None:
                raise
            log.warning("%s; serving them without %r", exc, HYBRID)
            return ()
        return legs

    def _batcher(self, name: str, fn: Callable, express: Callable | None = None) -> MicroBatcher:
        """A batcher whose window waits only while a request is on its way to submitting (not for requests
        whose items already wait in another batcher), slicing its work by ``slice_ms``."""
        config = self.config

        def callers() -> int:
            return self.arriving + batcher.pending

        batcher = MicroBatcher(
            name,
            fn,
            config.max_batch,
            config.window_ms,
            callers,
            config.slice_ms,
            express,
            config.express_cost,
            config.bulk_nice,
        )
        return batcher

    def warm_up(self) -> None:
        """One query through every kernel and encoder, so JIT compilation and lazy loading happen at start-up,
        not inside the first caller's deadline; then once more, timed, so each batcher starts with a measured
        throughput to size its slices by."""
        probe = Query(text="warm up", k=1)
        for name, batcher in self.batchers.items():
            item = probe.text if name == ENCODE else (probe, 1)
            cost = text_cost(probe.text) if name == ENCODE else self.query_cost(probe, name, 1)
            batcher.fn([item])
            batcher.calibrate([item], [cost])

    @property
    def retrievers(self) -> tuple[str, ...]:
        """What a query may name: every leg, and ``hybrid`` when there are legs to fuse."""
        return (*self.legs, *((HYBRID,) if self.hybrid_legs else ()))

    @property
    def default_retriever(self) -> str:
        """What a query naming no retriever searches: the sparse leg, or the first one."""
        return SPARSE if SPARSE in self.legs else next(iter(self.legs))

    # -- batch functions, each run by its batcher's worker threads ----------------------------------------

    def _leg_batch(self, leg: Leg, items: list[tuple[Query, int]], retriever: Retriever | None = None) -> list[Hits]:
        """Search a batch of (query, depth) items with the leg's retriever (or its express copy, ``retriever``).

        Items are grouped by filter, and each group is encoded and searched in one call with its own filter: a
        retriever's search takes one filter for all its queries, and the kernels one mask per call. Giving them a
        mask per query instead would mean a mask per row of every batch (a byte per document each) and a change to
        every kernel, while traffic without filters, or with one filter, stays a single call this way; queries
        with different filters cost one kernel call per distinct filter, each at the usual depth.
        """
        express = retriever is not None
        groups: dict[DocFilter | None, list[int]] = {}
        for number, (query, _) in enumerate(items):
            groups.setdefault(query.filter, []).append(number)
        out: list[Hits] = [Hits([], np.zeros(0, np.float32))] * len(items)
        for allow, numbers in groups.items():
            encoded = self._encode(leg, [items[n][0] for n in numbers], lock=express or not leg.thread_safe)
            depths = [items[n][1] for n in numbers]
            found = (retriever or leg.retriever).search(encoded, max(depths), allow)
            for number, depth, hits in zip(numbers, depths, found, strict=True):
                out[number] = Hits(hits.ids[:depth], hits.scores[:depth])
        return out

    def _encode(self, leg: Leg, queries: list[Query], lock: bool) -> Any:
        """The leg's encoding of ``queries``, under its encoder's lock if ``lock``: the express lane always takes it
        (holding the lock pauses small searches, as tests do), the other workers only when the encoder is not
        thread-safe, so with one that is, a small search never waits for their encoding. Pre-encoded vectors (only
        the sparse leg admits them) are stacked with the encoded texts."""
        texts = [q.text for q in queries if q.vector is None]
        with leg.lock if lock else contextlib.nullcontext():
            encoded = leg.retriever.encode(texts) if texts else None
        if len(texts) == len(queries):
            return encoded
        vocab = self.index.meta.vocab_size
        rows = iter(() if encoded is None else sp.csr_matrix(encoded, dtype=np.float32))
        return sp.vstack(
            [
                next(rows)
                if q.vector is None
                else sp.csr_matrix((q.vector[1], q.vector[0], [0, len(q.vector[0])]), (1, vocab))
                for q in queries
            ],
            format="csr",
        )

    def _encode_batch(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        with self.sparse.lock if not self.sparse.thread_safe else contextlib.nullcontext():
            matrix = sp.csr_matrix(self.sparse.retriever.encode(texts), dtype=np.float32)
        bounds = matrix.indptr
        return [(matrix.indices[a:b], matrix.data[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    # -- validation ---------------------------------------------------------------------------------------

    def check(self, query: Query) -> None:
        """Reject what cannot be answered, with a message saying why (INVALID_ARGUMENT)."""
        from lsr.indexing.fusion import METHODS

        limits = self.limits
        if query.retriever not in self.retrievers:
            raise InvalidArgument(
                f"unknown retriever {query.retriever!r}; this server has {', '.join(self.retrievers)} "
                "(lsr serve adds others: --dense-index, --retriever NAME=FOLDER)"
            )
        if not 1 <= query.k <= limits.max_k:
            raise InvalidArgument(f"k must be between 1 and {limits.max_k}, not {query.k}")
        if query.vector is None:
            if query.text is None or not query.text.strip():
                raise InvalidArgument("empty query: give query text or a sparse vector")
            if len(query.text) > limits.max_query_chars:
                raise InvalidArgument(f"query of {len(query.text)} characters; the limit is {limits.max_query_chars}")
        else:
            if query.retriever != SPARSE or self.sparse is None:
                raise InvalidArgument(f"a pre-encoded vector searches the sparse index only, not {query.retriever}")
            self.check_vector(*query.vector)
        if query.filter is not None:
            filters = len(query.filter.allow or ()) + len(query.filter.deny)
            if filters > limits.max_filter_ids:
                raise InvalidArgument(f"{filters} document ids in filters; the limit is {limits.max_filter_ids}")
        if query.fusion is not None and query.fusion not in METHODS:
            raise InvalidArgument(f"unknown fusion {query.fusion!r}; choose one of {', '.join(METHODS)}")
        if query.weights is not None:
            legs = self.hybrid_legs
            if query.retriever != HYBRID or len(query.weights) != len(legs):
                raise InvalidArgument(
                    f"weights apply to hybrid search: {len(legs)} of them, one per retriever ({', '.join(legs)})"
                )
            if not all(math.isfinite(w) and w >= 0 for w in query.weights) or not any(query.weights):
                raise InvalidArgument("weights must be finite, non-negative and not all zero")

    def check_vector(self, indices: np.ndarray, values: np.ndarray) -> None:
        if self.sparse is None:
            raise InvalidArgument("this server has no sparse index to search a vector in (lsr serve --index)")
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
        """The top ``query.k`` hits, best first."""
        return self.search_many([query], deadline)[0]

    def search_many(self, queries: list[Query], deadline: float | None = None) -> list[Hits]:
        """Several searches submitted together, so they share kernel calls."""
        self.admit(queries)
        return self.run(queries, deadline)

    def admit(self, queries: list[Query]) -> int:
        """Check a request before any work: INVALID_ARGUMENT for what cannot be answered, RESOURCE_EXHAUSTED
        when its estimated cost exceeds the budget. Returns that cost."""
        if len(queries) > self.limits.max_batch_queries:
            raise InvalidArgument(
                f"{len(queries)} queries in one batch; the limit is {self.limits.max_batch_queries}"
                " (lsr serve --max-batch-queries)"
            )
        for number, query in enumerate(queries):
            try:
                self.check(query)
            except InvalidArgument as exc:
                raise InvalidArgument(f"request {number}: {exc}" if len(queries) > 1 else str(exc)) from None
        cost = sum(self.query_cost(query) for query in queries)
        self._within_budget(cost, f"{len(queries)} {'queries' if len(queries) > 1 else 'query'}")
        return cost

    def query_cost(self, query: Query, leg: str | None = None, depth: int | None = None) -> int:
        """The estimated work of a query (of one ``leg`` at ``depth``, or of all its legs at their depth):
        the terms to encode or look up, plus the hits to rank and return."""
        if leg is None:
            return sum(self.query_cost(query, leg, self._depth(query)) for leg in self._legs_of(query))
        terms = len(query.vector[0]) if query.vector is not None else text_cost(query.text or "")
        return terms + (depth or query.k)

    def reply_shape(self, query: Query) -> tuple[int, int]:
        """At most how many hits an admitted ``query`` returns, and at most how many bytes each hit's id has."""
        legs = [self.legs[name] for name in self._legs_of(query)]
        return min(query.k, sum(leg.num_docs for leg in legs)), max(leg.id_bytes for leg in legs)

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

    def _legs_of(self, query: Query) -> tuple[str, ...]:
        return self.hybrid_legs if query.retriever == HYBRID else (query.retriever,)

    def _depth(self, query: Query) -> int:
        """How deep each leg searches: ``k``, or for a hybrid at least the hits per leg it fuses."""
        return max(self.config.hybrid_depth, query.k) if query.retriever == HYBRID else query.k

    def _start(self, query: Query, deadline: float | None, call: _Call) -> Callable[[], Hits]:
        """Submit a query's kernel work now; the returned function waits for it and finishes the query."""
        legs, depth = self._legs_of(query), self._depth(query)
        # the later legs are queued first, as a small sparse leg runs in this thread when the express lane is idle
        cost = {name: self.query_cost(query, name, depth) for name in legs}
        futures = {
            name: self.batchers[name].submit((query, depth), deadline, call, cost[name], call.cost)
            for name in reversed(legs)
        }

        def finish() -> Hits:
            found = [wait(futures[name], deadline) for name in legs]
            if query.retriever != HYBRID:
                return found[0]
            retrievers = [self.legs[name].retriever for name in legs]
            hybrid = Hybrid(retrievers, query.fusion or self.config.fusion, query.weights, self.config.hybrid_depth)
            return hybrid.combine([[hits] for hits in found], query.k)[0]

        return finish

    def encode(self, texts: list[str], deadline: float | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Sparse query vectors (term ids, weights) of ``texts``, as the server's own searches encode them."""
        self.admit_texts(texts)
        with contextlib.closing(self.encode_each(texts, deadline)) as vectors:
            return list(vectors)

    def admit_texts(self, texts: list[str]) -> int:
        """Check an Encode request before any work, as :meth:`admit` does a search; returns its cost."""
        if self.sparse is None:
            raise Unavailable("this server has no sparse index, whose model Encode uses (lsr serve --index)")
        if not texts:
            raise InvalidArgument("no texts to encode")
        if len(texts) > self.limits.max_batch_queries:
            raise InvalidArgument(
                f"{len(texts)} texts in one call; the limit is {self.limits.max_batch_queries}"
                " (lsr serve --max-batch-queries)"
            )
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
                futures = [self.batchers[ENCODE].submit(t, deadline, call, text_cost(t)) for t in texts]
            try:
                for future in futures:
                    yield wait(future, deadline)
            finally:
                for future in futures:
                    future.cancel()

    def recommend(self, user: str, k: int, exclude_seen: bool = True) -> list[tuple[str, float]]:
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
        """What the server holds, and its batchers' counters (the Stats call): the sparse leg's model, size and corpus
        (the first leg's size and corpus where there is no sparse one), the dense leg's model and size, and every
        leg's name, size and corpus (``legs``: a server of several corpora's legs is refused only where the legs are
        fused, so the others may hold different documents)."""
        dense = self.legs.get(DENSE)
        first = self.sparse or next(iter(self.legs.values()))
        return {
            "model": self.model or "",
            "num_docs": first.num_docs,
            "corpus": first.retriever.corpus,
            "legs": [
                {"name": name, "num_docs": leg.num_docs, "corpus": leg.retriever.corpus}
                for name, leg in self.legs.items()
            ],
            "vocab_size": self.index.meta.vocab_size if self.index is not None else 0,
            "retrievers": list(self.retrievers),
            "dense_model": (self.config.dense_model or dense.retriever.info.get("model", "")) if dense else "",
            "dense_docs": dense.num_docs if dense is not None else 0,
            "recommender": self.recommender is not None,
            "uptime_seconds": time.monotonic() - self.started,
            "rss_bytes": rss_bytes(),
        }

    def close(self) -> None:
        """Stop the batchers once queued work is done (call after the server has finished its requests)."""
        for batcher in self.batchers.values():
            batcher.close()


def _lsr_sparse(retriever: Retriever) -> bool:
    """Whether ``retriever`` is lsr's own sparse retriever (an index with a vocabulary, and its encoder)."""
    from lsr.indexing.sparse.retriever import SparseRetriever

    return isinstance(retriever, SparseRetriever)


def _thread_safe(retriever: Retriever) -> bool:
    """Whether two threads may encode queries with ``retriever`` at once: only lsr's sparse retriever with an
    inference-free encoder, whose queries are its Rust tokenizer's ``encode_batch``, which changes no state, and an
    IDF lookup; a model's tokenizer call sets the shared tokenizer's truncation first (two at once fail with
    "Already borrowed"), and other retrievers' encoders are not known to be safe."""
    from lsr.models import InferenceFreeEncoder

    return _lsr_sparse(retriever) and isinstance(retriever.encoder, InferenceFreeEncoder)


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    """Batcher outcomes as serve errors: an expired deadline, a batcher closed by shutdown."""
    try:
        yield
    except DeadlineExpired as exc:
        raise DeadlineExceeded(str(exc)) from None
    except BatcherClosed:
        raise Unavailable("the server is shutting down") from None
