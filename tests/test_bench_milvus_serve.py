"""The ``lsr serve`` row of the Milvus comparison (``lsr.eval.bench.milvus_compare``): a real server subprocess over
a small float16 index, sent pre-encoded query vectors, ranks exactly as the same index searched in this process.
Needs neither Milvus nor the shared data: the row is timed against lsr's own in-process exact top 10. The demo's
queries are repeated past the server's limits per BatchSearch (256 queries, and work: the tiny model's queries have
hundreds of terms), so the batch row takes several calls."""

from __future__ import annotations

from pathlib import Path

from lsr.eval.bench.milvus_compare import batch_calls, lsr_serve_sparse
from lsr.eval.demo import demo_dataset
from lsr.indexing.sparse.build import build_index
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.search import Searcher
from lsr.serve.engine import Limits
from tiny_models import tiny_bert

from lsr.data.beir import BeirDataset, corpus_source
from lsr.encode.corpus import encode_corpus
from lsr.encode.shards import iter_shards
from lsr.models import load_encoder


def test_served_top10_is_the_in_process_top10(tmp_path: Path) -> None:
    model = tiny_bert(tmp_path / "bert")
    encoder = load_encoder(model, device="cpu")
    encode_corpus(encoder, str(model), corpus_source(demo_dataset()), tmp_path / "vectors", shard_size=16)
    build_index(lambda: iter_shards(tmp_path / "vectors"), tmp_path / "index", str(model), "splade", "float16")
    queries = list(BeirDataset(demo_dataset()).queries().values())
    vectors = encoder.encode_query(queries * (Limits().max_batch_queries // len(queries) + 1))
    index = SparseIndex.open(tmp_path / "index")
    docs, _, sizes = Searcher(index).search(vectors, k=10)
    ours = [[index.doc_id(int(d)) for d in row[:size]] for row, size in zip(docs, sizes, strict=True)]

    served = lsr_serve_sparse(tmp_path / "index", vectors, k=10)

    assert served["tops"] == ours
    assert all(len(top) == 10 for top in ours)
    assert 0 < served["p50_ms"] <= served["p99_ms"] and served["qps_single"] > 0 and served["qps_batch"] > 0


def test_batch_calls_keep_within_both_server_limits() -> None:
    limits = Limits(max_batch_queries=3, max_request_cost=100)
    assert batch_calls([10] * 7, k=10, limits=limits) == [range(0, 3), range(3, 6), range(6, 7)]
    assert batch_calls([40, 30, 20, 90, 5], k=10, limits=limits) == [range(0, 2), range(2, 3), range(3, 4), range(4, 5)]
    assert batch_calls([500], k=10, limits=limits) == [range(0, 1)]  # alone, for the server to judge
    assert batch_calls([], k=10, limits=limits) == []
