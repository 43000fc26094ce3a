"""Output a reader can use at 80 columns: compare tables, its plot, tuned hybrid weights and the serve benchmark."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lsr.cli import app

MEASURES = ("nDCG@10", "R@100", "R@1000", "RR@10", "AP")


def evaluation(folder: Path, shift: float, dataset: str = "/data/beir/scifact") -> Path:
    """An evaluation folder as lsr eval run writes it: 30 queries, values ``shift`` above a fixed baseline."""
    folder.mkdir(parents=True)
    rows, aggregate = [], {}
    for m, measure in enumerate(MEASURES):
        values = [min(1.0, 0.5 + 0.01 * ((q * 7 + m) % 40) + shift * (q % 3)) for q in range(30)]
        rows += [f"{measure}\tq{q}\t{v:.4f}" for q, v in enumerate(values)]
        aggregate[measure] = sum(values) / len(values)
    (folder / "per_query.tsv").write_text("\n".join(rows) + "\n")
    (folder / "metrics.json").write_text(json.dumps(aggregate))
    (folder / "config.json").write_text(json.dumps({"dataset": dataset, "split": "test"}))
    return folder


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    names = ["scifact-dense-minilm", "scifact-sparse-splade", "scifact-hybrid-rrf", "scifact-hybrid-minmax"]
    return [evaluation(tmp_path / name, shift) for name, shift in zip(names, (0, 0.001, 0.03, 0.05), strict=True)]


def test_compare_fits_80_columns_with_whole_names_and_p_values(runs: list[Path]) -> None:
    result = CliRunner().invoke(app, ["eval", "compare", *map(str, runs)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.output.replace("scifact-…", "")  # only the common prefix is shortened, on purpose
    assert "scifact-…" in result.output
    for name in ("dense-minilm", "sparse-splade", "hybrid-rrf", "hybrid-minmax"):
        assert name in result.output or all(part in result.output for part in name.split("-"))
    p_values = re.findall(r"p[=<]\d\.\d{3}\*?", result.output)
    assert len(p_values) == 3 * len(MEASURES)  # every run but the baseline, every measure, never cut
    assert not Path("compare.png").exists()  # no plot unless --plot


def test_the_plot_has_title_labels_marks_and_a_range_around_the_data(runs: list[Path], tmp_path: Path) -> None:
    from lsr.eval.compare import figure, load_run_scores

    scores = [load_run_scores(folder) for folder in runs]
    axes = figure(scores, list(MEASURES)).axes[0]
    assert axes.get_title().startswith("scifact, test split")
    assert axes.get_ylabel().startswith("score") and axes.get_xlabel() == "measure"
    labels = [text.get_text() for text in axes.texts]
    assert len(labels) == len(runs) * len(MEASURES) and all(re.fullmatch(r"0\.\d{3}\*?", t) for t in labels)
    assert any(t.endswith("*") for t in labels)  # the big gains are significant
    low = min(run.aggregate[m] for run in scores for m in MEASURES)
    bottom, top = axes.get_ylim()
    assert 0 < bottom < low and top <= 1.1
    out = CliRunner().invoke(app, ["eval", "compare", *map(str, runs), "--plot", str(tmp_path / "c.png")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
    assert not list(tmp_path.glob(".c.png.lsr-tmp*"))


def test_tuned_weights_are_one_readable_line() -> None:
    from lsr.eval.outputs import tuned_weights

    config = {
        "fusion": "minmax",
        "weights": [0.3, 0.7],
        "legs": {"sparse": {}, "dense": {}},
        "tuning": {"split": "train", "queries": 300, "nDCG@10": 0.7112},
    }
    line = tuned_weights(config)
    assert line == "tuned minmax weights: sparse 0.30, dense 0.70 (nDCG@10 0.7112 on 300 train queries)"
    assert tuned_weights({"weights": [1.0, 1.0], "legs": {"a": {}, "b": {}}}) is None


def test_bench_serve_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    from lsr.eval.bench import cli

    run = {"qps": 812.44, "p50_ms": 8.1, "p90_ms": 12.5, "p99_ms": 20.25, "mean_batch": {"sparse": 6.5}, "errors": {}}
    rss = {"first_quarter_median": 512.0, "last_quarter_median": 515.5, "growth": 3.5, "max": 530.0}
    soak = {"seconds": 60.0, "load": {"qps": 790.0}, "memory_stable": True, "max_growth_mb": 50.0, "rss_mb": rss}
    cli._serve_table({"queries": 300, "k": 10, "retrievers": {"sparse": run}, "soak": soak})
    shown = capsys.readouterr().out
    assert "{" not in shown and "812.4" in shown and "20.25" in shown and "stable" in shown
    assert re.search(r"sparse[\s│]+812\.4[\s│]+8\.10[\s│]+12\.50[\s│]+20\.25[\s│]+6\.5[\s│]+0", shown)
