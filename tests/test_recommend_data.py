"""Recommendation datasets: every supported format, the splits, and errors that name file and line."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from lsr.errors import DataFormatError, LsrError
from lsr.recommend.data import load_dataset


def test_lightgcn_format_keeps_ids_and_split(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "train.txt.gz", "wt") as handle:
        handle.write("0 0 1 2\n1 2 3\n2 1\n")
    (tmp_path / "test.txt").write_text("0 3\n1 0\n2\n")
    data = load_dataset(tmp_path)
    assert (data.n_users, data.n_items) == (3, 4)
    assert data.users.tolist() == ["0", "1", "2"] and data.items.tolist() == ["0", "1", "2", "3"]
    assert data.train.toarray().tolist() == [[1, 1, 1, 0], [0, 0, 1, 1], [0, 1, 0, 0]]
    assert data.test.toarray().tolist() == [[0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]]


def test_movielens_fold_and_whole_file(tmp_path: Path) -> None:
    rows = ["1\t10\t5\t100", "1\t20\t3\t300", "2\t10\t4\t200", "2\t30\t1\t50", "2\t20\t2\t400"]
    (tmp_path / "u1.base").write_text("\n".join(rows[:3]) + "\n")
    (tmp_path / "u1.test").write_text("\n".join(rows[3:]) + "\n")
    (tmp_path / "u.data").write_text("\n".join(rows) + "\n")
    given = load_dataset(tmp_path)
    assert (given.train.nnz, given.test.nnz) == (3, 2)
    latest = load_dataset(tmp_path, split="latest")
    # the latest interaction of each user (by timestamp) is held out
    assert {(latest.users[u], latest.items[i]) for u, i in zip(*latest.test.nonzero(), strict=True)} == {
        ("1", "20"),
        ("2", "20"),
    }
    assert latest.train.nnz == 3


def test_csv_with_header_and_string_ids(tmp_path: Path) -> None:
    (tmp_path / "interactions.csv").write_text(
        "user,item,rating,timestamp\n"
        + "".join(f"u{u},i{(u * 7 + j) % 25},1,{j}\n" for u in range(20) for j in range(10))
    )
    first = load_dataset(tmp_path, split="random", test_fraction=0.2, seed=3)
    again = load_dataset(tmp_path, split="random", test_fraction=0.2, seed=3)
    other = load_dataset(tmp_path, split="random", test_fraction=0.2, seed=4)
    assert (first.test != again.test).nnz == 0 and (first.test != other.test).nnz > 0
    assert np.all(np.diff(first.test.indptr) == 2) and np.all(np.diff(first.train.indptr) == 8)
    assert first.train.multiply(first.test).nnz == 0
    assert first.users[0] == "u0" and first.items[0].startswith("i")


def test_lastfm_layout_ignores_weights(tmp_path: Path) -> None:
    (tmp_path / "data1.txt").write_text("1\t5\t993\n1\t6\t10\n2\t5\t1\n")
    (tmp_path / "test1.txt").write_text("2\t6\t7\n")
    data = load_dataset(tmp_path)
    assert (data.n_users, data.n_items, data.train.nnz, data.test.nnz) == (2, 2, 3, 1)


@pytest.mark.parametrize(
    ("name", "text", "line", "reason"),
    [
        ("train.txt", "0 1 2\n1 x 3\n", 2, "non-negative integer"),
        ("u1.base", "1\t2\t3\t4\n5\n", 2, "expected"),
        ("train.csv", "user,item\na,b\nc,d,1,yesterday\n", 3, "timestamp"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, name: str, text: str, line: int, reason: str) -> None:
    (tmp_path / name).write_text(text)
    partner = {"train.txt": "test.txt", "u1.base": "u1.test", "train.csv": "test.csv"}[name]
    (tmp_path / partner).write_text("")
    with pytest.raises(DataFormatError) as error:
        load_dataset(tmp_path)
    assert error.value.path.endswith(name) and error.value.line == line and reason in str(error.value)
    assert f"{name}:{line}:" in str(error.value)


def test_missing_or_unsplit_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LsrError, match="no recommendation data"):
        load_dataset(tmp_path)
    (tmp_path / "u.data").write_text("1\t2\t3\t4\n")
    with pytest.raises(LsrError, match="--split random"):
        load_dataset(tmp_path)
    (tmp_path / "u.data").unlink()
    (tmp_path / "train.txt").write_text("0 1\n")
    (tmp_path / "test.txt").write_text("0 2\n")
    with pytest.raises(LsrError, match="timestamps"):
        load_dataset(tmp_path, split="latest")


def test_real_datasets(shared: Path) -> None:
    recsys = shared / "data" / "recsys"
    ml = load_dataset(recsys / "ml-100k")
    assert (ml.n_users, ml.n_items, ml.train.nnz, ml.test.nnz) == (943, 1682, 80_000, 20_000)
    lastfm = load_dataset(recsys / "lastfm")
    assert lastfm.train.nnz > 40_000 and lastfm.test.nnz > 10_000
