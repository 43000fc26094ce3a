"""Relevance judgements (qrels) in BEIR TSV and TREC formats.

BEIR writes ``query-id<TAB>corpus-id<TAB>score`` with a header line; TREC tools
write ``qid iteration docid relevance``. Both are read, detected per line by the
number of columns, and checked against the queries and documents they name.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection
from pathlib import Path

from lsr.data.textio import TextSource
from lsr.errors import DataFormatError, DataWarning
from lsr.fsutil import atomic_file

Qrels = dict[str, dict[str, int]]
"""``{query_id: {doc_id: relevance}}``, the shape ir-measures and pytrec_eval take."""


def _is_header(cols: list[str]) -> bool:
    """BEIR's first line, ``query-id corpus-id score`` (or a similar header), not a judgement."""
    return cols[0].lower() in {"query-id", "query_id", "qid"} or cols[-1].lower() in {"score", "relevance", "rel"}


def read_qrels(
    source: TextSource | str | Path,
    queries: Collection[str] | None = None,
    doc_ids: Collection[str] | None = None,
) -> Qrels:
    """Read a qrels file, checking each row as it goes.

    A query id missing from ``queries`` is an error (BEIR itself crashes on it);
    a document id missing from ``doc_ids`` is a warning, because BEIR tolerates it
    (such a judgement can never be retrieved, so it only lowers recall).
    """
    src = source if isinstance(source, TextSource) else TextSource(Path(source))
    qrels: Qrels = {}
    seen_at: dict[tuple[str, str], int] = {}
    unknown_docs: list[tuple[int, str]] = []
    first_row = True
    for number, line in src.lines():
        if not line.strip():
            continue
        cols = line.split("\t") if "\t" in line else line.split()
        cols = [c.strip() for c in cols]
        if len(cols) == 3:
            qid, did, rel = cols
        elif len(cols) == 4:
            qid, _, did, rel = cols
        else:
            raise DataFormatError(
                src.name, f"expected 3 columns (query-id, corpus-id, score) or 4 (TREC), got {len(cols)}", number
            )
        if first_row and _is_header(cols):
            first_row = False
            continue
        first_row = False
        try:
            relevance = int(rel)
        except ValueError:
            raise DataFormatError(src.name, f"relevance {rel!r} is not an integer", number) from None
        if not qid or not did:
            raise DataFormatError(src.name, "empty query or document id", number)
        if queries is not None and qid not in queries:
            raise DataFormatError(src.name, f"query id {qid!r} is not in the queries file", number)
        if doc_ids is not None and did not in doc_ids:
            unknown_docs.append((number, did))
        if (qid, did) in seen_at:
            warnings.warn(
                f"{src.name}:{number}: duplicate judgement for ({qid}, {did}); it replaces line {seen_at[qid, did]}",
                DataWarning,
                stacklevel=2,
            )
        seen_at[qid, did] = number
        qrels.setdefault(qid, {})[did] = relevance
    if unknown_docs:
        line, did = unknown_docs[0]
        warnings.warn(
            f"{src.name}: {len(unknown_docs)} judgement(s) name documents that are not in the corpus "
            f"(first at line {line}: {did!r}); they can never be retrieved",
            DataWarning,
            stacklevel=2,
        )
    return qrels


def write_qrels(qrels: Qrels, path: str | Path) -> None:
    """Write BEIR TSV qrels (with header), atomically."""
    with atomic_file(path) as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for qid, docs in qrels.items():
            for did, rel in docs.items():
                out.write(f"{qid}\t{did}\t{rel}\n")
