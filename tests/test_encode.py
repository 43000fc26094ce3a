"""``lsr encode``: corpus to shards, resumable after an interruption, and ``lsr encode idf``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import DOCS
from tiny_models import tiny_bert
from typer.testing import CliRunner

from lsr.cli import app
from lsr.data.beir import corpus_source
from lsr.encode.corpus import document_text, encode_corpus
from lsr.encode.shards import Manifest, iter_shards
from lsr.errors import LsrError
from lsr.models import InferenceFreeEncoder, SpladeEncoder, load_encoder


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("bert") / "model")


def read_all(folder: Path) -> tuple[list[str], sp.csr_matrix]:
    """Every shard of an encoded folder as one id list and one matrix (the Ray tests use it too)."""
    ids, parts = [], []
    for shard_ids, vectors in iter_shards(folder):
        ids += shard_ids
        parts.append(vectors)
    return ids, sp.vstack(parts, format="csr")


def test_shards_hold_the_corpus_in_order(bert_dir: Path, beir_dir: Path, tmp_path: Path) -> None:
    encoder = SpladeEncoder.from_pretrained(bert_dir, device="cpu")
    manifest = encode_corpus(encoder, str(bert_dir), corpus_source(beir_dir), tmp_path / "vec", shard_size=2)
    assert manifest.complete and manifest.documents == 5 and len(manifest.shards) == 3
    ids, vectors = read_all(tmp_path / "vec")
    assert ids == [d["_id"] for d in DOCS]
    texts = [f"{d['title']} {d['text']}" for d in DOCS]
    # batches differ (shards of 2), so values agree to float rounding, not bit for bit
    np.testing.assert_allclose(vectors.toarray(), encoder.encode_document(texts).toarray(), rtol=1e-5, atol=1e-6)


class Interrupted(Exception):
    pass


def test_interrupted_encoding_resumes_to_the_same_result(bert_dir: Path, beir_dir: Path, tmp_path: Path) -> None:
    encoder = SpladeEncoder.from_pretrained(bert_dir, device="cpu")
    src = corpus_source(beir_dir)
    encode_corpus(encoder, "m", src, tmp_path / "whole", shard_size=2)
    calls = {"n": 0}
    original = encoder.encode_document

    def flaky(texts: list[str], batch_size: int = 32, show_progress: bool = False) -> sp.csr_matrix:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Interrupted
        return original(texts, batch_size)

    encoder.encode_document = flaky  # type: ignore[method-assign]
    with pytest.raises(Interrupted):
        encode_corpus(encoder, "m", src, tmp_path / "resumed", shard_size=2)
    partial = Manifest.load(tmp_path / "resumed")
    assert not partial.complete and partial.documents == 2
    with pytest.raises(LsrError, match="interrupted"):
        next(iter_shards(tmp_path / "resumed"))
    encoder.encode_document = original  # type: ignore[method-assign]
    done = encode_corpus(encoder, "m", src, tmp_path / "resumed", shard_size=2)
    assert done.complete and done.documents == 5
    whole, resumed = read_all(tmp_path / "whole"), read_all(tmp_path / "resumed")
    assert whole[0] == resumed[0] and (whole[1] != resumed[1]).nnz == 0
    with pytest.raises(LsrError, match="another model, corpus or shard size"):
        encode_corpus(encoder, "m", src, tmp_path / "resumed", shard_size=3)


def test_dense_shards(beir_dir: Path, tmp_path: Path) -> None:
    encoder = load_encoder("all-minilm-l6-v2", device="cpu")
    manifest = encode_corpus(encoder, "all-minilm-l6-v2", corpus_source(beir_dir), tmp_path / "dense")
    assert manifest.dense and manifest.dimension == 384
    ((ids, vectors),) = iter_shards(tmp_path / "dense")
    assert isinstance(vectors, np.ndarray) and vectors.shape == (5, 384)
    np.testing.assert_allclose(vectors[0], encoder.encode_document([document_text_of(DOCS[0])])[0], atol=1e-5)


def document_text_of(row: dict) -> str:
    from lsr.data.beir import Document

    return document_text(Document(row["_id"], row["title"], row["text"]))


def test_encode_and_idf_commands(bert_dir: Path, beir_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "encode",
            "--model",
            str(bert_dir),
            "--corpus",
            str(beir_dir / "corpus.jsonl"),
            "--output",
            str(tmp_path / "v"),
            "--device",
            "cpu",
            "--shard-size",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "5 documents in 2 shard(s)" in result.output
    missing = runner.invoke(app, ["encode", "--model", str(bert_dir)])
    assert missing.exit_code == 2 and "--corpus" in missing.output
    result = runner.invoke(
        app, ["encode", "idf", "--model", str(bert_dir), "--corpus", str(beir_dir), "--output", str(tmp_path / "if")]
    )
    assert result.exit_code == 0, result.output
    encoder = load_encoder(tmp_path / "if", device="cpu")
    assert isinstance(encoder, InferenceFreeEncoder)
    query = encoder.encode_query(["inverted index"])
    assert query.nnz >= 2 and (query.data > 0).all()


def test_ctrl_c_inside_a_shard_keeps_the_finished_pieces(bert_dir: Path, tmp_path: Path) -> None:
    """A corpus smaller than one shard, interrupted after two of its pieces: the rerun encodes only the rest and
    writes exactly what an uninterrupted run writes."""
    from conftest import make_beir

    from lsr.encode.corpus import STEP_BATCHES, piece_size

    piece = piece_size(batch_size=1)
    docs = [{"_id": f"d{i}", "title": "", "text": f"document number {i} about index {i % 7}"} for i in range(3 * piece)]
    src = corpus_source(make_beir(tmp_path / "beir", docs=docs))
    encoder = SpladeEncoder.from_pretrained(bert_dir, device="cpu")
    encode_corpus(encoder, "m", src, tmp_path / "whole", batch_size=1)
    seen: list[int] = []
    original = encoder.encode_document

    def interrupted_in_third(texts: list[str], batch_size: int = 32, show_progress: bool = False) -> sp.csr_matrix:
        seen.append(len(texts))
        if sum(seen) > 2 * piece:  # the first call of the third piece
            raise KeyboardInterrupt
        return original(texts, batch_size, show_progress)

    encoder.encode_document = interrupted_in_third  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        encode_corpus(encoder, "m", src, tmp_path / "vec", batch_size=1)
    assert Manifest.load(tmp_path / "vec").shards == [] and (tmp_path / "vec" / "partial.npz").is_file()
    seen.clear()
    encoder.encode_document = original  # type: ignore[method-assign]
    counting = encoder.encode_document

    def count(texts: list[str], batch_size: int = 32, show_progress: bool = False) -> sp.csr_matrix:
        seen.append(len(texts))
        return counting(texts, batch_size, show_progress)

    encoder.encode_document = count  # type: ignore[method-assign]
    encode_corpus(encoder, "m", src, tmp_path / "vec", batch_size=1)
    assert sum(seen) == piece  # only the third piece was encoded again
    assert set(seen) == {STEP_BATCHES}  # two batches a call: the bar moves every two batches, not once a piece
    assert not (tmp_path / "vec" / "partial.npz").exists()
    whole, resumed = read_all(tmp_path / "whole"), read_all(tmp_path / "vec")
    assert whole[0] == resumed[0] and (whole[1] != resumed[1]).nnz == 0


def test_kept_calls_are_taken_back_only_for_the_same_documents(tmp_path: Path) -> None:
    """``partial.npz`` names the rows its documents hold in the shard: a rerun takes them back only for the same
    shard and ids, and a file written before rows were kept counts as the shard's first documents."""
    from lsr.encode.shards import PARTIAL, Finished, load_partial, save_partial

    ids, vectors = ["a", "b", "c", "d"], sp.csr_matrix(np.eye(4, dtype=np.float32))
    assert save_partial(tmp_path, 0, ids, Finished([(np.array([2, 0]), vectors[[2, 0]])])) == 2
    kept = load_partial(tmp_path, 0, ids)
    assert kept.rows().tolist() == [2, 0] and (kept.calls[0][1] != vectors[[2, 0]]).nnz == 0
    assert load_partial(tmp_path, 1, ids).calls == [] and load_partial(tmp_path, 0, ["a", "b", "x", "d"]).calls == []
    with np.load(tmp_path / PARTIAL) as npz:
        older = {name: npz[name] for name in npz.files if name != "rows"} | {"ids": np.asarray(["a", "b"])}
    np.savez(tmp_path / PARTIAL, **older)
    assert load_partial(tmp_path, 0, ids).rows().tolist() == [0, 1]


def test_ctrl_c_on_the_command_line_says_how_to_resume(
    bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``lsr encode`` over a corpus smaller than one shard, Ctrl-C in the middle of its second piece: it says beforehand
    how long the whole will take, then how many documents it kept (the first piece and the finished calls of the
    second) and to rerun; the rerun encodes only the documents not kept, and the vectors are an uninterrupted run's."""
    from conftest import make_beir

    from lsr.encode.corpus import STEP_BATCHES, piece_size

    piece, step = piece_size(batch_size=16), STEP_BATCHES * 16
    docs = [
        {"_id": f"d{i}", "title": "", "text": f"document number {i} about index {i % 7}" + " more" * (i % 5)}
        for i in range(3 * piece)
    ]  # of several lengths, so a piece's calls take its documents out of corpus order
    data = make_beir(tmp_path / "beir", docs=docs)
    calls: list[int] = []
    stop_after = [piece + 3 * step]
    original = SpladeEncoder.encode_document

    def interrupted(self: SpladeEncoder, texts: list[str], batch_size: int = 32, show_progress: bool = False) -> object:
        calls.append(len(texts))
        if stop_after[0] and sum(calls) > stop_after[0]:  # the fourth call of the second piece
            raise KeyboardInterrupt
        return original(self, texts, batch_size, show_progress)

    monkeypatch.setattr(SpladeEncoder, "encode_document", interrupted)
    command = ["encode", "--model", str(bert_dir), "--corpus", str(data), "--output", str(tmp_path / "v"),
               "--batch-size", "16", "--device", "cpu"]  # fmt: skip
    first = CliRunner().invoke(app, command)
    assert first.exit_code != 0
    kept = piece + 3 * step
    assert f"estimate: {3 * piece:,} documents at " in first.output and " here): about " in first.output
    assert f"interrupted: {kept:,} documents kept in {tmp_path / 'v'}; rerun to resume" in first.output
    calls.clear()
    stop_after[0] = 0
    second = CliRunner().invoke(app, command)
    assert second.exit_code == 0, second.output
    assert sum(calls) == 3 * piece - kept  # neither the kept piece nor the kept calls were encoded again
    assert f"{kept}/{3 * piece} [00:00<?" in second.output  # the bar starts at what was kept: its rate is this run's
    assert f"estimate: {3 * piece - kept:,} documents at " in second.output
    assert not (tmp_path / "v" / "partial.npz").exists()
    encode_corpus(load_encoder(bert_dir, device="cpu"), "m", corpus_source(data), tmp_path / "whole", batch_size=16)
    whole, resumed = read_all(tmp_path / "whole"), read_all(tmp_path / "v")
    assert whole[0] == resumed[0] == [d["_id"] for d in docs] and (whole[1] != resumed[1]).nnz == 0
