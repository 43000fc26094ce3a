"""Titles beside ids: BEIR corpus titles and MovieLens item names, read for the ids shown only."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import make_beir
from rich.console import Console
from test_recommend_train import make_clusters
from typer.testing import CliRunner

from lsr.cli import app
from lsr.data.titles import ranked_table, source_folder, titles


def test_titles_from_beir_and_every_movielens_layout(tmp_path: Path) -> None:
    beir = make_beir(tmp_path / "beir")
    assert titles(beir, ["d2", "d4", "nope"]) == {"d2": "BM25", "d4": "Recommendation"}
    assert titles(beir / "corpus.jsonl", ["d1"]) == {"d1": "Inverted index"}
    (tmp_path / "100k").mkdir()
    (tmp_path / "100k" / "u.item").write_bytes(
        "1|Toy Story (1995)|01-Jan-1995||url|0\n2|Amélie (2001)|x\n".encode("latin-1")
    )
    assert titles(tmp_path / "100k", ["2"]) == {"2": "Amélie (2001)"}
    (tmp_path / "1m").mkdir()
    (tmp_path / "1m" / "movies.dat").write_text("7::Sabrina (1995)::Comedy|Romance\n", encoding="latin-1")
    assert titles(tmp_path / "1m" / "movies.dat", ["7"]) == {"7": "Sabrina (1995)"}
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "movies.csv").write_text('movieId,title,genres\n9,"Heat, the (1995)",Action\n')
    assert titles(tmp_path / "csv", ["9"]) == {"9": "Heat, the (1995)"}
    assert source_folder(f"{tmp_path / '100k' / 'u1.base'} + {tmp_path / '100k' / 'u1.test'}") == tmp_path / "100k"
    assert source_folder(f"{tmp_path / '1m' / 'ratings.dat'} (random split, seed 0)") == tmp_path / "1m"


def test_the_table_shows_titles_only_when_there_are_some() -> None:
    console = Console(width=80, record=True)
    console.print(ranked_table("q", [("d2", 1.5), ("d9", 0.5)], "doc_id", {"d2": "BM25"}))
    console.print(ranked_table("q", [("d2", 1.5)], "doc_id", {}))
    shown = console.export_text()
    assert re.search(r"1 │ d2\s+│ BM25\s+│ 1\.5000", shown) and "title" in shown.split("\n\n")[0]
    assert shown.count("title") == 1
    long = "Direct conversion of patient fibroblasts demonstrates non-cell autonomous toxicity of astrocytes " * 2
    console = Console(width=80, record=True)
    console.print(ranked_table("q", [("13969173", 23.0605), ("30492966", 0.5)], "doc_id", {"13969173": long}, 80))
    shown = console.export_text()
    assert max(map(len, shown.splitlines())) <= 80  # a long title is cut with an ellipsis; id and score stay whole
    assert re.search(r"1 │ 13969173 │ Direct conversion of .*… │ 23\.0605 │", shown), shown


def test_recommend_user_names_movies(tmp_path: Path) -> None:
    data = make_clusters(tmp_path / "data")
    (data / "u.item").write_text("".join(f"{i}|Movie number {i} (1995)|x\n" for i in range(30)), encoding="latin-1")
    out = tmp_path / "model"
    args = ["recommend", "train", "--data", str(data), "--model", "mf", "--epochs", "2", "--output-dir", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    shown = CliRunner().invoke(app, ["recommend", "user", "3", "--model", str(out), "--k", "3"], env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    assert len(re.findall(r"Movie number \d+ \(1995\)", shown.output)) == 3
