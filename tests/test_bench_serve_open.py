"""`lsr bench serve-open` against a real `lsr serve` subprocess on the demo sparse index: the offered rate is
answered, latency runs from each call's due time (a late sender and a stalled server both show), the server and
the generator end up on disjoint CPUs, and bad settings are refused before any server starts.

Timing bounds are generous: the machine running the tests is shared, so only what a working open loop must give
even under load is asserted (all calls answered, the rate over whole seconds, latencies of hundreds of ms where
the test itself makes them)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from lsr.eval.bench.open_loop import arrival_offsets, open_loop
from lsr.eval.bench.serve import start_server, stop_server
from serve_support import Artifacts, demo_queries
from typer.testing import CliRunner

from lsr.cli import app
from lsr.errors import LsrError

AVAILABLE = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
needs_two_cpus = pytest.mark.skipif(len(AVAILABLE) < 2, reason="pinning server and client apart needs 2 CPUs")


def demo_queries_file() -> Path:
    from lsr.eval.demo import demo_dataset

    return demo_dataset() / "queries.jsonl"


@pytest.fixture(scope="module")
def address(serve_artifacts: Artifacts) -> Iterator[tuple[int, str]]:
    """A real `lsr serve` subprocess on the demo sparse index: its pid and address."""
    process, address = start_server(["--index", str(serve_artifacts.sparse_index)])
    try:
        yield process.pid, address
    finally:
        stop_server(process)


def test_arrivals_are_the_rate_evenly_or_poisson_and_repeatable() -> None:
    constant = arrival_offsets(50.0, 2.0, "constant", seed=1)
    assert len(constant) == 100 and np.allclose(np.diff(constant), 0.02) and constant[0] == 0
    poisson = arrival_offsets(1000.0, 10.0, "poisson", seed=7)
    assert abs(len(poisson) - 10_000) < 500  # five standard deviations of a Poisson count
    assert np.all(np.diff(poisson) >= 0) and 0 <= poisson[0] and poisson[-1] < 10.0
    assert np.array_equal(poisson, arrival_offsets(1000.0, 10.0, "poisson", seed=7))
    assert abs(np.diff(poisson).mean() - 0.001) < 0.0001


@needs_two_cpus
def test_a_sweep_answers_the_offered_rate_with_server_and_client_apart(
    serve_artifacts: Artifacts, tmp_path: Path
) -> None:
    """The whole command: two rates, every call answered, the answered rate within 10% of the offered one, the JSON
    with the CPU sets both processes held, the plot beside it; this process is given its CPUs back."""
    output = tmp_path / "open.json"
    args = ["bench", "serve-open", "--index", str(serve_artifacts.sparse_index), "--queries", str(demo_queries_file())]
    args += ["--rates", "20,40", "--seconds", "2", "--warmup", "0.5", "--output", str(output)]
    args += ["--server-cpus", str(AVAILABLE[0]), "--client-cpus", str(AVAILABLE[-1])]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert sorted(os.sched_getaffinity(0)) == AVAILABLE
    data = json.loads(output.read_text())
    assert output.with_suffix(".png").stat().st_size > 0
    assert data["cpus"] == {"server": [AVAILABLE[0]], "client": [AVAILABLE[-1]]}
    assert [row["offered_qps"] for row in data["rates"]] == [20.0, 40.0]
    for row in data["rates"]:
        assert row["answered"] == row["scheduled"] == 2 * row["offered_qps"] and row["errors"] == {}
        assert abs(row["achieved_qps"] - row["offered_qps"]) <= 0.1 * row["offered_qps"]
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["p999_ms"] <= row["max_ms"]
    assert "offered" in result.output and data["server_exit_status"] == 0


def test_a_late_sender_counts_its_lag_in_the_latency(address: tuple[int, str]) -> None:
    """Calls due half a second before the generator starts are all sent late, and each latency includes that lag:
    latency runs from the due time, not from when the client got round to sending."""
    _, where = address
    run = open_loop(where, demo_queries(), "sparse", np.full(10, -0.5))
    assert run["codes"] == ["OK"] * 10
    assert np.all(run["lags"] >= 0.45) and np.all(run["latencies"] >= run["lags"])
    assert np.all(run["latencies"] - run["lags"] < 5.0)


def test_a_stalled_server_shows_as_growing_latency(address: tuple[int, str]) -> None:
    """The server is stopped (SIGSTOP) for 1 s of a 3 s run at 20 calls/s: the generator keeps sending on time, and
    every call due in the stall waits for its end, so about 10 calls take over 0.5 s (a closed loop of one client
    would time one slow call and send nothing meanwhile)."""
    pid, where = address

    def stall() -> None:  # the pause is timed from the stop itself, so it lasts 1 s however late the stop comes
        time.sleep(1.0)
        os.kill(pid, signal.SIGSTOP)
        time.sleep(1.0)
        os.kill(pid, signal.SIGCONT)

    staller = threading.Thread(target=stall)
    staller.start()
    try:
        run = open_loop(where, demo_queries(), "sparse", arrival_offsets(20.0, 3.0, "constant", seed=1))
    finally:
        staller.join()
        os.kill(pid, signal.SIGCONT)
    assert run["codes"] == ["OK"] * 60
    assert run["lags"].max() < 0.5  # the sender did not wait for the stalled server
    assert run["latencies"].max() >= 0.9
    assert (run["latencies"] > 0.5).sum() >= 5


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rates", "0"], "must be > 0"),
        (["--rates", "50,-5"], "must be > 0"),
        (["--rates", "fast"], "comma-separated"),
        (["--rates", "10", "--arrivals", "bursty"], "--arrivals is one of"),
        (["--rates", "0.1", "--seconds", "2"], "holds no request"),
        (["--rates", "10", "--client-cpus", "4096"], "--client-cpus: CPU [4096] not available"),
        (["--rates", "10", "--server-cpus", "x-1"], "a CPU list is numbers"),
    ],
)
def test_bad_settings_are_refused_before_the_server_starts(tmp_path: Path, extra: list[str], message: str) -> None:
    """The index does not exist: had a server been started, its failure would be the error instead."""
    args = ["bench", "serve-open", "--index", str(tmp_path / "no-index"), "--queries", str(demo_queries_file())]
    result = CliRunner().invoke(app, [*args, *extra])
    assert isinstance(result.exception, LsrError), result.output
    assert message in str(result.exception)


@needs_two_cpus
def test_overlapping_cpu_sets_are_refused(tmp_path: Path) -> None:
    cpu = str(AVAILABLE[0])
    args = ["bench", "serve-open", "--index", str(tmp_path / "no-index"), "--queries", str(demo_queries_file())]
    result = CliRunner().invoke(app, [*args, "--rates", "10", "--server-cpus", cpu, "--client-cpus", cpu])
    assert isinstance(result.exception, LsrError)
    assert f"overlap on CPU [{cpu}]" in str(result.exception)
