"""Micro-batching: concurrent requests gathered for a few milliseconds and run as one kernel call.

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

Items carry an optional deadline (``time.monotonic()`` seconds): one that has passed, or whose
caller gave up (cancelled the future), is dropped before its batch runs, so a backlog of abandoned
requests is not computed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


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


_STOP = object()


class MicroBatcher(Generic[T, R]):
    """Runs ``fn(items) -> results`` (one result per item, in order) on batches of concurrently submitted items."""

    def __init__(
        self,
        name: str,
        fn: Callable[[list[T]], Sequence[R]],
        max_batch: int = 64,
        window_ms: float = 2.0,
        callers: Callable[[], int] | None = None,
    ):
        if max_batch < 1 or window_ms < 0:
            raise ValueError("max_batch must be >= 1 and window_ms >= 0")
        self.name = name
        self.fn = fn
        self.max_batch = max_batch
        self.window = window_ms / 1000
        self.callers = callers
        self.stats = BatchStats()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Items submitted and not yet finished (queued or in the running batch)."""
        return self._pending

    def submit(self, item: T, deadline: float | None = None) -> Future[R]:
        """Queue ``item``; the future resolves to its result, or to the batch function's exception."""
        future: Future[R] = Future()
        with self._lock:
            if self._closed:
                raise BatcherClosed(f"{self.name}: shutting down")
            self._pending += 1
            self._queue.put((item, deadline, future))
        return future

    def __call__(self, item: T, deadline: float | None = None) -> R:
        """Submit and wait, until ``deadline`` at most (then :class:`DeadlineExpired`)."""
        future = self.submit(item, deadline)
        return wait(future, deadline)

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting items; everything already queued is still run. Waits for the worker to finish."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join(timeout)

    def _gather(self, first: tuple) -> tuple[list[tuple], bool]:
        batch, stop = [first], False
        until = time.monotonic() + self.window
        while len(batch) < self.max_batch:
            remaining = until - time.monotonic()
            if self.callers is not None and self.callers() <= len(batch):
                remaining = 0  # nobody else is active: take only what is already queued
            try:
                entry = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is _STOP:
                stop = True
                break
            batch.append(entry)
        return batch, stop

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            batch, stop = self._gather(first)
            now = time.monotonic()
            live = []
            for item, deadline, future in batch:
                if not future.set_running_or_notify_cancel():
                    self.stats.expired += 1  # the caller gave up waiting
                elif deadline is not None and deadline <= now:
                    self.stats.expired += 1
                    future.set_exception(DeadlineExpired(f"{self.name}: deadline passed while queued"))
                else:
                    live.append((item, future))
            if live:
                self._execute(live)
            with self._lock:
                self._pending -= len(batch)

    def _execute(self, live: list[tuple[T, Future[R]]]) -> None:
        self.stats.batches += 1
        self.stats.items += len(live)
        self.stats.largest = max(self.stats.largest, len(live))
        try:
            results = self.fn([item for item, _ in live])
            if len(results) != len(live):
                raise RuntimeError(f"{self.name}: {len(results)} results for {len(live)} items")
        except BaseException as exc:  # noqa: BLE001 - every waiting caller gets the failure, the worker survives
            for _, future in live:
                future.set_exception(exc)
            return
        for (_, future), result in zip(live, results, strict=True):
            future.set_result(result)


def wait(future: Future[R], deadline: float | None) -> R:
    """The future's result, waiting until ``deadline`` at most; on timeout the item is cancelled if still queued."""
    timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
    try:
        return future.result(timeout)
    except FutureTimeout as exc:
        future.cancel()
        raise DeadlineExpired("deadline passed while waiting for the batch") from exc
