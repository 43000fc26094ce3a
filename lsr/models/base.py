"""What every lsr encoder offers, sentence-transformers style, and how they are saved.

Sparse encoders return SciPy CSR matrices (one row per text, columns are vocabulary
ids, float32 weights); dense encoders return float32 arrays. Every encoder saves to
a folder in Hugging Face layout plus ``lsr_config.json``, which says which kind of
encoder the folder holds so :func:`lsr.models.load_encoder` can rebuild it.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import scipy.sparse as sp
import torch

from lsr.errors import LsrError

CONFIG_FILE = "lsr_config.json"


@dataclass
class EncoderConfig:
    """Settings stored in ``lsr_config.json`` beside the weights."""

    kind: str
    pooling: str = "max"
    max_length: int = 256
    top_k: int | None = None
    vocab_chunk: int = 8192
    activation: str = "relu"
    """``relu``: ``log(1 + relu(x))``; ``log1p_relu``: one more ``log1p`` (OpenSearch's v3 models)."""
    zero_special: bool = True
    """Zero special tokens' dimensions; False for models loaded from other libraries, which keep them."""
    stride: int | None = None
    """None: a text is cut at ``max_length`` tokens. Else a longer one is encoded as windows of ``max_length`` tokens,
    each starting ``stride`` tokens after the previous one, pooled by ``window_pooling`` (``max`` or ``sum``)."""
    window_pooling: str = "max"
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else; ``training`` (how it was trained) and ``results`` (measured scores) go into the model card."""

    def save(self, folder: Path) -> None:
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: Path) -> EncoderConfig:
        path = folder / CONFIG_FILE
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise LsrError(f"{path}: cannot read the encoder configuration ({exc})") from exc
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown or "kind" not in raw:
            raise LsrError(f"{path}: unknown or missing fields ({', '.join(sorted(unknown)) or 'kind'})")
        return cls(**raw)


def pick_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"`` means the GPU when there is one."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def document_batch_size(encoder: object) -> int:
    """Documents per encoder call where none is given: 256 on a GPU, which pays a mostly fixed cost per call (at 32 a
    dense teacher encoded a million package summaries at ~4,500 a second on an H100, and a report's two encodings at
    64 did not finish in minutes), 32 on a CPU, which pays for a batch's padding in time and memory."""
    device = getattr(encoder, "device", None)
    return 256 if device is not None and torch.device(device).type == "cuda" else 32


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None``/``"auto"``: bf16 on a GPU that supports it, else float32 (exact on CPU)."""
    if dtype in (None, "auto"):
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in names:
        raise LsrError(f"unknown dtype {dtype!r}; choose one of {', '.join(names)}")
    return names[dtype]


class SparseEncoder(ABC):
    """Texts in, sparse vectors over a vocabulary out."""

    kind: ClassVar[str]

    @property
    @abstractmethod
    def vocabulary(self) -> list[str]:
        """Token strings by vocabulary id: column ``j`` of an encoding is ``vocabulary[j]``."""

    @abstractmethod
    def encode_query(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> sp.csr_matrix:
        """Encode queries."""

    @abstractmethod
    def encode_document(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> sp.csr_matrix:
        """Encode documents."""

    @abstractmethod
    def save_pretrained(self, path: str | Path) -> None:
        """Write the encoder to a folder that :func:`lsr.models.load_encoder` reads back."""
