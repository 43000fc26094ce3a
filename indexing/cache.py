"""Where retrievers opened over a corpus keep what is expensive to recompute: corpus encodings and indexes.

Encoding a corpus is by far the slowest step of an evaluation (minutes on a CPU),
so encodings are cached under ``<cache>/vectors/<dataset key>/<model key>`` and an
index built from them under ``<cache>/index/...``. The dataset key holds a hash of
the corpus file's path, size and modification time, and the model key a hash of the
model's resolved name, so a changed corpus or another model never reuses stale vectors.
The cache root is ``--cache-dir``, else ``$LSR_CACHE``, else ``~/.cache/lsr``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from lsr.indexing.dense.format import DenseIndexError
from lsr.indexing.sparse.format import IndexFormatError

from lsr.data.beir import BeirDataset
from lsr.errors import DataWarning
from lsr.fsutil import forcing

if TYPE_CHECKING:
    from lsr.indexing.retrieval import Corpus

    from lsr.models import DenseEncoder, SparseEncoder

T = TypeVar("T")
SHARD_SIZE = 4096  # documents per cached shard: an interrupted encoding loses at most this many


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache folder: the argument, else ``$LSR_CACHE``, else ``~/.cache/lsr``."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("LSR_CACHE", Path.home() / ".cache" / "lsr"))


def model_name(model: str | Path) -> str:
    """A model as a stable string: local folders by absolute path (so the key does not depend on the cwd)."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else str(model)


def _digest(value: object) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[:10]


def _readable(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[-40:] or "x"


def dataset_key(dataset: BeirDataset) -> str:
    """``<name>-<hash of the corpus file>``."""
    return f"{_readable(dataset.name)}-{_digest(dataset.corpus_source.fingerprint())}"


def model_key(model: str | Path) -> str:
    """``<last path part>-<hash of the full name>``."""
    name = model_name(model)
    return f"{_readable(Path(name).name)}-{_digest(name)}"


def cached_index(folder: Path, open_index: Callable[[Path], T], build: Callable[[Path], object]) -> T:
    """The index cached at ``folder``, built first if absent. An entry this lsr cannot open (written by an older
    version, or damaged) is built again: the cache is lsr's own, so replacing the entry loses nothing."""
    if (folder / "meta.json").is_file():
        try:
            return open_index(folder)
        except (IndexFormatError, DenseIndexError) as exc:
            warnings.warn(f"rebuilding the cached index {folder}: {exc}", DataWarning, stacklevel=2)
    with forcing():
        build(folder)
    return open_index(folder)


def entry(root: Path, kind: str, dataset: BeirDataset, model: str | Path, *settings: str) -> Path:
    """The cache folder of one artefact (``kind``: vectors or index) of ``model`` over ``dataset``."""
    return root.joinpath(kind, dataset_key(dataset), model_key(model), *settings)


def encoded_corpus(corpus: Corpus, model: str, encoder: SparseEncoder | DenseEncoder, batch_size: int = 32) -> Path:
    """The cached vectors folder of ``model`` (loaded as ``encoder``) over the corpus, encoded (or resumed) if
    needed; a retriever and a training teacher of the same model share it."""
    from lsr.encode.corpus import encode_corpus
    from lsr.encode.shards import Manifest

    folder = entry(corpus.cache, "vectors", corpus.dataset, model)
    if (folder / "manifest.json").is_file() and Manifest.load(folder).complete:
        return folder
    encode_corpus(encoder, model_name(model), corpus.dataset.corpus_source, folder, SHARD_SIZE, batch_size)
    return folder
