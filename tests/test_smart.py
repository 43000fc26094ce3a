"""SMART (Cranfield, CISI) parsing and conversion to BEIR."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from lsr.data.beir import BeirDataset
from lsr.data.smart import convert_smart, read_smart
from lsr.data.textio import TextSource
from lsr.errors import DataFormatError, LsrError

CRAN_DOCS = """.I 1
.T
wing in a
slipstream .
.A
brenckman,m.
.B
j. ae. scs. 25, 1958, 324.
.W
experimental study of a wing
in a propeller slipstream .
.I 2
.T
shear flow past a plate .
.W
simple shear flow past a flat plate .
"""
# Cranfield labels its queries 001, 002, 004 ... but cranqrel numbers them 1, 2, 3 by position.
CRAN_QUERIES = ".I 001\n.W\nwing slipstream lift\n.I 004\n.W\nshear flow\nover a plate\n"
CRAN_QRELS = "1 1 2\n1 2 -1\n2 2 1\n"


def make_cranfield(folder: Path) -> Path:
    folder.mkdir()
    with gzip.open(folder / "cran.all.1400.gz", "wt") as handle:
        handle.write(CRAN_DOCS)
    (folder / "cran.qry").write_text(CRAN_QUERIES)
    (folder / "cranqrel").write_text(CRAN_QRELS)
    return folder


def test_read_smart_fields(tmp_path: Path) -> None:
    path = tmp_path / "docs"
    path.write_text(CRAN_DOCS)
    records = list(read_smart(TextSource(path)))
    assert [r.id for r in records] == ["1", "2"]
    assert records[0].fields == {
        "T": "wing in a slipstream .",
        "A": "brenckman,m.",
        "B": "j. ae. scs. 25, 1958, 324.",
        "W": "experimental study of a wing in a propeller slipstream .",
    }
    assert records[1].line == 12


def test_cranfield_conversion(tmp_path: Path) -> None:
    out = tmp_path / "beir"
    counts = convert_smart(make_cranfield(tmp_path / "cran"), out)
    assert counts == {"documents": 2, "queries": 2, "judgements": 3}
    data = BeirDataset(out)
    docs = list(data.corpus())
    assert docs[0].title == "wing in a slipstream ." and docs[0].metadata["authors"] == "brenckman,m."
    assert data.queries() == {"1": "wing slipstream lift", "2": "shear flow over a plate"}
    # codes 1 (complete answer) .. 4 (minimum interest) become gains 4 .. 1; -1 (no interest) becomes 0
    assert data.qrels("test") == {"1": {"1": 3, "2": 0}, "2": {"2": 4}}


def test_cisi_conversion(tmp_path: Path) -> None:
    src = tmp_path / "cisi"
    src.mkdir()
    (src / "CISI.ALL").write_text(".I 1\n.T\nDewey\n.A\nComaromi\n.W\nhistory of the classification\n.X\n1 5 1\n")
    (src / "CISI.QRY").write_text(".I 1\n.W\nclassification history?\n.I 2\n.T\nonly a title\n")
    (src / "CISI.REL").write_text("     1     1\t0\t0.000000\n")
    assert convert_smart(src, tmp_path / "out", "cisi") == {"documents": 1, "queries": 2, "judgements": 1}
    data = BeirDataset(tmp_path / "out")
    assert data.queries() == {"1": "classification history?", "2": "only a title"}
    assert data.qrels("test") == {"1": {"1": 1}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stray text\n.I 1\n.W\nx\n", r"docs:1: text outside any field"),
        (".W\nx\n", r"docs:1: field '.W' before the first '.I'"),
        (".I 1\n.W\nx\n.I 1\n.W\ny\n", r"docs:4: duplicate id '1' \(first at line 1\)"),
        (".I\n.W\nx\n", r"docs:1: '.I' without an id"),
    ],
)
def test_smart_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "docs"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=message):
        list(read_smart(TextSource(path)))


def test_bad_qrels_leave_no_output(tmp_path: Path) -> None:
    src = make_cranfield(tmp_path / "cran")
    (src / "cranqrel").write_text("1 1 2\n3 1 1\n")
    with pytest.raises(DataFormatError, match=r"cranqrel:2: query '3' is not in the queries file"):
        convert_smart(src, tmp_path / "out")
    (src / "cranqrel").write_text("1 1 7\n")
    with pytest.raises(DataFormatError, match=r"cranqrel:1: relevance code 7"):
        convert_smart(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == [src]  # no temporary folder left behind either


def test_unknown_collection(tmp_path: Path) -> None:
    with pytest.raises(LsrError, match="no known SMART collection"):
        convert_smart(tmp_path, tmp_path / "out")


@pytest.mark.parametrize(
    ("name", "counts"),
    [
        # cranqrel holds 1,837 judgements (`wc -l` says 1,836: the last line has no newline)
        ("cranfield", {"documents": 1400, "queries": 225, "judgements": 1837}),
        ("cisi", {"documents": 1460, "queries": 112, "judgements": 3114}),
    ],
)
def test_real_collections(shared: Path, tmp_path: Path, name: str, counts: dict[str, int]) -> None:
    assert convert_smart(shared / "data" / "classic" / name, tmp_path / name) == counts
    assert len(BeirDataset(tmp_path / name).qrels("test")) == (225 if name == "cranfield" else 76)
