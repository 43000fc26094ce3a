"""Mistral-SPLADE: SPLADE on a decoder-only LLM (Mistral, Llama, Qwen ...), with echo inputs and LoRA.

A causal model's token only sees what precedes it, so, as in the Mistral-SPLADE
paper (after "echo embeddings"), the text is given twice and only the second
copy is pooled: each of its tokens has attended to the whole text. The LM head's
logits go through the SPLADE activation exactly as for a masked LM. Training
adapts the backbone with LoRA adapters (peft); a saved LoRA encoder holds only
the adapters and names its base model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from lsr.errors import LsrError
from lsr.fsutil import atomic_dir
from lsr.models.base import EncoderConfig
from lsr.models.hub import resolve_model
from lsr.models.splade import SpladeEncoder
from lsr.safeload import refusing_code

DEFAULT_ECHO = {"prefix": "Passage: ", "separator": "\nPassage again: "}
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class MistralSpladeEncoder(SpladeEncoder):
    """SPLADE over any ``AutoModelForCausalLM``, pooling the echoed copy of the text."""

    kind: ClassVar[str] = "mistral-splade"
    auto_class: ClassVar[str] = "AutoModelForCausalLM"
    sentence_transformers_layout: ClassVar[bool] = False  # the echoed input has no module there

    def __init__(
        self,
        backbone: torch.nn.Module,
        tokenizer: Any,
        config: EncoderConfig | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
    ) -> None:
        config = config or EncoderConfig(kind=self.kind)
        for key, value in DEFAULT_ECHO.items():
            config.extra.setdefault(key, value)
        if getattr(backbone.config, "use_cache", False):  # a KV cache is never reused when encoding: do not build it
            backbone.config.use_cache = False
        super().__init__(backbone, tokenizer, config, device, dtype)
        words = self.tokenizer([config.extra["prefix"], config.extra["separator"]], add_special_tokens=False)
        self._prefix, self._separator = words["input_ids"]

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        **overrides: Any,
    ) -> MistralSpladeEncoder:
        """Load a full model, or a LoRA encoder (its adapters on top of the base model it names)."""
        folder = resolve_model(name_or_path)
        config = EncoderConfig.load(folder) if (folder / "lsr_config.json").is_file() else None
        if config is None or not config.extra.get("lora"):
            return super().from_pretrained(folder, device, dtype, **overrides)  # type: ignore[return-value]
        import transformers
        from peft import PeftModel

        base_folder = resolve_model(config.extra["base_model"])
        with refusing_code(base_folder):
            base = transformers.AutoModelForCausalLM.from_pretrained(
                base_folder, attn_implementation="sdpa", trust_remote_code=False
            )
        for key, value in overrides.items():
            setattr(config, key, value)
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        encoder = cls(base, tokenizer, config, device, dtype)
        with refusing_code(folder):
            encoder.module.backbone = PeftModel.from_pretrained(encoder.module.backbone, folder, is_trainable=False)
        encoder.module.to(encoder.device, next(encoder.module.projection.parameters()).dtype)
        return encoder

    def enable_lora(
        self, r: int = 16, alpha: int = 32, dropout: float = 0.05, target_modules: list[str] | None = None
    ) -> None:
        """Freeze the backbone and add trainable LoRA adapters to its attention and MLP projections."""
        from peft import LoraConfig, get_peft_model

        base_name = getattr(self.module.backbone.config, "_name_or_path", "")
        lora = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules or LORA_TARGETS)
        self.module.backbone = get_peft_model(self.module.backbone, lora)
        self.module.projection.requires_grad_(False)  # the LM head stays as the base model has it
        self.config.extra.update({"lora": True, "base_model": base_name})

    def save_pretrained(self, path: str | Path) -> None:
        if not self.config.extra.get("lora"):
            super().save_pretrained(path)
            return
        if not self.config.extra.get("base_model"):
            raise LsrError(
                "this LoRA encoder's base model was never saved: save the base encoder first and load from it"
            )
        with atomic_dir(path) as tmp:
            self.module.backbone.save_pretrained(tmp)  # adapters only
            self.tokenizer.save_pretrained(tmp)
            self.config.save(tmp)

    def tokenize(self, texts: Sequence[str]) -> list[tuple[list[int], int]]:
        """``[bos] prefix text separator text``; pooling starts at the second copy."""
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        ids = self.tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=self.config.max_length)[
            "input_ids"
        ]
        inputs = []
        for seq in ids:
            first = bos + self._prefix + seq + self._separator
            inputs.append((first + seq, len(first)))
        return inputs
