"""Recall@k against single-thread mean latency, one line per engine: the picture of a matched-recall comparison."""

from __future__ import annotations

from pathlib import Path

from lsr.eval.bench.engines.harness import Report

from lsr.fsutil import atomic_file


def plot(report: Report, path: Path, title: str) -> None:
    """Save the recall-latency curves of ``report`` at ``path`` (PNG), crash-safe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for system in sorted({row.system for row in report.rows}):
        rows = sorted((row for row in report.rows if row.system == system), key=lambda row: row.mean_ms)
        ax.plot([row.mean_ms for row in rows], [row.recall for row in rows], marker="o", label=system)
    ax.set_xscale("log")
    ax.set_xlabel("mean latency per query, ms (batch 1, one thread, log scale)")
    ax.set_ylabel(f"recall@{report.k} (tie-aware, vs exact)")
    low = min((row.recall for row in report.rows), default=0.0)
    ax.set_ylim(max(0.0, low - 0.02), 1.005)
    for target in (0.90, 0.95, 0.97, 0.99):
        if target >= low:
            ax.axhline(target, color="grey", linewidth=0.5, linestyle=":")
    ax.set_title(f"{title}: {report.documents:,} documents, {report.queries:,} queries, k={report.k}")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_file(path, mode="wb", encoding=None) as handle:
        fig.savefig(handle, format="png", dpi=130)
    plt.close(fig)
