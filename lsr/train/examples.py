"""Training examples: a query, its teacher-scored candidates, its positives and its guarded hard negatives.

One JSON object per line (``.jsonl`` or ``.jsonl.gz``)::

    {"qid": "...", "query": "...", "positives": ["d1"], "negatives": ["d7", ...],
     "candidates": ["d1", "d7", ...], "scores": [0.93, 0.71, ...]}

``candidates``/``scores`` are the teacher ensemble's combined scores (best first),
the target of KL distillation; ``negatives`` are the candidates that may serve as
hard negatives for contrastive losses. The false-negative guard keeps a candidate
out of ``negatives`` when the ensemble scores it at least ``guard`` times the
weakest positive: such a document is more likely an unjudged relevant one than a
negative (the positive-aware mining of NV-Retriever).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from lsr.data.textio import TextSource
from lsr.errors import DataFormatError
from lsr.fsutil import atomic_file
from lsr.runs import Run, ranked
from lsr.train.teachers import ensemble_scores


@dataclass
class Example:
    """One training query (see the module docstring for the fields)."""

    qid: str
    query: str
    positives: list[str]
    negatives: list[str]
    candidates: list[str]
    scores: list[float]


def trimmed(example: Example, keep: int) -> Example:
    """``example`` with its best ``keep`` negatives, and only the candidates ranked above the last of them
    (plus the positives): the documents training can sample, with their teacher scores."""
    negatives = example.negatives[:keep]
    last = max((example.candidates.index(doc) for doc in negatives), default=-1)
    wanted = set(example.positives)
    rows = [
        (d, s)
        for i, (d, s) in enumerate(zip(example.candidates, example.scores, strict=True))
        if i <= last or d in wanted
    ]
    return Example(example.qid, example.query, example.positives, negatives, [d for d, _ in rows], [s for _, s in rows])


def build_examples(
    queries: Mapping[str, str],
    positives: Mapping[str, Sequence[str]],
    runs: Sequence[Run],
    weights: Sequence[float],
    pool: int = 30,
    guard: float = 0.95,
    keep: int = 30,
) -> Iterator[Example]:
    """Examples for the queries that have positives: candidates are every teacher's top ``pool`` plus the
    positives, scored by the ensemble; ``keep`` hard negatives are kept (see :func:`trimmed`)."""
    for qid, text in tqdm(queries.items(), desc="teacher ensemble", unit=" queries"):
        relevant = [doc for doc in positives.get(qid, ()) if doc]
        if not relevant:
            continue
        hits = [run.get(qid, {}) for run in runs]
        pooled = dict.fromkeys(relevant)
        for teacher_hits in hits:
            pooled.update(dict.fromkeys(doc for doc, _ in ranked(teacher_hits)[:pool] if doc != qid))
        candidates = list(pooled)
        scores = ensemble_scores(hits, candidates, weights)
        order = sorted(range(len(candidates)), key=lambda i: -scores[i])
        threshold = guard * min(scores[candidates.index(doc)] for doc in relevant)
        wanted = set(relevant)
        example = Example(
            qid=qid,
            query=text,
            positives=relevant,
            negatives=[candidates[i] for i in order if candidates[i] not in wanted and scores[i] < threshold],
            candidates=[candidates[i] for i in order],
            scores=[round(scores[i], 5) for i in order],
        )
        yield trimmed(example, keep)


def write_examples(examples: Iterator[Example], path: str | Path) -> int:
    """Write examples atomically (gzip when the name ends in ``.gz``); returns how many were written."""
    count = 0
    with atomic_file(path, "wb") as raw:
        out = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if str(path).endswith(".gz") else raw
        for example in examples:
            out.write((json.dumps(asdict(example), ensure_ascii=False) + "\n").encode("utf-8"))
            count += 1
        if out is not raw:
            out.close()
    return count


_FIELDS = {"qid": str, "query": str, "positives": list, "negatives": list, "candidates": list, "scores": list}


def read_examples(path: str | Path) -> list[Example]:
    """Read and validate an examples file; a bad line is an error naming the file, the line and the field."""
    src = TextSource(Path(path))
    examples = []
    for number, obj in src.json_objects():
        for name, kind in _FIELDS.items():
            if not isinstance(obj.get(name), kind):
                raise DataFormatError(src.name, f"field '{name}' missing or not a {kind.__name__}", number)
        if not obj["positives"]:
            raise DataFormatError(src.name, "field 'positives' is empty", number)
        if len(obj["candidates"]) != len(obj["scores"]):
            raise DataFormatError(src.name, "fields 'candidates' and 'scores' differ in length", number)
        examples.append(Example(**{name: obj[name] for name in _FIELDS}))
    if not examples:
        raise DataFormatError(src.name, "no examples")
    return examples
