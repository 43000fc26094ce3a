"""Search replies laid out by NumPy parse to exactly the messages protobuf builds hit by hit."""

from __future__ import annotations

from pathlib import Path

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


def test_reply_benchmark_times_the_same_reply_both_ways(tmp_path: Path) -> None:
    """`lsr bench replies` on a real index: both ways of building the reply give the same message, and it is
    timed piece by piece."""
    import scipy.sparse as sp
    from lsr.eval.bench.replies import bench_replies
    from lsr.indexing.sparse.build import build_index

    ids = [f"doc-{i}" if i % 7 else f"文書-{i}" for i in range(200)]
    vectors = sp.random(200, 64, density=0.1, format="csr", random_state=3, dtype=np.float32)
    build_index(lambda: [(ids, vectors)], tmp_path / "idx", "m", "splade")
    result = bench_replies(tmp_path / "idx", queries=3, k=50, repeat=2)
    assert result["k"] == 50 and result["reply_bytes"] > 3 * 50 * len("doc-1")
    assert all(result[key] > 0 for key in ("doc_ids_ms", "hit_by_hit_ms", "wire_layout_and_parse_ms", "serialize_ms"))
