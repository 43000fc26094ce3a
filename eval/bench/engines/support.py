"""What the field's engine adapters share: optional packages, term strings, disk sizes, reused builds, grids.

Why: each adapter (PISA, BMP, Seismic, kANNolo) is an optional dependency (the ``bench`` extra), names
terms by strings (decimal term ids here, so every engine sees the same vocabulary), and is swept over
search-time settings. Rebuilding an index for every point of a sweep would cost more than the sweep, so
the last build of each engine class is kept (:class:`BuildCache`) and reused by the next instance with the
same build settings over the same :class:`Vectors`; its :class:`Built` is the original build's cost.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lsr.eval.bench.engines.base import Answer, Built, Vectors

from lsr.errors import LsrError

EXTRA = "bench"


def installed(package: str) -> bool:
    """Whether an optional engine package can be imported (without importing it)."""
    return importlib.util.find_spec(package) is not None


def require(package: str, distribution: str) -> None:
    """Fail with the install command when an engine's package is missing."""
    if not installed(package):
        raise LsrError(f"this engine needs {distribution}: pip install {distribution} (or the lsr[{EXTRA}] extra)")


def disk_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(os.path.getsize(Path(root) / name) for root, _, names in os.walk(folder) for name in names)


def term_strings(terms: np.ndarray) -> list[str]:
    """Terms as the strings the engines index: decimal term ids."""
    return [str(t) for t in terms.tolist()]


def answer(rows: Iterable[int] | np.ndarray, scores: Iterable[float] | np.ndarray) -> Answer:
    """An :class:`Answer` in the interface's types (rows int64, scores float32)."""
    return Answer(
        np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=np.int64),
        np.asarray(list(scores) if not isinstance(scores, np.ndarray) else scores, dtype=np.float32),
    )


def grid(**axes: Iterable[Any]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, as engine settings (the first axis varies slowest)."""
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]


@dataclass
class _Entry:
    docs: Vectors
    key: tuple[Any, ...]
    index: Any
    built: Built


class BuildCache:
    """The most recent build of one engine class, reused when the documents and build settings match."""

    def __init__(self) -> None:
        self._entry: _Entry | None = None

    def get(self, docs: Vectors, key: tuple[Any, ...]) -> tuple[Any, Built] | None:
        entry = self._entry
        if entry is not None and entry.docs is docs and entry.key == key:
            return entry.index, entry.built
        return None

    def put(self, docs: Vectors, key: tuple[Any, ...], index: Any, built: Built) -> None:
        self._entry = _Entry(docs, key, index, built)

    def clear(self) -> None:
        self._entry = None
