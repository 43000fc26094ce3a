"""Encoders: SPLADE, Mistral-SPLADE, inference-free (IDF queries) and dense, behind one loader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from lsr.errors import LsrError
from lsr.models.base import CONFIG_FILE, SparseEncoder
from lsr.models.dense import DEFAULT_DENSE, DenseEncoder
from lsr.models.hub import resolve_model
from lsr.models.idf import IDF_FILE
from lsr.models.inference_free import InferenceFreeEncoder
from lsr.models.mistral_splade import MistralSpladeEncoder
from lsr.models.splade import SpladeEncoder
from lsr.models.st_layout import read_layout

SPARSE_KINDS: dict[str, type] = {
    SpladeEncoder.kind: SpladeEncoder,
    MistralSpladeEncoder.kind: MistralSpladeEncoder,
    InferenceFreeEncoder.kind: InferenceFreeEncoder,
}


def detect_kind(folder: Path) -> str:
    """The encoder kind a folder holds: from ``lsr_config.json``, else from its sentence-transformers module types
    (:func:`lsr.models.st_layout.read_layout`, which refuses layouts it does not know), else from its files."""
    if (folder / CONFIG_FILE).is_file():
        return json.loads((folder / CONFIG_FILE).read_text())["kind"]
    layout = read_layout(folder)
    if layout is not None:
        return layout.kind
    if (folder / IDF_FILE).is_file():
        return InferenceFreeEncoder.kind
    try:
        architectures = json.loads((folder / "config.json").read_text()).get("architectures") or []
    except (OSError, json.JSONDecodeError) as exc:
        raise LsrError(f"{folder}: not a model folder (no readable config.json)") from exc
    if any(a.endswith("ForMaskedLM") for a in architectures):
        return SpladeEncoder.kind
    if any(a.endswith("ForCausalLM") for a in architectures):
        return MistralSpladeEncoder.kind
    raise LsrError(f"{folder}: cannot tell which encoder it holds (architectures: {architectures})")


def load_encoder(
    name_or_path: str | Path, device: str | torch.device | None = None, backend: str = "torch", **kwargs: Any
) -> SparseEncoder | DenseEncoder:
    """Load any lsr encoder from a folder or a Hugging Face id (``all-minilm-l6-v2``: the embedded dense default).

    ``backend``: ``torch``, or ``onnx`` / ``onnx-int8`` to encode SPLADE documents with ONNX Runtime on the CPU
    (exported once and cached, :mod:`lsr.models.onnx`); ``kwargs`` override ``lsr_config.json`` settings
    (``max_length``, ``stride``, ``window_pooling``, ...).
    """
    if backend != "torch":
        from lsr.models.onnx import use_backend

        cpu = "cpu" if device in (None, "auto") else device
        return use_backend(load_encoder(name_or_path, cpu, **kwargs), backend)
    if str(name_or_path) == DEFAULT_DENSE:
        return DenseEncoder.from_pretrained(device=device)
    folder = resolve_model(name_or_path)
    kind = detect_kind(folder)
    if kind == DenseEncoder.kind:
        return DenseEncoder.from_pretrained(folder, device=device)
    if kind not in SPARSE_KINDS:
        raise LsrError(f"{folder}: unknown encoder kind {kind!r}")
    return SPARSE_KINDS[kind].from_pretrained(folder, device=device, **kwargs)


__all__ = [
    "DenseEncoder",
    "InferenceFreeEncoder",
    "MistralSpladeEncoder",
    "SparseEncoder",
    "SpladeEncoder",
    "load_encoder",
]
