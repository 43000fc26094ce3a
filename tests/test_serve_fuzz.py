"""Fuzzing the gRPC surface of a real server: arbitrary bytes, damaged messages and hostile field values.

Every call must be answered with OK or a status that names the caller's problem (INVALID_ARGUMENT,
RESOURCE_EXHAUSTED, NOT_FOUND) and a message; never INTERNAL or UNKNOWN, never an error with a traceback in
the server's log; and the server must still answer an ordinary search afterwards. Hypothesis draws the
inputs with a fixed seed (``derandomize``) and keeps no example database, so a run is repeatable.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lsr.serve.client import Client
from lsr.serve.proto.lsr.v1 import lsr_pb2
from serve_support import Artifacts, running

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROPER = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.NOT_FOUND,
}
METHODS: dict[str, Any] = {
    "/lsr.v1.Retrieval/Search": lsr_pb2.SearchRequest,
    "/lsr.v1.Retrieval/BatchSearch": lsr_pb2.BatchSearchRequest,
    "/lsr.v1.Retrieval/Encode": lsr_pb2.EncodeRequest,
    "/lsr.v1.Retrieval/Stats": lsr_pb2.StatsRequest,
    "/lsr.v1.Recommendation/Recommend": lsr_pb2.RecommendRequest,
    "/grpc.health.v1.Health/Check": health_pb2.HealthCheckRequest,
}


class Errors(logging.Handler):
    """Keeps the server's log records at ERROR and above (an unexpected failure logs its traceback there)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def server(serve_artifacts: Artifacts) -> Iterator[Any]:
    with running(serve_artifacts) as running_server:
        yield running_server


@pytest.fixture(scope="module")
def errors() -> Iterator[Errors]:
    handler = Errors()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


@pytest.fixture(scope="module")
def send(server: Any, errors: Errors) -> Iterator[Callable[[str, bytes], grpc.StatusCode]]:
    """Sends raw bytes to a method; returns the status after checking that it is a proper one."""
    with grpc.insecure_channel(server.address) as channel:
        calls = {path: channel.unary_unary(path) for path in METHODS}  # no serializers: bytes in, bytes out

        def call(path: str, payload: bytes) -> grpc.StatusCode:
            errors.records.clear()
            try:
                calls[path](payload, timeout=60)
                code = grpc.StatusCode.OK
            except grpc.RpcError as exc:
                code = exc.code()
                assert exc.details(), f"{path}: {code.name} without a message"
            assert code in PROPER, f"{path} answered {code.name} to {payload[:200]!r}"
            assert not errors.records, [record.getMessage() for record in errors.records]
            return code

        yield call


def still_serving(server: Any) -> None:
    with Client(server.address) as client:
        assert len(client.search("inverted index", k=3)) == 3


# -- strategies -----------------------------------------------------------------------------------------------------

INT32 = st.integers(-(2**31), 2**31 - 1)
FLOATS = st.floats(width=32, allow_nan=True, allow_infinity=True)
TEXT = st.text(max_size=64) | st.text(max_size=5000) | st.sampled_from(["", " ", "inverted index", "\x00", "é" * 5000])
vectors = st.builds(
    lsr_pb2.SparseVector,
    indices=st.lists(INT32 | st.integers(0, 700), max_size=40),
    values=st.lists(FLOATS, max_size=40),
    tokens=st.lists(st.text(max_size=8), max_size=3),
)


@st.composite
def search_requests(draw: st.DrawFn) -> lsr_pb2.SearchRequest:
    request = lsr_pb2.SearchRequest(
        k=draw(INT32 | st.integers(0, 1200)),
        retriever=draw(st.sampled_from(["", "sparse", "dense", "hybrid", "bm25"]) | st.text(max_size=8)),
        doc_ids=draw(st.lists(st.text(max_size=12), max_size=30)),
        exclude_doc_ids=draw(st.lists(st.text(max_size=12), max_size=30)),
        fusion=draw(st.sampled_from(["", "rrf", "minmax", "zscore"]) | st.text(max_size=8)),
        weights=draw(st.lists(FLOATS, max_size=3)),
    )
    if draw(st.booleans()):
        request.query = draw(TEXT)
    else:
        request.vector.CopyFrom(draw(vectors))
    return request


batch_requests = st.builds(lsr_pb2.BatchSearchRequest, requests=st.lists(search_requests(), max_size=12))
encode_requests = st.builds(lsr_pb2.EncodeRequest, texts=st.lists(TEXT, max_size=12), with_tokens=st.booleans())
recommend_requests = st.builds(
    lsr_pb2.RecommendRequest,
    user_id=st.text(max_size=20) | st.sampled_from(["3", "0", "-1"]),
    k=INT32 | st.integers(0, 50),
    exclude_seen=st.none() | st.booleans(),
)
MESSAGES = {
    "/lsr.v1.Retrieval/Search": search_requests(),
    "/lsr.v1.Retrieval/BatchSearch": batch_requests,
    "/lsr.v1.Retrieval/Encode": encode_requests,
    "/lsr.v1.Recommendation/Recommend": recommend_requests,
}


@st.composite
def damaged(draw: st.DrawFn) -> tuple[str, bytes]:
    """A well-formed message of a method, then cut short, or with bytes overwritten or inserted."""
    path = draw(st.sampled_from(sorted(MESSAGES)))
    data = bytearray(draw(MESSAGES[path]).SerializeToString())
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["cut", "overwrite", "insert"]))
        if action == "cut":
            del data[where:]
        elif action == "overwrite" and where < len(data):
            data[where] = draw(st.integers(0, 255))
        else:
            data[where:where] = draw(st.binary(min_size=1, max_size=8))
    return path, bytes(data)


# -- the fuzz tests -------------------------------------------------------------------------------------------------


@FUZZ
@given(path=st.sampled_from(sorted(METHODS)), payload=st.binary(max_size=4096))
@example(path="/lsr.v1.Retrieval/Search", payload=b"\xff\xff\xff\xff")
@example(path="/lsr.v1.Retrieval/Encode", payload=b"\x0a\x02\xff\xfe")  # a string that is not UTF-8
@example(path="/lsr.v1.Retrieval/BatchSearch", payload=b"\x0a\xff\xff\xff\xff\x0f")  # a length past the end
def test_arbitrary_bytes(send: Callable[[str, bytes], grpc.StatusCode], path: str, payload: bytes) -> None:
    send(path, payload)


@FUZZ
@given(damaged())
def test_damaged_messages(send: Callable[[str, bytes], grpc.StatusCode], case: tuple[str, bytes]) -> None:
    send(*case)


@FUZZ
@given(search_requests())
@example(lsr_pb2.SearchRequest(query="index", k=2**31 - 1))
@example(lsr_pb2.SearchRequest(vector=lsr_pb2.SparseVector(indices=[3, 5], values=[3e38, 3e38])))
@example(lsr_pb2.SearchRequest(vector=lsr_pb2.SparseVector(indices=[-(2**31)], values=[math.nan])))
def test_search_fields(send: Callable[[str, bytes], grpc.StatusCode], request: lsr_pb2.SearchRequest) -> None:
    send("/lsr.v1.Retrieval/Search", request.SerializeToString())


@FUZZ
@given(batch_requests)
def test_batch_search_fields(
    send: Callable[[str, bytes], grpc.StatusCode], request: lsr_pb2.BatchSearchRequest
) -> None:
    send("/lsr.v1.Retrieval/BatchSearch", request.SerializeToString())


@FUZZ
@given(encode_requests)
def test_encode_fields(send: Callable[[str, bytes], grpc.StatusCode], request: lsr_pb2.EncodeRequest) -> None:
    send("/lsr.v1.Retrieval/Encode", request.SerializeToString())


@FUZZ
@given(recommend_requests)
def test_recommend_fields(send: Callable[[str, bytes], grpc.StatusCode], request: lsr_pb2.RecommendRequest) -> None:
    send("/lsr.v1.Recommendation/Recommend", request.SerializeToString())


HUGE = [
    ("/lsr.v1.Retrieval/Search", lsr_pb2.SearchRequest(query="index", doc_ids=[f"d{i}" for i in range(150_000)])),
    ("/lsr.v1.Retrieval/Search", lsr_pb2.SearchRequest(query="index", exclude_doc_ids=["x" * 60] * 80_000)),
    ("/lsr.v1.Retrieval/Search", lsr_pb2.SearchRequest(vector=lsr_pb2.SparseVector(indices=range(5000)))),
    ("/lsr.v1.Retrieval/BatchSearch", lsr_pb2.BatchSearchRequest(requests=[lsr_pb2.SearchRequest(query="a")] * 5000)),
    ("/lsr.v1.Retrieval/Encode", lsr_pb2.EncodeRequest(texts=["w" * 4096] * 1500)),  # over the message size
    ("/lsr.v1.Retrieval/Encode", lsr_pb2.EncodeRequest(texts=["\U0001f600" * 4096] * 16, with_tokens=True)),
]


@pytest.mark.parametrize(("path", "request_"), HUGE, ids=range(len(HUGE)))
def test_huge_fields(send: Callable[[str, bytes], grpc.StatusCode], path: str, request_: Any) -> None:  # noqa: ANN401 - any request message
    send(path, request_.SerializeToString())


def test_the_server_still_serves_after_the_fuzzing(server: Any) -> None:
    still_serving(server)
