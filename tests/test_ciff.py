"""CIFF export and import of lsr indexes, and the Seismic JSONL export: round trips, a third-party reader,
and damaged files that fail with the message, field and offset at fault."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from lsr.indexing.sparse.build import build_index
from lsr.indexing.sparse.ciff import CiffError, export_ciff, import_ciff, read_ciff
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.retriever import SparseSearcher
from lsr.indexing.sparse.seismic_jsonl import export_seismic_jsonl

DOCS, TERMS = 400, 300


def impacts(rows: int, seed: int) -> sp.csr_matrix:
    """Random integer impacts 1..400 with a few empty documents and terms."""
    matrix = sp.random(rows, TERMS, density=0.05, random_state=seed, format="csr", dtype=np.float32)
    matrix.data = np.rint(matrix.data * 399 + 1)
    return matrix


@pytest.fixture
def index(tmp_path: Path) -> Path:
    """An lsr index whose weights are impacts / 100, as an import writes them."""
    weights = impacts(DOCS, 1) / 100
    ids = [f"doc-{i}-é" for i in range(DOCS)]
    build_index(lambda: [(ids, sp.csr_matrix(weights, dtype=np.float32))], tmp_path / "index", "some-model", "splade")
    return tmp_path / "index"


def test_round_trip_keeps_postings_and_results(index: Path, tmp_path: Path) -> None:
    counts = export_ciff(index, tmp_path / "index.ciff")
    import_ciff(tmp_path / "index.ciff", tmp_path / "back")
    before, after = SparseIndex.open(index), SparseIndex.open(tmp_path / "back")
    assert counts["documents"] == DOCS and counts["postings"] == before.meta.nnz
    assert (after.meta.model, after.meta.model_kind, after.meta.vocab_size) == ("some-model", "splade", TERMS)
    for name in ("offsets", "docs", "codes", "forward_indptr", "forward_terms", "forward_codes", "codebook"):
        assert np.array_equal(getattr(before, name), getattr(after, name), equal_nan=name == "codebook"), name
    assert before.doc_ids(np.arange(DOCS)) == after.doc_ids(np.arange(DOCS))
    queries = sp.csr_matrix(impacts(20, 2) / 100, dtype=np.float32)
    for one, two in zip(
        SparseSearcher(before).search(queries, 10), SparseSearcher(after).search(queries, 10), strict=True
    ):
        assert one.as_dict() == two.as_dict()


def test_tokens_name_the_terms_and_map_back(index: Path, tmp_path: Path) -> None:
    vocabulary = [f"tok{t:03d}" for t in range(TERMS)]
    export_ciff(index, tmp_path / "tokens.ciff", vocabulary=vocabulary)
    contents = read_ciff(tmp_path / "tokens.ciff", vocabulary)
    assert contents.term_names == sorted(contents.term_names)  # PISA bisects its lexicon
    assert np.array_equal(contents.impacts.toarray(), np.rint(SparseIndex.open(index).to_csr().toarray() * 100))
    with pytest.raises(CiffError, match="not a term id"):
        read_ciff(tmp_path / "tokens.ciff")


def test_a_third_party_reader_reads_it(index: Path, tmp_path: Path) -> None:
    reader = pytest.importorskip("ciff_toolkit.read", reason="ciff-toolkit is not installed")
    export_ciff(index, tmp_path / "index.ciff")
    expected = SparseIndex.open(index).to_csr().tocsc()
    with reader.CiffReader(tmp_path / "index.ciff") as ciff:
        header = ciff.read_header()
        lists = list(ciff.read_postings_lists())
        docs = list(ciff.read_documents())
    assert header.num_docs == DOCS and header.num_postings_lists == len(lists)
    assert [d.collection_docid for d in docs] == [f"doc-{i}-é" for i in range(DOCS)]
    for postings in lists:
        column = expected[:, int(postings.term)]
        assert np.array_equal(np.cumsum([p.docid for p in postings.postings]), column.indices)
        assert np.array_equal([p.tf for p in postings.postings], np.rint(column.data * 100))


def _damaged(tmp_path: Path, index: Path, cut: int | None = None, flip: int | None = None) -> Path:
    export_ciff(index, tmp_path / "good.ciff")
    data = bytearray((tmp_path / "good.ciff").read_bytes())
    if flip is not None:
        data[flip] = 0xFF
    (tmp_path / "bad.ciff").write_bytes(bytes(data[:cut]))
    return tmp_path / "bad.ciff"


def test_a_truncated_file_names_the_message_and_offset(index: Path, tmp_path: Path) -> None:
    size = len(export_ciff(index, tmp_path / "x.ciff") and (tmp_path / "x.ciff").read_bytes())
    with pytest.raises(CiffError, match=r"DocRecord \d+ at byte \d+"):
        read_ciff(_damaged(tmp_path, index, cut=size - 3))
    with pytest.raises(CiffError, match=r"PostingsList \d+ at byte \d+"):
        read_ciff(_damaged(tmp_path, index, cut=size // 2))


def test_a_damaged_posting_names_the_problem(index: Path, tmp_path: Path) -> None:
    path = _damaged(tmp_path, index)
    buf = path.read_bytes()
    start = buf.index(b"\x22", 200)  # a Posting inside some postings list: 0x22 len 0x08 gap 0x10 tf
    damaged = bytearray(buf)
    damaged[start + 1] = 0x7F  # its length now runs past its message
    path.write_bytes(bytes(damaged))
    with pytest.raises(CiffError, match=r"PostingsList \d+ at byte \d+: .*(past the end|docid|wire|tf)"):
        read_ciff(path)
    with pytest.raises(CiffError, match="fewer messages|past the end"):
        (tmp_path / "empty.ciff").write_bytes(b"")
        read_ciff(tmp_path / "empty.ciff")


def test_seismic_jsonl_holds_the_same_impacts(index: Path, tmp_path: Path) -> None:
    count = export_seismic_jsonl(index, tmp_path / "docs.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "docs.jsonl").read_text(encoding="utf-8").splitlines()]
    expected = SparseIndex.open(index).to_csr()
    assert count == len(lines) == DOCS
    for row, line in enumerate(lines):
        assert line["id"] == f"doc-{row}-é" and line["content"] == ""
        start, end = expected.indptr[row], expected.indptr[row + 1]
        pairs = zip(expected.indices[start:end], expected.data[start:end], strict=True)
        truth = {str(t): int(round(w * 100)) for t, w in pairs}
        assert line["vector"] == truth
    seismic = pytest.importorskip("seismic", reason="pyseismic-lsr is not installed")
    built = seismic.SeismicIndex.build(str(tmp_path / "docs.jsonl"), n_postings=1000, centroid_fraction=0.2)
    assert built.len == DOCS


def test_the_command_line_exports_and_imports(index: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lsr.cli import app

    runner = CliRunner()
    out = tmp_path / "out.ciff"
    result = runner.invoke(app, ["index", "export", "--index", str(index), "--output", str(out), "--terms", "ids"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["index", "import", "--ciff", str(out), "--output", str(tmp_path / "x"), "--terms", "ids"]
    )
    assert result.exit_code == 0, result.output
    assert np.array_equal(SparseIndex.open(tmp_path / "x").codes, SparseIndex.open(index).codes)
    jsonl = tmp_path / "docs.jsonl"
    args = ["index", "export", "--index", str(index), "--output", str(jsonl), "--format", "seismic-jsonl"]
    assert runner.invoke(app, [*args, "--terms", "ids"]).exit_code == 0
    (tmp_path / "notes.txt").write_text("a user's file\n")
    refused = runner.invoke(app, ["index", "export", "--index", str(index), "--output", str(tmp_path / "notes.txt")])
    assert refused.exit_code != 0 and (tmp_path / "notes.txt").read_text() == "a user's file\n"
