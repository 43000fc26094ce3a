"""The benchmark entry points of the device machines keep a user's files and write their result crash-safe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lsr.eval.bench.filtered import main as filtered_main
from lsr.eval.bench.output import save_json


def test_an_output_that_is_not_a_json_result_is_refused_before_any_work(tmp_path: Path, capsys) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes, not a benchmark result\n")
    index = tmp_path / "index"
    with pytest.raises(SystemExit) as stopped:
        filtered_main(["--documents", "50", "--queries", "2", "--index", str(index), "--output", str(notes)])
    assert stopped.value.code == 2
    assert "does not look like a json file" in capsys.readouterr().err
    assert notes.read_text() == "my notes, not a benchmark result\n"
    assert not index.exists(), "refused at parse time: no index was built"


def test_an_earlier_result_is_replaced_whole(tmp_path: Path) -> None:
    output = tmp_path / "result.json"
    filtered_main(["--documents", "300", "--queries", "3", "--repeats", "1", "--index", str(tmp_path / "i")])
    save_json({"run": 1}, output)
    filtered_main(
        [
            "--documents",
            "300",
            "--queries",
            "3",
            "--repeats",
            "1",
            "--index",
            str(tmp_path / "i"),
            "--output",
            str(output),
        ]
    )
    result = json.loads(output.read_text())
    assert result != {"run": 1} and isinstance(result, dict)
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["result.json"], "no temporary file left behind"


def test_a_write_that_fails_leaves_the_previous_result(tmp_path: Path) -> None:
    output = tmp_path / "result.json"
    save_json({"run": 1}, output)
    with pytest.raises(TypeError):
        save_json({"run": 2, "not json": object()}, output)
    assert json.loads(output.read_text()) == {"run": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
    with pytest.raises(Exception, match="is a folder"):
        save_json({"run": 3}, tmp_path)
