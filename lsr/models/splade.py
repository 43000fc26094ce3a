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
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from tqdm.auto import tqdm

from lsr.errors import LsrError
from lsr.fsutil import atomic_dir
from lsr.models.base import CONFIG_FILE, EncoderConfig, SparseEncoder, pick_device, pick_dtype
from lsr.models.card import ModelCard, write_card
from lsr.models.hub import resolve_model
from lsr.models.sparse import keep_top_k, pool_windows, splade_pool, to_csr
from lsr.models.st_layout import Layout, read_layout, write_splade_modules
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

    def __init__(
        self, backbone: nn.Module, pooling: str = "max", vocab_chunk: int = 8192, activation: str = "relu"
    ) -> None:
        super().__init__()
        if activation not in ("relu", "log1p_relu") or (activation == "log1p_relu" and pooling != "max"):
            raise LsrError(
                f"activation {activation!r} with {pooling!r} pooling: lsr knows relu, or log1p_relu with max"
            )
        parent, attr = _projection_slot(backbone)
        self.projection: nn.Linear = getattr(parent, attr)
        setattr(parent, attr, _Passthrough())
        self.backbone = backbone
        self.pooling = pooling
        self.vocab_chunk = vocab_chunk
        self.activation = activation

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pool_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).logits
        mask = attention_mask if pool_mask is None else pool_mask
        weight, bias = self.projection.weight, self.projection.bias
        pooled = splade_pool(
            hidden,
            weight.to(hidden.dtype),
            None if bias is None else bias.to(hidden.dtype),
            mask,
            self.pooling,
            self.vocab_chunk,
        )
        # log1p is monotone, so after a max it equals the per-token log1p(log1p(relu)) of OpenSearch's v3 models
        return torch.log1p(pooled) if self.activation == "log1p_relu" else pooled

    @contextlib.contextmanager
    def restored_backbone(self) -> Iterator[nn.Module]:
        """The backbone with its projection put back (for ``save_pretrained`` in the standard layout)."""
        parent, attr = _projection_slot_of_passthrough(self.backbone)
        setattr(parent, attr, self.projection)
        try:
            yield self.backbone
        finally:
            setattr(parent, attr, _Passthrough())


def _config_of(kind: str, layout: Layout, tokenizer: Any, backbone: nn.Module) -> EncoderConfig:
    """The settings a sentence-transformers folder's modules give; its token limit is the tokenizer's, as there."""
    length = layout.max_length or min(
        int(tokenizer.model_max_length), int(getattr(backbone.config, "max_position_embeddings", 512))
    )
    return EncoderConfig(
        kind=kind,
        pooling=layout.pooling,
        activation=layout.activation,
        max_length=length,
        top_k=layout.top_k,
        zero_special=False,
    )


@contextlib.contextmanager
def _silenced(projection: nn.Linear, ids: list[int]) -> Iterator[None]:
    """Within the block, the projection's bias is -1e4 for ``ids`` (see :meth:`SpladeEncoder.write_transformer`)."""
    if not ids or projection.bias is None:
        yield
        return
    kept = projection.bias.data[ids].clone()
    projection.bias.data[ids] = -1e4
    try:
        yield
    finally:
        projection.bias.data[ids] = kept


def _projection_slot_of_passthrough(model: nn.Module) -> tuple[nn.Module, str]:
    name = next(n for n, m in model.named_modules() if isinstance(m, _Passthrough))
    parent, _, attr = name.rpartition(".")
    return (model.get_submodule(parent) if parent else model), attr


class SpladeEncoder(SparseEncoder):
    """SPLADE over any ``AutoModelForMaskedLM``; the same model encodes queries and documents."""

    kind: ClassVar[str] = "splade"
    auto_class: ClassVar[str] = "AutoModelForMaskedLM"
    #: Whether sentence-transformers computes this encoder's vectors from its saved modules (not with echo input).
    sentence_transformers_layout: ClassVar[bool] = True

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
        self.module = SpladeModule(backbone, self.config.pooling, self.config.vocab_chunk, self.config.activation)
        self.module.to(self.device, pick_dtype(dtype, self.device)).eval()
        #: computes pooled weights from a collated batch: the module, or an ONNX Runtime session (lsr.models.onnx)
        self.runner: Callable[..., torch.Tensor] = self.module
        #: the dimensions zeroed in every vector (none for a model from a library that keeps them)
        self.special_ids = sorted(set(tokenizer.all_special_ids)) if self.config.zero_special else []

    # -- loading and saving -------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        **overrides: Any,
    ) -> SpladeEncoder:
        """Load from a local folder or a Hugging Face id; ``overrides`` replace ``lsr_config.json`` settings.

        A sentence-transformers folder without ``lsr_config.json`` (naver, OpenSearch, ``SparseEncoder.save``) is
        read by its modules: the transformer's folder, pooling, activation, token limit and top-k come from them.
        """
        import transformers

        folder = resolve_model(name_or_path)
        layout = read_layout(folder)
        weights = layout.transformer if layout else folder
        with refusing_code(folder):
            backbone = getattr(transformers, cls.auto_class).from_pretrained(
                weights, attn_implementation="sdpa", trust_remote_code=False
            )
        tokenizer = transformers.AutoTokenizer.from_pretrained(weights, trust_remote_code=False)
        if (folder / CONFIG_FILE).is_file():
            config = EncoderConfig.load(folder)
        elif layout is not None and layout.kind != "dense":
            config = _config_of(cls.kind, layout, tokenizer, backbone)
        else:
            config = EncoderConfig(kind=cls.kind)
        for key, value in overrides.items():
            setattr(config, key, value)
        return cls(backbone, tokenizer, config, device, dtype)

    def save_pretrained(self, path: str | Path) -> None:
        """The weights, tokenizer and ``lsr_config.json``, sentence-transformers' module files, and a model card."""
        with atomic_dir(path) as tmp:
            self.write_transformer(tmp)
            self.config.save(tmp)
            if self.sentence_transformers_layout:
                c = self.config
                write_splade_modules(tmp, c.pooling, c.activation, c.max_length, c.top_k)
            write_card(tmp, Path(path), self.card())

    def write_transformer(self, folder: Path) -> None:
        """The backbone with its projection, and the tokenizer, in Hugging Face layout.

        lsr zeroes special tokens' dimensions after pooling; sentence-transformers does not. So that both compute the
        same vectors from these files, the saved projection's bias sends those tokens' logits to -1e4 (relu gives 0);
        the encoder in memory is left as it was. Half-precision weights stay half on disk, but the configuration
        names float32: lsr computes in float32 on a CPU whatever the file holds, and libraries that load with
        ``dtype="auto"`` (sentence-transformers) would otherwise compute in float16 there, slower and less exact.
        """
        with self.module.restored_backbone() as backbone, _silenced(self.module.projection, self.special_ids):
            backbone.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        settings = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        half = {key: "float32" for key in ("dtype", "torch_dtype") if settings.get(key) in ("float16", "bfloat16")}
        if half:  # "torch_dtype" before transformers 4.56
            (folder / "config.json").write_text(json.dumps({**settings, **half}, indent=2), encoding="utf-8")

    def card(self) -> ModelCard:
        """What the model card says about this encoder."""
        backbone = self.module.backbone.config
        return ModelCard(
            kind=self.kind,
            config=self.config,
            architecture=", ".join(getattr(backbone, "architectures", None) or [type(self.module.backbone).__name__]),
            vocabulary=int(self.module.projection.weight.shape[0]),
            sentence_transformers=self.sentence_transformers_layout,
        )

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

    def windows(self, texts: Sequence[str]) -> tuple[list[tuple[list[int], int]], np.ndarray | None]:
        """The model inputs for ``texts`` and, when long texts are cut into windows (``config.stride``), the text each
        input belongs to. Without a stride a text is one input, truncated, and the second value is None.

        Windows come from the tokenizer's own overflow (``return_overflowing_tokens``), so each window carries the
        special tokens a full input has; a window starts ``stride`` text tokens after the previous one, so windows
        overlap by ``max_length`` less the special tokens less ``stride`` tokens.
        """
        stride = self.config.stride
        if stride is None:
            return self.tokenize(texts), None
        if type(self).tokenize is not SpladeEncoder.tokenize:  # an echo (decoder) input is not a plain window
            raise LsrError(f"{self.kind} encoders take no --stride: windows are for masked-LM SPLADE encoders")
        content = self.config.max_length - self.tokenizer.num_special_tokens_to_add()
        if not 0 < stride <= content:
            raise LsrError(f"stride must be between 1 and {content} (max_length less special tokens), got {stride}")
        encoded = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.config.max_length,
            stride=content - stride,  # the tokenizer's stride is the overlap
            return_overflowing_tokens=True,
        )
        owners = np.asarray(encoded["overflow_to_sample_mapping"], dtype=np.int64)
        return [(seq, 0) for seq in encoded["input_ids"]], owners

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
        out = self.runner(**batch)
        out[:, self.special_ids] = 0
        return keep_top_k(out, self.config.top_k)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> sp.csr_matrix:
        """Encode texts (sorted by length internally, returned in input order)."""
        if len(texts) == 0:
            return sp.csr_matrix((0, self.module.projection.weight.shape[0]), dtype=np.float32)
        inputs, owners = self.windows(texts)
        order = np.argsort([-len(seq) for seq, _ in inputs], kind="stable")
        parts = []
        with tqdm(total=len(inputs), disable=not show_progress, desc="encode", unit=" inputs") as bar:
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                parts.append(to_csr(self.weights(self.collate([inputs[i] for i in chunk]))))
                bar.update(len(chunk))
        stacked = sp.vstack(parts, format="csr")
        result = stacked[np.argsort(order, kind="stable")]
        if owners is not None:
            return pool_windows(result, owners, len(texts), self.config.window_pooling)
        result.sort_indices()
        return result

    def encode_query(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> sp.csr_matrix:
        return self.encode(texts, batch_size, show_progress)

    def encode_document(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> sp.csr_matrix:
        return self.encode(texts, batch_size, show_progress)
