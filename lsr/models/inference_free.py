"""Inference-free learned sparse retrieval: a neural document encoder, and queries weighted by IDF.

No model runs at query time: a query is the set of its tokens, each weighted by
the IDF table saved beside the document encoder (``idf.json``). Query encoding
goes straight to the Rust tokenizer and NumPy, so it takes microseconds on one
CPU core. The table can be made learnable in training (see ``lsr train``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from lsr.errors import LsrError
from lsr.fsutil import atomic_dir
from lsr.models.base import EncoderConfig, SparseEncoder
from lsr.models.card import write_card
from lsr.models.hub import resolve_model
from lsr.models.idf import IDF_FILE, load_idf, save_idf
from lsr.models.splade import SpladeEncoder
from lsr.models.st_layout import DOCUMENT_DIR, read_layout, static_weights, write_inference_free_modules


class InferenceFreeEncoder(SparseEncoder):
    """SPLADE documents, IDF-weighted token queries."""

    kind: ClassVar[str] = "inference-free"

    def __init__(self, document_encoder: SpladeEncoder, idf: np.ndarray) -> None:
        if len(idf) != len(document_encoder.vocabulary):
            raise LsrError(
                f"IDF table has {len(idf)} entries but the vocabulary has {len(document_encoder.vocabulary)}"
            )
        self.document_encoder = document_encoder
        self.idf = np.asarray(idf, dtype=np.float32).copy()
        self.idf[document_encoder.special_ids] = 0.0  # none when the model keeps special tokens' dimensions
        self._rust = getattr(document_encoder.tokenizer, "_tokenizer", None)

    @property
    def device(self) -> torch.device:
        """Where documents are encoded (queries are a table lookup)."""
        return self.document_encoder.device

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        **overrides: Any,
    ) -> InferenceFreeEncoder:
        """Load an lsr folder, or a sentence-transformers Router folder (OpenSearch's, or ``SparseEncoder.save``'s).

        The IDF table is the query module's own weights where it keeps them (what sentence-transformers computes
        with), else ``idf.json`` (OpenSearch, and lsr folders of before the sentence-transformers layout).
        """
        folder = resolve_model(name_or_path)
        layout = read_layout(folder)
        idf = static_weights(layout.static) if layout and layout.static else None
        if idf is None and not (folder / IDF_FILE).is_file():
            raise LsrError(f"{folder}: no {IDF_FILE} nor query weights; compute an IDF table with `lsr encode idf`")
        documents = SpladeEncoder.from_pretrained(folder, device, dtype, **overrides)
        documents.config.kind = cls.kind
        return cls(documents, load_idf(folder, documents.tokenizer) if idf is None else idf)

    def save_pretrained(self, path: str | Path) -> None:
        """sentence-transformers' Router layout (document model in a sub-folder), plus ``idf.json`` and a card."""
        documents = self.document_encoder
        config = EncoderConfig(**{**documents.config.__dict__, "kind": self.kind})
        with atomic_dir(path) as tmp:
            documents.write_transformer(tmp / DOCUMENT_DIR)
            config.save(tmp)
            save_idf(self.idf, documents.tokenizer, tmp)
            write_inference_free_modules(
                tmp, config.pooling, config.activation, config.max_length, config.top_k, self.idf, documents.tokenizer
            )
            write_card(tmp, Path(path), replace(documents.card(), kind=self.kind, config=config))

    @property
    def vocabulary(self) -> list[str]:
        return self.document_encoder.vocabulary

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's token ids without special tokens: what a query is made of (also used in training)."""
        if self._rust is not None:  # the Rust tokenizer directly: no Python-side batching overhead
            return [enc.ids for enc in self._rust.encode_batch(list(texts), add_special_tokens=False)]
        return self.document_encoder.tokenizer(list(texts), add_special_tokens=False)["input_ids"]

    def encode_query(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> sp.csr_matrix:
        """Each query's distinct tokens, weighted by IDF (tokens with zero weight are dropped).

        All queries' tokens are made unique in one sort of (query, token) keys rather than one NumPy call per
        query: a server encoding a batch of long queries holds the interpreter lock for the Python steps."""
        token_lists = self.token_ids(texts)
        counts = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
        flat = np.fromiter(itertools.chain.from_iterable(token_lists), dtype=np.int64, count=int(counts.sum()))
        vocab = len(self.idf)
        keys = np.unique(np.repeat(np.arange(len(token_lists), dtype=np.int64), counts) * vocab + flat)
        rows, cols = keys // vocab, (keys % vocab).astype(np.int32)
        keep = self.idf[cols] > 0
        rows, cols = rows[keep], cols[keep]
        indptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=len(token_lists)))))
        return sp.csr_matrix((self.idf[cols], cols, indptr), shape=(len(texts), vocab))

    def encode_document(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> sp.csr_matrix:
        return self.document_encoder.encode_document(texts, batch_size, show_progress)
