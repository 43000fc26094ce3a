"""TREC run files: exact round trips, trec_eval's ordering, and errors on bad lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsr.errors import DataFormatError
from lsr.runs import drop_identical_ids, ranked, read_run, truncate, write_run

RUN = {"q1": {"a": 0.1 + 0.2, "b": 1e-12, "c": 0.30000000000000004, "d": -2.5}, "q2": {"x": 3.0}}


def test_round_trip_is_exact(tmp_path: Path) -> None:
    write_run(RUN, tmp_path / "run.trec", tag="mine")
    assert read_run(tmp_path / "run.trec") == RUN
    lines = (tmp_path / "run.trec").read_text().splitlines()
    # ties (a and c score the same) are ranked by doc id descending, as trec_eval orders them
    assert lines[:2] == ["q1 Q0 c 1 0.30000000000000004 mine", "q1 Q0 a 2 0.30000000000000004 mine"]
    assert [line.split()[3] for line in lines] == ["1", "2", "3", "4", "1"]


def test_ranked_truncate_and_identical_ids() -> None:
    assert [d for d, _ in ranked(RUN["q1"])] == ["c", "a", "b", "d"]
    assert truncate(RUN, 2) == {"q1": {"c": RUN["q1"]["c"], "a": RUN["q1"]["a"]}, "q2": {"x": 3.0}}
    assert drop_identical_ids({"q1": {"q1": 9.0, "a": 1.0}}) == {"q1": {"a": 1.0}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("q1 Q0 a 1 0.5 t\nq1 Q0 b 2 0.4\n", r"run\.trec:2: expected 6 columns"),
        ("q1 Q0 a 1 high t\n", r"run\.trec:1: rank '1' or score 'high' is not a number"),
        ("q1 Q0 a 1 0.5 t\nq1 Q0 a 2 0.4 t\n", r"run\.trec:2: document 'a' appears twice for query 'q1'"),
    ],
)
def test_bad_run_lines(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "run.trec").write_text(text)
    with pytest.raises(DataFormatError, match=message):
        read_run(tmp_path / "run.trec")


def test_failed_write_leaves_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "run.trec"
    write_run({"q": {"d": 1.0}}, path)
    with pytest.raises(TypeError):
        write_run({"q": {"d": 1.0, "e": "oops"}}, path)  # type: ignore[dict-item]
    assert read_run(path) == {"q": {"d": 1.0}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.trec"]
    with pytest.raises(ValueError, match="one word"):
        write_run(RUN, path, tag="two words")
