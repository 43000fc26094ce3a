"""Server fairness under large requests: small-Search latency idle, and while the largest requests run.

The server runs as a subprocess on 127.0.0.1 (:func:`lsr.eval.bench.serve.start_server`). First the largest
requests it accepts are found: an Encode of texts and a BatchSearch of queries (k = ``max_k``), each text
``max_chars`` characters of consecutive corpus documents, start at ``max_texts`` of them (the advertised
shape limits) and their count is binary-searched down until the server answers. The same command thereby
measures a server with or without a work budget, at the largest load each lets one client send.

Then a foreground client sends small searches (a dataset query, ``k`` hits, one call at a time) for
``seconds`` with nothing else running (idle), and again while a background process keeps one largest
Encode and one largest BatchSearch in flight, each sent again as soon as it is answered (under load).
The background runs in its own process so its reply parsing does not compete with the foreground client
for the interpreter lock. The figure of merit is small-Search p99 under load over p99 idle (issue 19's
target: at most 5).

On a shared machine other users' jobs come and go within a minute, and a ratio of two phases measured one
after the other is as much a ratio of what the neighbours did in each. With ``rounds`` > 1 the two phases
alternate that many times, each ``seconds / rounds`` long (the background is paused, and its calls in flight
drained, for every idle part), and each phase's latencies are pooled, so both see the same mix of neighbours.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from lsr.eval.bench.serve import closed_loop, machine, percentiles, start_server, stop_server
from lsr.serve.client import Client
from lsr.serve.proto.lsr.v1 import lsr_pb2

TARGET_RATIO = 5.0
CLIENT_MESSAGE_BYTES = 64 * 1024 * 1024  # the client accepts any reply the server is willing to send
TOO_LARGE = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT)


def long_texts(corpus: Path, chars: int, count: int) -> list[str]:
    """``count`` texts of exactly ``chars`` characters, each from consecutive documents of the corpus."""
    from lsr.data.beir import corpus_source, read_corpus
    from lsr.encode.corpus import document_text

    texts, current = [], ""
    for document in read_corpus(corpus_source(corpus)):
        current += document_text(document) + " "
        while len(current) >= chars and len(texts) < count:
            texts.append(current[:chars])
            current = current[chars:]
        if len(texts) == count:
            return texts
    raise ValueError(f"{corpus}: not enough text for {count} texts of {chars} characters")


def encode_request(texts: list[str]) -> lsr_pb2.EncodeRequest:
    return lsr_pb2.EncodeRequest(texts=texts)


def batch_request(texts: list[str], k: int) -> lsr_pb2.BatchSearchRequest:
    return lsr_pb2.BatchSearchRequest(requests=[lsr_pb2.SearchRequest(query=text, k=k) for text in texts])


def largest_accepted(accepts: Callable[[int], bool], most: int) -> int:
    """The largest ``n`` in [1, most] with ``accepts(n)``, assuming that anything smaller than an accepted
    ``n`` is accepted too (binary search; the full size is tried first, as it usually passes)."""
    if accepts(most):
        return most
    low, high = 0, most  # accepts(low) holds (vacuously for 0), accepts(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if accepts(middle) else (low, middle)
    if low == 0:
        raise RuntimeError("the server refuses even one text of this size")
    return low


def _accepted(call: Callable[[], Any]) -> bool:
    try:
        call()
        return True
    except grpc.RpcError as exc:
        if exc.code() not in TOO_LARGE:
            raise
        return False


def find_largest(address: str, texts: list[str], k: int, timeout: float) -> dict[str, int]:
    """How many of ``texts`` the server accepts in one Encode, and in one BatchSearch at ``k``."""
    with Client(address, timeout=timeout, max_message_bytes=CLIENT_MESSAGE_BYTES) as client:
        stub = client.retrieval
        encode = largest_accepted(
            lambda n: _accepted(lambda: stub.Encode(encode_request(texts[:n]), timeout=timeout)), len(texts)
        )
        batch = largest_accepted(
            lambda n: _accepted(lambda: stub.BatchSearch(batch_request(texts[:n], k), timeout=timeout)), len(texts)
        )
    return {"encode_texts": encode, "batch_search_queries": batch}


def _summary(latencies: list[float], codes: Counter[str]) -> dict[str, Any]:
    ms = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    return {
        "answered": codes["OK"],
        "errors": {code: n for code, n in codes.items() if code != "OK"},
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "max_ms": round(float(ms.max()), 1),
    }


def _background(
    address: str, requests: dict[str, Any], timeout: float, go: Any, busy: Any, stop: Any, out: Any
) -> None:
    """One thread per request kind, each keeping its request in flight while ``go`` is set, until ``stop``;
    ``busy`` counts the calls in flight, and the summaries go to ``out``."""
    results: dict[str, dict[str, Any]] = {}

    def loop(kind: str, request: Any, client: Client) -> None:
        method = client.retrieval.Encode if kind == "encode" else client.retrieval.BatchSearch
        latencies: list[float] = []
        codes: Counter[str] = Counter()
        while not stop.is_set():
            if not go.wait(0.1):
                continue
            with busy.get_lock():
                busy.value += 1
            begun = time.perf_counter()
            try:
                method(request, timeout=timeout)
                latencies.append(time.perf_counter() - begun)
                codes["OK"] += 1
            except grpc.RpcError as exc:
                codes[exc.code().name] += 1
            finally:
                with busy.get_lock():
                    busy.value -= 1
        results[kind] = _summary(latencies, codes)

    with Client(address, timeout=timeout, max_message_bytes=CLIENT_MESSAGE_BYTES) as client:
        threads = [threading.Thread(target=loop, args=(kind, request, client)) for kind, request in requests.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    out.put(results)


Round = tuple[dict[str, Any], list[float]]
"""One round of a phase: the closed loop's summary, and its answered calls' latencies (seconds)."""


def _measure(address: str, queries: list[str], seconds: float, k: int) -> Round:
    latencies: list[float] = []
    return closed_loop(address, queries, ["sparse"], 1, seconds=seconds, k=k, sink=latencies), latencies


def _p99(latencies: list[float]) -> float:
    return percentiles(latencies)["p99_ms"]


def _pooled(rounds: list[Round]) -> dict[str, Any]:
    """One phase's summary over its rounds: counts summed, percentiles of the pooled latencies."""
    errors: Counter[str] = Counter()
    for part, _ in rounds:
        errors.update(part["errors"])
    seconds = sum(part["seconds"] for part, _ in rounds)
    answered = sum(part["answered"] for part, _ in rounds)
    return {
        "requests": sum(part["requests"] for part, _ in rounds),
        "answered": answered,
        "errors": dict(errors),
        "seconds": round(seconds, 3),
        "qps": round(answered / seconds, 1) if seconds else 0.0,
        **percentiles([x for _, latencies in rounds for x in latencies]),
    }


def fairness(
    address: str,
    queries: list[str],
    texts: list[str],
    seconds: float,
    k: int = 10,
    max_k: int = 1000,
    warmup: int = 100,
    timeout: float = 300.0,
    rounds: int = 1,
) -> dict[str, Any]:
    """Small-search latency idle and under the largest accepted Encode and BatchSearch (see the module doc)."""
    largest = find_largest(address, texts, max_k, timeout)
    closed_loop(address, queries[::-1], ["sparse"], 1, requests=warmup, k=k)
    requests = {
        "encode": encode_request(texts[: largest["encode_texts"]]),
        "batch_search": batch_request(texts[: largest["batch_search_queries"]], max_k),
    }
    context = multiprocessing.get_context("spawn")
    go, stop, out, busy = context.Event(), context.Event(), context.Queue(), context.Value("i", 0)
    process = context.Process(target=_background, args=(address, requests, timeout, go, busy, stop, out))
    process.start()
    part = seconds / rounds
    idle: list[Round] = []
    loaded: list[Round] = []
    try:
        for _ in range(rounds):
            drained = time.monotonic() + timeout
            while busy.value and time.monotonic() < drained:  # the idle part starts once the background's calls end
                time.sleep(0.01)
            idle.append(_measure(address, queries, part, k))
            go.set()
            while not busy.value and process.is_alive():
                time.sleep(0.01)
            if not process.is_alive():
                raise RuntimeError("the background client stopped")
            time.sleep(0.2)  # both kinds of large call under way before measuring
            loaded.append(_measure(address, queries, part, k))
            go.clear()
    finally:
        stop.set()
    background = out.get(timeout=timeout + 60)
    process.join()
    quiet, busy_phase = _pooled(idle), _pooled(loaded)
    return {
        "largest_requests": {**largest, "chars": len(texts[0]), "k": max_k},
        "rounds": rounds,
        "idle": quiet,
        "under_load": busy_phase,
        "background": background,
        "p50_ratio": round(busy_phase["p50_ms"] / quiet["p50_ms"], 2),
        "p99_ratio": round(busy_phase["p99_ms"] / quiet["p99_ms"], 2),
        "p99_ratio_by_round": [
            round(_p99(under) / _p99(alone), 2) for (_, alone), (_, under) in zip(idle, loaded, strict=True)
        ],
        "target_ratio": TARGET_RATIO,
        "target_met": busy_phase["p99_ms"] <= TARGET_RATIO * quiet["p99_ms"] and not busy_phase["errors"],
    }


def run(
    index: Path,
    dataset: Path,
    seconds: float,
    k: int,
    max_texts: int,
    max_chars: int,
    max_k: int,
    server_options: list[str],
    warmup: int = 100,
    rounds: int = 1,
) -> dict[str, Any]:
    """Start ``lsr serve --index INDEX`` and measure :func:`fairness` with the dataset's queries and corpus."""
    from lsr.data.beir import BeirDataset

    queries = list(BeirDataset(dataset).queries().values())
    texts = long_texts(dataset, max_chars, max_texts)
    arguments = ["--index", str(index), *server_options]
    result: dict[str, Any] = {"machine": machine(), "server_arguments": arguments, "seconds": seconds, "k": k}
    process, address = start_server(arguments)
    try:
        result.update(fairness(address, queries, texts, seconds, k, max_k, warmup, rounds=rounds))
        with Client(address) as client:
            stats = client.stats()
        result["batchers"] = {
            b.name: {"batches": b.batches, "items": b.items, "largest": b.largest} for b in stats.batchers
        }
    finally:
        result["server_exit_status"] = stop_server(process)
    result["load_average_end"] = machine()["load_average_1_5_15"]
    return result
