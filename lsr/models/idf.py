"""Inverse document frequency over a tokenizer's vocabulary, computed from a corpus.

Stored as ``idf.json`` (``{token: weight}``), the layout of the OpenSearch
inference-free sparse models, so their tables load here and ours load there.
The weight is Lucene's BM25 IDF, ``log(1 + (N - df + 0.5) / (df + 0.5))``: always
positive, and largest for tokens the corpus never contains.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lsr.errors import LsrError
from lsr.fsutil import atomic_file

IDF_FILE = "idf.json"


def document_frequencies(
    tokenizer: Any, texts: Iterable[str], batch_size: int = 1024, total: int | None = None
) -> tuple[np.ndarray, int]:
    """Per-token document frequency over ``texts`` (streamed in batches) and the number of texts."""
    df = np.zeros(len(tokenizer), dtype=np.int64)
    count = 0
    batch: list[str] = []

    def flush() -> None:
        for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
            df[np.unique(np.asarray(ids, dtype=np.int64))] += 1

    for text in tqdm(texts, total=total, desc="document frequencies", unit=" docs"):
        batch.append(text)
        count += 1
        if len(batch) == batch_size:
            flush()
            batch = []
    if batch:
        flush()
    return df, count


def bm25_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """Lucene's BM25 IDF per token."""
    if n_docs <= 0:
        raise LsrError("cannot compute IDF from an empty corpus")
    return np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)


def corpus_idf(tokenizer: Any, texts: Iterable[str]) -> tuple[np.ndarray, int]:
    """BM25 IDF per token over ``texts`` (streamed), and how many texts there were."""
    df, count = document_frequencies(tokenizer, texts)
    return bm25_idf(df, count), count


def save_idf(idf: np.ndarray, tokenizer: Any, folder: str | Path) -> None:
    """Write ``folder/idf.json`` mapping every vocabulary token to its weight."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(idf))))
    with atomic_file(Path(folder) / IDF_FILE) as out:
        json.dump({tok: float(w) for tok, w in zip(tokens, idf, strict=True)}, out, ensure_ascii=False)


def load_idf(folder: str | Path, tokenizer: Any) -> np.ndarray:
    """Read ``idf.json`` into an array indexed by token id; tokens it does not list get weight 0."""
    path = Path(folder) / IDF_FILE
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LsrError(f"{path}: cannot read the IDF table ({exc})") from exc
    vocab = tokenizer.get_vocab()
    idf = np.zeros(len(tokenizer), dtype=np.float32)
    unknown = [tok for tok in table if tok not in vocab]
    if unknown:
        raise LsrError(f"{path}: {len(unknown)} token(s) are not in the tokenizer's vocabulary (first: {unknown[0]!r})")
    for token, weight in table.items():
        idf[vocab[token]] = weight
    return idf
