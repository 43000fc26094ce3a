"""Every number README.md and eval/RESULTS.md quote for the demo is what ``lsr demo`` prints, so the docs cannot
drift from the code again (the issue found RESULTS.md describing an older demo)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO
from typer.testing import CliRunner

from lsr.cli import app
from lsr.defaults import DEFAULT_SPARSE

NUMBER = re.compile(r"\b[01]\.\d{4}\b")


def printed_metrics(output: str) -> dict[str, dict[str, str]]:
    """The demo's closing table, ``retriever -> measure -> value`` as printed (four decimals)."""
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if re.search(r"retriever\s*┃", line))
    measures = [cell.strip() for cell in lines[header].split("┃")[2:-1]]
    table: dict[str, dict[str, str]] = {}
    for line in lines[header + 1 :]:
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) == len(measures) + 1 and NUMBER.fullmatch(cells[1]):
            table[cells[0]] = dict(zip(measures, cells[1:], strict=True))
    return table


def leg(label: str) -> str:
    """Which demo retriever a RESULTS.md row describes."""
    if "RRF" in label:
        return "hybrid"
    if label.startswith("BM25") or label.startswith("demo"):
        return "bm25"
    return "dense" if "MiniLM-L6" in label else "sparse"


def quoted_rows(text: str) -> list[tuple[str, dict[str, str]]]:
    """Every Markdown table row about the demo: its retriever and its numbers by column name."""
    rows: list[tuple[str, dict[str, str]]] = []
    header: list[str] = []
    in_demo = False
    for line in text.splitlines():
        if line.startswith("#"):
            in_demo = "lsr demo" in line
        if not line.startswith("|"):
            header = []
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if not header:
            header = cells
            continue
        about_demo = in_demo or cells[0].startswith("demo") or any("`lsr demo`" == c for c in cells)
        numbers = {name: cell for name, cell in zip(header, cells, strict=False) if NUMBER.fullmatch(cell)}
        if about_demo and numbers:
            rows.append((leg(cells[0]), numbers))
    return rows


@pytest.mark.skipif(not DEFAULT_SPARSE.is_dir(), reason="the shipped sparse model is not in this checkout")
def test_every_quoted_demo_number_is_what_lsr_demo_prints(tmp_path: Path) -> None:
    pytest.importorskip("pyserini")
    result = CliRunner().invoke(app, ["demo", "--output-dir", str(tmp_path / "demo")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output + repr(result.exception)
    printed = printed_metrics(result.output)
    assert set(printed) == {"bm25", "dense", "sparse", "hybrid"}
    rows = quoted_rows((REPO / "eval" / "RESULTS.md").read_text())
    assert {name for name, _ in rows} == set(printed)  # RESULTS.md has every retriever of the demo
    for name, numbers in rows:
        for measure, value in numbers.items():
            assert printed[name][measure] == value, f"RESULTS.md: demo {name} {measure} {value}, lsr demo prints"
    everything = {value for values in printed.values() for value in values.values()}
    for doc in ("README.md", "eval/RESULTS.md"):  # prose too: a demo number in a sentence must be printed
        for line in (REPO / doc).read_text().splitlines():
            if "demo" in line and not line.startswith("|"):
                assert set(NUMBER.findall(line)) <= everything, f"{doc} quotes what lsr demo does not print: {line}"
