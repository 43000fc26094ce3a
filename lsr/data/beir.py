"""BEIR datasets from a folder or an unextracted BEIR zip.

Layout (as BEIR ships it): ``corpus.jsonl`` (or ``.jsonl.gz``) with ``_id``,
``title``, ``text``; ``queries.jsonl`` with ``_id``, ``text``; ``qrels/<split>.tsv``.
The corpus is streamed and validated on the fly (one pass, only ids kept), so a
corpus larger than memory can be indexed straight from the file or the zip.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsr.data.qrels import Qrels, read_qrels
from lsr.data.textio import TextSource, first_existing
from lsr.errors import DataFormatError, LsrError

CORPUS_FILES = ["corpus.jsonl", "corpus.jsonl.gz"]
QUERIES_FILES = ["queries.jsonl", "queries.jsonl.gz"]


@dataclass(frozen=True)
class Document:
    """One corpus entry. ``title`` is empty when the corpus has none."""

    id: str
    title: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)


def _string_id(src: TextSource, number: int, obj: dict[str, Any]) -> str:
    if "_id" not in obj:
        raise DataFormatError(src.name, "missing field '_id'", number)
    value = obj["_id"]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataFormatError(src.name, f"field '_id' must be a string, got {type(value).__name__}", number)
    ident = str(value).strip()
    if not ident:
        raise DataFormatError(src.name, "field '_id' is empty", number)
    return ident


def _string_field(src: TextSource, number: int, obj: dict[str, Any], name: str, required: bool) -> str:
    value = obj.get(name)
    if value is None:
        if required:
            raise DataFormatError(src.name, f"missing field '{name}'", number)
        return ""
    if not isinstance(value, str):
        raise DataFormatError(src.name, f"field '{name}' must be a string, got {type(value).__name__}", number)
    return value


def read_corpus(src: TextSource, seen: dict[str, int] | None = None) -> Iterator[Document]:
    """Stream and validate a BEIR corpus file; ``seen`` collects each id's line (duplicates are errors)."""
    first_line = {} if seen is None else seen
    for number, obj in src.json_objects():
        ident = _string_id(src, number, obj)
        if ident in first_line:
            message = f"duplicate document id {ident!r} (first at line {first_line[ident]})"
            raise DataFormatError(src.name, message, number)
        first_line[ident] = number
        metadata = obj.get("metadata")
        yield Document(
            id=ident,
            title=_string_field(src, number, obj, "title", required=False),
            text=_string_field(src, number, obj, "text", required=True),
            metadata=metadata if isinstance(metadata, dict) else {},
        )


def read_queries(src: TextSource) -> dict[str, str]:
    """A BEIR queries file as ``{query_id: text}``; duplicate ids and missing text are errors."""
    queries: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, obj in src.json_objects():
        ident = _string_id(src, number, obj)
        if ident in queries:
            raise DataFormatError(src.name, f"duplicate query id {ident!r} (first at line {lines[ident]})", number)
        queries[ident] = _string_field(src, number, obj, "text", required=True)
        lines[ident] = number
    return queries


def corpus_source(path: str | Path) -> TextSource:
    """The corpus of a BEIR folder or zip, or a corpus ``.jsonl``/``.jsonl.gz`` file given directly."""
    path = Path(path)
    if path.is_file() and path.name.endswith((".jsonl", ".jsonl.gz")):
        return TextSource(path)
    return BeirDataset(path).corpus_source


def judged_queries(queries: dict[str, str], qrels_file: Path) -> dict[str, str]:
    """The queries ``qrels_file`` judges, in their file order: one split of a queries file that holds several
    (`lsr search --split`), as `lsr eval run --split` evaluates it."""
    if not qrels_file.is_file():
        splits = ", ".join(sorted(p.stem for p in qrels_file.parent.glob("*.tsv"))) or "none"
        raise LsrError(f"{qrels_file}: no such qrels file (the splits beside the queries: {splits})")
    judged = read_qrels(TextSource(qrels_file), queries=queries)
    return {qid: text for qid, text in queries.items() if qid in judged}


class BeirDataset:
    """A BEIR dataset read lazily from a folder or a BEIR ``.zip`` (no extraction needed)."""

    def __init__(self, source: str | Path) -> None:
        self.path = Path(source)
        if self.path.is_dir():
            self._corpus = self._local(CORPUS_FILES)
            self._queries = self._local(QUERIES_FILES)
            self._qrels = {p.stem: TextSource(p) for p in sorted((self.path / "qrels").glob("*.tsv"))}
        elif self.path.is_file() and zipfile.is_zipfile(self.path):
            with zipfile.ZipFile(self.path) as archive:
                members = [m for m in archive.namelist() if not m.endswith("/")]
            self._corpus = self._member(members, CORPUS_FILES)
            self._queries = self._member(members, QUERIES_FILES)
            qrels = [m for m in members if m.rsplit("/", 2)[-2:-1] == ["qrels"] and m.endswith(".tsv")]
            self._qrels = {Path(m).stem: TextSource(self.path, m) for m in sorted(qrels)}
        else:
            raise LsrError(f"{self.path}: not a BEIR dataset (expected a folder or a .zip with corpus.jsonl)")
        self._doc_ids: frozenset[str] | None = None
        self._query_texts: dict[str, str] | None = None

    def _local(self, names: list[str]) -> TextSource:
        found = first_existing(self.path, names)
        if found is None:
            raise LsrError(f"{self.path}: missing {' or '.join(names)}")
        return TextSource(found)

    def _member(self, members: list[str], names: list[str]) -> TextSource:
        for name in names:
            for member in members:
                if member == name or (member.endswith("/" + name) and member.count("/") == 1):
                    return TextSource(self.path, member)
        raise LsrError(f"{self.path}: the archive has no {' or '.join(names)}")

    @property
    def name(self) -> str:
        """The dataset's name: its folder name, or the zip's name without ``.zip``."""
        return self.path.stem if self.path.is_file() else self.path.name

    @property
    def corpus_source(self) -> TextSource:
        return self._corpus

    def splits(self) -> list[str]:
        """The qrels splits present (e.g. ``train``, ``dev``, ``test``)."""
        return list(self._qrels)

    def corpus(self) -> Iterator[Document]:
        """Stream the corpus, validating each line; duplicate ids are an error naming both lines."""
        seen: dict[str, int] = {}
        yield from read_corpus(self._corpus, seen)
        self._doc_ids = frozenset(seen)

    def doc_ids(self) -> frozenset[str]:
        """All document ids; one validating pass over the corpus the first time, remembered afterwards."""
        if self._doc_ids is None:
            for _ in self.corpus():
                pass
        assert self._doc_ids is not None
        return self._doc_ids

    def queries(self) -> dict[str, str]:
        """All queries, ``{query_id: text}``; duplicate ids and missing text are errors. Read once."""
        if self._query_texts is None:
            self._query_texts = read_queries(self._queries)
        return self._query_texts

    def qrels_source(self, split: str) -> TextSource:
        """The qrels file of ``split``; an unknown split is an error listing the available ones."""
        if split not in self._qrels:
            available = ", ".join(self._qrels) or "none"
            raise LsrError(f"{self.path}: no qrels for split {split!r} (available: {available})")
        return self._qrels[split]

    def qrels(self, split: str, check_docs: bool = True) -> Qrels:
        """The judgements of ``split``, checked against the queries (and, if ``check_docs``, the corpus ids)."""
        source = self.qrels_source(split)
        doc_ids = self.doc_ids() if check_docs else None
        return read_qrels(source, queries=self.queries(), doc_ids=doc_ids)

    def split(self, split: str, check_docs: bool = True) -> tuple[dict[str, str], Qrels]:
        """The queries judged in ``split`` (as BEIR evaluates them) and the split's qrels."""
        qrels = self.qrels(split, check_docs=check_docs)
        queries = self.queries()
        return {qid: queries[qid] for qid in qrels}, qrels
