"""Micro-batching: concurrent items share calls, results match one-at-a-time calls, deadlines and errors hold."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp
from lsr.serve.batching import BatcherClosed, DeadlineExpired, MicroBatcher


class Recorder:
    """A batch function that squares numbers and remembers the batches it was given."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[list[int]] = []
        self.delay = delay
        self.release = threading.Event()
        self.release.set()

    def __call__(self, items: list[int]) -> list[int]:
        self.release.wait()
        self.calls.append(list(items))
        time.sleep(self.delay)
        return [x * x for x in items]


def test_concurrent_items_share_calls_and_keep_their_own_results() -> None:
    fn = Recorder()
    batcher = MicroBatcher("squares", fn, max_batch=16, window_ms=50)
    try:
        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(batcher, range(32)))
    finally:
        batcher.close()
    assert results == [x * x for x in range(32)]
    assert len(fn.calls) < 32 and max(len(c) for c in fn.calls) <= 16
    assert sorted(x for call in fn.calls for x in call) == list(range(32))
    assert (batcher.stats.batches, batcher.stats.items) == (len(fn.calls), 32)


def test_window_zero_still_batches_what_queued_meanwhile() -> None:
    fn = Recorder()
    fn.release.clear()  # hold the worker so that items queue behind the first
    batcher = MicroBatcher("squares", fn, max_batch=64, window_ms=0)
    try:
        futures = [batcher.submit(0)]
        time.sleep(0.05)  # the worker now runs [0] (held), so the next items queue
        futures += [batcher.submit(x) for x in range(1, 10)]
        fn.release.set()
        assert [f.result(5) for f in futures] == [x * x for x in range(10)]
    finally:
        batcher.close()
    assert fn.calls == [[0], list(range(1, 10))]


def test_the_window_is_waited_out_only_while_others_are_active() -> None:
    active = [1]
    batcher = MicroBatcher("squares", Recorder(), max_batch=8, window_ms=400, callers=lambda: active[0])
    try:
        started = time.monotonic()
        assert batcher(3) == 9
        assert time.monotonic() - started < 0.2  # alone: no window
        active[0] = 2
        started = time.monotonic()
        assert batcher(4) == 16
        assert time.monotonic() - started >= 0.35  # another caller is active: wait for it
    finally:
        batcher.close()


def test_an_error_reaches_every_caller_of_the_batch_and_the_worker_survives() -> None:
    def fail_on_seven(items: list[int]) -> list[int]:
        if 7 in items:
            raise ValueError("seven")
        return items

    batcher = MicroBatcher("f", fail_on_seven, max_batch=8, window_ms=30)
    try:
        futures = [batcher.submit(x) for x in (6, 7)]
        for future in futures:
            with pytest.raises(ValueError, match="seven"):
                future.result(5)
        assert batcher(3) == 3
    finally:
        batcher.close()


def test_expired_items_are_dropped_before_their_batch_runs() -> None:
    fn = Recorder()
    fn.release.clear()
    batcher = MicroBatcher("squares", fn, max_batch=8, window_ms=0)
    try:
        first = batcher.submit(1)
        time.sleep(0.02)  # the worker is now holding item 1
        with pytest.raises(DeadlineExpired):
            batcher(2, deadline=time.monotonic() + 0.05)  # the caller gives up
        late = batcher.submit(3, deadline=time.monotonic() + 0.01)
        time.sleep(0.05)
        fn.release.set()
        assert first.result(5) == 1
        with pytest.raises(DeadlineExpired):
            late.result(5)
    finally:
        batcher.close()
    assert fn.calls == [[1]] and batcher.stats.expired == 2


def test_close_runs_what_is_queued_then_refuses() -> None:
    fn = Recorder(delay=0.01)
    batcher = MicroBatcher("squares", fn, max_batch=2, window_ms=0)
    futures = [batcher.submit(x) for x in range(6)]
    batcher.close()
    assert [f.result(0) for f in futures] == [x * x for x in range(6)]
    with pytest.raises(BatcherClosed):
        batcher.submit(1)


def test_batched_searches_equal_unbatched_ones_in_fewer_kernel_calls(tmp_path) -> None:  # noqa: ANN001
    """The sparse search batcher over a real index: results of concurrent queries are those of single searches."""
    from lsr.indexing.sparse.build import build_index
    from lsr.indexing.sparse.format import SparseIndex
    from lsr.indexing.sparse.search import Searcher

    rng = np.random.default_rng(0)
    corpus = sp.random(500, 200, density=0.05, random_state=1, format="csr", dtype=np.float32)
    build_index(lambda: [([f"d{i}" for i in range(500)], corpus)], tmp_path / "idx", "m", "splade")
    index = SparseIndex.open(tmp_path / "idx")
    searcher = Searcher(index)
    queries = [
        sp.random(1, 200, density=0.05, random_state=int(s), format="csr", dtype=np.float32)
        for s in rng.integers(0, 1000, 24)
    ]

    def batch(rows: list[sp.csr_matrix]) -> list[tuple[np.ndarray, np.ndarray]]:
        docs, scores, sizes = searcher.search(sp.vstack(rows, format="csr"), k=10)
        return [(docs[i, : sizes[i]], scores[i, : sizes[i]]) for i in range(len(rows))]

    single = [batch([q])[0] for q in queries]
    batcher = MicroBatcher("sparse", batch, max_batch=32, window_ms=30)
    try:
        with ThreadPoolExecutor(24) as pool:
            together = list(pool.map(batcher, queries))
    finally:
        batcher.close()
    assert batcher.stats.batches < len(queries) and batcher.stats.largest > 1
    for (docs, scores), (ref_docs, ref_scores) in zip(together, single, strict=True):
        np.testing.assert_array_equal(docs, ref_docs)
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-6)
