"""The README's test command is what CI runs."""

from __future__ import annotations

from conftest import REPO


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    command = next(line for line in ci if line.startswith("python3 -m venv"))
    readme = (REPO / "README.md").read_text()
    assert command in readme.splitlines()
    assert "lsr demo" in readme
