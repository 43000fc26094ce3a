"""``lsr eval run`` and ``lsr eval compare`` end to end on a tiny corpus, for every retriever."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_beir
from tiny_models import tiny_bert
from typer.testing import CliRunner

from lsr.cli import app
from lsr.defaults import DEFAULT_SPARSE
from lsr.errors import DataWarning
from lsr.fsutil import MARKER
from lsr.metrics import DEFAULT_MEASURES
from lsr.runs import read_run

TRAIN = "query-id\tcorpus-id\tscore\nq4\td2\t1\nq5\td3\t1\n"
EXTRA_QUERIES = [{"_id": "q4", "text": "term frequency ranking"}, {"_id": "q5", "text": "vectors for queries"}]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import QUERIES

    folder = make_beir(tmp_path_factory.mktemp("data") / "tiny", queries=QUERIES + EXTRA_QUERIES)
    (folder / "qrels" / "train.tsv").write_text(TRAIN)
    return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def sparse_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("bert") / "model")


def eval_run(dataset: Path, out: Path, cache: Path, *args: str) -> Path:
    command = ["eval", "run", "--dataset", str(dataset), "--output-dir", str(out), "--cache-dir", str(cache), *args]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out


def written(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == list(DEFAULT_MEASURES)  # the keys lsr eval bm25 writes
    run = read_run(out / "run.trec")
    assert set(run) == {"q1", "q2", "q3"} and "q2" not in run["q2"]  # test queries only; BEIR drops the echo
    assert (out / "per_query.tsv").is_file()
    return metrics


def test_dense_run_caches_its_encodings(dataset: Path, cache: Path, tmp_path: Path) -> None:
    metrics = written(eval_run(dataset, tmp_path / "dense", cache, "--retriever", "dense"))
    assert metrics["nDCG@10"] > 0.9  # MiniLM finds these easily
    manifests = list(cache.glob("vectors/*/*/manifest.json"))
    assert len(manifests) == 1
    stamp = manifests[0].stat().st_mtime_ns
    eval_run(dataset, tmp_path / "again", cache, "--retriever", "dense", "--index", "exact")
    assert manifests[0].stat().st_mtime_ns == stamp  # reused, not re-encoded
    config = json.loads((tmp_path / "dense" / "config.json").read_text())
    assert config["legs"]["dense"]["recall@10_vs_exact"] == 1.0
    assert json.loads((tmp_path / "again" / "metrics.json").read_text()) == metrics


def test_sparse_run(dataset: Path, cache: Path, sparse_model: Path, tmp_path: Path) -> None:
    first = written(
        eval_run(dataset, tmp_path / "sparse", cache, "--retriever", "sparse", "--model", str(sparse_model))
    )
    # a cached index as an older lsr wrote it: no metadata checksum, no output marker; it is rebuilt, not refused
    (meta,) = cache.glob("index/*/*/sparse-float16/meta.json")
    fields = json.loads(meta.read_text())
    del fields["meta_crc32"]
    meta.write_text(json.dumps(fields))
    (meta.parent / MARKER).unlink()
    with pytest.warns(DataWarning, match="rebuilding the cached index"):
        again = written(
            eval_run(dataset, tmp_path / "again", cache, "--retriever", "sparse", "--model", str(sparse_model))
        )
    assert again == first and "meta_crc32" in json.loads(meta.read_text())


def test_sparse_run_by_clustered_search(dataset: Path, cache: Path, sparse_model: Path, tmp_path: Path) -> None:
    """`lsr eval run --heap-factor` builds the cached index's clusters once and scores clustered search: at heap
    factor 0 over every query term's list it is exact search, run for run; the setting is recorded."""
    sparse = ["--retriever", "sparse", "--model", str(sparse_model)]
    exact = eval_run(dataset, tmp_path / "exact", cache, *sparse)
    clustered = eval_run(dataset, tmp_path / "clustered", cache, *sparse, "--heap-factor", "0", "--query-cut", "1000")
    got, expected = read_run(clustered / "run.trec"), read_run(exact / "run.trec")
    assert {q: list(hits) for q, hits in got.items()} == {q: list(hits) for q, hits in expected.items()}
    # scores summed in another order: a float32 sum of n non-negative terms moves by at most (n - 1) units of
    # float32's epsilon (1.2e-7) of the total whatever the order; 1e-5 allows queries of up to 84 terms (a CI run
    # saw 1.15e-6, ten units, which the earlier 1e-6 refused)
    for q, hits in got.items():
        assert hits == pytest.approx(expected[q], rel=1e-5)
    assert written(clustered) == written(exact)
    (folder,) = cache.glob("index/*/*/sparse-float16/clusters")
    built = folder.stat().st_ino
    config = json.loads((clustered / "config.json").read_text())
    assert config["pruning"]["heap_factor"] == 0.0 and config["pruning"]["query_cut"] == 1000
    eval_run(dataset, tmp_path / "again", cache, *sparse, "--heap-factor", "1.0", "--query-cut", "1")
    assert folder.stat().st_ino == built  # reused, not rebuilt


def test_bm25_run_matches_lsr_eval_bm25(dataset: Path, cache: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyserini")
    metrics = written(eval_run(dataset, tmp_path / "bm25", cache, "--retriever", "bm25"))
    plain = CliRunner().invoke(app, ["eval", "bm25", "--dataset", str(dataset), "--output-dir", str(tmp_path / "b")])
    assert plain.exit_code == 0, plain.output
    assert json.loads((tmp_path / "b" / "metrics.json").read_text()) == metrics


def test_hybrid_with_tuned_weights_and_compare(dataset: Path, cache: Path, sparse_model: Path, tmp_path: Path) -> None:
    base = ("--model", str(sparse_model))
    eval_run(dataset, tmp_path / "dense", cache, "--retriever", "dense")
    out = eval_run(
        dataset, tmp_path / "hybrid", cache, "--retriever", "hybrid", "--legs", "sparse,dense", *base,
        "--fusion", "minmax", "--tune-split", "train", "--tune-step", "0.5",
    )  # fmt: skip
    written(out)
    config = json.loads((out / "config.json").read_text())
    assert config["tuning"]["split"] == "train" and config["tuning"]["queries"] == 2
    assert len(config["weights"]) == 2 and sum(config["weights"]) == pytest.approx(1.0)
    result = CliRunner().invoke(
        app, ["eval", "compare", str(tmp_path / "dense"), str(out), "--plot", str(tmp_path / "c.png")]
    )
    assert result.exit_code == 0, result.output
    assert "hybrid" in result.output and "p=" in result.output
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_multi_dataset_run_reports_the_average(dataset: Path, cache: Path, tmp_path: Path) -> None:
    other = make_beir(tmp_path / "other")
    out = eval_run(dataset, tmp_path / "many", cache, "--dataset", str(other), "--retriever", "dense")
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"tiny", "other", "average"}
    mean = (summary["tiny"]["nDCG@10"] + summary["other"]["nDCG@10"]) / 2
    assert summary["average"]["nDCG@10"] == pytest.approx(mean)
    written(out / "tiny")


def test_user_errors(dataset: Path, cache: Path, tmp_path: Path) -> None:
    def fails(*args: str) -> str:
        command = ["eval", "run", "--dataset", str(dataset), "--output-dir", str(tmp_path), "--cache-dir", str(cache)]
        result = CliRunner().invoke(app, [*command, *args])
        assert result.exit_code != 0
        return str(result.exception)

    if not DEFAULT_SPARSE.is_dir():
        assert "not in this checkout; pass --model" in fails("--retriever", "sparse")
    assert "two or more different legs" in fails("--retriever", "hybrid", "--legs", "dense")
    message = fails("--retriever", "hybrid", "--legs", "sparse,bm52")
    assert "unknown hybrid leg 'bm52'" in message and "bm25, sparse, dense" in message
    assert "unknown retriever 'spars'" in fails("--retriever", "spars")
    assert "not both" in fails("--retriever", "hybrid", "--weights", "1,1", "--tune-split", "train")
    assert "apply to --retriever hybrid" in fails("--retriever", "dense", "--tune-split", "train")
    assert "no qrels for split" in fails("--split", "dev")
    different = tmp_path / "x"
    make_beir(different)
    (different / "config.json").write_text(json.dumps({"dataset": "elsewhere", "split": "test"}))
    (different / "metrics.json").write_text("{}")
    (different / "per_query.tsv").write_text("")
    eval_run(dataset, tmp_path / "d", cache, "--retriever", "dense")
    result = CliRunner().invoke(app, ["eval", "compare", str(tmp_path / "d"), str(different)])
    assert "different datasets or splits" in str(result.exception)
