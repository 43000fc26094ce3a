"""``lsr eval compare``: runs side by side, each against the first with a paired t-test, and a plot.

Reads what every evaluation writes (``metrics.json``, ``per_query.tsv``,
``config.json``), so nothing is re-scored and runs from any lsr command compare.
The t-test pairs the per-query values of the queries both runs scored (two-sided,
as ranx and trectools report by default); runs of different datasets or splits
are refused, because their queries do not pair.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lsr.errors import LsrError
from lsr.fsutil import atomic_file
from lsr.metrics import Paired, paired_test

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.table import Table

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


def short_names(names: list[str]) -> tuple[str, list[str]]:
    """Run names without the prefix they all share (up to a separator), so that at 80 columns what differs shows:
    ``scifact-dense``, ``scifact-sparse`` become ``dense``, ``sparse`` under the common ``scifact-``."""
    prefix = os.path.commonprefix(names)
    cut = max(prefix.rfind(sep) for sep in "-_./ ") + 1
    shorts = [name[cut:] for name in names]
    if cut == 0 or len(set(shorts)) != len(names) or not all(shorts):
        return "", names
    return names[0][:cut], shorts


def format_p(p_value: float) -> str:
    """A p-value readable at a glance: three decimals, ``p<0.001`` below that, and a star when significant."""
    if math.isnan(p_value):
        return "p n/a"
    star = "*" if p_value < SIGNIFICANCE else ""
    return ("p<0.001" if p_value < 0.001 else f"p={p_value:.3f}") + star


def table(runs: list[RunScores], tests: dict[str, dict[str, Paired]], measures: list[str], width: int = 80) -> Table:
    """Measures down, runs across (runs are fewer, and their names are the long part): each cell the value, and
    under it the difference from the baseline and its p-value, on one line when ``width`` columns allow, else on
    two; names fold rather than being cut off."""
    from rich.table import Table

    prefix, shorts = short_names([run.name for run in runs])
    title = f"{prefix + '…: ' if prefix else ''}{shorts[0]} is the baseline; Δ, paired t-test p (* p < {SIGNIFICANCE})"
    one_line = len("+0.0000 p=0.000*")
    wide = 10 + sum(max(len(short), one_line) + 3 for short in shorts) <= width
    grid = Table(title=title, title_justify="left", pad_edge=False)
    grid.add_column("measure", overflow="fold")
    for i, short in enumerate(shorts):
        grid.add_column(short, justify="right", overflow="fold", min_width=one_line if wide and i else 8)
    for measure in measures:
        cells = []
        for run in runs:
            cell = f"{run.aggregate.get(measure, math.nan):.4f}"
            if run.name in tests:
                test = tests[run.name][measure]
                cell += f"\n{test.delta:+.4f}{' ' if wide else chr(10)}{format_p(test.p_value)}"
            cells.append(cell)
        grid.add_row(measure, *cells)
    return grid


def figure(runs: list[RunScores], measures: list[str]) -> Figure:
    """Grouped bars, one group per measure and one bar per run, as a reader would put them in a paper: titled with
    the dataset and split, each bar labelled with its value, a star over a bar significantly different from the
    baseline's, and the value axis around the data (on 0-1, 0.645 and 0.644 look equal)."""
    from matplotlib.figure import Figure

    tests = compare(runs, measures)
    values = [[run.aggregate.get(m, math.nan) for m in measures] for run in runs]
    finite = [v for row in values for v in row if not math.isnan(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    margin = max(0.1 * (high - low), 0.02)
    width = 0.8 / len(runs)
    drawing = Figure(figsize=(max(6.0, 0.9 * len(measures) * len(runs) / 2 + 3), 5.5))
    axes = drawing.subplots()
    for i, (run, row) in enumerate(zip(runs, values, strict=True)):
        positions = [m + (i - (len(runs) - 1) / 2) * width for m in range(len(measures))]
        bars = axes.bar(positions, row, width, label=run.name)
        marks = [
            f"{v:.3f}" + ("*" if run.name in tests and tests[run.name][m].p_value < SIGNIFICANCE else "")
            for v, m in zip(row, measures, strict=True)
        ]
        axes.bar_label(bars, marks, fontsize="x-small", padding=2, rotation=90 if len(runs) > 3 else 0)
    axes.set_xticks(range(len(measures)), measures)
    bottom = max(0.0, low - 3 * margin)
    axes.set_ylim(bottom, high + (4 if len(runs) > 3 else 2) * margin)  # room above the highest bar for its label
    axes.set_xlabel("measure")
    axes.set_ylabel("score (axis starts above 0)" if bottom > 0 else "score")
    axes.set_title(plot_title(runs))
    axes.legend(  # below the axes, where it hides no bar
        fontsize="small",
        title=f"* p < {SIGNIFICANCE} vs {runs[0].name} (paired t-test)",
        title_fontsize="small",
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        ncol=min(len(runs), 3),
    )
    drawing.tight_layout()
    return drawing


def plot(runs: list[RunScores], measures: list[str], path: str | Path) -> Path:
    """Save :func:`figure` as an image (format from the suffix), atomically: a failure leaves no half image."""
    path = Path(path)
    with atomic_file(path, "wb") as handle:
        figure(runs, measures).savefig(handle, dpi=120, format=path.suffix.lstrip(".") or "png")
    return path


def plot_title(runs: list[RunScores]) -> str:
    """``scifact, test split`` from the runs' configs (the dataset folder's name), or what is known of it."""
    config = runs[0].config
    dataset = Path(str(config["dataset"])).name if config.get("dataset") else "runs"
    split = f", {config['split']} split" if config.get("split") else ""
    return f"{dataset}{split}: {len(runs)} runs"
