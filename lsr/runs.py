"""TREC run files: ``qid Q0 docid rank score tag``, one line per retrieved document.

Runs are held as ``{query_id: {doc_id: score}}`` (the shape ir-measures and
pytrec_eval take). Written scores use Python's shortest round-trip repr, so a
run read back evaluates exactly as the run in memory did.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from lsr.data.textio import TextSource
from lsr.errors import DataFormatError
from lsr.fsutil import atomic_file

Run = dict[str, dict[str, float]]


def ranked(hits: Mapping[str, float]) -> list[tuple[str, float]]:
    """Hits in trec_eval's order: score descending, ties broken by document id descending."""
    return sorted(hits.items(), key=lambda item: (item[1], item[0]), reverse=True)


def truncate(run: Run, depth: int) -> Run:
    """The top ``depth`` hits of every query, in trec_eval's order (what ``trec_eval -M depth`` sees)."""
    return {qid: dict(ranked(hits)[:depth]) for qid, hits in run.items()}


def drop_identical_ids(run: Run) -> Run:
    """BEIR's convention: a document whose id equals the query id is never counted as retrieved."""
    return {qid: {did: s for did, s in hits.items() if did != qid} for qid, hits in run.items()}


def write_run(run: Run, path: str | Path, tag: str = "lsr") -> None:
    """Write a TREC run (ranks follow trec_eval's order), atomically."""
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"run tag must be one word, got {tag!r}")
    with atomic_file(path) as out:
        for qid, hits in run.items():
            for rank, (did, score) in enumerate(ranked(hits), start=1):
                out.write(f"{qid} Q0 {did} {rank} {score!r} {tag}\n")


def read_run(path: str | Path) -> Run:
    """Read a TREC run; wrong column counts, non-numeric scores and repeated documents are errors."""
    src = TextSource(Path(path))
    run: Run = {}
    for number, line in src.lines():
        cols = line.split()
        if not cols:
            continue
        if len(cols) != 6:
            raise DataFormatError(
                src.name, f"expected 6 columns (qid Q0 docid rank score tag), got {len(cols)}", number
            )
        qid, _, did, rank, score, _ = cols
        try:
            int(rank)
            value = float(score)
        except ValueError:
            raise DataFormatError(src.name, f"rank {rank!r} or score {score!r} is not a number", number) from None
        hits = run.setdefault(qid, {})
        if did in hits:
            raise DataFormatError(src.name, f"document {did!r} appears twice for query {qid!r}", number)
        hits[did] = value
    return run
