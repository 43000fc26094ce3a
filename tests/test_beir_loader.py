"""BEIR loading from folders, gzip and zips, and the errors bad input must give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import DOCS, QUERIES, make_beir, write_jsonl, zip_folder

from lsr.data.beir import BeirDataset
from lsr.errors import DataFormatError, DataWarning, LsrError


def test_folder_gzip_and_zip_give_the_same_dataset(tmp_path: Path) -> None:
    plain = BeirDataset(make_beir(tmp_path / "plain"))
    gz = BeirDataset(make_beir(tmp_path / "gz", compress=True))
    zipped = BeirDataset(zip_folder(make_beir(tmp_path / "scifact"), tmp_path / "scifact.zip"))
    assert gz.corpus_source.path.name == "corpus.jsonl.gz"
    assert zipped.name == "scifact"
    for data in (plain, gz, zipped):
        assert [d.id for d in data.corpus()] == [d["_id"] for d in DOCS]
        assert data.queries() == {q["_id"]: q["text"] for q in QUERIES}
        assert data.splits() == ["test"]
        assert data.qrels("test") == {"q1": {"d1": 2}, "q2": {"d1": 1}, "q3": {"d4": 1}}
    assert next(iter(plain.corpus())).title == "Inverted index"


def test_split_keeps_only_judged_queries(beir_dir: Path) -> None:
    queries, qrels = BeirDataset(beir_dir).split("test")
    assert set(queries) == set(qrels) == {"q1", "q2", "q3"}


def test_corpus_is_streamed(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "d")
    with open(folder / "corpus.jsonl", "a", encoding="utf-8") as handle:
        handle.write("{not json\n")
    docs = BeirDataset(folder).corpus()
    assert next(docs).id == "d1"  # the bad line at the end has not been read yet
    with pytest.raises(DataFormatError, match=r"corpus\.jsonl:6: invalid JSON"):
        list(docs)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"_id": "x", "title": "t"}', "missing field 'text'"),
        ('{"title": "t", "text": "x"}', "missing field '_id'"),
        ('{"_id": "", "text": "x"}', "field '_id' is empty"),
        ('{"_id": ["x"], "text": "x"}', "field '_id' must be a string"),
        ('{"_id": "x", "text": 3}', "field 'text' must be a string"),
        ('["_id", "x"]', "expected a JSON object"),
        ('{"_id": "d1", "text": "again"}', r"duplicate document id 'd1' \(first at line 1\)"),
    ],
)
def test_bad_corpus_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    folder = make_beir(tmp_path / "d")
    with open(folder / "corpus.jsonl", "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    with pytest.raises(DataFormatError, match=rf"corpus\.jsonl:6: {message}") as info:
        list(BeirDataset(folder).corpus())
    assert info.value.line == 6


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "d")
    with open(folder / "corpus.jsonl", "ab") as handle:
        handle.write(b'{"_id": "x", "text": "caf\xe9"}\n')
    with pytest.raises(DataFormatError, match=r"corpus\.jsonl:6: not valid UTF-8"):
        list(BeirDataset(folder).corpus())


def test_integer_ids_are_read_as_strings(tmp_path: Path) -> None:
    folder = make_beir(
        tmp_path / "d",
        docs=[{"_id": 7, "title": None, "text": "x"}],
        queries=[{"_id": 1, "text": "x"}],
        qrels="1\t7\t1\n",
    )
    data = BeirDataset(folder)
    assert [(d.id, d.title) for d in data.corpus()] == [("7", "")]
    assert data.qrels("test") == {"1": {"7": 1}}


def test_duplicate_query_id(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "d", queries=QUERIES + [{"_id": "q1", "text": "again"}])
    with pytest.raises(DataFormatError, match=r"queries\.jsonl:4: duplicate query id 'q1' \(first at line 1\)"):
        BeirDataset(folder).queries()


@pytest.mark.parametrize(
    ("qrels", "message"),
    [
        ("query-id\tcorpus-id\tscore\nq1\td1\n", r"test\.tsv:2: expected 3 columns"),
        ("q1\td1\thigh\n", r"test\.tsv:1: relevance 'high' is not an integer"),
        ("q1\td1\t1\nq1\td2\tx\n", r"test\.tsv:2: relevance 'x' is not an integer"),
        ("q1\td1\t1\nq9\td2\t1\n", r"test\.tsv:2: query id 'q9' is not in the queries file"),
    ],
)
def test_bad_qrels_name_file_and_line(tmp_path: Path, qrels: str, message: str) -> None:
    folder = make_beir(tmp_path / "d", qrels=qrels)
    with pytest.raises(DataFormatError, match=message):
        BeirDataset(folder).qrels("test")


def test_qrels_naming_unknown_documents_warn_like_beir_tolerates(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "d", qrels="q1\td1\t1\nq1\tnope\t1\nq2\tgone\t1\n")
    with pytest.warns(
        DataWarning,
        match=r"test\.tsv: 2 judgement\(s\) name documents that are not in the corpus "
        r"\(first at line 2: 'nope'\)",
    ):
        qrels = BeirDataset(folder).qrels("test")
    assert qrels["q1"] == {"d1": 1, "nope": 1}


def test_trec_format_qrels_and_duplicates(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "d", qrels="q1 0 d1 1\nq1 0 d1 2\n")
    with pytest.warns(DataWarning, match=r"test\.tsv:2: duplicate judgement for \(q1, d1\); it replaces line 1"):
        assert BeirDataset(folder).qrels("test") == {"q1": {"d1": 2}}


def test_unknown_split_lists_available(beir_dir: Path) -> None:
    with pytest.raises(LsrError, match=r"no qrels for split 'dev' \(available: test\)"):
        BeirDataset(beir_dir).qrels("dev")


def test_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(LsrError, match="not a BEIR dataset"):
        BeirDataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LsrError, match=r"missing corpus\.jsonl or corpus\.jsonl\.gz"):
        BeirDataset(tmp_path / "empty")


def test_zip_errors_name_the_member(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "z")
    write_jsonl(folder / "queries.jsonl", [{"_id": "q1"}])
    data = BeirDataset(zip_folder(folder, tmp_path / "z.zip"))
    with pytest.raises(DataFormatError, match=r"z\.zip!z/queries\.jsonl:1: missing field 'text'"):
        data.queries()


def test_real_scifact_counts(shared: Path) -> None:
    data = BeirDataset(shared / "data" / "beir" / "scifact")
    assert len(data.doc_ids()) == 5183
    queries, qrels = data.split("test")
    assert len(queries) == 300 and sum(map(len, qrels.values())) == 339
    assert (
        json.loads((shared / "data" / "beir" / "scifact" / "queries.jsonl").read_text().splitlines()[0])["_id"]
        in data.queries()
    )
