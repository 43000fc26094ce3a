"""The ONNX backend against the torch encoder, and long documents encoded as pooled windows (issue 22 items 4, 5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from tiny_models import corpus_texts, tiny_bert

from lsr.errors import LsrError
from lsr.models import InferenceFreeEncoder, SpladeEncoder, load_encoder
from lsr.models.idf import save_idf
from lsr.models.sparse import pool_windows

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

TEXTS = corpus_texts()[:12] + ["", "BM25 BM25 BM25"]
LONG = " ".join(corpus_texts())  # far beyond a 16-token window


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("bert") / "model")


@pytest.mark.parametrize("pooling", ["max", "sum"])
def test_onnx_fp32_equals_torch(bert_dir: Path, pooling: str) -> None:
    torch_out = load_encoder(bert_dir, device="cpu", pooling=pooling).encode_document(TEXTS, batch_size=5)
    encoder = load_encoder(bert_dir, backend="onnx", pooling=pooling)
    onnx_out = encoder.encode_document(TEXTS, batch_size=5)  # batches of mixed lengths: padding inside the graph
    assert isinstance(onnx_out, sp.csr_matrix) and onnx_out.shape == torch_out.shape
    np.testing.assert_array_equal(onnx_out.indices, torch_out.indices)  # the same non-zeros
    np.testing.assert_array_equal(onnx_out.indptr, torch_out.indptr)
    np.testing.assert_allclose(onnx_out.data, torch_out.data, rtol=1e-4, atol=1e-5)


def test_onnx_int8_and_cache(bert_dir: Path, own_cache: Path) -> None:
    torch_out = load_encoder(bert_dir, device="cpu").encode_document(TEXTS).toarray()
    int8 = load_encoder(bert_dir, backend="onnx-int8")
    out = int8.encode_document(TEXTS).toarray()
    assert out.shape == torch_out.shape and (out > 0).sum() > 0
    # int8 weights and activations: close to the float model, not equal
    assert np.abs(out - torch_out).max() < 0.25 * torch_out.max()
    exports = list((own_cache / "onnx").iterdir())
    assert len(exports) == 1 and {p.name for p in exports[0].glob("*.onnx")} == {"model.onnx", "model-int8.onnx"}
    # the same weights reuse the export; changed weights export again
    load_encoder(bert_dir, backend="onnx")
    assert len(list((own_cache / "onnx").iterdir())) == 1
    changed = load_encoder(bert_dir, device="cpu")
    with torch.no_grad():
        changed.module.projection.bias += 0.01
    from lsr.models.onnx import use_backend

    use_backend(changed, "onnx")
    assert len(list((own_cache / "onnx").iterdir())) == 2


def test_onnx_graph_is_fused_and_equals_torch(bert_dir: Path, own_cache: Path) -> None:
    import onnx

    torch_out = load_encoder(bert_dir, device="cpu").encode_document(TEXTS, batch_size=len(TEXTS))
    onnx_out = load_encoder(bert_dir, backend="onnx").encode_document(TEXTS, batch_size=len(TEXTS))
    (folder,) = (own_cache / "onnx").iterdir()
    ops = {name: {n.op_type for n in onnx.load(folder / name).graph.node} for name in ("model.onnx", "model-int8.onnx")}
    # the optimizer's fusions took: what was just compared is the fused graph
    assert {"Attention", "SkipLayerNormalization", "EmbedLayerNormalization"} <= ops["model.onnx"]
    assert "QAttention" in ops["model-int8.onnx"] and "MatMulInteger" in ops["model-int8.onnx"]
    np.testing.assert_array_equal(onnx_out.indices, torch_out.indices)
    np.testing.assert_array_equal(onnx_out.indptr, torch_out.indptr)
    np.testing.assert_allclose(onnx_out.data, torch_out.data, rtol=1e-4, atol=1e-5)


def test_onnx_recipe_change_exports_afresh(bert_dir: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lsr.models import onnx as backend

    load_encoder(bert_dir, backend="onnx")
    monkeypatch.setattr(backend, "RECIPE", {**backend.RECIPE, "version": -1})
    load_encoder(bert_dir, backend="onnx")
    assert len(list((own_cache / "onnx").iterdir())) == 2
    # cached encodings are keyed by the recipe too, so an older graph's vectors are not reused
    from lsr.cache.vectors import encoding_settings

    assert encoding_settings(backend="onnx-int8") == ["onnx-int8-r-1"] and encoding_settings() == []


def test_length_groups() -> None:
    from lsr.models.onnx import length_groups

    # sorted longest first, as the encoder sends them: 512-token texts alone, short ones together within 10 %
    lengths = [512, 512, 300, 280, 200, 100, 95, 94, 10]
    assert length_groups(lengths) == [
        (0, 1, 512),
        (1, 2, 512),
        (2, 3, 300),
        (3, 4, 280),
        (4, 5, 200),
        (5, 8, 100),
        (8, 9, 10),
    ]
    assert length_groups([10, 20, 19], tokens=100) == [(0, 1, 10), (1, 3, 20)]  # a longer text starts a group
    assert length_groups([16] * 40, tokens=512) == [(0, 32, 16), (32, 40, 16)]


def test_onnx_inference_free_documents(bert_dir: Path, tmp_path: Path) -> None:
    documents = SpladeEncoder.from_pretrained(bert_dir, device="cpu")
    folder = tmp_path / "if"
    InferenceFreeEncoder(documents, np.ones(len(documents.vocabulary), dtype=np.float32)).save_pretrained(folder)
    save_idf(np.ones(len(documents.vocabulary), dtype=np.float32), documents.tokenizer, folder)
    torch_enc, onnx_enc = load_encoder(folder, device="cpu"), load_encoder(folder, backend="onnx")
    assert isinstance(onnx_enc, InferenceFreeEncoder)
    np.testing.assert_allclose(
        onnx_enc.encode_document(TEXTS).toarray(), torch_enc.encode_document(TEXTS).toarray(), rtol=1e-4, atol=1e-5
    )
    assert (onnx_enc.encode_query(TEXTS) != torch_enc.encode_query(TEXTS)).nnz == 0


def test_onnx_refuses_unknown_backend(bert_dir: Path) -> None:
    with pytest.raises(LsrError, match="unknown backend"):
        load_encoder(bert_dir, backend="tensorrt")


@pytest.mark.parametrize("pooling", ["max", "sum"])
def test_windows_equal_pooled_windows_by_hand(bert_dir: Path, pooling: str) -> None:
    encoder = SpladeEncoder.from_pretrained(bert_dir, device="cpu", max_length=16, stride=10, window_pooling=pooling)
    got = encoder.encode_document([LONG, TEXTS[-1]]).toarray()
    # by hand: the long text's tokens cut into 14-token windows starting every 10 tokens, each with [CLS] ... [SEP]
    tok = encoder.tokenizer
    ids = tok(LONG, add_special_tokens=False)["input_ids"]
    starts = range(0, max(len(ids) - 14, 0) + 10, 10)
    windows = [[tok.cls_token_id, *ids[s : s + 14], tok.sep_token_id] for s in starts if s < len(ids)]
    assert len(windows) > 3
    plain = SpladeEncoder.from_pretrained(bert_dir, device="cpu", max_length=16)
    with torch.inference_mode():
        rows = torch.cat([plain.weights(plain.collate([(w, 0)])) for w in windows])
    expected = rows.amax(0) if pooling == "max" else rows.sum(0)
    np.testing.assert_allclose(got[0], expected.numpy(), rtol=1e-5, atol=1e-6)
    # a text within one window is encoded as without windows (batched with other lengths: float rounding only)
    np.testing.assert_allclose(got[1], plain.encode_document([TEXTS[-1]]).toarray()[0], rtol=1e-6, atol=1e-7)


def test_windows_leave_short_texts_unchanged(bert_dir: Path) -> None:
    plain = SpladeEncoder.from_pretrained(bert_dir, device="cpu").encode_document(TEXTS, batch_size=4)
    windowed = SpladeEncoder.from_pretrained(bert_dir, device="cpu", stride=64).encode_document(TEXTS, batch_size=4)
    assert (plain != windowed).nnz == 0


def test_windows_with_onnx(bert_dir: Path) -> None:
    settings = {"max_length": 16, "stride": 12}
    torch_out = load_encoder(bert_dir, device="cpu", **settings).encode_document([LONG, *TEXTS])
    onnx_out = load_encoder(bert_dir, backend="onnx", **settings).encode_document([LONG, *TEXTS])
    np.testing.assert_allclose(onnx_out.toarray(), torch_out.toarray(), rtol=1e-4, atol=1e-5)


def test_window_stride_is_checked(bert_dir: Path) -> None:
    with pytest.raises(LsrError, match="stride must be between"):
        SpladeEncoder.from_pretrained(bert_dir, device="cpu", max_length=16, stride=15).encode_document([LONG])


def test_pool_windows() -> None:
    rows = sp.csr_matrix(np.array([[1.0, 0, 3], [2.0, 0, 1], [0, 5.0, 0]], dtype=np.float32))
    owners = np.array([0, 0, 2])
    np.testing.assert_array_equal(pool_windows(rows, owners, 3).toarray(), [[2, 0, 3], [0, 0, 0], [0, 5, 0]])
    np.testing.assert_array_equal(pool_windows(rows, owners, 3, "sum").toarray(), [[3, 0, 4], [0, 0, 0], [0, 5, 0]])
