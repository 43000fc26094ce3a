"""``lsr eval compare``: runs side by side, each against the first with a paired t-test, and a plot.

Reads what every evaluation writes (``metrics.json``, ``per_query.tsv``,
``config.json``), so nothing is re-scored and runs from any lsr command compare.
The t-test pairs the per-query values of the queries both runs scored (two-sided,
as ranx and trectools report by default); runs of different datasets or splits
are refused, because their queries do not pair.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lsr.errors import LsrError
from lsr.fsutil import atomic_file
from lsr.metrics import Paired, paired_test

SIGNIFICANCE = 0.05


@dataclass
class RunScores:
    """One evaluated run folder."""

    name: str
    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]
    config: dict[str, object]


def load_run_scores(folder: str | Path, name: str | None = None) -> RunScores:
    """The metrics an evaluation wrote into ``folder``."""
    folder = Path(folder)
    try:
        aggregate = json.loads((folder / "metrics.json").read_text())
        lines = (folder / "per_query.tsv").read_text().splitlines()
    except (OSError, json.JSONDecodeError) as exc:
        raise LsrError(f"{folder}: not an evaluation folder with metrics.json and per_query.tsv ({exc})") from exc
    per_query: dict[str, dict[str, float]] = {}
    for line in lines:
        measure, qid, value = line.split("\t")
        if qid != "all":
            per_query.setdefault(measure, {})[qid] = float(value)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    return RunScores(name or folder.name, aggregate, per_query, config)


def check_comparable(runs: list[RunScores]) -> None:
    """Refuse runs whose configs name different datasets or splits."""
    seen = {(str(r.config.get("dataset")), str(r.config.get("split"))) for r in runs if r.config.get("dataset")}
    if len(seen) > 1:
        listed = "; ".join(f"{d} {s}" for d, s in sorted(seen))
        raise LsrError(f"these runs are on different datasets or splits ({listed}); their queries do not pair")


def compare(runs: list[RunScores], measures: list[str]) -> dict[str, dict[str, Paired]]:
    """For every run after the first and every measure: the paired comparison with the first run."""
    check_comparable(runs)
    for run in runs:
        missing = [m for m in measures if m not in run.per_query]
        if missing:
            raise LsrError(f"{run.name}: no per-query values for {', '.join(missing)}")
    baseline = runs[0]
    return {run.name: {m: paired_test(baseline.per_query[m], run.per_query[m]) for m in measures} for run in runs[1:]}


def plot(runs: list[RunScores], measures: list[str], path: str | Path) -> Path:
    """Grouped bars: one group per measure, one bar per run; saved as an image (format from the suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 0.8 / len(runs)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.2 * len(measures) * len(runs) / 2 + 3), 4))
    for i, run in enumerate(runs):
        positions = [m + (i - (len(runs) - 1) / 2) * width for m in range(len(measures))]
        axes.bar(positions, [run.aggregate.get(m, 0.0) for m in measures], width, label=run.name)
    axes.set_xticks(range(len(measures)), measures)
    axes.set_ylim(0, 1)
    axes.set_ylabel("value")
    axes.legend(fontsize="small")
    figure.tight_layout()
    path = Path(path)
    with atomic_file(path, "wb") as handle:
        figure.savefig(handle, dpi=120, format=path.suffix.lstrip(".") or "png")
    plt.close(figure)
    return path
