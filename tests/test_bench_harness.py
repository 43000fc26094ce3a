"""The speed comparison's protocol (`lsr bench engines`): exactness checked, recall tie-aware, matched recall,
and the vectors pack that carries encodings back from the GPU machine."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from bench_support import encoded_vectors_folder, vectors_folder
from lsr.eval.bench.engines import engine
from lsr.eval.bench.engines.base import Answer, Vectors
from lsr.eval.bench.engines.harness import Report, Row, compare, recall, same_scores
from lsr.eval.bench.engines.tables import exact_table
from lsr.eval.bench.transport import pack, unpack
from typer.testing import CliRunner

from lsr.cli import app
from lsr.encode.shards import iter_shards


def impacts(rows: int, vocab: int, density: float, seed: int) -> sp.csr_matrix:
    """Integer impacts 1..300 as float32, the form every engine indexes."""
    matrix = sp.random(rows, vocab, density=density, format="csr", random_state=seed, dtype=np.float32)
    matrix.data = np.ceil(matrix.data * 300).astype(np.float32)
    return matrix


def test_lsr_is_checked_exact_and_pruning_loses_recall(tmp_path: Path) -> None:
    docs = Vectors([f"d{i}" for i in range(600)], impacts(600, 150, 0.06, 1))
    queries = Vectors([f"q{i}" for i in range(30)], impacts(30, 150, 0.08, 2))
    lsr = engine("lsr")
    report = compare([lsr], docs, queries, k=10, rounds=2)
    rows = {row.label: row for row in report.rows}
    assert rows["lsr"].exact_scores_match is True and rows["lsr"].recall == 1.0
    assert rows["lsr alpha=1.0 rerank=100"].exact_scores_match is True
    assert rows["lsr budget=1000 rerank=100"].exact_scores_match is None  # pruned: measured, not assumed
    assert all(len(row.rounds_mean_ms) == 2 and row.p99_ms >= row.p50_ms > 0 for row in report.rows)
    assert report.reference_checked_queries == 20 and len(report.load_average) == 2
    assert report.builds["lsr"]["index_mib"] > 0
    matched = report.matched()["lsr"]
    assert matched["0.99"] is not None and rows[matched["0.99"]["label"]].recall >= 0.99


def test_exact_table_shows_the_spread_of_the_round_means_never_below_zero() -> None:
    """Two rounds far apart (a cold first round): the table gives their lowest and highest means, where the t
    interval it used to print reached below zero."""
    row = Row("lsr", "lsr", {}, 1.0, True, 1.35, 0.2, 9.0, [2.5, 0.2])
    table = exact_table({"rows": [asdict(row)]})
    assert "| per-round means, ms |" in table.splitlines()[0]
    assert "| lsr | yes | 1.35 | 0.200–2.50 | 0.200 | 9.00 | — |" in table


def test_lsr_builds_its_clusters_only_for_a_run_that_searches_them(tmp_path: Path) -> None:
    """A run of lsr's exact reference alone (`--reference-only`) leaves the clusters out of its build; the sweep,
    whose clustered settings read them, builds them."""
    docs = Vectors([f"d{i}" for i in range(500)], impacts(500, 120, 0.06, 5))
    queries = Vectors([f"q{i}" for i in range(10)], impacts(10, 120, 0.08, 6))
    sweep, alone = engine("lsr"), engine("lsr")
    sweep.plan(sweep.grid(10))
    sweep.build(docs, tmp_path)
    alone.plan([{}])
    alone.build(docs, tmp_path / "alone")
    assert (tmp_path / "lsr" / "clusters").is_dir() and not (tmp_path / "alone" / "lsr" / "clusters").exists()
    reference = compare([engine("lsr")], docs, queries, k=10, rounds=1, settings=[[{}]])
    full = compare([engine("lsr")], docs, queries, k=10, rounds=1)
    assert [row.label for row in reference.rows] == ["lsr"] and reference.rows[0].exact_scores_match is True
    assert reference.builds["lsr"]["index_mib"] < full.builds["lsr"]["index_mib"]


def test_every_finished_round_is_reported_before_the_run_ends(tmp_path: Path) -> None:
    """A run cut short by a machine's time limit keeps its rounds: each one is handed out as it finishes."""
    docs = Vectors([f"d{i}" for i in range(400)], impacts(400, 120, 0.06, 3))
    queries = Vectors([f"q{i}" for i in range(20)], impacts(20, 120, 0.08, 4))
    snapshots: list[dict] = []
    report = compare(
        [engine("lsr")],
        docs,
        queries,
        k=10,
        rounds=3,
        threads=2,
        on_round=lambda r: snapshots.append(json.loads(json.dumps(r.to_json()))),
    )
    assert [s["rounds_done"] for s in snapshots] == [1, 2, 3] and not any(s["complete"] for s in snapshots)
    for done, snapshot in enumerate(snapshots, start=1):
        assert all(len(row["rounds_mean_ms"]) == done and row["throughput_qps"] is None for row in snapshot["rows"])
        assert snapshot["rows"][0]["exact_scores_match"] is True and snapshot["matched_recall"]["lsr"]["0.99"]
    assert report.complete and report.rounds_done == 3 and all(row.throughput_qps for row in report.rows)
    assert all(row.throughput_workers == "2 threads" for row in report.rows)  # lsr's batch runs on the threads asked
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(snapshots[0]))
    result = CliRunner().invoke(app, ["bench", "engines-table", str(partial)])
    assert result.exit_code == 0, result.output
    assert "partial result: 1 of 3 timed rounds, no throughput" in result.output and "| lsr |" in result.output


def test_recall_counts_ties_and_same_scores_ignores_their_order() -> None:
    docs = Vectors(["a", "b", "c"], sp.csr_matrix(np.array([[2.0, 0], [2.0, 0], [1.0, 0]], dtype=np.float32)))
    queries = Vectors(["q"], sp.csr_matrix(np.array([[1.0, 0]], dtype=np.float32)))
    reference = [Answer(np.array([0]), np.array([2.0], dtype=np.float32))]
    tied = [Answer(np.array([1]), np.array([2.0], dtype=np.float32))]  # the other document of equal score
    worse = [Answer(np.array([2]), np.array([1.0], dtype=np.float32))]
    assert recall(docs, queries, reference, tied, 1) == 1.0
    assert recall(docs, queries, reference, worse, 1) == 0.0
    assert same_scores(reference, tied, 1) and not same_scores(reference, worse, 1)


def test_at_k_beyond_the_rescoring_pool_every_lsr_setting_runs_under_its_own_label(tmp_path: Path) -> None:
    """At k = 200 (above the 100 documents lsr rescores at k = 10) the pruned settings used to fail (a budget
    search refuses a pool below k) or run a pool wider than their label said (dynamic pruning widened it)."""
    k = 200
    docs = Vectors([f"d{i}" for i in range(600)], impacts(600, 150, 0.06, 1))
    queries = Vectors([f"q{i}" for i in range(25)], impacts(25, 150, 0.08, 2))
    report = compare([engine("lsr")], docs, queries, k=k, rounds=1)
    rows = {row.label: row for row in report.rows}
    assert report.k == k and len(rows) == len(engine("lsr").grid(k))
    assert all(row.settings["rerank"] == k for row in report.rows if "rerank" in row.settings)
    assert rows["lsr"].recall == 1.0 and rows["lsr"].exact_scores_match is True
    assert rows[f"lsr alpha=1.0 rerank={k}"].exact_scores_match is True
    assert rows[f"lsr alpha=0.3 rerank={k}"].recall < 1.0  # pruning at k = 200 loses hits, and it shows


def test_recall_at_k_counts_ties_at_the_kth_score_and_charges_missing_hits() -> None:
    """k = 20 with 30 documents tied at the 20th score: any 15 of them complete the top 20; fewer hits, or a
    lower-scoring document in a tied one's place, lose exactly their share."""
    scores = np.array([10.0] * 5 + [5.0] * 30 + [1.0] * 5, dtype=np.float32)
    docs = Vectors([str(i) for i in range(len(scores))], sp.csr_matrix(scores[:, None]))
    queries = Vectors(["q"], sp.csr_matrix(np.array([[1.0]], dtype=np.float32)))

    def hits(rows: list[int]) -> list[Answer]:
        return [Answer(np.array(rows), scores[rows])]

    reference = hits(list(range(20)))
    assert recall(docs, queries, reference, hits([*range(5), *range(20, 35)]), 20) == 1.0
    assert recall(docs, queries, reference, hits(list(range(10))), 20) == 0.5
    assert recall(docs, queries, reference, hits([*range(19), 35]), 20) == 0.95
    assert same_scores(reference, hits([*range(5), *range(20, 35)]), 20)
    assert not same_scores(reference, hits(list(range(19))), 20)


def test_matched_recall_picks_the_fastest_setting_that_reaches_each_target() -> None:
    def row(label: str, recall_: float, mean: float) -> Row:
        return Row("x", label, {}, recall_, None, mean, mean, mean, (mean, mean), [mean])

    report = Report(1, 1, 1, 10, 1, 1, [], {}, [row("slow", 1.0, 9.0), row("mid", 0.96, 3.0), row("fast", 0.5, 1.0)])
    matched = report.matched()["x"]
    assert matched["0.90"]["label"] == "mid" and matched["0.95"]["label"] == "mid"
    assert matched["0.97"]["label"] == "slow" and matched["0.99"]["label"] == "slow"


def test_a_pack_round_trips_the_quantised_vectors(tmp_path: Path) -> None:
    ids = [f"doc{i}" for i in range(500)]
    matrix = impacts(500, 30522, 0.002, 3) / 100  # weights whose x100 quantisation is exact
    matrix[7] = 0  # a document with no term
    matrix.eliminate_zeros()
    vectors_folder(tmp_path / "vectors", ids, matrix, "some-model")
    pack(tmp_path / "vectors", tmp_path / "pack", 3)
    assert len(list((tmp_path / "pack").glob("pack-*.xz"))) == 3
    unpack(tmp_path / "pack", ids, tmp_path / "back")
    ((back_ids, back),) = iter_shards(tmp_path / "back")
    assert back_ids == ids and abs(back - matrix).max() < 1e-6
    with pytest.raises(Exception, match="another corpus"):
        unpack(tmp_path / "pack", [*ids[:-1], "other"], tmp_path / "wrong")


def test_lsr_bench_engines_end_to_end(tmp_path: Path, beir_dir: Path) -> None:
    """Real command line over a vectors folder and a BEIR folder's queries, encoded with a real sparse model."""
    from lsr.data.beir import BeirDataset

    docs = list(BeirDataset(beir_dir).corpus())
    encoded_vectors_folder(tmp_path / "vectors", beir_dir)
    out = tmp_path / "bench" / "result.json"
    args = ["bench", "engines", "--vectors", str(tmp_path / "vectors"), "--dataset", str(beir_dir)]
    result = CliRunner().invoke(app, [*args, "--rounds", "1", "--output", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["documents"] == len(docs) and data["rows"][0]["exact_scores_match"] is True
    assert out.with_suffix(".png").stat().st_size > 0
    assert len([row for row in data["rows"] if row["system"] == "lsr"]) > 1  # the pruned sweep by default
    only = tmp_path / "bench" / "reference.json"
    result = CliRunner().invoke(app, [*args, "--rounds", "1", "--reference-only", "--output", str(only)])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(only.read_text())["rows"]
    assert row["label"] == "lsr" and row["exact_scores_match"] is True
    clustered = tmp_path / "bench" / "clustered.json"
    result = CliRunner().invoke(app, [*args, "--rounds", "1", "--lsr-grid", "clustered", "--output", str(clustered)])
    assert result.exit_code == 0, result.output
    labels = [row["label"] for row in json.loads(clustered.read_text())["rows"]]
    assert labels[0] == "lsr" and len(labels) > 1 and all("query_cut=" in label for label in labels[1:])
    for bad in (["--lsr-grid", "pruned"], ["--lsr-grid", "clustered", "--reference-only"]):
        result = CliRunner().invoke(app, [*args, *bad])
        assert result.exit_code != 0 and "--lsr-grid" in result.output
    result = CliRunner().invoke(app, ["bench", "engines-table", str(clustered), "--families"])
    assert result.exit_code == 0, result.output
    assert "| lsr exact |" in result.output and "| lsr clustered |" in result.output
