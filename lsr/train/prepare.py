"""``lsr train prepare``: turn a corpus (and its train qrels, if any) into a self-contained training folder.

The folder is itself a BEIR dataset, so training and dev evaluation read it with
the ordinary loader and it can be copied to a GPU machine on its own:

* ``corpus.jsonl.gz``: the corpus;
* ``examples.jsonl.gz``: one example per training query (:mod:`lsr.train.examples`);
* ``queries.jsonl`` and ``qrels/dev.tsv``: queries held out from the train split
  (``holdout``) for model selection, so no test label is ever used;
* ``qrels/pseudo.tsv``: pseudo-queries held out from training (``pseudo_holdout``), each judged relevant to
  the document it was cut from: a label-free check of what adaptation did to the corpus's own queries;
* ``teachers/*.trec``: each teacher's run over the training queries, so the ensemble can be re-weighted or
  extended later (``--teachers run=FOLDER/teachers/bm25.trec@0.7,...``) without running a teacher again;
* ``prepare.json``: how it was made.

Training queries are the split's judged queries (positives: relevance > 0) and/or
pseudo-queries cut from the corpus (:mod:`lsr.train.pseudo`), whose positive is the
document they came from: the label-free route for adapting to a new corpus.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lsr.data.beir import BeirDataset
from lsr.data.qrels import write_qrels
from lsr.errors import LsrError
from lsr.fsutil import atomic_dir
from lsr.indexing.cache import cache_root
from lsr.runs import Run, write_run
from lsr.train.data import EXAMPLES_FILE
from lsr.train.examples import build_examples, write_examples
from lsr.train.pseudo import PSEUDO_SPLIT, pseudo_queries
from lsr.train.teachers import TEACHERS_DIR, Teacher, teacher_runs


def _labelled(dataset: BeirDataset, split: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    queries, qrels = dataset.split(split)
    positives = {qid: [doc for doc, rel in judged.items() if rel > 0] for qid, judged in qrels.items()}
    return {qid: queries[qid] for qid in positives if positives[qid]}, positives


def _sample(ids: Sequence[str], count: int, seed: int) -> list[str]:
    return sorted(random.Random(seed).sample(sorted(ids), min(count, len(ids))))


def _write_teacher_runs(teachers: Sequence[Teacher], runs: Sequence[Run], folder: Path) -> list[str]:
    """Each teacher's run as ``folder/<file_name>`` (numbered when two teachers share a name); the names written."""
    names = [t.file_name for t in teachers]
    if len(set(names)) < len(names):
        names = [f"{i}-{name}" for i, name in enumerate(names)]
    for name, run in zip(names, runs, strict=True):
        write_run(run, folder / name, tag="teacher")
    return [f"{TEACHERS_DIR}/{name}" for name in names]


def prepare(
    dataset_path: str | Path,
    output: str | Path,
    teachers: Sequence[Teacher],
    split: str | None = None,
    holdout: int = 0,
    pseudo_per_document: int = 0,
    pseudo_holdout: int = 0,
    max_queries: int | None = None,
    depth: int = 100,
    pool: int = 30,
    guard: float = 0.95,
    keep: int = 30,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    pseudo_max_share: float = 1.0,
    rerank: int | None = None,
) -> dict[str, Any]:
    """Build the training folder ``output``; returns the summary also written to ``prepare.json``.

    ``pseudo_holdout`` pseudo-queries (at most a tenth of them, so training keeps the bulk) are held out;
    ``pseudo_max_share`` is :func:`~lsr.train.pseudo.pseudo_queries`' ``max_share``; ``rerank`` is
    :func:`~lsr.train.teachers.teacher_runs`'.
    """
    if split is None and pseudo_per_document <= 0:
        raise LsrError("nothing to train on: give a labelled --split, --pseudo-queries, or both")
    dataset = BeirDataset(dataset_path)
    queries: dict[str, str] = {}
    positives: dict[str, list[str]] = {}
    dev_qrels: dict[str, dict[str, int]] = {}
    held_pseudo: dict[str, dict[str, int]] = {}
    held_texts: dict[str, str] = {}
    if split is not None:
        queries, positives = _labelled(dataset, split)
        if holdout:
            held = _sample(list(queries), holdout, seed)
            judged = dataset.qrels(split)
            dev_qrels = {qid: judged[qid] for qid in held}
            for qid in held:
                del queries[qid]
    if pseudo_per_document > 0:
        pseudo = list(pseudo_queries(dataset.corpus(), pseudo_per_document, seed=seed, max_share=pseudo_max_share))
        held = set(_sample([q.qid for q in pseudo], min(pseudo_holdout, len(pseudo) // 10), seed))
        for query in pseudo:
            if query.qid in held:
                held_texts[query.qid] = query.text
                held_pseudo[query.qid] = {query.source: 1}
            else:
                queries[query.qid] = query.text
                positives[query.qid] = [query.source]
    if max_queries is not None and len(queries) > max_queries:
        queries = {qid: queries[qid] for qid in _sample(list(queries), max_queries, seed)}
    runs = teacher_runs(dataset, queries, teachers, cache_root(cache_dir), depth, rerank)
    summary: dict[str, Any] = {
        "dataset": str(dataset_path),
        "split": split,
        "holdout": len(dev_qrels),
        "pseudo_per_document": pseudo_per_document,
        "pseudo_holdout": len(held_pseudo),
        "pseudo_max_share": pseudo_max_share,
        "teachers": [{"name": t.name, "weight": t.weight} for t in teachers],
        "depth": depth,
        "rerank": rerank,
        "pool": pool,
        "guard": guard,
        "keep": keep,
        "seed": seed,
    }
    with atomic_dir(output) as tmp:
        examples = build_examples(queries, positives, runs, [t.weight for t in teachers], pool, guard, keep)
        summary["examples"] = write_examples(examples, tmp / EXAMPLES_FILE)
        summary["teacher_runs"] = _write_teacher_runs(teachers, runs, tmp / TEACHERS_DIR)
        with gzip.open(tmp / "corpus.jsonl.gz", "wt", encoding="utf-8") as out:
            for doc in dataset.corpus():
                out.write(json.dumps({"_id": doc.id, "title": doc.title, "text": doc.text}, ensure_ascii=False) + "\n")
        all_queries = {**dataset.queries(), **held_texts}
        with open(tmp / "queries.jsonl", "w", encoding="utf-8") as out:
            for qid in [*dev_qrels, *held_pseudo]:
                out.write(json.dumps({"_id": qid, "text": all_queries[qid]}, ensure_ascii=False) + "\n")
        if dev_qrels:
            write_qrels(dev_qrels, tmp / "qrels" / "dev.tsv")
        if held_pseudo:
            write_qrels(held_pseudo, tmp / "qrels" / f"{PSEUDO_SPLIT}.tsv")
        (tmp / "prepare.json").write_text(json.dumps(summary, indent=2))
    return summary
