"""``lsr index --vectors A --vectors B``: one index from vectors folders encoded on different machines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lsr.eval.demo import demo_dataset
from lsr.indexing.sparse.format import SparseIndex
from tiny_models import tiny_bert
from typer.testing import CliRunner

from lsr.cli import app
from lsr.data.beir import corpus_source
from lsr.encode.corpus import encode_corpus
from lsr.models import SpladeEncoder


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo corpus encoded whole, and in two halves as two machines would.

    The split falls on a shard boundary so that every document is encoded in the same batch as in the whole run:
    a padded batch of another size changes the last bit of a few fp16 weights, which is encoder noise, not a merge
    defect.
    """
    root = tmp_path_factory.mktemp("merge")
    model = tiny_bert(root / "bert")
    encoder = SpladeEncoder.from_pretrained(model, device="cpu")
    lines = (demo_dataset() / "corpus.jsonl").read_text().splitlines(keepends=True)
    out: dict[str, Path] = {}
    for name, chunk in (("whole", lines), ("a", lines[:24]), ("b", lines[24:]), ("dup", lines[20:30])):
        (root / f"{name}.jsonl").write_text("".join(chunk))
        out[name] = root / f"{name}.vec"
        encode_corpus(encoder, str(model), corpus_source(root / f"{name}.jsonl"), out[name], shard_size=8)
    out["root"] = root
    return out


def _index(args: list[str]) -> None:
    result = CliRunner().invoke(app, ["index", *args])
    assert result.exit_code == 0, result.output


def test_merged_index_equals_the_whole_corpus_index(parts: dict[str, Path]) -> None:
    root = parts["root"]
    _index(["--vectors", str(parts["whole"]), "--output", str(root / "whole.idx")])
    _index(["--vectors", str(parts["a"]), "--vectors", str(parts["b"]), "--output", str(root / "merged.idx")])
    whole, merged = SparseIndex.open(root / "whole.idx"), SparseIndex.open(root / "merged.idx")
    assert merged.num_docs == whole.num_docs == 40
    assert [merged.doc_id(i) for i in range(40)] == [whole.doc_id(i) for i in range(40)]
    np.testing.assert_array_equal(merged.to_csr().toarray(), whole.to_csr().toarray())
    assert json.loads((root / "merged.idx" / "meta.json").read_text())["num_docs"] == 40


def test_a_document_in_two_folders_is_an_error(parts: dict[str, Path]) -> None:
    args = ["index", "--vectors", str(parts["a"]), "--vectors", str(parts["dup"]), "--output", str(parts["root"] / "x")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert "also in an earlier vectors folder" in f"{result.output} {result.exception}"
