"""lsr.eval.recsys.curves: which runs are drawn, and that the plot is written."""

from __future__ import annotations

import json
from pathlib import Path

from lsr.eval.recsys.curves import finished_rows, plot


def _row(model: str, density: float, epochs: int, planned: int) -> dict:
    train = {"model": model, "density": density, "regrow": "accumulated", "static_mask": False}
    train |= {"prune_fraction": 0.5, "hparams": {"dim": 80} if density < 1 else {}}
    curve = [[e, 0.1 + e / 10_000, 0.1] for e in range(100, epochs + 1, 100)]
    return {
        "config": {"train": train},
        "metrics": {"epochs": epochs, "planned_epochs": planned, "recall@20": curve[-1][1]},
        "size": {"stored_parameters": 1_000_000},
        "test_curve_epoch_recall20_ndcg20": curve,
    }


def test_only_finished_runs_of_the_model_and_length_are_drawn(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    rows = [_row("lightgcn", 1.0, 1000, 1000), _row("lightgcn", 0.2, 1000, 1000)]
    rows += [_row("lightgcn", 0.2, 400, 1000), _row("lightgcn", 0.2, 200, 200), _row("mf", 0.2, 1000, 1000)]
    results.write_text(json.dumps({"rows": rows}))
    chosen = finished_rows([results], "lightgcn", 1000)
    assert [row["config"]["train"]["density"] for row in chosen] == [1.0, 0.2]
    output = tmp_path / "plots" / "curves.png"
    plot(chosen, output, gap=0.05)
    assert output.read_bytes().startswith(b"\x89PNG")
