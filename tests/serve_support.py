"""What the serving tests share: real indexes over the demo corpus, a trained recommender, a server on loopback.

Built once per test session (the dense index encodes the 40 demo documents with the embedded
all-MiniLM-L6-v2; the sparse one uses a tiny random BERT made inference-free with an IDF table
computed on the demo corpus), so every serving test talks to real indexes through a real server.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lsr.eval.demo import demo_dataset
from tiny_models import tiny_bert


@dataclass
class Artifacts:
    sparse_index: Path
    dense_index: Path
    recommender: Path
    model: Path


def build_inference_free(folder: Path) -> Path:
    """A tiny BERT as SPLADE documents plus IDF over the demo corpus: queries need no model."""
    from lsr.data.beir import corpus_source, read_corpus
    from lsr.encode.corpus import document_text
    from lsr.models import InferenceFreeEncoder, SpladeEncoder
    from lsr.models.idf import bm25_idf, document_frequencies

    documents = SpladeEncoder.from_pretrained(tiny_bert(folder / "bert"), device="cpu")
    texts = [document_text(d) for d in read_corpus(corpus_source(demo_dataset()))]
    df, count = document_frequencies(documents.tokenizer, texts)
    InferenceFreeEncoder(documents, bm25_idf(df, count)).save_pretrained(folder / "if")
    return folder / "if"


def build_artifacts(root: Path) -> Artifacts:
    from lsr.indexing.dense.format import DenseMeta
    from lsr.indexing.sparse.build import build_index
    from test_recommend_train import make_clusters
    from typer.testing import CliRunner

    from lsr.cli import app
    from lsr.data.beir import corpus_source
    from lsr.encode.corpus import encode_corpus
    from lsr.encode.shards import iter_shards
    from lsr.models import load_encoder
    from lsr.recommend.data import load_dataset
    from lsr.recommend.train import TrainConfig, train

    model = build_inference_free(root / "model")
    encoder = load_encoder(model, device="cpu")
    encode_corpus(encoder, str(model), corpus_source(demo_dataset()), root / "sparse.vectors")
    build_index(lambda: iter_shards(root / "sparse.vectors"), root / "sparse", str(model), encoder.kind)

    # the dense index through `lsr index` with a dense model, as the README shows for `lsr serve --dense-index`
    args = ["index", "--model", "all-minilm-l6-v2", "--corpus", str(demo_dataset()), "--output", str(root / "dense")]
    result = CliRunner().invoke(app, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert DenseMeta.load(root / "dense").num_docs == 40

    data = load_dataset(make_clusters(root / "clusters"))
    train(data, TrainConfig(model="mf", epochs=20, lr=0.02, batch_size=64, hparams={"dim": 16}), root / "mf", False)
    return Artifacts(root / "sparse", root / "dense", root / "mf", model)


def demo_queries() -> list[str]:
    lines = (demo_dataset() / "queries.jsonl").read_text().splitlines()
    return [json.loads(line)["text"] for line in lines]


@contextlib.contextmanager
def running(  # noqa: ANN201
    artifacts: Artifacts,
    dense: bool = True,
    recommender: bool = True,
    sparse: bool = True,
    **settings,  # noqa: ANN003
) -> Iterator:
    """A server on a free loopback port; ``settings`` go to EngineConfig or ServerOptions by name."""
    from dataclasses import fields

    from lsr.serve.engine import Engine, EngineConfig
    from lsr.serve.server import ServerOptions, start_server

    engine_keys = {f.name for f in fields(EngineConfig)}
    engine = Engine(
        EngineConfig(
            index=artifacts.sparse_index if sparse else None,
            dense_index=artifacts.dense_index if dense else None,
            recommender=artifacts.recommender if recommender else None,
            **{k: v for k, v in settings.items() if k in engine_keys},
        )
    )
    options = ServerOptions(host="127.0.0.1", port=0, **{k: v for k, v in settings.items() if k not in engine_keys})
    server = start_server(engine, options)
    try:
        yield server
    finally:
        server.stop(grace=1.0)
