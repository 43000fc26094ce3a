"""SPLADE: a masked-language-model backbone whose vocabulary logits become sparse term weights.

Weights are ``log(1 + relu(logits))`` pooled (max, or sum) over the non-padding
tokens; special tokens' dimensions are zeroed; top-k pruning is optional. The
vocabulary projection is taken off the backbone and applied by
:func:`lsr.models.sparse.splade_pool` a vocabulary slice at a time, so the full
``batch x length x vocab`` activation never exists. Texts are sorted by length and
padded per batch, and on the GPU the backbone runs in bf16 with SDPA attention.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from tqdm.auto import tqdm

from lsr.fsutil import atomic_dir
from lsr.models.base import EncoderConfig, SparseEncoder, pick_device, pick_dtype
from lsr.models.hub import resolve_model
from lsr.models.sparse import keep_top_k, splade_pool, to_csr
from lsr.safeload import refusing_code


class _Passthrough(nn.Module):
    """Stands in for the backbone's vocabulary projection, so its forward returns the states to project."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden


def _projection_slot(model: nn.Module) -> tuple[nn.Module, str]:
    head = model.get_output_embeddings()
    if head is None:
        raise TypeError(f"{type(model).__name__} has no vocabulary projection (output embeddings)")
    name = next(n for n, m in model.named_modules() if m is head)
    parent, _, attr = name.rpartition(".")
    return (model.get_submodule(parent) if parent else model), attr


class SpladeModule(nn.Module):
    """Backbone plus vocabulary projection; ``forward`` gives pooled SPLADE weights (differentiable, for training)."""

    def __init__(self, backbone: nn.Module, pooling: str = "max", vocab_chunk: int = 8192) -> None:
        super().__init__()
        parent, attr = _projection_slot(backbone)
        self.projection: nn.Linear = getattr(parent, attr)
        setattr(parent, attr, _Passthrough())
        self.backbone = backbone
        self.pooling = pooling
        self.vocab_chunk = vocab_chunk

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pool_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).logits
        mask = attention_mask if pool_mask is None else pool_mask
        weight, bias = self.projection.weight, self.projection.bias
        return splade_pool(
            hidden,
            weight.to(hidden.dtype),
            None if bias is None else bias.to(hidden.dtype),
            mask,
            self.pooling,
            self.vocab_chunk,
        )

    @contextlib.contextmanager
    def restored_backbone(self) -> Iterator[nn.Module]:
        """The backbone with its projection put back (for ``save_pretrained`` in the standard layout)."""
        parent, attr = _projection_slot_of_passthrough(self.backbone)
        setattr(parent, attr, self.projection)
        try:
            yield self.backbone
        finally:
            setattr(parent, attr, _Passthrough())


def _projection_slot_of_passthrough(model: nn.Module) -> tuple[nn.Module, str]:
    name = next(n for n, m in model.named_modules() if isinstance(m, _Passthrough))
    parent, _, attr = name.rpartition(".")
    return (model.get_submodule(parent) if parent else model), attr


class SpladeEncoder(SparseEncoder):
    """SPLADE over any ``AutoModelForMaskedLM``; the same model encodes queries and documents."""

    kind: ClassVar[str] = "splade"
    auto_class: ClassVar[str] = "AutoModelForMaskedLM"

    def __init__(
        self,
        backbone: nn.Module,
        tokenizer: Any,
        config: EncoderConfig | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
    ) -> None:
        self.config = config or EncoderConfig(kind=self.kind)
        self.tokenizer = tokenizer
        self.device = pick_device(device)
        self.module = SpladeModule(backbone, self.config.pooling, self.config.vocab_chunk)
        self.module.to(self.device, pick_dtype(dtype, self.device)).eval()
        self.special_ids = sorted(set(tokenizer.all_special_ids))

    # -- loading and saving -------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        **overrides: Any,
    ) -> SpladeEncoder:
        """Load from a local folder or a Hugging Face id; ``overrides`` replace ``lsr_config.json`` settings."""
        import transformers

        folder = resolve_model(name_or_path)
        config = EncoderConfig.load(folder) if (folder / "lsr_config.json").is_file() else EncoderConfig(kind=cls.kind)
        for key, value in overrides.items():
            setattr(config, key, value)
        with refusing_code(folder):
            backbone = getattr(transformers, cls.auto_class).from_pretrained(
                folder, attn_implementation="sdpa", trust_remote_code=False
            )
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        return cls(backbone, tokenizer, config, device, dtype)

    def save_pretrained(self, path: str | Path) -> None:
        with atomic_dir(path) as tmp, self.module.restored_backbone() as backbone:
            backbone.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            self.config.save(tmp)

    # -- encoding -------------------------------------------------------------------------------------------
    @property
    def vocabulary(self) -> list[str]:
        return self.tokenizer.convert_ids_to_tokens(list(range(self.module.projection.weight.shape[0])))

    def tokenize(self, texts: Sequence[str]) -> list[tuple[list[int], int]]:
        """Model input ids of each text, and the position from which its tokens are pooled.

        A masked LM sees the text once, with its special tokens, and pools every position.
        """
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.config.max_length)["input_ids"]
        return [(seq, 0) for seq in ids]

    def collate(self, inputs: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        """Right-padded tensors for one batch: ids, attention mask, and the mask of pooled positions."""
        width = max(len(seq) for seq, _ in inputs)
        if self.device.type == "cuda":  # few distinct shapes: attention kernels are planned once per shape
            width = -(-width // 16) * 16
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(inputs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(inputs), width), dtype=torch.long)
        pool = torch.zeros((len(inputs), width), dtype=torch.long)
        for row, (seq, pool_from) in enumerate(inputs):
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
            pool[row, pool_from : len(seq)] = 1
        return {
            "input_ids": ids.to(self.device),
            "attention_mask": mask.to(self.device),
            "pool_mask": pool.to(self.device),
        }

    def weights(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled weights of one collated batch, special tokens zeroed and top-k applied."""
        out = self.module(**batch)
        out[:, self.special_ids] = 0
        return keep_top_k(out, self.config.top_k)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> sp.csr_matrix:
        """Encode texts (sorted by length internally, returned in input order)."""
        if len(texts) == 0:
            return sp.csr_matrix((0, self.module.projection.weight.shape[0]), dtype=np.float32)
        inputs = self.tokenize(texts)
        order = np.argsort([-len(seq) for seq, _ in inputs], kind="stable")
        parts = []
        with tqdm(total=len(texts), disable=not show_progress, desc="encode", unit=" texts") as bar:
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                parts.append(to_csr(self.weights(self.collate([inputs[i] for i in chunk]))))
                bar.update(len(chunk))
        stacked = sp.vstack(parts, format="csr")
        result = stacked[np.argsort(order, kind="stable")]
        result.sort_indices()
        return result

    def encode_query(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> sp.csr_matrix:
        return self.encode(texts, batch_size, show_progress)

    def encode_document(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> sp.csr_matrix:
        return self.encode(texts, batch_size, show_progress)
