"""Recall@k against single-thread median latency, one colour per engine: the picture of a matched-recall comparison.

Every setting is a dot; the line joins each engine's Pareto frontier (the settings no
other setting of that engine beats on both latency and recall), which is what a reader
compares. Median, because the matched-recall table chooses by it (see the harness).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lsr.eval.bench.figures import save_png


def frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (latency, recall) points not beaten by a faster point of at least equal recall, by latency."""
    out: list[tuple[float, float]] = []
    for latency, recall in sorted(points):
        if not out or recall > out[-1][1]:
            out.append((latency, recall))
    return out


def plot(result: dict[str, Any], path: Path, title: str) -> None:
    """Save the recall-latency picture of an `lsr bench engines` result at ``path`` (PNG), crash-safe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for number, system in enumerate(sorted({row["system"] for row in rows})):
        points = [(row["p50_ms"], row["recall"]) for row in rows if row["system"] == system]
        colour = f"C{number}"
        ax.scatter(*zip(*points, strict=True), s=12, color=colour, alpha=0.5)
        ax.plot(*zip(*frontier(points), strict=True), marker="o", color=colour, label=system)
    ax.set_xscale("log")
    ax.set_xlabel("median latency per query, ms (batch 1, one thread, log scale)")
    ax.set_ylabel(f"recall@{result['k']} (tie-aware, vs exact)")
    low = min(row["recall"] for row in rows)
    ax.set_ylim(max(0.0, low - 0.02), 1.005)
    for target in (0.90, 0.95, 0.97, 0.99):
        if target >= low:
            ax.axhline(target, color="grey", linewidth=0.5, linestyle=":")
    ax.set_title(f"{title}: {result['documents']:,} documents, {result['queries']:,} queries, k={result['k']}")
    save_png(fig, ax, path)
