"""Document-encoding throughput of the torch, ONNX fp32 and ONNX int8 backends on the same texts (issue 22 item 4).

The backends run interleaved, round after round, so load from other work on a shared machine falls on all of
them alike; each timing records wall seconds, the process's CPU seconds (all its threads: less sensitive to
other processes than wall time) and the load average. Outputs are compared with torch's, so a speed-up cannot
come from computing something else: the share of non-zeros that differ and the largest weight difference.
sentence-transformers' own ONNX backend is tried too and its error kept when it cannot run here.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from lsr.models import load_encoder

BACKENDS = ("torch", "onnx", "onnx-int8")


def _clock(run: Any) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = run()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def _sentence_transformers_onnx(model: Path, texts: list[str], batch_size: int) -> dict[str, Any]:
    """Documents/s of ``SparseEncoder(model, backend="onnx")``, or why it could not run."""
    try:
        from sentence_transformers import SparseEncoder

        encoder = SparseEncoder(str(model), backend="onnx", device="cpu")
        encoder.encode_document(texts[:batch_size], batch_size=batch_size)
        wall, cpu, _ = _clock(lambda: encoder.encode_document(texts, batch_size=batch_size))
    except Exception as exc:  # noqa: BLE001 - any failure is the finding, reported as such
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
    return {"docs_per_s": len(texts) / wall, "docs_per_cpu_s": len(texts) / cpu}


def bench_backends(model: Path, texts: list[str], batch_size: int = 32, rounds: int = 3) -> dict[str, Any]:
    """Per backend: median documents/s (wall and per CPU second) over ``rounds`` interleaved rounds, and agreement
    with torch."""
    encoders = {name: load_encoder(model, device="cpu", backend=name) for name in BACKENDS}  # exports before timing
    for encoder in encoders.values():
        encoder.encode_document(texts[:batch_size], batch_size=batch_size)
    timings: dict[str, list[dict[str, Any]]] = {name: [] for name in BACKENDS}
    outputs: dict[str, Any] = {}
    for _ in range(rounds):
        for name, encoder in encoders.items():
            wall, cpu, outputs[name] = _clock(lambda e=encoder: e.encode_document(texts, batch_size=batch_size))
            timings[name].append({"wall_s": wall, "cpu_s": cpu, "load": [round(x, 2) for x in os.getloadavg()]})
    reference = outputs["torch"].toarray()
    result: dict[str, Any] = {"model": str(model), "documents": len(texts), "batch_size": batch_size}
    for name in BACKENDS:
        dense = outputs[name].toarray()
        result[name] = {
            "docs_per_s": statistics.median(len(texts) / t["wall_s"] for t in timings[name]),
            "docs_per_cpu_s": statistics.median(len(texts) / t["cpu_s"] for t in timings[name]),
            "rounds": timings[name],
            "nonzeros_per_doc": outputs[name].nnz / len(texts),
            "nonzeros_differing": float(((dense > 0) != (reference > 0)).sum() / max((reference > 0).sum(), 1)),
            "max_abs_diff": float(np.abs(dense - reference).max()),
        }
    for name in BACKENDS[1:]:  # per round, against the torch timing of the same round
        ratios = [t["wall_s"] / o["wall_s"] for t, o in zip(timings["torch"], timings[name], strict=True)]
        cpu = [t["cpu_s"] / o["cpu_s"] for t, o in zip(timings["torch"], timings[name], strict=True)]
        result[name] |= {"speedup_wall": statistics.median(ratios), "speedup_cpu": statistics.median(cpu)}
    result["sentence_transformers_onnx"] = _sentence_transformers_onnx(model, texts, batch_size)
    return result
