"""Micro-batching: concurrent requests gathered for a few milliseconds and run as one kernel call, fairly.

The search kernels (Numba's parallel batch kernel, the CUDA kernels) and the encoders cost far less
per query in a batch than one query at a time, and neither is safe to call from several threads at
once (the Numba searcher keeps per-thread score buffers). So each of them gets one worker thread
that owns it: callers :meth:`MicroBatcher.submit` an item and wait on a future; the worker takes
the first waiting item, gathers more for up to ``window_ms`` (or until ``max_batch``), and runs the
batch function once. With ``window_ms`` 0 it still batches whatever queued while the previous batch
ran, which is where most of the gain under load comes from, and adds no latency when idle.

Waiting out the window is only worth it when someone may join: given ``callers`` (how many callers are
active, e.g. requests in flight), the batch runs as soon as it holds that many items, so a lone request
at low load pays no window at all.

One worker per kernel means one large request could hold it for as long as its work takes, and every
small request behind it would wait (head-of-line blocking). Four rules prevent that:

- **slices**: each item carries a ``cost`` (the engine's estimate of its work), and with ``slice_ms`` a
  batch stops growing once its cost would take longer than that to run, at the throughput the worker
  measured on its recent batches. A request of many items (a BatchSearch, an Encode of many texts) is
  thereby cut into slices of about ``slice_ms`` each, and the worker is free for others between them;
- **fair order**: items are taken in start-time fair queuing order over ``group`` (the request they
  belong to): an item's start tag is where its group's previous item ends in cumulated cost, or the
  current virtual time for a group with nothing queued. A newly arrived request therefore goes ahead of
  the remaining slices of a large one, and two large requests alternate slice by slice, without anyone
  being starved;
- **small batches stay small**: a batch takes on at most ``max_batch`` times the cost of its first item,
  so a small search shares its kernel call with other small ones, not with a large request's slice;
- **an express lane**: a slice cannot be interrupted, so even after the rules above a small item may wait
  for the one large item being run (a long query at k = 1000). Given ``express`` (the batch function of a
  second copy of the kernel), items of requests costing at most ``express_cost`` go to a second worker of
  their own, and large ones never delay them. When that lane is idle and no other caller is active, the
  caller runs its item itself: handing it to the worker and the result back costs two thread wake-ups,
  which on a busy machine are most of a small search's time.

The lanes above order work inside the process; the operating system still shares the cores between the
main lane's worker (and the kernel and tokenizer threads it starts) and the express lane, and on a machine
with as many busy threads as cores a small search's thread waits for a time slice behind them. With
``bulk_nice`` the main lane's worker lowers its own scheduling priority (Linux, where ``nice`` is per thread,
and inherited by the threads it creates), so a runnable small search, or the gRPC thread receiving one, is
given a core first, and the large requests still take every cycle nobody else wants. A thread can lower its
priority but not raise it back without privileges, which is why only the workers that only ever run bulk work
are lowered, never gRPC's shared handler threads.

Items carry an optional deadline (``time.monotonic()`` seconds): one that has passed, or whose
caller gave up (cancelled the future), is dropped before its batch runs, so a backlog of abandoned
requests is not computed.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

RATE_SMOOTHING = 0.3  # weight of the latest batch in the worker's throughput estimate


class DeadlineExpired(Exception):
    """The item's deadline passed before its batch ran."""


class BatcherClosed(Exception):
    """The batcher no longer accepts work (the server is shutting down)."""


@dataclass
class BatchStats:
    """Counters of one batcher: kernel calls, items served, the largest batch, items dropped as expired."""

    batches: int = 0
    items: int = 0
    largest: int = 0
    expired: int = 0


@dataclass(order=True)
class _Entry:
    start: float
    seq: int
    cost: float = field(compare=False)
    group: Hashable = field(compare=False)
    item: Any = field(compare=False)
    deadline: float | None = field(compare=False)
    future: Future = field(compare=False)


@dataclass
class _Lane:
    """One worker's fair queue: its batch function, items by start tag, and the throughput it measured."""

    fn: Callable[[list[Any]], Sequence[Any]]
    heap: list[_Entry] = field(default_factory=list)
    groups: dict[Hashable, list[float]] = field(default_factory=dict)  # group -> [its last finish tag, items queued]
    virtual: float = 0.0
    rate: float | None = None  # cost per second of recent batches; unknown until one has run
    pending: int = 0
    running: bool = False  # a batch of this lane is being run (by its worker, or by a caller for an idle lane)


class MicroBatcher(Generic[T, R]):
    """Runs ``fn(items) -> results`` (one result per item, in order) on batches of concurrently submitted items."""

    def __init__(
        self,
        name: str,
        fn: Callable[[list[T]], Sequence[R]],
        max_batch: int = 64,
        window_ms: float = 2.0,
        callers: Callable[[], int] | None = None,
        slice_ms: float | None = None,
        express: Callable[[list[T]], Sequence[R]] | None = None,
        express_cost: float = 0.0,
        bulk_nice: int = 0,
    ):
        if max_batch < 1 or window_ms < 0 or (slice_ms is not None and slice_ms <= 0):
            raise ValueError("max_batch must be >= 1, window_ms >= 0 and slice_ms > 0")
        self.name = name
        self.fn = fn
        self.max_batch = max_batch
        self.window = window_ms / 1000
        self.callers = callers
        self.slice = None if slice_ms is None else slice_ms / 1000
        self.express_cost = express_cost if express is not None else -math.inf
        self.stats = BatchStats()
        self.bulk_nice = bulk_nice
        self._lanes = [_Lane(fn)] + ([_Lane(express)] if express is not None else [])
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._run, args=(lane,), name=f"batcher-{name}-{number}", daemon=True)
            for number, lane in enumerate(self._lanes)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pending(self) -> int:
        """Items submitted and not yet finished (queued or in a running batch)."""
        return sum(lane.pending for lane in self._lanes)

    @property
    def rate(self) -> float | None:
        """The main worker's measured throughput (cost per second), which sizes its slices."""
        return self._lanes[0].rate

    def submit(
        self,
        item: T,
        deadline: float | None = None,
        group: Hashable | None = None,
        cost: float = 1.0,
        request_cost: float | None = None,
    ) -> Future[R]:
        """Queue ``item``; the future resolves to its result, or to the batch function's exception.

        Items of one ``group`` (one request's queries or texts) are served in order, and groups share the
        worker by ``cost``; without a group the item is a request of its own. ``request_cost`` (the whole
        request's, the item's own when None) decides whether the item takes the express lane.
        """
        future: Future[R] = Future()
        small = (cost if request_cost is None else request_cost) <= self.express_cost
        lane = self._lanes[-1] if small else self._lanes[0]
        with self._cond:
            if self._closed:
                raise BatcherClosed(f"{self.name}: shutting down")
            key = group if group is not None else object()
            state = lane.groups.setdefault(key, [lane.virtual, 0])
            start = max(lane.virtual, state[0])
            entry = _Entry(start, next(self._seq), cost, key, item, deadline, future)
            # run it here if the lane is idle and (given callers) no other caller may join a batch, the window's rule
            alone = self.callers is None or not self._joinable(lane, 1)
            inline = small and alone and not lane.running and not lane.heap
            lane.pending += 1
            if inline:
                lane.running = True
                if not state[1]:
                    del lane.groups[key]
            else:
                state[0], state[1] = start + cost, state[1] + 1
                heapq.heappush(lane.heap, entry)
                self._cond.notify_all()
        if inline:
            self._serve(lane, [entry])
        return future

    def __call__(self, item: T, deadline: float | None = None) -> R:
        """Submit and wait, until ``deadline`` at most (then :class:`DeadlineExpired`)."""
        future = self.submit(item, deadline)
        return wait(future, deadline)

    def calibrate(self, items: list[T], costs: list[float]) -> None:
        """Run each worker's function once on ``items`` in this thread, before serving, to seed the throughput
        estimates that size slices (until one is known, a batch holds a single item)."""
        for lane in self._lanes:
            started = time.perf_counter()
            lane.fn(items)
            self._measure(lane, sum(costs), time.perf_counter() - started)

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting items; everything already queued is still run. Waits for the workers to finish."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    def _pop(self, lane: _Lane) -> _Entry:
        entry = heapq.heappop(lane.heap)
        lane.virtual = entry.start
        state = lane.groups[entry.group]
        state[1] -= 1
        if not state[1]:
            del lane.groups[entry.group]
        return entry

    def _cost_cap(self, lane: _Lane, first: _Entry) -> float:
        """How much cost the batch led by ``first`` may hold: a slice's worth, and no more than ``max_batch``
        times the first item's own cost; one item only until the worker's throughput is known."""
        if self.slice is None:
            return math.inf
        if lane.rate is None:
            return first.cost
        return min(lane.rate * self.slice, self.max_batch * first.cost)

    def _joinable(self, lane: _Lane, size: int) -> bool:
        """Whether an active caller may still add to this lane's batch of ``size``: callers whose items wait in
        the other lane cannot."""
        if self.callers is None:
            return True
        elsewhere = sum(other.pending for other in self._lanes if other is not lane)
        return self.callers() - elsewhere > size

    def _gather(self, lane: _Lane) -> list[_Entry]:
        """The lane's next batch (empty once closed and drained); called holding the condition."""
        while lane.running or (not lane.heap and not self._closed):
            self._cond.wait()
        if not lane.heap:
            return []
        lane.running = True
        batch = [self._pop(lane)]
        cost, cap = batch[0].cost, self._cost_cap(lane, batch[0])
        until = time.monotonic() + self.window
        while len(batch) < self.max_batch:
            if lane.heap:
                if cost + lane.heap[0].cost > cap:
                    break
                batch.append(self._pop(lane))
                cost += batch[-1].cost
                continue
            remaining = until - time.monotonic()
            if self._closed or remaining <= 0 or not self._joinable(lane, len(batch)):
                break  # nobody else is active: take only what is already queued
            self._cond.wait(remaining)
        return batch

    def _run(self, lane: _Lane) -> None:
        if lane is self._lanes[0] and self.bulk_nice > 0:
            lower_thread_priority(self.bulk_nice)
        while True:
            with self._cond:
                batch = self._gather(lane)
            if not batch:
                return
            self._serve(lane, batch)

    def _serve(self, lane: _Lane, batch: list[_Entry]) -> None:
        """Run a batch the lane is marked as running, less its expired and abandoned items; then free the lane."""
        now = time.monotonic()
        live = []
        for entry in batch:
            if not entry.future.set_running_or_notify_cancel():
                pass  # the caller gave up waiting
            elif entry.deadline is not None and entry.deadline <= now:
                entry.future.set_exception(DeadlineExpired(f"{self.name}: deadline passed while queued"))
            else:
                live.append(entry)
        with self._cond:  # several threads count into the same stats
            self.stats.expired += len(batch) - len(live)
            if live:
                self.stats.batches += 1
                self.stats.items += len(live)
                self.stats.largest = max(self.stats.largest, len(live))
        if live:
            self._execute(lane, live)
        with self._cond:
            lane.pending -= len(batch)
            lane.running = False
            self._cond.notify_all()

    def _execute(self, lane: _Lane, live: list[_Entry]) -> None:
        started = time.perf_counter()
        try:
            results = lane.fn([entry.item for entry in live])
            if len(results) != len(live):
                raise RuntimeError(f"{self.name}: {len(results)} results for {len(live)} items")
        except BaseException as exc:  # noqa: BLE001 - every waiting caller gets the failure, the worker survives
            for entry in live:
                entry.future.set_exception(exc)
            return
        self._measure(lane, sum(entry.cost for entry in live), time.perf_counter() - started)
        for entry, result in zip(live, results, strict=True):
            entry.future.set_result(result)

    @staticmethod
    def _measure(lane: _Lane, cost: float, seconds: float) -> None:
        rate = cost / max(seconds, 1e-6)
        lane.rate = rate if lane.rate is None else RATE_SMOOTHING * rate + (1 - RATE_SMOOTHING) * lane.rate


def lower_thread_priority(increment: int) -> None:
    """Add ``increment`` to the calling thread's nice value where the system allows it. Only on Linux, whose ``nice``
    is per thread: elsewhere the call would lower the whole process, express lane included, so it is not made."""
    if sys.platform.startswith("linux"):
        tid = threading.get_native_id()
        with contextlib.suppress(OSError):  # a sandbox may forbid it: the server runs on, unprioritised
            os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + increment, 19))


def wait(future: Future[R], deadline: float | None) -> R:
    """The future's result, waiting until ``deadline`` at most; on timeout the item is cancelled if still queued."""
    timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
    try:
        return future.result(timeout)
    except FutureTimeout as exc:
        future.cancel()
        raise DeadlineExpired("deadline passed while waiting for the batch") from exc
