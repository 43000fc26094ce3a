"""sentence-transformers model folders in and out, checked with the real library (issue 22 items 1-3 and 7).

Tiny random BERT models are built in each layout by sentence-transformers itself (SPLADE, an inference-free Router,
dense), saved, loaded in lsr and compared vector by vector with sentence-transformers' own outputs; folders lsr saves
go the other way; the shipped model loads there too; and a sentence-transformers folder indexed and searched through
``lsr index`` / ``lsr search`` ranks a corpus as sentence-transformers' own similarity does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from tiny_models import tiny_bert
from typer.testing import CliRunner

from lsr.cli import app
from lsr.defaults import DEFAULT_SPARSE
from lsr.errors import LsrError
from lsr.models import DenseEncoder, InferenceFreeEncoder, SpladeEncoder, load_encoder
from lsr.models.card import CARD_MARK
from lsr.models.st_layout import ST_REQUIREMENT

st = pytest.importorskip("sentence_transformers")
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling  # noqa: E402
from sentence_transformers.sparse_encoder.modules import (  # noqa: E402
    Router,
    SparseStaticEmbedding,
    SpladePooling,
    Transformer,
)

TEXTS = [
    "Sparse retrieval expands documents with related terms.",
    "BM25 parameters k1 and b",
    "graph neural networks for collaborative filtering",
    "an inverted index answers a query quickly",
]


def test_the_installed_sentence_transformers_is_in_the_tested_range() -> None:
    from packaging.specifiers import SpecifierSet

    assert st.__version__ in SpecifierSet(ST_REQUIREMENT)


# -- building models with sentence-transformers itself ---------------------------------------------------------------
def _mlm(mlm: Path) -> Transformer:
    return Transformer(str(mlm), transformer_task="fill-mask")


def st_splade(mlm: Path, folder: Path, pooling: str = "max") -> Path:
    st.SparseEncoder(modules=[_mlm(mlm), SpladePooling(pooling)]).save(str(folder))
    return folder


def st_inference_free(mlm: Path, folder: Path) -> Path:
    """OpenSearch's v3 shape: static IDF queries, SPLADE documents with the log1p_relu activation."""
    documents = _mlm(mlm)
    weights = torch.rand(len(documents.tokenizer), generator=torch.Generator().manual_seed(1)) * 3
    router = Router.for_query_document(
        query_modules=[SparseStaticEmbedding(tokenizer=documents.tokenizer, weight=weights, frozen=True)],
        document_modules=[documents, SpladePooling("max", activation_function="log1p_relu")],
    )
    st.SparseEncoder(modules=[router], similarity_fn_name="dot").save(str(folder))
    return folder


def st_dense(mlm: Path, folder: Path) -> Path:
    encoder = Transformer(str(mlm))
    st.SentenceTransformer(modules=[encoder, Pooling(encoder.get_embedding_dimension(), "mean"), Normalize()]).save(
        str(folder)
    )
    return folder


@pytest.fixture(scope="module")
def mlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("bert") / "mlm")


@pytest.fixture(scope="module")
def st_folders(mlm: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("st")
    return {
        "splade-max": st_splade(mlm, root / "splade-max"),
        "splade-sum": st_splade(mlm, root / "splade-sum", "sum"),
        "inference-free": st_inference_free(mlm, root / "inference-free"),
        "dense": st_dense(mlm, root / "dense"),
    }


def theirs(model: st.SparseEncoder, method: str, texts: list[str]) -> np.ndarray:
    return getattr(model, method)(texts, convert_to_tensor=True).to_dense().float().numpy()


def assert_same_vectors(ours: sp.csr_matrix, expected: np.ndarray) -> None:
    """Same non-zeros, weights within float rounding."""
    got = ours.toarray()
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got != 0, expected != 0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def assert_both_load_the_same(folder: Path, kind: type) -> None:
    ours = load_encoder(folder, device="cpu")
    assert isinstance(ours, kind)
    reference = st.SparseEncoder(str(folder), device="cpu")
    for method in ("encode_query", "encode_document"):
        assert_same_vectors(getattr(ours, method)(TEXTS), theirs(reference, method, TEXTS))


# -- sentence-transformers folders in lsr -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("layout", "kind"),
    [("splade-max", SpladeEncoder), ("splade-sum", SpladeEncoder), ("inference-free", InferenceFreeEncoder)],
)
def test_sentence_transformers_sparse_folders_load_in_lsr_with_the_same_vectors(
    st_folders: dict[str, Path], layout: str, kind: type
) -> None:
    assert_both_load_the_same(st_folders[layout], kind)


def test_the_inference_free_router_takes_its_idf_from_the_query_module(st_folders: dict[str, Path]) -> None:
    encoder = load_encoder(st_folders["inference-free"], device="cpu")
    assert isinstance(encoder, InferenceFreeEncoder)
    assert encoder.document_encoder.config.activation == "log1p_relu"
    reference = st.SparseEncoder(str(st_folders["inference-free"]), device="cpu")
    np.testing.assert_array_equal(encoder.idf, reference[0].sub_modules["query"][0].weight.detach().numpy())


def test_a_sentence_transformers_dense_folder_loads_as_dense(st_folders: dict[str, Path]) -> None:
    ours = load_encoder(st_folders["dense"], device="cpu")
    assert isinstance(ours, DenseEncoder)
    reference = st.SentenceTransformer(str(st_folders["dense"]), device="cpu")
    np.testing.assert_allclose(ours.encode_document(TEXTS), reference.encode_document(TEXTS), rtol=1e-5, atol=1e-6)


def _edited(source: Path, folder: Path, file: str, change: dict | list) -> Path:
    shutil.copytree(source, folder)
    path = folder / file
    current = json.loads(path.read_text())
    path.write_text(json.dumps(change if isinstance(change, list) else {**current, **change}))
    return folder


def test_layouts_lsr_cannot_honour_are_refused_naming_what_was_found(
    st_folders: dict[str, Path], tmp_path: Path
) -> None:
    splade = st_folders["splade-max"]
    modules = json.loads((splade / "modules.json").read_text())
    extra = {
        "idx": 2,
        "name": "2",
        "path": "2_Sae",
        "type": "sentence_transformers.sparse_encoder.modules.SparseAutoEncoder",
    }
    cases = {
        "SparseAutoEncoder": _edited(splade, tmp_path / "sae", "modules.json", [*modules, extra]),
        "max or sum": _edited(splade, tmp_path / "mean", "1_SpladePooling/config.json", {"pooling_strategy": "mean"}),
        "max pooling only": _edited(
            splade,
            tmp_path / "sum-log1p",
            "1_SpladePooling/config.json",
            {"pooling_strategy": "sum", "activation_function": "log1p_relu"},
        ),
        "prompts": _edited(
            splade, tmp_path / "prompt", "config_sentence_transformers.json", {"prompts": {"query": "q: "}}
        ),
        "rank by dot": _edited(
            splade, tmp_path / "cos", "config_sentence_transformers.json", {"similarity_fn_name": "cosine"}
        ),
    }
    for message, folder in cases.items():
        with pytest.raises(LsrError, match=message):
            load_encoder(folder, device="cpu")


# -- lsr folders in sentence-transformers -----------------------------------------------------------------------------
def test_lsr_sparse_folders_load_in_sentence_transformers_with_the_same_vectors(mlm: Path, tmp_path: Path) -> None:
    splade = SpladeEncoder.from_pretrained(mlm, device="cpu", top_k=40)
    assert splade.special_ids  # lsr zeroes special tokens' dimensions; the saved folder makes the library agree
    splade.save_pretrained(tmp_path / "splade")
    idf = np.random.default_rng(0).random(len(splade.vocabulary)).astype(np.float32) * 3
    InferenceFreeEncoder(splade, idf).save_pretrained(tmp_path / "inference-free")
    assert_both_load_the_same(tmp_path / "splade", SpladeEncoder)
    assert_both_load_the_same(tmp_path / "inference-free", InferenceFreeEncoder)
    for name, config in (("splade", "modules.json"), ("inference-free", "router_config.json")):
        # the type strings lsr writes are the ones the installed sentence-transformers writes itself
        st.SparseEncoder(str(tmp_path / name), device="cpu").save(str(tmp_path / f"{name}-again"))
        written, again = (json.loads((tmp_path / n / config).read_text()) for n in (name, f"{name}-again"))
        assert written == again


def test_the_shipped_model_loads_in_sentence_transformers_with_the_same_vectors() -> None:
    assert_both_load_the_same(DEFAULT_SPARSE, InferenceFreeEncoder)


# -- lsr index / lsr search over a folder sentence-transformers saved ------------------------------------------------
def lsr(*args: str | Path) -> None:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)


@pytest.fixture(scope="module")
def sparser_folders(mlm: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The layouts over the tiny model with a negative output bias: ~60 of 600 terms per text, as in a trained SPLADE,
    so scores differ by more than the index's float16 rounding often enough for the ranking to be a real check."""
    import transformers

    root = tmp_path_factory.mktemp("sparser")
    model = transformers.AutoModelForMaskedLM.from_pretrained(mlm)
    with torch.no_grad():
        model.cls.predictions.bias.uniform_(-2.0, 0.0, generator=torch.Generator().manual_seed(0))
    shutil.copytree(mlm, root / "mlm")
    model.save_pretrained(root / "mlm")
    return {
        "splade-max": st_splade(root / "mlm", root / "splade"),
        "inference-free": st_inference_free(mlm, root / "if"),
    }


@pytest.mark.parametrize("layout", ["splade-max", "inference-free"])
def test_a_sentence_transformers_folder_indexes_and_searches_with_its_own_top10(
    sparser_folders: dict[str, Path], layout: str, tmp_path: Path
) -> None:
    """``lsr index`` / ``lsr search`` rank as sentence-transformers' similarity does, up to the index's float16 weights:
    at every rank, lsr's document scores (by sentence-transformers) what that rank's document scores, give or take
    2 x 2^-11 of the score (float16 rounding of non-negative weights moves a dot product by at most 2^-11 of it)."""
    from lsr.eval.demo import demo_dataset

    from lsr.data.beir import corpus_source, read_corpus
    from lsr.encode.corpus import document_text
    from lsr.runs import ranked, read_run

    folder, data = sparser_folders[layout], demo_dataset()
    lsr("index", "--model", folder, "--corpus", data, "--output", tmp_path / "index", "--device", "cpu",
        "--cache-dir", tmp_path / "cache")  # fmt: skip
    lsr("search", "--index", tmp_path / "index", "--queries", data / "queries.jsonl", "--k", 10,
        "--output", tmp_path / "run.trec", "--encode-device", "cpu")  # fmt: skip
    run = read_run(tmp_path / "run.trec")
    docs = list(read_corpus(corpus_source(data)))
    position = {doc.id: i for i, doc in enumerate(docs)}
    queries = [json.loads(line) for line in (data / "queries.jsonl").read_text().splitlines() if line.strip()]
    model = st.SparseEncoder(str(folder), device="cpu")
    scores = model.similarity(
        model.encode_query([q["text"] for q in queries], convert_to_tensor=True),
        model.encode_document([document_text(d) for d in docs], convert_to_tensor=True),
    ).numpy()
    exact = 0
    for query, row in zip(queries, scores, strict=True):
        best = np.sort(row)[::-1][:10]
        got = [position[doc] for doc, _ in ranked(run[query["_id"]])]
        assert len(got) == 10
        np.testing.assert_allclose(row[got], best, rtol=2 * 2**-11, err_msg=query["_id"])
        exact += got == list(np.argsort(-row, kind="stable")[:10])
    assert exact >= len(queries) // 2  # most rankings are identical, not only within rounding


# -- model cards and lsr push -----------------------------------------------------------------------------------------
def test_save_writes_a_model_card_and_keeps_one_the_user_wrote(mlm: Path, tmp_path: Path) -> None:
    encoder = SpladeEncoder.from_pretrained(mlm, device="cpu")
    encoder.config.extra.update(
        {"training": {"recipe": "lsr train run", "steps": 4000}, "results": {"SciFact test": {"nDCG@10": 0.68}}}
    )
    folder = tmp_path / "model"
    encoder.save_pretrained(folder)
    card = (folder / "README.md").read_text()
    assert CARD_MARK in card and "steps: 4000" in card and "| SciFact test | 0.68 |" in card
    assert "SparseEncoder(" in card and "load_encoder(" in card
    (folder / "README.md").write_text("# my own card\n")
    encoder.save_pretrained(folder)
    assert (folder / "README.md").read_text() == "# my own card\n"


@pytest.mark.parametrize(
    "env",
    [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_unused"}],
    ids=["offline", "unreachable"],
)
def test_push_fails_at_once_with_one_line_when_the_hub_is_out_of_reach(
    st_folders: dict[str, Path], env: dict[str, str]
) -> None:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "lsr", "push", str(st_folders["splade-max"]), "--repo-id", "someone/model"],
        env={**os.environ, "HF_HUB_OFFLINE": "0", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "someone/model" in lines[0], lines
    assert time.perf_counter() - started < 60


V5_TYPES = {  # the type strings of sentence-transformers 5.0-5.3, as naver/splade-v3 and OpenSearch's v3 models ship
    "Transformer": "sentence_transformers.sparse_encoder.models.MLMTransformer",
    "SpladePooling": "sentence_transformers.sparse_encoder.models.SpladePooling",
    "SparseStaticEmbedding": "sentence_transformers.sparse_encoder.models.SparseStaticEmbedding",
    "Router": "sentence_transformers.models.Router",
}


def _as_v5(folder: Path, config: str) -> None:
    """Rewrite a folder's module types as sentence-transformers 5.0-5.3 wrote them (MLMTransformer, models.*)."""
    path = folder / config
    text = path.read_text()
    for name, old in V5_TYPES.items():
        text = text.replace(f'"{_current_type(name)}"', f'"{old}"')
    path.write_text(text)
    for module in [folder, *folder.glob("document_0_*")]:
        if (module / "sentence_bert_config.json").is_file():
            (module / "sentence_bert_config.json").write_text('{"max_seq_length": 128, "do_lower_case": false}')


def _current_type(name: str) -> str:
    from lsr.models import st_layout

    return {"Transformer": st_layout.TRANSFORMER, "SpladePooling": st_layout.SPLADE_POOLING,
            "SparseStaticEmbedding": st_layout.STATIC, "Router": st_layout.ROUTER}[name]  # fmt: skip


def test_naver_and_opensearch_layouts_of_sentence_transformers_5_load(
    st_folders: dict[str, Path], tmp_path: Path
) -> None:
    """naver's SPLADE layout (MLMTransformer + SpladePooling), and OpenSearch's (a Router whose IDF is ``idf.json``)."""
    from lsr.models.idf import save_idf

    naver = shutil.copytree(st_folders["splade-max"], tmp_path / "naver")
    _as_v5(naver, "modules.json")
    assert "MLMTransformer" in (naver / "modules.json").read_text()
    assert_both_load_the_same(naver, SpladeEncoder)

    opensearch = shutil.copytree(st_folders["inference-free"], tmp_path / "opensearch")
    _as_v5(opensearch, "modules.json")
    _as_v5(opensearch, "router_config.json")
    assert "models.Router" in (opensearch / "modules.json").read_text()
    assert_both_load_the_same(opensearch, InferenceFreeEncoder)
    reference = st.SparseEncoder(str(opensearch), device="cpu")
    weights = reference[0].sub_modules["query"][0].weight.detach().numpy()
    save_idf(weights, reference[0].sub_modules["query"][0].tokenizer, opensearch)
    (opensearch / "query_0_SparseStaticEmbedding" / "model.safetensors").unlink()  # the table only in idf.json
    ours = load_encoder(opensearch, device="cpu")
    for method in ("encode_query", "encode_document"):
        assert_same_vectors(getattr(ours, method)(TEXTS), theirs(reference, method, TEXTS))
