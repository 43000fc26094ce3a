"""The import layers: every module imports only from its own layer or the ones below it.

From the bottom: the vocabulary and building blocks (``lsr.data``, ``lsr.models``, ``lsr.encode``, runs, metrics,
file writing); the indexes and retrievers (``lsr.indexing``); recommenders (``lsr.recommend``); the applications
(``lsr.eval``, ``lsr.serve``, ``lsr.train``), which never import each other; the command line and the benchmarks
(``lsr.cli``, ``lsr.eval.bench``), which drive all of them. Imports inside functions count too: a lazy import is
still a dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

LAYERS: list[tuple[str, ...]] = [
    (
        "lsr",
        "lsr.errors",
        "lsr.fsutil",
        "lsr.cli_force",
        "lsr.safeload",
        "lsr.defaults",
        "lsr.runs",
        "lsr.metrics",
        "lsr.data",
        "lsr.models",
        "lsr.encode",
        "lsr.shipped_models",
    ),
    ("lsr.indexing",),
    ("lsr.recommend",),
    ("lsr.eval", "lsr.serve", "lsr.train"),
    ("lsr.cli", "lsr.__main__", "lsr.push_cli", "lsr.eval.bench"),
]
"""Each module belongs to the longest prefix listed; a layer's members may import one another only in the bottom
two layers and the top one (the applications are independent of each other)."""

SHARED_LAYERS = {0, 1, 2, 4}


def owner(module: str) -> tuple[int, str] | None:
    """The layer and the listed prefix a module of ours belongs to (None: not ours)."""
    best: tuple[int, str] | None = None
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[1])):
                best = (level, prefix)
    return best


def sources() -> dict[str, Path]:
    """Every module of the installed package, by name, from where it is installed (or mapped, when editable)."""
    found: dict[str, Path] = {}
    for package in ("lsr", "lsr.indexing", "lsr.serve", "lsr.eval"):
        root = Path(__import__(package, fromlist=["_"]).__file__).parent
        for path in root.rglob("*.py"):
            rel = path.relative_to(root).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if "_pb2" not in name:
                found.setdefault(name, path)
    return found


def imports(path: Path, module: str) -> set[str]:
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                names.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                names.add(node.module)
    return names


def test_every_import_runs_down_the_layers() -> None:
    wrong = []
    modules = sources()
    assert {"lsr.indexing.retrieval", "lsr.serve.engine", "lsr.eval.pipeline", "lsr.train.trainer"} <= set(modules)
    for module, path in sorted(modules.items()):
        mine = owner(module)
        assert mine is not None, f"{module} is in no layer: add it to LAYERS"
        for name in imports(path, module):
            theirs = owner(name)
            if theirs is None or theirs[1] == mine[1]:
                continue
            if theirs[0] > mine[0] or (theirs[0] == mine[0] and mine[0] not in SHARED_LAYERS):
                wrong.append(f"{module} imports {name}")
    assert not wrong, "imports that run back up the layers:\n" + "\n".join(wrong)


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The check is not vacuous: an import from the indexes into the evaluation layer is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from lsr.eval.pipeline import RunSpec\n")
    assert "lsr.eval.pipeline" in imports(bad, "lsr.indexing.bad")
    assert owner("lsr.eval.pipeline")[0] > owner("lsr.indexing.bad")[0]


@pytest.mark.parametrize("name", ["eval", "serve", "indexing"])
def test_no_generic_top_level_names_are_claimed(name: str, tmp_path: Path) -> None:
    """Installed, lsr claims one top-level name: outside the checkout, ``import eval`` finds nothing of ours."""
    probe = f"import importlib.util; spec = importlib.util.find_spec({name!r}); print(spec.origin if spec else None)"
    found = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert not found.stdout.strip().startswith(str(REPO)), found.stdout


def test_every_package_folder_is_in_the_wheel() -> None:
    """pyproject lists packages one by one (folders are mapped under lsr); a new folder must be listed too."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = {folder: package for package, folder in config["package-dir"].items()}
    found = set()
    for init in REPO.glob("*/**/__init__.py"):
        parts = init.parent.relative_to(REPO).parts
        if parts[0] in ("tests", "runs", ".venv", "build"):
            continue
        head = mapped.get(parts[0], parts[0])
        found.add(".".join([head, *parts[1:]]))
    assert found == set(config["packages"])
