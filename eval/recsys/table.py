"""Markdown rows for eval/RESULTS.md from ``lsr recommend train`` output folders.

python -m lsr.eval.recsys.table runs/recsys/ml-100k/*/
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def label(train: dict) -> str:
    """How a run was trained, in words: "dense", "DSL 0.2 accumulated, dim 80", ... (``train``: config.json's)."""
    dsl = "dense" if train["density"] >= 1 else f"DSL {train['density']:g}"
    if train["density"] < 1 and (train["static_mask"] or train["regrow"] != "gradient"):
        dsl += " static" if train["static_mask"] else f" {train['regrow']}"
    if train["density"] < 1 and train["prune_fraction"] != 0.5:
        dsl += f", prune fraction {train['prune_fraction']:g}"
    if train["density"] < 1 and train.get("pooled_budget"):  # absent from runs older than the option
        dsl += ", pooled budget"
    if train["density"] < 1 and train.get("update_until", 1.0) < 1:
        dsl += f", mask moves in the first {train['update_until']:.0%}"
    return dsl + "".join(f", {key} {value}" for key, value in sorted(train["hparams"].items()))  # ", dim 80"


def row(folder: Path) -> str:
    """One table row: model, density (regrowth), epochs, metrics, stored size and speed of one run."""
    metrics = json.loads((folder / "metrics.json").read_text())
    size = json.loads((folder / "size.json").read_text())
    train = json.loads((folder / "config.json").read_text())["train"]
    cells = [
        train["model"],
        label(train),
        str(metrics["epochs"]),
        *(f"{metrics[f'{m}@{k}']:.4f}" for k in (20, 10, 50) for m in ("recall", "ndcg")),
        f"{size['stored_parameters']:,}",
        f"{size['stored_parameters'] / size['dense_parameters']:.3f}",
        f"{size['bytes'] / 2**20:.2f}",
        f"{metrics['train_seconds_per_epoch']:.2f}",
        f"{metrics['inference_ms_per_user']:.3f}",
        train["device"],
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| model | training | epochs | R@20 | N@20 | R@10 | N@10 | R@50 | N@50 | stored params | of dense | MiB on disk "
    "| s/epoch | ms/user | device |\n" + "| --- | --- | ---: " + "| ---: " * 11 + "| --- |"
)

if __name__ == "__main__":
    print(HEADER)
    for name in sys.argv[1:]:
        if (Path(name) / "metrics.json").is_file():
            print(row(Path(name)))
