"""How hard a prepared folder's pseudo-queries are: the share whose source document BM25 ranks first, and their
median length in words.

Usage: ``python eval/train/pseudo_top1.py FOLDER...`` (folders from ``lsr train prepare --teachers bm25``, whose
``teachers/bm25.trec`` holds BM25's run of every training query). Why: a pseudo-query that repeats its one-line
document is found at rank 1 by any lexical teacher and teaches the student nothing about partial matches
(``--pseudo-max-share``, eval/RESULTS.md "Issue 23, session 14").
"""

from __future__ import annotations

import gzip
import json
import statistics
import sys


def first_ranked(run: str) -> dict[str, str]:
    """Each query's rank-1 document in a TREC run."""
    first = {}
    with open(run, encoding="utf-8") as handle:
        for line in handle:
            qid, _, doc, rank, *_ = line.split()
            if rank == "1":
                first[qid] = doc
    return first


def main(folders: list[str]) -> None:
    for folder in folders:
        first = first_ranked(f"{folder}/teachers/bm25.trec")
        with gzip.open(f"{folder}/examples.jsonl.gz", "rt", encoding="utf-8") as handle:
            words = [len(json.loads(line)["query"].split()) for line in handle]
        top1 = sum(doc == qid.split("#")[0] for qid, doc in first.items()) / len(first)
        median = statistics.median(words)
        print(f"{folder}: {len(first):,} queries, source ranked first by BM25 {top1:.3f}, median words {median:g}")


if __name__ == "__main__":
    main(sys.argv[1:])
