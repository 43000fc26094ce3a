"""Throughput of an engine that searches one query at a time, on several cores: one forked process per core.

Why: BMP's Python binding answers one query per call and holds the GIL, so threads cannot run two of its searches
at once, and timing its batch on "16 threads" measures one core. Serving such an engine on a many-core machine
means one process per core, each with the index; that is what this times. The workers are forked after the index
is built, so each starts with it in memory (shared copy-on-write, nothing reloaded) and inherits the queries; a
task names only a slice of query rows. The pool's processes start, and each searches a query, before the clock
starts, so process start-up is not timed.

The workers are ended by closing the pool (each takes the end-of-work sentinel and exits), never by signals: a
process that has started a JVM (Lucene, through pyjnius) has the JVM's handler for SIGTERM, which a forked child
inherits without the JVM thread that acts on it, so ``Pool.terminate`` would wait on such a worker forever. Each
worker also restores the default SIGTERM and SIGINT actions, so killing the benchmark still ends its workers.
"""

from __future__ import annotations

import multiprocessing
import signal
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lsr.eval.bench.engines.base import Engine, Vectors

_shared: tuple[Engine, Vectors, int] | None = None
"""What the forked workers search: set in the parent just before the fork, inherited by every worker."""


def _default_signals() -> None:
    """A worker's SIGTERM and SIGINT back to the operating system's default (end the process)."""
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, signal.SIG_DFL)


def _search_rows(span: tuple[int, int]) -> int:
    """Search query rows ``span`` (start, stop) in a worker; how many were searched."""
    assert _shared is not None, "set before the workers were forked"
    engine, queries, k = _shared
    for row in range(*span):
        engine.search(*queries.row(row), k)
    return span[1] - span[0]


def forked_throughput(engine: Engine, queries: Vectors, k: int, processes: int) -> float:
    """Queries per second of ``engine`` over ``queries`` with ``processes`` forked workers, each query searched once
    (in slices of about a quarter of a worker's share, so a slow slice does not leave the other workers idle)."""
    global _shared
    _shared = (engine, queries, k)
    pool = multiprocessing.get_context("fork").Pool(processes, initializer=_default_signals)
    try:
        pool.map(_search_rows, [(0, 1)] * processes, chunksize=1)  # not timed: the first searches
        step = max(len(queries) // (processes * 4), 1)
        spans = [(start, min(start + step, len(queries))) for start in range(0, len(queries), step)]
        started = time.perf_counter()
        done = sum(pool.map(_search_rows, spans, chunksize=1))
        elapsed = time.perf_counter() - started
    finally:
        pool.close()  # the workers take the sentinel and exit; no signal needed
        pool.join()
        _shared = None
    return done / elapsed
