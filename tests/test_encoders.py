"""Encoders against straightforward reference implementations, save/load round trips, and loading errors."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from tiny_models import corpus_texts, tiny_bert, tiny_mistral
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from lsr.errors import LsrError, OfflineError
from lsr.models import InferenceFreeEncoder, MistralSpladeEncoder, SpladeEncoder, load_encoder
from lsr.models.idf import bm25_idf, document_frequencies
from lsr.models.sparse import splade_pool

TEXTS = corpus_texts()[:12] + ["", "BM25 BM25 BM25"]


def reference_splade(folder: Path, texts: list[str], pooling: str = "max", max_length: int = 256) -> np.ndarray:
    """SPLADE the obvious way: full logits, activation, masked pooling, special tokens zeroed."""
    model = AutoModelForMaskedLM.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        batch = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        act = torch.log1p(torch.relu(model(**batch).logits)) * batch["attention_mask"].unsqueeze(-1)
        out = act.amax(1) if pooling == "max" else act.sum(1)
    out[:, tok.all_special_ids] = 0
    return out.numpy()


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("bert") / "model")


@pytest.fixture(scope="module")
def mistral_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_mistral(tmp_path_factory.mktemp("mistral") / "model")


@pytest.mark.parametrize("pooling", ["max", "sum"])
@pytest.mark.parametrize("chunk", [7, 8192])
def test_splade_equals_reference(bert_dir: Path, pooling: str, chunk: int) -> None:
    encoder = SpladeEncoder.from_pretrained(bert_dir, device="cpu", pooling=pooling, vocab_chunk=chunk)
    ours = encoder.encode_document(TEXTS, batch_size=5)
    assert isinstance(ours, sp.csr_matrix) and ours.dtype == np.float32 and ours.shape == (len(TEXTS), 600)
    np.testing.assert_allclose(ours.toarray(), reference_splade(bert_dir, TEXTS, pooling), rtol=1e-5, atol=1e-5)
    assert ours.nnz > 0 and ours.has_sorted_indices
    assert encoder.encode_query(TEXTS[:3]).shape == (3, 600)


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "padded"])
def test_splade_pool_layouts_and_chunks(packed: bool) -> None:
    hidden, weight, bias = torch.randn(2, 5, 4), torch.randn(10, 4), torch.randn(10)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    act = torch.log1p(torch.relu(hidden @ weight.T + bias)).masked_fill(~mask.bool().unsqueeze(-1), 0)
    for pooling, expected in (("max", act.amax(1)), ("sum", act.sum(1))):
        got = splade_pool(hidden, weight, bias, mask, pooling, chunk=3, packed=packed)
        assert torch.allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
def test_max_pool_gradients_equal_autograd_of_the_logits(with_bias: bool) -> None:
    """Training's max pooling sends gradients only to each (text, term)'s winning position: the same gradients as
    differentiating the whole logits tensor, for the hidden states, the projection and its bias."""
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 6, 5, dtype=torch.float64, generator=generator)
    weight = torch.randn(11, 5, dtype=torch.float64, generator=generator)
    bias = torch.randn(11, dtype=torch.float64, generator=generator) if with_bias else None
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 0, 0]])
    upstream = torch.randn(3, 11, dtype=torch.float64, generator=generator)
    leaves = [t.clone().requires_grad_() for t in (hidden, weight) + ((bias,) if with_bias else ())]

    def gradients(pool: Callable[..., torch.Tensor]) -> list[torch.Tensor]:
        inputs = [t.detach().clone().requires_grad_() for t in leaves]
        pooled = pool(inputs[0], inputs[1], inputs[2] if with_bias else None)
        (pooled * upstream).sum().backward()
        return [pooled.detach()] + [t.grad for t in inputs]

    def whole_logits(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        logits = h @ w.T + (0 if b is None else b)
        return torch.log1p(torch.relu(logits)).masked_fill(~mask.bool().unsqueeze(-1), 0).amax(1)

    ours = gradients(lambda h, w, b: splade_pool(h, w, b, mask, "max", chunk=4))
    reference = gradients(whole_logits)
    assert int((ours[0] > 0).sum()) > 5  # enough active terms for the gradients to mean something
    for got, expected in zip(ours, reference, strict=True):
        torch.testing.assert_close(got, expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_encoding_matches_cpu(bert_dir: Path) -> None:
    cpu = SpladeEncoder.from_pretrained(bert_dir, device="cpu").encode_document(TEXTS)
    gpu = SpladeEncoder.from_pretrained(bert_dir, device="cuda", dtype="fp32").encode_document(TEXTS)
    np.testing.assert_allclose(gpu.toarray(), cpu.toarray(), rtol=1e-4, atol=1e-4)


def test_top_k_and_special_tokens(bert_dir: Path) -> None:
    encoder = SpladeEncoder.from_pretrained(bert_dir, device="cpu", top_k=5)
    out = encoder.encode_document(TEXTS)
    assert max(np.diff(out.indptr)) == 5
    full = reference_splade(bert_dir, TEXTS)
    for row in range(len(TEXTS)):
        top = np.sort(full[row])[-5:]
        np.testing.assert_allclose(np.sort(out[row].data), top, rtol=1e-5)
    special = encoder.special_ids
    assert out[:, special].nnz == 0


def test_save_and_load_round_trip(bert_dir: Path, tmp_path: Path) -> None:
    encoder = SpladeEncoder.from_pretrained(bert_dir, device="cpu", top_k=50, max_length=64)
    encoder.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "config.json").is_file() and (tmp_path / "saved" / "lsr_config.json").is_file()
    # the saved folder is a standard masked LM again (projection restored)
    assert AutoModelForMaskedLM.from_pretrained(tmp_path / "saved").get_output_embeddings().weight.shape[0] == 600
    again = load_encoder(tmp_path / "saved", device="cpu")
    assert isinstance(again, SpladeEncoder) and again.config.top_k == 50 and again.config.max_length == 64
    assert (again.encode_document(TEXTS) != encoder.encode_document(TEXTS)).nnz == 0


def test_inference_free_queries(bert_dir: Path, tmp_path: Path) -> None:
    documents = SpladeEncoder.from_pretrained(bert_dir, device="cpu")
    df, n = document_frequencies(documents.tokenizer, corpus_texts())
    idf = bm25_idf(df, n)
    encoder = InferenceFreeEncoder(documents, idf)
    queries = encoder.encode_query(["BM25 ranking, BM25 ranking!", ""])
    tok = documents.tokenizer
    ids = sorted(
        set(tok("BM25 ranking, BM25 ranking!", add_special_tokens=False)["input_ids"]) - set(tok.all_special_ids)
    )
    assert list(queries[0].indices) == ids  # each distinct token once, special tokens ([UNK] here) dropped
    np.testing.assert_allclose(queries[0].data, idf[ids])
    assert queries[1].nnz == 0
    # a batch is each query encoded alone, in order, empty ones included (the batch is made unique in one sort)
    batch = [*TEXTS, "", "BM25 ranking, BM25 ranking!", "ranking " * 400, ""]
    together = encoder.encode_query(batch)
    alone = sp.vstack([encoder.encode_query([text]) for text in batch], format="csr")
    assert together.shape == alone.shape and (together != alone).nnz == 0
    assert np.array_equal(together.indptr, alone.indptr) and np.array_equal(together.indices, alone.indices)
    # a token in every document has the smallest IDF; one in no document the largest
    assert idf.argmin() in set(np.flatnonzero(df == df.max())) and idf.max() == pytest.approx(np.log1p(n / 0.5 + 1))
    encoder.save_pretrained(tmp_path / "if")
    again = load_encoder(tmp_path / "if", device="cpu")
    assert isinstance(again, InferenceFreeEncoder)
    assert (again.encode_query(["BM25 ranking"]) != encoder.encode_query(["BM25 ranking"])).nnz == 0
    assert (again.encode_document(TEXTS[:2]) != documents.encode_document(TEXTS[:2])).nnz == 0
    started = time.perf_counter()
    for _ in range(200):
        encoder.encode_query(["how do search engines find documents quickly"])
    assert (time.perf_counter() - started) / 200 < 0.01  # loose sanity bound; the benchmark measures microseconds


def reference_echo(folder: Path, text: str) -> np.ndarray:
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    prefix = tok("Passage: ", add_special_tokens=False)["input_ids"]
    sep = tok("\nPassage again: ", add_special_tokens=False)["input_ids"]
    ids = tok(text, add_special_tokens=False)["input_ids"]
    first = [tok.bos_token_id] + prefix + ids + sep
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([first + ids])).logits[0, len(first) :]
    out = torch.log1p(torch.relu(logits)).amax(0)
    out[tok.all_special_ids] = 0
    return out.numpy()


def test_mistral_splade_echo_equals_reference(mistral_dir: Path) -> None:
    encoder = MistralSpladeEncoder.from_pretrained(mistral_dir, device="cpu")
    texts = TEXTS[:4]
    ours = encoder.encode_document(texts, batch_size=3).toarray()  # padded batches of different lengths
    for row, text in enumerate(texts):
        np.testing.assert_allclose(ours[row], reference_echo(mistral_dir, text), rtol=1e-4, atol=1e-5)
    assert isinstance(load_encoder(mistral_dir, device="cpu"), MistralSpladeEncoder)


def test_mistral_splade_lora_trains_and_round_trips(mistral_dir: Path, tmp_path: Path) -> None:
    base = MistralSpladeEncoder.from_pretrained(mistral_dir, device="cpu")
    before = base.encode_document(TEXTS[:2]).toarray()
    base.enable_lora(r=4, alpha=8, dropout=0.0)
    trainable = [p for p in base.module.parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n, p in base.module.named_parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    base.module.train()
    batch = base.collate(base.tokenize(TEXTS[:2]))
    for _ in range(3):  # push the representation's mass up: any gradient step must change the adapters
        loss = -base.module(**batch).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    base.module.eval()
    after = base.encode_document(TEXTS[:2]).toarray()
    assert not np.allclose(before, after)
    base.save_pretrained(tmp_path / "lora")
    assert (tmp_path / "lora" / "adapter_config.json").is_file()
    assert not (tmp_path / "lora" / "model.safetensors").exists()  # adapters only
    again = load_encoder(tmp_path / "lora", device="cpu")
    np.testing.assert_allclose(again.encode_document(TEXTS[:2]).toarray(), after, rtol=1e-5, atol=1e-6)


def test_splade_tiny_encodes_scifact_like_reference(shared: Path) -> None:
    from lsr.data.beir import BeirDataset

    folder = shared / "models" / "splade-tiny"
    docs = [d for _, d in zip(range(40), BeirDataset(shared / "data" / "beir" / "scifact").corpus(), strict=False)]
    texts = [f"{d.title} {d.text}" for d in docs]
    ours = SpladeEncoder.from_pretrained(folder, device="cpu").encode_document(texts, batch_size=16)
    np.testing.assert_allclose(ours.toarray(), reference_splade(folder, texts), rtol=1e-5, atol=1e-5)
    assert 50 < ours.nnz / len(texts) < 2000


def test_loading_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(LsrError, match="no such model folder; .* does not exist either"):
        load_encoder(tmp_path / "missing" / "deeper" / "path")
    (tmp_path / "models" / "splade-tiny").mkdir(parents=True)
    with pytest.raises(LsrError, match="splade-tinyy: no such model folder; .*models holds splade-tiny"):
        load_encoder(tmp_path / "models" / "splade-tinyy")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(LsrError, match="is a file, not a model folder"):
        load_encoder(tmp_path / "notes.txt")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(OfflineError, match="cannot fetch naver/splade-v3 .* pass the folder instead"):
        load_encoder("naver/splade-v3")
    assert time.monotonic() - started < 10
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text('{"architectures": ["BertModel"]}')
    with pytest.raises(LsrError, match="cannot tell which encoder"):
        load_encoder(tmp_path / "odd")


def test_dense_default_is_embedded() -> None:
    encoder = load_encoder("all-minilm-l6-v2", device="cpu")
    vectors = encoder.encode_document(["sparse retrieval", "learned sparse retrieval", "matrix factorisation"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_document_batch_size_follows_the_encoders_device(bert_dir: Path) -> None:
    """Every encoder says where it encodes documents, so a corpus encoding without a given batch size takes 32 on a
    CPU and 256 on a GPU."""
    from lsr.models.base import document_batch_size

    splade = SpladeEncoder.from_pretrained(bert_dir, device="cpu")
    inference_free = InferenceFreeEncoder(splade, np.ones(len(splade.vocabulary), dtype=np.float32))
    dense = load_encoder("all-minilm-l6-v2", device="cpu")
    for encoder in (splade, inference_free, dense):
        assert encoder.device.type == "cpu" and document_batch_size(encoder) == 32
    if torch.cuda.is_available():
        assert document_batch_size(load_encoder("all-minilm-l6-v2", device="cuda")) == 256
