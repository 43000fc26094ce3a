"""Load test of ``lsr serve``: QPS and latency per retriever, and a soak run that watches the server's memory.

The server runs as a subprocess on 127.0.0.1 (so the load generator's Python threads do not share its
interpreter lock), and the generator is closed-loop and bounded: ``concurrency`` client threads, each
sending its next query when the previous one is answered, until ``requests`` are done. Each request's
latency is the client's wall time for the call (serialisation, loopback network, queueing, micro-batch
window, encoding, search, fusion). QPS counts answered calls only; any error is reported by status code.

The soak run keeps the same closed loop going for ``seconds`` over all retrievers in turn and samples the
server's resident memory (its own ``/proc`` figure, through the Stats call) at a fixed interval; memory
"does not grow" when the median of the last quarter of the samples exceeds that of the first quarter (taken
after a warm-up) by less than ``max_growth_mb``.
"""

from __future__ import annotations

import itertools
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from lsr.serve.client import Client

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(arguments: Sequence[str], timeout: float = 600.0) -> tuple[subprocess.Popen, str]:
    """``lsr serve ARGUMENTS`` on a free loopback port, once it answers; returns the process and its address."""
    port = free_port()
    command = [sys.executable, "-c", "from lsr.cli import main; main()", "serve", *arguments]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    address = f"127.0.0.1:{port}"
    with Client(address) as client:
        end = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"lsr serve exited with {process.returncode}: {process.stderr.read()[-2000:]}")
            try:
                client.wait_ready(timeout=2)
                break
            except grpc.FutureTimeoutError:
                if time.monotonic() > end:
                    process.kill()
                    raise RuntimeError("lsr serve did not start in time") from None
    return process, address


def stop_server(process: subprocess.Popen, grace: float = 30.0) -> int:
    """SIGTERM (graceful stop), then the exit status."""
    process.terminate()
    try:
        return process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def percentiles(latencies: Sequence[float]) -> dict[str, float]:
    """Milliseconds at p50, p90, p99 and p99.9, the mean and the largest, of latencies in seconds (zeros if none);
    the tail beyond p99 is what an open-loop run at a high rate is read for."""
    if not len(latencies):
        return {"p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "p999_ms": 0.0, "mean_ms": 0.0, "max_ms": 0.0}
    ms = np.asarray(latencies) * 1000
    p50, p90, p99, p999 = np.percentile(ms, [50, 90, 99, 99.9])
    values = {"p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "p999_ms": p999, "mean_ms": ms.mean(), "max_ms": ms.max()}
    return {name: round(float(value), 3) for name, value in values.items()}


def closed_loop(
    address: str,
    queries: Sequence[str],
    retrievers: Sequence[str],
    concurrency: int,
    requests: int | None = None,
    seconds: float | None = None,
    k: int = 10,
    token: str | None = None,
    sink: list[float] | None = None,
) -> dict[str, Any]:
    """``concurrency`` threads searching until ``requests`` calls are made or ``seconds`` have passed.

    Query ``i`` goes to ``retrievers[i % len(retrievers)]`` with ``queries[i % len(queries)]``. The answered calls'
    latencies (seconds) are appended to ``sink`` too, for callers that pool several runs.
    """
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    codes: Counter[str] = Counter()
    stop_at = None if seconds is None else time.monotonic() + seconds

    def worker() -> None:
        mine: list[float] = []
        mine_codes: Counter[str] = Counter()
        with Client(address, token=token, timeout=30) as client:
            while True:
                with lock:
                    number = next(counter)
                if (requests is not None and number >= requests) or (stop_at and time.monotonic() >= stop_at):
                    break
                started = time.perf_counter()
                try:
                    client.search(queries[number % len(queries)], k=k, retriever=retrievers[number % len(retrievers)])
                    mine.append(time.perf_counter() - started)
                    mine_codes["OK"] += 1
                except grpc.RpcError as exc:
                    mine_codes[exc.code().name] += 1
        with lock:
            latencies.extend(mine)
            codes.update(mine_codes)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if sink is not None:
        sink.extend(latencies)
    return {
        "requests": sum(codes.values()),
        "answered": codes["OK"],
        "errors": {code: n for code, n in codes.items() if code != "OK"},
        "seconds": round(wall, 3),
        "qps": round(codes["OK"] / wall, 1) if wall else 0.0,
        **percentiles(latencies),
    }


def batcher_counts(address: str, token: str | None = None) -> dict[str, tuple[int, int]]:
    with Client(address, token=token) as client:
        return {b.name: (b.batches, b.items) for b in client.stats().batchers}


def run_retriever(
    address: str, queries: Sequence[str], retriever: str, concurrency: int, requests: int, k: int, warmup: int
) -> dict[str, Any]:
    """One retriever's closed-loop run after ``warmup`` unmeasured calls, with the server's mean batch size."""
    closed_loop(address, queries[::-1], [retriever], concurrency, requests=warmup, k=k)
    before = batcher_counts(address)
    result = closed_loop(address, queries, [retriever], concurrency, requests=requests, k=k)
    after = batcher_counts(address)
    result["mean_batch"] = {
        name: round((after[name][1] - before[name][1]) / (after[name][0] - before[name][0]), 2)
        for name in after
        if after[name][0] > before[name][0]
    }
    return result


def soak(
    address: str,
    queries: Sequence[str],
    retrievers: Sequence[str],
    concurrency: int,
    seconds: float,
    k: int = 10,
    interval: float = 5.0,
    warmup: float = 0.1,
    max_growth_mb: float = 50.0,
) -> dict[str, Any]:
    """Closed-loop load for ``seconds`` while the server's RSS is sampled every ``interval`` seconds."""
    samples: list[tuple[float, int]] = []
    done = threading.Event()
    started = time.monotonic()

    def sample() -> None:
        with Client(address) as client:
            while not done.is_set():
                samples.append((round(time.monotonic() - started, 1), client.stats().rss_bytes))
                done.wait(interval)

    sampler = threading.Thread(target=sample)
    sampler.start()
    load = closed_loop(address, queries, retrievers, concurrency, seconds=seconds, k=k)
    done.set()
    sampler.join()
    rss = np.asarray([value for _, value in samples], dtype=np.float64) / 2**20
    steady = rss[int(len(rss) * warmup) :]
    quarter = max(len(steady) // 4, 1)
    first, last = float(np.median(steady[:quarter])), float(np.median(steady[-quarter:]))
    return {
        "seconds": seconds,
        "retrievers": list(retrievers),
        "load": load,
        "rss_mb": {
            "start": round(float(rss[0]), 1),
            "first_quarter_median": round(first, 1),
            "last_quarter_median": round(last, 1),
            "max": round(float(rss.max()), 1),
            "growth": round(last - first, 1),
        },
        "max_growth_mb": max_growth_mb,
        "memory_stable": bool(last - first < max_growth_mb),
        "samples": [[t, round(v / 2**20, 1)] for t, v in samples],
    }


def machine() -> dict[str, Any]:
    """Where the numbers came from (the load average says how shared the machine was)."""
    import grpc as grpc_module

    return {
        "cpus": os.cpu_count(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "grpcio": grpc_module.__version__,
        "platform": platform.platform(),
    }
