"""The model being trained, seen as two differentiable encoders: queries and documents.

* ``splade`` / ``mistral-splade``: one SPLADE module encodes both sides (siamese).
* ``inference-free``: documents by the SPLADE module, queries as the multi-hot
  vector of their tokens times a ReLU'd IDF table; with ``learn_idf`` the table is a
  parameter trained at its own learning rate, so the query side stays a table lookup
  at search time. The saved model is an ordinary lsr encoder folder (Hugging Face
  layout, ``lsr_config.json``, ``idf.json`` for inference-free).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lsr.models import InferenceFreeEncoder, SpladeEncoder
from lsr.models.base import SparseEncoder


class Student(nn.Module):
    """Differentiable query and document weights ``[batch, vocab]`` of a sparse encoder under training."""

    def __init__(self, encoder: SparseEncoder, learn_idf: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.splade: SpladeEncoder = encoder.document_encoder if isinstance(encoder, InferenceFreeEncoder) else encoder
        self.module = self.splade.module
        self.inference_free = isinstance(encoder, InferenceFreeEncoder)
        keep = torch.ones(self.module.projection.weight.shape[0], device=self.splade.device)
        keep[self.splade.special_ids] = 0.0
        self.register_buffer("keep", keep, persistent=False)  # special tokens never carry weight
        if self.inference_free:
            idf = torch.tensor(encoder.idf, dtype=torch.float32, device=self.splade.device)
            self.idf = nn.Parameter(idf, requires_grad=learn_idf)

    @property
    def device(self) -> torch.device:
        return self.splade.device

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        return (p for p in self.module.parameters() if p.requires_grad)

    def documents(self, texts: Sequence[str]) -> torch.Tensor:
        weights = self.module(**self.splade.collate(self.splade.tokenize(texts)))
        return self._zero_special(weights)

    def queries(self, texts: Sequence[str]) -> torch.Tensor:
        if not self.inference_free:
            return self._zero_special(self.module(**self.splade.collate(self.splade.tokenize(texts))))
        ids = self.encoder.token_ids(texts)
        rows = torch.tensor([r for r, seq in enumerate(ids) for _ in seq], dtype=torch.long, device=self.device)
        cols = torch.tensor([t for seq in ids for t in seq], dtype=torch.long, device=self.device)
        present = torch.zeros((len(texts), self.idf.shape[0]), device=self.device)
        present[rows, cols] = 1.0
        return present * torch.relu(self.idf) * self.keep

    def _zero_special(self, weights: torch.Tensor) -> torch.Tensor:
        return weights * self.keep.to(weights.dtype)

    def sync(self) -> None:
        """Copy the trained IDF into the encoder, so its own (search-time) query path uses it."""
        if self.inference_free:
            self.encoder.idf = np.maximum(self.idf.detach().float().cpu().numpy(), 0.0)
            self.encoder.idf[self.splade.special_ids] = 0.0

    def save_pretrained(self, path: str | Path) -> None:
        """Write the encoder folder (with the learned IDF table for inference-free models)."""
        self.sync()
        self.encoder.save_pretrained(path)


def set_checkpointing(model: torch.nn.Module, enabled: bool) -> None:
    """Non-reentrant activation checkpointing of every decoder layer, on or off (transformers 4.x and 5.x names).

    Non-reentrant checkpointing gives gradients to the LoRA weights inside a layer even
    though the layer's input does not require grad, so ``enable_input_require_grads``
    (needed by the reentrant variant under PEFT) is not used.
    """
    if enabled:
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif hasattr(model, "activation_checkpointing_disable"):
        model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_disable()


def load_student(
    model: str,
    kind: str | None,
    corpora: Sequence[str | Path] = (),
    learn_idf: bool = True,
    lora: bool = False,
    gradient_checkpointing: bool = False,
    device: str | None = None,
    max_length: int | None = None,
) -> Student:
    """A student from a model folder (or Hub id, or ``all-minilm-l6-v2``), trained in float32 master weights.

    ``kind`` defaults to the folder's own; ``max_length`` replaces its token limit
    (saved with the model). An inference-free student made from a folder without
    ``idf.json`` starts from the BM25 IDF of ``corpora``. Decoder (Mistral-SPLADE)
    students with ``lora`` keep the frozen base in bf16 on a GPU.
    """
    from lsr.data.beir import BeirDataset
    from lsr.encode.corpus import document_text
    from lsr.errors import LsrError
    from lsr.models import MistralSpladeEncoder, detect_kind
    from lsr.models.dense import DEFAULT_DENSE, default_dense_path
    from lsr.models.hub import resolve_model
    from lsr.models.idf import IDF_FILE, corpus_idf

    folder = default_dense_path() if model == DEFAULT_DENSE else resolve_model(model)
    kind = kind or detect_kind(folder)
    dtype = "auto" if lora else "float32"
    overrides = {"max_length": max_length} if max_length else {}
    if kind == MistralSpladeEncoder.kind:
        encoder: SparseEncoder = MistralSpladeEncoder.from_pretrained(folder, device, dtype, **overrides)
        if lora:
            encoder.enable_lora()
    elif kind in (SpladeEncoder.kind, InferenceFreeEncoder.kind):
        if lora:
            raise LsrError("LoRA training is for decoder (mistral-splade) students")
        if kind == InferenceFreeEncoder.kind and (folder / IDF_FILE).is_file():
            encoder = InferenceFreeEncoder.from_pretrained(folder, device, dtype, **overrides)
        else:
            encoder = SpladeEncoder.from_pretrained(folder, device, dtype, **overrides)
            if kind == InferenceFreeEncoder.kind:
                if not corpora:
                    raise LsrError(f"{folder} has no {IDF_FILE}: give training data to compute the IDF from")
                texts = (document_text(doc) for path in corpora for doc in BeirDataset(path).corpus())
                encoder = InferenceFreeEncoder(encoder, corpus_idf(encoder.tokenizer, texts)[0])
    else:
        raise LsrError(f"cannot train a {kind!r} encoder as a sparse student")
    student = Student(encoder, learn_idf=learn_idf)
    if gradient_checkpointing:
        set_checkpointing(student.module.backbone, True)
    return student
