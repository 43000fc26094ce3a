"""The ``lsr serve`` row of the Milvus comparison (``lsr.eval.bench.milvus_compare``): a real server subprocess over
a small float16 index, sent pre-encoded query vectors, ranks exactly as the same index searched in this process.
Needs neither Milvus nor the shared data: the row is timed against lsr's own in-process exact top 10."""

from __future__ import annotations

from pathlib import Path

from lsr.eval.bench.milvus_compare import lsr_serve_sparse
from lsr.eval.demo import demo_dataset
from lsr.indexing.sparse.build import build_index
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.search import Searcher
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
    vectors = encoder.encode_query(list(BeirDataset(demo_dataset()).queries().values()))
    index = SparseIndex.open(tmp_path / "index")
    docs, _, sizes = Searcher(index).search(vectors, k=10)
    ours = [[index.doc_id(int(d)) for d in row[:size]] for row, size in zip(docs, sizes, strict=True)]

    served = lsr_serve_sparse(tmp_path / "index", vectors, k=10)

    assert served["tops"] == ours
    assert all(len(top) == 10 for top in ours)
    assert 0 < served["p50_ms"] <= served["p99_ms"] and served["qps_single"] > 0 and served["qps_batch"] > 0
