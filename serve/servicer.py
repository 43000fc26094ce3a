"""The ``lsr.v1`` services: requests to engine calls, engine answers and errors to messages and status codes.

Each call runs inside :meth:`CallTracker.track`, which counts it, times it and turns errors into
statuses: a :class:`~serve.errors.ServeError` into its code with its message; anything unexpected into
INTERNAL (logged with its traceback), so no request can take the server down. A client deadline
becomes the engine's deadline, so work for a caller that has given up is dropped, not computed.
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

from serve.engine import DEFAULT_K, Engine, Query
from serve.errors import InvalidArgument, ServeError
from serve.proto.lsr.v1 import lsr_pb2, lsr_pb2_grpc

log = logging.getLogger("lsr.serve")
LATENCY_WINDOW = 2048  # recent calls per method kept for the Stats percentiles


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


def to_query(request: lsr_pb2.SearchRequest) -> Query:
    """A SearchRequest as an engine query (unset k is 10, unset retriever sparse); checked by the engine."""
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
        retriever=request.retriever or "sparse",
        allow=frozenset(request.doc_ids) if request.doc_ids else None,
        deny=frozenset(request.exclude_doc_ids),
        fusion=request.fusion or None,
        weights=tuple(request.weights) if request.weights else None,
    )


def to_response(query: Query, hits: list[tuple[str, float]]) -> lsr_pb2.SearchResponse:
    return lsr_pb2.SearchResponse(
        hits=[lsr_pb2.Hit(doc_id=doc, score=score) for doc, score in hits], retriever=query.retriever
    )


class RetrievalServicer(lsr_pb2_grpc.RetrievalServicer):
    """Search, BatchSearch, Encode and Stats over one shared :class:`Engine`."""

    def __init__(self, engine: Engine, tracker: CallTracker) -> None:
        self.engine = engine
        self.tracker = tracker

    def Search(self, request: lsr_pb2.SearchRequest, context: grpc.ServicerContext) -> lsr_pb2.SearchResponse:  # noqa: N802
        with self.tracker.track("Search", context) as deadline:
            query = to_query(request)
            return to_response(query, self.engine.search(query, deadline))

    def BatchSearch(  # noqa: N802
        self, request: lsr_pb2.BatchSearchRequest, context: grpc.ServicerContext
    ) -> lsr_pb2.BatchSearchResponse:
        with self.tracker.track("BatchSearch", context) as deadline:
            if not request.requests:
                raise InvalidArgument("BatchSearch with no requests")
            queries = [to_query(r) for r in request.requests]
            results = self.engine.search_many(queries, deadline)
            return lsr_pb2.BatchSearchResponse(
                responses=[to_response(q, hits) for q, hits in zip(queries, results, strict=True)]
            )

    def Encode(self, request: lsr_pb2.EncodeRequest, context: grpc.ServicerContext) -> lsr_pb2.EncodeResponse:  # noqa: N802
        with self.tracker.track("Encode", context) as deadline:
            vectors = self.engine.encode(list(request.texts), deadline)
            vocabulary = self.engine.encoder.vocabulary if request.with_tokens else None
            return lsr_pb2.EncodeResponse(
                vectors=[
                    lsr_pb2.SparseVector(
                        indices=indices.tolist(),
                        values=values.tolist(),
                        tokens=[vocabulary[i] for i in indices] if vocabulary is not None else (),
                    )
                    for indices, values in vectors
                ],
                vocab_size=self.engine.index.meta.vocab_size,
                model=self.engine.model,
            )

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
