"""The classic SMART test collections (Cranfield, CISI) converted to BEIR format.

SMART files are records opened by ``.I <id>`` and split into fields by markers
such as ``.T`` (title), ``.A`` (authors), ``.B`` (bibliography) and ``.W`` (text).
Each collection's qrels have their own shape, and Cranfield's qrels number the
queries by position in ``cran.qry`` rather than by their ``.I`` labels; the
presets below encode those facts so the converted datasets evaluate correctly.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lsr.data.qrels import Qrels, write_qrels
from lsr.data.textio import TextSource, first_existing
from lsr.errors import DataFormatError, DataWarning, LsrError
from lsr.fsutil import atomic_dir

_MARKER = re.compile(r"^\.([A-Z])(?:\s+(.*))?$")


@dataclass
class SmartRecord:
    """One ``.I`` record: its id, the line it starts on, and its fields' whitespace-normalised text."""

    id: str
    line: int
    fields: dict[str, str]


def read_smart(src: TextSource) -> Iterator[SmartRecord]:
    """Parse a SMART file; text outside a field, a missing id or a repeated id is an error."""
    seen: dict[str, int] = {}
    record: SmartRecord | None = None
    parts: dict[str, list[str]] = {}
    current: str | None = None

    def finish() -> SmartRecord | None:
        if record is not None:
            record.fields = {k: " ".join(" ".join(v).split()) for k, v in parts.items()}
        return record

    for number, line in src.lines():
        match = _MARKER.match(line.strip())
        if match and match.group(1) == "I":
            done = finish()
            if done is not None:
                yield done
            ident = (match.group(2) or "").strip()
            if not ident:
                raise DataFormatError(src.name, "'.I' without an id", number)
            ident = str(int(ident)) if ident.isdigit() else ident
            if ident in seen:
                raise DataFormatError(src.name, f"duplicate id {ident!r} (first at line {seen[ident]})", number)
            seen[ident] = number
            record, parts, current = SmartRecord(ident, number, {}), {}, None
        elif match:
            if record is None:
                raise DataFormatError(src.name, f"field '.{match.group(1)}' before the first '.I'", number)
            current = match.group(1)
            parts.setdefault(current, []).append(match.group(2) or "")
        elif line.strip():
            if current is None:
                raise DataFormatError(src.name, "text outside any field (expected a '.X' marker first)", number)
            parts[current].append(line)
    done = finish()
    if done is not None:
        yield done


def _cranfield_relevance(cols: list[str]) -> int:
    # Cranfield codes 1 (complete answer) .. 4 (minimum interest); -1 means of no interest.
    code = int(cols[2])
    if code == -1:
        return 0
    if not 1 <= code <= 4:
        raise ValueError(f"relevance code {code} is not one of -1, 1, 2, 3, 4")
    return 5 - code


def _cisi_relevance(cols: list[str]) -> int:
    # CISI.REL lists only relevant pairs: "qid docid 0 0.000000".
    if len(cols) != 4:
        raise ValueError(f"expected 4 columns, got {len(cols)}")
    return 1


@dataclass(frozen=True)
class SmartCollection:
    """Where a collection's files are and how its queries and judgements are numbered and graded."""

    name: str
    docs: tuple[str, ...]
    queries: tuple[str, ...]
    qrels: tuple[str, ...]
    queries_by_position: bool
    relevance: Callable[[list[str]], int]


COLLECTIONS = {
    "cranfield": SmartCollection(
        "cranfield", ("cran.all.1400", "cran.all.1400.gz"), ("cran.qry",), ("cranqrel",), True, _cranfield_relevance
    ),
    "cisi": SmartCollection("cisi", ("CISI.ALL", "CISI.ALL.gz"), ("CISI.QRY",), ("CISI.REL",), False, _cisi_relevance),
}


def detect_collection(folder: Path) -> SmartCollection:
    """The preset whose document file is in ``folder``."""
    for collection in COLLECTIONS.values():
        if first_existing(folder, list(collection.docs)):
            return collection
    raise LsrError(f"{folder}: no known SMART collection here (looked for {', '.join(COLLECTIONS)})")


def _require(folder: Path, names: tuple[str, ...]) -> TextSource:
    found = first_existing(folder, list(names))
    if found is None:
        raise LsrError(f"{folder}: missing {' or '.join(names)}")
    return TextSource(found)


def _read_qrels(src: TextSource, collection: SmartCollection, queries: dict[str, str], docs: set[str]) -> Qrels:
    qrels: Qrels = {}
    unknown_docs = 0
    for number, line in src.lines():
        cols = line.split()
        if not cols:
            continue
        if len(cols) < 3:
            raise DataFormatError(src.name, f"expected at least 3 columns, got {len(cols)}", number)
        try:
            relevance = collection.relevance(cols)
            qid, did = str(int(cols[0])), str(int(cols[1]))
        except ValueError as exc:
            raise DataFormatError(src.name, str(exc), number) from None
        if qid not in queries:
            raise DataFormatError(src.name, f"query {qid!r} is not in the queries file", number)
        if did not in docs:
            unknown_docs += 1
        qrels.setdefault(qid, {})[did] = relevance
    if unknown_docs:
        warnings.warn(f"{src.name}: {unknown_docs} judgement(s) name unknown documents", DataWarning, stacklevel=2)
    return qrels


def convert_smart(source: str | Path, output: str | Path, collection: str = "auto") -> dict[str, int]:
    """Convert a SMART collection folder into a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv``).

    Returns counts of documents, queries and judgements. The output appears only when complete.
    """
    folder = Path(source)
    preset = detect_collection(folder) if collection == "auto" else COLLECTIONS[collection]
    docs_src = _require(folder, preset.docs)
    with atomic_dir(output) as tmp:
        doc_ids: set[str] = set()
        with open(tmp / "corpus.jsonl", "w", encoding="utf-8") as out:
            for rec in read_smart(docs_src):
                doc_ids.add(rec.id)
                metadata = {k: rec.fields[m] for k, m in (("authors", "A"), ("bibliography", "B")) if rec.fields.get(m)}
                row = {"_id": rec.id, "title": rec.fields.get("T", ""), "text": rec.fields.get("W", "")}
                out.write(json.dumps(row | ({"metadata": metadata} if metadata else {}), ensure_ascii=False) + "\n")
        queries: dict[str, str] = {}
        queries_src = _require(folder, preset.queries)
        for position, rec in enumerate(read_smart(queries_src), start=1):
            text = rec.fields.get("W") or rec.fields.get("T", "")
            if not text:
                raise DataFormatError(queries_src.name, f"query {rec.id} has no text", rec.line)
            queries[str(position) if preset.queries_by_position else rec.id] = text
        with open(tmp / "queries.jsonl", "w", encoding="utf-8") as out:
            for qid, text in queries.items():
                out.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
        qrels = _read_qrels(_require(folder, preset.qrels), preset, queries, doc_ids)
        (tmp / "qrels").mkdir()
        write_qrels(qrels, tmp / "qrels" / "test.tsv")
    return {"documents": len(doc_ids), "queries": len(queries), "judgements": sum(map(len, qrels.values()))}
