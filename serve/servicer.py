"""The ``lsr.v1`` services: requests to engine calls, engine answers and errors to messages and status codes.

Each call runs inside :meth:`CallTracker.track`, which counts it, times it and turns errors into
statuses: a :class:`~lsr.serve.errors.ServeError` into its code with its message; anything unexpected into
INTERNAL (logged with its traceback), so no request can take the server down. A client deadline
becomes the engine's deadline, so work for a caller that has given up is dropped, not computed.

A reply larger than the server's message limit would fail only after all its work is done (gRPC checks
the size when sending), so Search and BatchSearch bound their reply before any work: at most ``k`` hits
per query, each as long as the index's longest document id (:func:`search_reply_bound`), refused with
RESOURCE_EXHAUSTED when that bound exceeds the limit. Not INVALID_ARGUMENT: gRPC keeps that for arguments
that are wrong whatever the system's state, while this request is well-formed and a server with a larger
``--max-message-mb`` answers it; and gRPC itself answers an oversized message with RESOURCE_EXHAUSTED, so a
client sees one code whichever side caught it.
An Encode reply's size depends on what the model makes of each text (a SPLADE query may expand to any
number of terms), so it is measured as the vectors come back and the call is stopped, its remaining
texts dropped unencoded, as soon as it passes the limit.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator

import grpc
import numpy as np
from lsr.indexing.hits import DocFilter, Hits
from lsr.serve.engine import DEFAULT_K, SPARSE, Engine, Query
from lsr.serve.errors import InvalidArgument, ResourceExhausted, ServeError
from lsr.serve.proto.lsr.v1 import lsr_pb2, lsr_pb2_grpc
from lsr.serve.wire import batch_response_bytes, search_response_bytes

log = logging.getLogger("lsr.serve")
LATENCY_WINDOW = 2048  # recent calls per method kept for the Stats percentiles
DEFAULT_MAX_REPLY_BYTES = 4 * 1024 * 1024  # gRPC's own default message limit


class CallTracker:
    """Per-method counters and recent latencies, and the number of calls in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.latencies: dict[str, deque[float]] = {}
        self.in_flight = 0

    @contextlib.contextmanager
    def track(self, method: str, context: grpc.ServicerContext) -> Iterator[float | None]:
        """Yield the call's deadline (``time.monotonic()`` seconds, or None); abort on errors with a status."""
        with self._lock:
            self.requests[method] = self.requests.get(method, 0) + 1
            self.in_flight += 1
        started = time.monotonic()
        remaining = context.time_remaining()
        deadline = started + remaining if remaining is not None and remaining < 1e8 else None
        failure: tuple[grpc.StatusCode, str] | None = None
        try:
            yield deadline
        except ServeError as exc:
            failure = (getattr(grpc.StatusCode, exc.code), str(exc))
        except Exception:  # noqa: BLE001 - the caller gets INTERNAL, the server keeps serving
            log.exception("%s failed", method)
            failure = (grpc.StatusCode.INTERNAL, f"{method} failed on the server; see its log")
        finally:
            with self._lock:
                self.in_flight -= 1
                if failure is None:
                    self.latencies.setdefault(method, deque(maxlen=LATENCY_WINDOW)).append(time.monotonic() - started)
                else:
                    self.errors[method] = self.errors.get(method, 0) + 1
        if failure is not None:
            context.abort(*failure)

    def method_stats(self) -> dict[str, lsr_pb2.MethodStats]:
        with self._lock:
            out = {}
            for method, count in self.requests.items():
                times = np.asarray(self.latencies.get(method, ()), dtype=np.float64) * 1000
                p50, p99 = np.percentile(times, [50, 99]) if len(times) else (0.0, 0.0)
                out[method] = lsr_pb2.MethodStats(
                    requests=count, errors=self.errors.get(method, 0), p50_ms=float(p50), p99_ms=float(p99)
                )
            return out


def to_query(request: lsr_pb2.SearchRequest, retriever: str = SPARSE) -> Query:
    """A SearchRequest as an engine query (unset k is 10, unset retriever ``retriever``); checked by the engine."""
    vector = None
    if request.WhichOneof("input") == "vector":
        vector = (
            np.asarray(request.vector.indices, dtype=np.int32),
            np.asarray(request.vector.values, dtype=np.float32),
        )
    return Query(
        text=request.query if vector is None else None,
        vector=vector,
        k=request.k or DEFAULT_K,
        retriever=request.retriever or retriever,
        filter=DocFilter(frozenset(request.doc_ids) or None, frozenset(request.exclude_doc_ids))
        if request.doc_ids or request.exclude_doc_ids
        else None,
        fusion=request.fusion or None,
        weights=tuple(request.weights) if request.weights else None,
    )


def _varint_size(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def _field_size(payload: int) -> int:
    """Bytes of a length-delimited field (one-byte tag, length, payload) carrying ``payload`` bytes."""
    return 1 + _varint_size(payload) + payload


def search_reply_bound(hits: int, id_bytes: int, retriever: str = "hybrid") -> int:
    """The largest SearchResponse of ``hits`` hits whose document ids have at most ``id_bytes`` bytes, from the
    retriever named ``retriever``."""
    hit = _field_size(id_bytes) + 5  # the id, and the score as a tagged 32-bit float
    return hits * _field_size(hit) + _field_size(len(retriever.encode()))


def too_large(size: str, limit: int, advice: str) -> ResourceExhausted:
    return ResourceExhausted(f"{size}, over this server's {limit:,}-byte message limit (--max-message-mb): {advice}")


def response_bytes(query: Query, hits: Hits) -> bytes:
    """A query's serialized SearchResponse, laid out by :mod:`lsr.serve.wire` (not hit by hit under the lock)."""
    return search_response_bytes(hits.ids, hits.scores, query.retriever)


class RetrievalServicer(lsr_pb2_grpc.RetrievalServicer):
    """Search, BatchSearch, Encode and Stats over one shared :class:`Engine`."""

    def __init__(self, engine: Engine, tracker: CallTracker, max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES) -> None:
        self.engine = engine
        self.tracker = tracker
        self.max_reply_bytes = max_reply_bytes

    def _search(self, queries: list[Query], deadline: float | None, batch: bool) -> list[Hits]:
        """Admit the queries, bound their reply, then search: every refusal comes before any work."""
        self.engine.admit(queries)
        sizes = [search_reply_bound(*self.engine.reply_shape(query), query.retriever) for query in queries]
        size = sum(_field_size(size) for size in sizes) if batch else sizes[0]
        if size > self.max_reply_bytes:
            advice = "ask for fewer hits, or fewer queries per call" if batch else "ask for fewer hits"
            raise too_large(f"the reply could reach {size:,} bytes", self.max_reply_bytes, advice)
        return self.engine.run(queries, deadline)

    def Search(self, request: lsr_pb2.SearchRequest, context: grpc.ServicerContext) -> lsr_pb2.SearchResponse:  # noqa: N802
        with self.tracker.track("Search", context) as deadline:
            query = to_query(request, self.engine.default_retriever)
            return lsr_pb2.SearchResponse.FromString(response_bytes(query, self._search([query], deadline, False)[0]))

    def BatchSearch(  # noqa: N802
        self, request: lsr_pb2.BatchSearchRequest, context: grpc.ServicerContext
    ) -> lsr_pb2.BatchSearchResponse:
        with self.tracker.track("BatchSearch", context) as deadline:
            if not request.requests:
                raise InvalidArgument("BatchSearch with no requests")
            queries = [to_query(r, self.engine.default_retriever) for r in request.requests]
            results = self._search(queries, deadline, batch=True)
            replies = [response_bytes(q, hits) for q, hits in zip(queries, results, strict=True)]
            return lsr_pb2.BatchSearchResponse.FromString(batch_response_bytes(replies))

    def Encode(self, request: lsr_pb2.EncodeRequest, context: grpc.ServicerContext) -> lsr_pb2.EncodeResponse:  # noqa: N802
        with self.tracker.track("Encode", context) as deadline:
            texts = list(request.texts)
            self.engine.admit_texts(texts)
            vocabulary = self.engine.encoder.vocabulary if request.with_tokens else None
            response = lsr_pb2.EncodeResponse(vocab_size=self.engine.index.meta.vocab_size, model=self.engine.model)
            size = response.ByteSize()
            with contextlib.closing(self.engine.encode_each(texts, deadline)) as vectors:
                for number, (indices, values) in enumerate(vectors):
                    vector = response.vectors.add(indices=indices.tolist(), values=values.tolist())
                    if vocabulary is not None:
                        vector.tokens.extend(vocabulary[i] for i in indices)
                    size += _field_size(vector.ByteSize())
                    if size > self.max_reply_bytes:
                        reached = f"the reply reached {size:,} bytes at text {number + 1} of {len(texts)}"
                        raise too_large(reached, self.max_reply_bytes, "encode fewer texts per call")
            return response

    def Stats(self, request: lsr_pb2.StatsRequest, context: grpc.ServicerContext) -> lsr_pb2.StatsResponse:  # noqa: N802
        with self.tracker.track("Stats", context):
            batchers = [
                lsr_pb2.BatcherStats(
                    name=name,
                    batches=b.stats.batches,
                    items=b.stats.items,
                    largest=b.stats.largest,
                    expired=b.stats.expired,
                )
                for name, b in self.engine.batchers.items()
            ]
            return lsr_pb2.StatsResponse(
                **self.engine.describe(),
                methods=self.tracker.method_stats(),
                batchers=batchers,
                in_flight=self.tracker.in_flight - 1,  # not counting this Stats call
            )


class RecommendationServicer(lsr_pb2_grpc.RecommendationServicer):
    """Recommend over the engine's recommender (registered only when the server has one)."""

    def __init__(self, engine: Engine, tracker: CallTracker) -> None:
        self.engine = engine
        self.tracker = tracker

    def Recommend(  # noqa: N802
        self, request: lsr_pb2.RecommendRequest, context: grpc.ServicerContext
    ) -> lsr_pb2.RecommendResponse:
        with self.tracker.track("Recommend", context):
            exclude = request.exclude_seen if request.HasField("exclude_seen") else True
            items = self.engine.recommend(request.user_id, request.k or DEFAULT_K, exclude_seen=exclude)
            return lsr_pb2.RecommendResponse(items=[lsr_pb2.Item(item_id=i, score=s) for i, s in items])
