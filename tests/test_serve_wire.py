"""Search replies laid out by NumPy parse to exactly the messages protobuf builds hit by hit."""

from __future__ import annotations

import numpy as np
import pytest
from lsr.serve.proto.lsr.v1 import lsr_pb2
from lsr.serve.wire import batch_response_bytes, search_response_bytes


def _reference(ids: list[str], scores: np.ndarray, retriever: str) -> lsr_pb2.SearchResponse:
    hits = [lsr_pb2.Hit(doc_id=d, score=s) for d, s in zip(ids, scores.tolist(), strict=True)]
    return lsr_pb2.SearchResponse(hits=hits, retriever=retriever)


CASES = {
    "ascii": (["d1", "doc-22", "pypi/requests"], [3.5, 1.25, 0.0], "sparse"),
    "non-ascii ids": (["café", "東京/文書", "ok"], [1.0, -2.5, 1e-30], "hybrid"),
    "long ids (two-byte lengths)": (["x" * 127, "y" * 128, "z" * 300, "é" * 70], [9.0, 8.0, 7.0, 6.0], "bm25"),
    "huge id (three-byte lengths)": (["w" * 20000], [0.5], "dense"),
    "no hits": ([], [], "sparse"),
    "empty id and retriever": ([""], [2.0], ""),
}


@pytest.mark.parametrize("case", list(CASES))
def test_reply_bytes_parse_to_the_reference_message(case: str) -> None:
    ids, values, retriever = CASES[case]
    scores = np.asarray(values, dtype=np.float32)
    parsed = lsr_pb2.SearchResponse.FromString(search_response_bytes(ids, scores, retriever))
    assert parsed == _reference(ids, scores, retriever)
    assert [h.doc_id for h in parsed.hits] == ids


def test_random_replies_and_their_batch_match_protobuf() -> None:
    rng = np.random.default_rng(7)
    alphabet = np.array(list("abc/-_09éß東"))
    replies, expected = [], []
    for size in (0, 1, 5, 1000):
        ids = ["".join(rng.choice(alphabet, rng.integers(0, 140))) for _ in range(size)]
        scores = rng.normal(size=size).astype(np.float64)  # float64 in, float32 on the wire, as protobuf does
        replies.append(search_response_bytes(ids, scores, "sparse"))
        expected.append(_reference(ids, scores.astype(np.float32), "sparse"))
    batch = lsr_pb2.BatchSearchResponse.FromString(batch_response_bytes(replies))
    assert batch == lsr_pb2.BatchSearchResponse(responses=expected)
    assert lsr_pb2.BatchSearchResponse.FromString(batch_response_bytes([])) == lsr_pb2.BatchSearchResponse()
