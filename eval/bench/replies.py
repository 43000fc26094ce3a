"""What a large search reply costs the server under the interpreter lock: ids, then the protobuf message.

Issue 19's tail under load came from Python work done for large replies while small searches waited for the
lock. This times, on a real index, the pieces of one BatchSearch reply of ``queries`` × ``k`` hits: decoding
the hits' document ids (:meth:`SparseIndex.doc_ids`), building the reply hit by hit as protobuf's Python API
does (``Hit(doc_id=..., score=...)`` per hit, what the server did before), laying it out with
:mod:`lsr.serve.wire` and parsing it once (what it does now), and serializing it. Best of ``repeat`` runs, one
thread; the hits are random documents with random scores (what they are does not change the cost).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from lsr.indexing.sparse.format import SparseIndex
from lsr.serve.proto.lsr.v1 import lsr_pb2
from lsr.serve.wire import batch_response_bytes, search_response_bytes


def _best_ms(work: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        out = work()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 3), out


def bench_replies(index_path: Path, queries: int = 32, k: int = 1000, repeat: int = 20, seed: int = 0) -> dict:
    """Milliseconds for each piece of one ``queries`` × ``k`` reply (see the module doc)."""
    index = SparseIndex.open(index_path)
    rng = np.random.default_rng(seed)
    k = min(k, index.num_docs)
    numbers = [rng.choice(index.num_docs, k, replace=False) for _ in range(queries)]
    scores = [np.sort(rng.random(k, dtype=np.float32))[::-1] for _ in range(queries)]
    ids_ms, ids = _best_ms(lambda: [index.doc_ids(n) for n in numbers], repeat)

    def hit_by_hit() -> lsr_pb2.BatchSearchResponse:
        return lsr_pb2.BatchSearchResponse(
            responses=[
                lsr_pb2.SearchResponse(
                    hits=[lsr_pb2.Hit(doc_id=d, score=s) for d, s in zip(i, v.tolist(), strict=True)],
                    retriever="sparse",
                )
                for i, v in zip(ids, scores, strict=True)
            ]
        )

    def wire() -> lsr_pb2.BatchSearchResponse:
        replies = [search_response_bytes(i, v, "sparse") for i, v in zip(ids, scores, strict=True)]
        return lsr_pb2.BatchSearchResponse.FromString(batch_response_bytes(replies))

    built_ms, built = _best_ms(hit_by_hit, repeat)
    wire_ms, laid_out = _best_ms(wire, repeat)
    if laid_out != built:
        raise AssertionError("the wire layout does not parse to the message built hit by hit")
    serialize_ms, data = _best_ms(built.SerializeToString, repeat)
    return {
        "index": str(index_path),
        "queries": queries,
        "k": k,
        "repeat": repeat,
        "reply_bytes": len(data),
        "doc_ids_ms": ids_ms,
        "hit_by_hit_ms": built_ms,
        "wire_layout_and_parse_ms": wire_ms,
        "serialize_ms": serialize_ms,
        "speed_up": round(built_ms / wire_ms, 2),
    }
