"""Open-loop load for ``lsr serve``: requests at a fixed arrival rate, each timed from when it was due.

A closed-loop client (:func:`lsr.eval.bench.serve.closed_loop`) sends its next query only once the previous
one is answered, so when the server stalls the client stops sending too, and the queries it would have sent
meanwhile are never timed: the stall costs one slow sample per thread instead of the growing queue a real
stream of users would see (coordinated omission). Here the arrivals are fixed in advance (a constant interval
or a seeded Poisson process at ``rate`` per second), one sender thread starts each call at its due time as a
gRPC future without waiting for earlier replies, and each latency runs from the due time to the reply (taken
in the future's done callback). A sender that falls behind therefore adds its lag to the latency instead of
hiding it, and the lag is reported on its own (calls more than 1 ms late, the largest lag), so a client that
cannot keep up is told apart from a server that cannot.

The generator and the server must not compete for cores, or the client's own delays land in the latencies:
on Linux every thread of the server process and of this process is pinned to disjoint CPU sets (by default
the last allowed CPU for the client, the others for the server), checked before the server starts, and the
sets the server's threads held at the end are recorded.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from lsr.eval.bench.serve import machine, percentiles, start_server, stop_server
from lsr.serve.client import Client

ARRIVALS = ("constant", "poisson")
LATE_S = 0.001  # a call started more than this after its due time counts as late
LEAD_S = 0.05  # the first arrival is this far after the schedule is made, so it is not late by construction
DRAIN_S = 60.0  # after the last send, how long replies (each with its own deadline) are waited for


@dataclass(frozen=True)
class Plan:
    """A sweep's settings, checked before any server starts."""

    rates: tuple[float, ...]
    seconds: float
    warmup: float
    arrivals: str
    seed: int
    server_cpus: tuple[int, ...]
    client_cpus: tuple[int, ...]


def parse_rates(text: str) -> tuple[float, ...]:
    """``"50,100,200"`` (or one rate) to queries per second, each > 0."""
    try:
        rates = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--rates takes queries per second, comma-separated, e.g. 50,100,200; got {text!r}") from None
    if not rates or min(rates) <= 0:
        raise ValueError(f"every rate must be > 0 queries per second; got {text!r}")
    return rates


def parse_cpus(text: str) -> tuple[int, ...]:
    """A CPU list as taskset takes it (``"0"``, ``"0-3"``, ``"0,2-3"``) to sorted CPU numbers."""
    cpus: set[int] = set()
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            first, _, last = part.partition("-")
            cpus.update(range(int(first), int(last or first) + 1))
    except ValueError:
        raise ValueError(f"a CPU list is numbers and ranges, e.g. 0 or 0-2,4; got {text!r}") from None
    if not cpus:
        raise ValueError(f"a CPU list names at least one CPU; got {text!r}")
    return tuple(sorted(cpus))


def cpu_sets(server: str | None, client: str | None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The server's and the client's CPUs: as given, the one not given being every other CPU this process may use,
    or neither given, the last such CPU for the client and the others for the server. Both sets must be available
    to this process, non-empty, and disjoint."""
    if not hasattr(os, "sched_setaffinity"):
        raise ValueError("pinning the server and the client to separate CPUs needs Linux (os.sched_setaffinity)")
    available = tuple(sorted(os.sched_getaffinity(0)))
    chosen_client = parse_cpus(client) if client else None
    chosen_server = parse_cpus(server) if server else None
    if chosen_client is None:
        chosen_client = available[-1:] if chosen_server is None else tuple(sorted(set(available) - set(chosen_server)))
    if chosen_server is None:
        chosen_server = tuple(sorted(set(available) - set(chosen_client)))
    for option, cpus in (("--server-cpus", chosen_server), ("--client-cpus", chosen_client)):
        missing = sorted(set(cpus) - set(available))
        if missing:
            raise ValueError(f"{option}: CPU {missing} not available; this process may use CPUs {list(available)}")
        if not cpus:
            raise ValueError(f"{option}: no CPU left of {list(available)}; server and client need one each at least")
    shared = sorted(set(chosen_server) & set(chosen_client))
    if shared:
        raise ValueError(f"--server-cpus and --client-cpus overlap on CPU {shared}: they must be disjoint")
    return chosen_server, chosen_client


def make_plan(
    rates: str,
    seconds: float,
    warmup: float,
    arrivals: str,
    seed: int,
    server_cpus: str | None,
    client_cpus: str | None,
) -> Plan:
    """Every setting checked (ValueError with what is wrong), so a bad one fails before the server starts."""
    parsed = parse_rates(rates)
    if arrivals not in ARRIVALS:
        raise ValueError(f"--arrivals is one of {', '.join(ARRIVALS)}; got {arrivals!r}")
    if seconds <= 0 or warmup < 0:
        raise ValueError(f"--seconds must be > 0 and --warmup >= 0; got {seconds} and {warmup}")
    if min(parsed) * seconds < 1:
        raise ValueError(f"at {min(parsed):g} queries/s, {seconds:g} s holds no request: raise --seconds or the rate")
    return Plan(parsed, seconds, warmup, arrivals, seed, *cpu_sets(server_cpus, client_cpus))


def arrival_offsets(rate: float, seconds: float, arrivals: str, seed: int) -> np.ndarray:
    """Due times (seconds from the start, ascending, all < ``seconds``) of ``rate`` calls a second: evenly spaced,
    or a Poisson process drawn from ``seed``, so that a sweep can be repeated exactly."""
    if arrivals == "constant":
        return np.arange(int(round(rate * seconds))) / rate
    rng = np.random.default_rng(seed)  # a Poisson count of arrivals, uniform over the span: a Poisson process
    return np.sort(rng.uniform(0.0, seconds, rng.poisson(rate * seconds)))


def threads_of(pid: int) -> list[int]:
    return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]


def pin(pid: int, cpus: Sequence[int]) -> None:
    """Every thread of process ``pid`` onto ``cpus``: affinity is per thread on Linux, and threads started later
    inherit their creator's, so pinning all existing ones pins the process from now on."""
    for tid in threads_of(pid):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(tid, cpus)


def affinity(pid: int) -> list[int]:
    """The CPUs any thread of ``pid`` may run on (their union): after a run, shows that none left its set."""
    cpus: set[int] = set()
    for tid in threads_of(pid):
        with contextlib.suppress(ProcessLookupError):
            cpus.update(os.sched_getaffinity(tid))
    return sorted(cpus)


@contextlib.contextmanager
def pinned(cpus: Sequence[int]) -> Iterator[None]:
    """This process on ``cpus`` while the block runs, then back on the CPUs it had (for callers that go on, tests)."""
    before = sorted(os.sched_getaffinity(0))
    pin(os.getpid(), cpus)
    try:
        yield
    finally:
        pin(os.getpid(), before)


def open_loop(
    address: str, queries: Sequence[str], retriever: str, offsets: np.ndarray, k: int = 10, timeout: float = 30.0
) -> dict[str, Any]:
    """One Search per due time in ``offsets`` (query ``i`` is ``queries[i % len(queries)]``), sent without waiting
    for replies; returns per call the latency from its due time (seconds, NaN unless answered), the sender's lag
    and the status code name."""
    count = len(offsets)
    answered_at = np.full(count, np.nan)
    lags = np.zeros(count)
    finished = threading.Semaphore(0)

    def done(number: int, _future: grpc.Future) -> None:
        answered_at[number] = time.perf_counter()
        finished.release()

    futures = []
    with Client(address, timeout=timeout) as client:
        start = time.perf_counter() + LEAD_S
        for number, offset in enumerate(offsets):
            due = start + offset
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            lags[number] = time.perf_counter() - due
            future = client.search_future(queries[number % len(queries)], k=k, retriever=retriever)
            future.add_done_callback(partial(done, number))
            futures.append(future)
        if not all(finished.acquire(timeout=timeout + DRAIN_S) for _ in futures):
            raise RuntimeError(f"replies still missing {timeout + DRAIN_S:g} s after the last call was sent")
        codes = [future.code().name for future in futures]
    ok = np.array([code == "OK" for code in codes], dtype=bool)
    latencies = np.where(ok, answered_at - (start + offsets), np.nan)
    return {"latencies": latencies, "lags": lags, "codes": codes, "last_reply": float(np.nanmax(answered_at) - start)}


def summary(rate: float, seconds: float, run: dict[str, Any]) -> dict[str, Any]:
    """One rate's figures: offered and answered rate (answered calls over the schedule, or until the last reply if
    that came later), latency percentiles from the due times, late sends, errors by status code."""
    codes = Counter(run["codes"])
    answered = codes.pop("OK", 0)
    latencies = run["latencies"][~np.isnan(run["latencies"])]
    lags = run["lags"]
    return {
        "offered_qps": rate,
        "scheduled": len(lags),
        "answered": answered,
        "achieved_qps": round(answered / max(seconds, run["last_reply"]), 1),
        **percentiles(latencies),
        "late_sends": int((lags > LATE_S).sum()),
        "send_lag_p99_ms": round(float(np.percentile(lags, 99)) * 1000, 3),
        "max_send_lag_ms": round(float(lags.max()) * 1000, 3),
        "errors": dict(codes),
    }


def measure_rate(
    address: str, queries: Sequence[str], retriever: str, rate: float, plan: Plan, k: int
) -> dict[str, Any]:
    """``plan.warmup`` seconds at ``rate`` unmeasured, then ``plan.seconds`` measured, with the load average
    before and after (the machine is shared: the neighbours' load is part of the reading)."""
    if plan.warmup:
        warmup = arrival_offsets(rate, plan.warmup, plan.arrivals, plan.seed + 1)
        open_loop(address, queries[::-1], retriever, warmup, k)
    load_start = machine()["load_average_1_5_15"]
    run = open_loop(address, queries, retriever, arrival_offsets(rate, plan.seconds, plan.arrivals, plan.seed), k)
    return {**summary(rate, plan.seconds, run), "load_average_start": load_start,
            "load_average_end": machine()["load_average_1_5_15"]}  # fmt: skip


def sweep(
    server_arguments: Sequence[str], queries: Sequence[str], retriever: str, plan: Plan, k: int = 10
) -> dict[str, Any]:
    """Start ``lsr serve SERVER_ARGUMENTS``, pin it and this process to the plan's CPUs, and measure every rate."""
    result: dict[str, Any] = {"machine": machine(), "server_arguments": list(server_arguments), "queries": len(queries)}
    result.update({"k": k, "retriever": retriever, "settings": asdict(plan), "late_ms": LATE_S * 1000, "rates": []})
    with pinned(plan.client_cpus):
        process, address = start_server(server_arguments)
        try:
            pin(process.pid, plan.server_cpus)
            for rate in plan.rates:
                result["rates"].append(measure_rate(address, queries, retriever, rate, plan, k))
            result["cpus"] = {"server": affinity(process.pid), "client": affinity(os.getpid())}
        finally:
            result["server_exit_status"] = stop_server(process)
    return result


def plot(result: dict[str, Any], path: Path) -> None:
    """p50 and p99 latency (from the due times) against the offered rate, the answered rate beside each point, saved
    at ``path`` (PNG), crash-safe."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from lsr.eval.bench.figures import save_png

    rows = result["rates"]
    offered = [row["offered_qps"] for row in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
        ax.plot(offered, [row[key] for row in rows], marker="o", label=label)
    for row in rows:
        ax.annotate(f"{row['achieved_qps']:,.0f}/s answered", (row["offered_qps"], row["p99_ms"]), fontsize=7,
                    textcoords="offset points", xytext=(4, 4))  # fmt: skip
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.margins(x=0.12)
    ax.set_xlabel("offered rate, queries/s (open loop)")
    ax.set_ylabel("latency from due time, ms (log scale)")
    settings = result["settings"]
    ax.set_title(
        f"lsr serve, open loop: {result['retriever']}, {settings['arrivals']} arrivals, {settings['seconds']:g} s a "
        f"rate\nserver on CPU {result['cpus']['server']}, client on CPU {result['cpus']['client']}",
        fontsize=10,
    )
    save_png(fig, ax, path)
