"""Where retrievers opened over a corpus keep what is expensive to recompute: corpus encodings and indexes.

The cache itself is :mod:`lsr.cache` (content-addressed, shared with ``lsr encode`` and ``lsr index``); this
module names the entries retrievers use: encodings under ``<cache>/vectors/<corpus key>/<model key>`` and an
index built from them under ``<cache>/index/<corpus key>/<model key>/<settings>``. The cache root is
``--cache-dir``, else ``$LSR_CACHE``, else ``lsr`` in the platform's cache folder (``~/.cache/lsr`` on Linux).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lsr.indexing.dense.format import DenseIndexError
from lsr.indexing.sparse.format import IndexFormatError

from lsr.cache import cache_root, cached_vectors, corpus_key, model_key, record_use
from lsr.cache.vectors import model_name
from lsr.data.beir import BeirDataset
from lsr.errors import DataWarning
from lsr.fsutil import forcing

if TYPE_CHECKING:
    from lsr.indexing.retrieval import Corpus

    from lsr.models import DenseEncoder, SparseEncoder

__all__ = ["cache_root", "cached_index", "encoded_corpus", "entry", "index_entry", "model_name"]

T = TypeVar("T")


def cached_index(
    folder: Path, open_index: Callable[[Path], T], build: Callable[[Path], object], about: Mapping[str, Any] = {}
) -> T:
    """The index cached at ``folder``, built first if absent. An entry this lsr cannot open (written by an older
    version, or damaged) is built again: the cache is lsr's own, so replacing the entry loses nothing."""
    if (folder / "meta.json").is_file():
        try:
            opened = open_index(folder)
            record_use(folder, about)
            return opened
        except (IndexFormatError, DenseIndexError) as exc:
            warnings.warn(f"rebuilding the cached index {folder}: {exc}", DataWarning, stacklevel=2)
    with forcing():
        build(folder)
    record_use(folder, about)
    return open_index(folder)


def index_entry(root: Path, dataset: BeirDataset, model: str, *settings: str) -> Path:
    """The folder of an index over ``dataset``; ``model`` is a key already (BM25 indexes the text, no model)."""
    return root.joinpath("index", corpus_key(root, dataset.corpus_source), model, *settings)


def entry(root: Path, kind: str, dataset: BeirDataset, model: str | Path, *settings: str) -> Path:
    """The cache folder of one artefact (``kind``: vectors or index) of ``model`` over ``dataset``."""
    return root.joinpath(kind, corpus_key(root, dataset.corpus_source), model_key(root, model), *settings)


def about(corpus: Corpus, model: str, settings: str) -> dict[str, str]:
    """What ``lsr cache ls`` says an index entry holds."""
    return {"model": model, "corpus": str(corpus.dataset.path), "settings": settings}


def encoded_corpus(
    corpus: Corpus,
    model: str,
    encoder: SparseEncoder | DenseEncoder,
    batch_size: int | None = None,
    settings: Sequence[str] = (),
) -> Path:
    """The cached vectors folder of ``model`` (loaded as ``encoder``, with the encoding ``settings`` of
    :func:`lsr.cache.vectors.encoding_settings`) over the corpus, encoded (or resumed) if needed; a retriever, a
    training teacher, ``lsr index`` and ``lsr encode`` of the same model and settings share it. ``batch_size``:
    :func:`lsr.models.base.document_batch_size` unless given."""
    from lsr.models.base import document_batch_size  # torch, only where a model encodes

    batch = batch_size or document_batch_size(encoder)
    return cached_vectors(corpus.cache, corpus.dataset.corpus_source, model, lambda: encoder, batch, settings)
