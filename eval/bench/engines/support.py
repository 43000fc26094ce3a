"""What the field's engine adapters share: optional packages, term strings, disk sizes, grids, defaults.

Why: each adapter (PISA, BMP, Seismic, kANNolo) is an optional dependency (the ``bench`` extra), names
terms by strings (decimal term ids here, so every engine sees the same vocabulary), and is swept over
search-time settings that have their authors' defaults (:class:`Tunable`).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from lsr.eval.bench.engines.base import Answer, Engine

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


class Tunable(Engine):
    """An engine whose search-time settings have defaults: ``configure`` fills in the rest and refuses names
    the engine does not know, and the label always shows every search-time setting."""

    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.configure()

    def configure(self, **search_settings: Any) -> None:
        unknown = set(search_settings) - set(self.defaults)
        if unknown:
            raise ValueError(f"{self.system}: unknown search settings {', '.join(sorted(unknown))}")
        super().configure(**{**self.defaults, **search_settings})
