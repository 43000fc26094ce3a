"""Plot the test recall@20 curves of recommender runs kept in eval/recsys/results-*.json, against the target.

python -m lsr.eval.recsys.curves eval/recsys/results-gowalla-s6.json eval/recsys/results-gowalla-s7.json \
    eval/recsys/results-gowalla-s8.json \
    --epochs 1000 --output eval/recsys/gowalla-dsl-curves.png

Rows are those that trained ``--epochs`` planned epochs to the end (``--model`` picks the backbone). Each dense
row also draws its final recall minus ``--gap`` (5%: the DSL 0.2 target) as a dashed line, so whether a sparse
curve ends above the target is read off the plot.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lsr.eval.recsys.table import label


def finished_rows(paths: list[Path], model: str, epochs: int) -> list[dict[str, Any]]:
    """The rows of ``paths`` that trained ``model`` for all of ``epochs`` planned epochs."""
    rows = []
    for path in paths:
        for row in json.loads(path.read_text(encoding="utf-8"))["rows"]:
            train, metrics = row["config"]["train"], row["metrics"]
            if train["model"] == model and metrics["epochs"] == metrics["planned_epochs"] == epochs:
                rows.append(row)
    return rows


def plot(rows: list[dict[str, Any]], output: Path, gap: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        train = row["config"]["train"]
        epochs, recall = zip(*((e, r) for e, r, _ in row["test_curve_epoch_recall20_ndcg20"]), strict=True)
        stored = row["size"]["stored_parameters"] / 1e6
        (line,) = axes.plot(epochs, recall, marker="o", markersize=3, label=f"{label(train)} ({stored:.2f}M weights)")
        if train["density"] >= 1:
            target = row["metrics"]["recall@20"] * (1 - gap)
            axes.axhline(target, color=line.get_color(), linestyle="--", linewidth=1)
            axes.annotate(f"{gap:.0%} below dense", (epochs[0], target), textcoords="offset points", xytext=(0, 3))
    axes.set_xlabel("epoch")
    axes.set_ylabel("recall@20 (test, full ranking)")
    axes.legend(fontsize=8, loc="lower right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="results-*.json files")
    parser.add_argument("--model", default="lightgcn")
    parser.add_argument("--epochs", type=int, default=1000, help="planned epochs of the rows to draw")
    parser.add_argument("--gap", type=float, default=0.05, help="target gap below dense, drawn dashed")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    rows = finished_rows(args.results, args.model, args.epochs)
    if not rows:
        parser.error(f"no {args.model} row of {args.epochs} finished epochs in {', '.join(map(str, args.results))}")
    plot(rows, args.output, args.gap)
    print(f"{len(rows)} curves -> {args.output}")


if __name__ == "__main__":
    main()
