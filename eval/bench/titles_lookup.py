"""Seconds to find the titles of three hits spread over the packages corpus: streamed, then from the cache's table.

Usage: ``python eval/bench/titles_lookup.py CORPUS CACHE`` (CORPUS: ../shared/data/beir/packages; CACHE: an empty
folder, so the first table lookup includes building it). Why: ``lsr query`` prints titles beside hits, and the
streamed lookup reads the corpus up to its last hit (:mod:`lsr.cache.titles`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from lsr.cache.titles import titles
from lsr.data.beir import corpus_source, read_corpus
from lsr.data.titles import titles as streamed


def main(corpus: str, cache: str) -> None:
    positions = (5, 400_000, 1_038_000)  # a hit near the start, the middle and the end
    ids = [doc.id for i, doc in enumerate(read_corpus(corpus_source(corpus))) if i in positions]
    calls: list[tuple[str, Callable[[], dict[str, str]]]] = [
        ("streamed", lambda: streamed(corpus, ids)),
        ("table, first lookup (builds it)", lambda: titles(corpus, ids, cache)),
        ("table, second lookup", lambda: titles(corpus, ids, cache)),
    ]
    for name, call in calls:
        started = time.perf_counter()
        found = call()
        print(f"{name}: {time.perf_counter() - started:.3f} s, {len(found)} titles")


if __name__ == "__main__":
    main(*sys.argv[1:3])
