"""A picture of a training run from its ``log.jsonl``: losses, regulariser, active dimensions, dev nDCG@10."""

from __future__ import annotations

import json
from pathlib import Path

from lsr.fsutil import atomic_file


def plot_log(log: str | Path, output: str | Path) -> None:
    """Four panels over steps; written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
    steps = [r for r in records if "loss" in r]
    evals = [r for r in records if "eval" in r]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    panels = [  # the regulariser and the sizes fall by orders of magnitude: log scale
        (axes[0, 0], ("loss", "kl", "nce", "margin"), "loss", "linear"),
        (axes[0, 1], ("flops_d", "flops_q"), "FLOPS regulariser (batch)", "log"),
        (axes[1, 0], ("active_d", "active_q"), "active dimensions per text", "log"),
    ]
    for axis, names, title, scale in panels:
        for name in names:
            points = [(r["step"], r[name]) for r in steps if name in r]
            if points:
                axis.plot(*zip(*points, strict=True), label=name)
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.set_yscale(scale)
        axis.legend()
    axis = axes[1, 1]
    for name in sorted({e["name"] for r in evals for e in r["eval"]}):
        points = [(r["step"], e["ndcg10"]) for r in evals for e in r["eval"] if e["name"] == name]
        axis.plot(*zip(*points, strict=True), marker="o", label=name)
    axis.set_title("dev nDCG@10")
    axis.set_xlabel("step")
    if evals:
        axis.legend()
    fig.tight_layout()
    with atomic_file(output, "wb") as out:
        fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
