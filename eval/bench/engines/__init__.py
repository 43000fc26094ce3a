"""The speed comparison of lsr against the field's engines (issue 21): interface, engines, protocol, plot."""

from __future__ import annotations

import importlib

from lsr.eval.bench.engines.base import ENGINES, Engine

from lsr.errors import LsrError

#: Engine name -> module defining it; modules import their engine's package only when it builds.
MODULES = {
    "lsr": "lsr_engine",
    "lucene-impact": "lucene",
    "pisa": "pisa",
    "bmp": "bmp",
    "seismic": "seismic",
    "seismic-knn": "seismic",
    "kannolo": "kannolo",
}


def engine(name: str, **settings: object) -> Engine:
    """A new engine by name, with build-time ``settings``; an unknown name lists the known ones."""
    if name not in MODULES:
        raise LsrError(f"unknown engine {name!r}; choose from {', '.join(MODULES)}")
    importlib.import_module(f"{__name__}.{MODULES[name]}")
    return ENGINES.factories[name](**settings)
