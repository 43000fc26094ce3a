"""A corpus's encodings in the cache: found, made (resumably, in the cache itself) or taken from ``lsr encode``.

:func:`cached_vectors` is what ``lsr index``, ``lsr eval run`` and training teachers call: the encoder is loaded
only when the cache misses, so a second command over the same model and corpus neither loads nor runs it.
``lsr encode --output`` writes the user's folder as before and then :func:`publish_vectors` links it into the cache
(hard links: no second copy on the same disk); on a hit it :func:`materialise` s the cached vectors instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from lsr.cache.keys import corpus_key, model_key
from lsr.cache.store import INFO, read_info, record_use
from lsr.data.textio import TextSource
from lsr.fsutil import MARKER, atomic_dir, forcing

if TYPE_CHECKING:
    from lsr.models import DenseEncoder, SparseEncoder

    Encoder = SparseEncoder | DenseEncoder

SHARD_SIZE = 4096
"""Documents per shard of encodings made in the cache: an interruption loses at most the piece being encoded."""
_console = Console(stderr=True, highlight=False, soft_wrap=True)


def model_name(model: str | Path) -> str:
    """A model as a stable string: local folders by absolute path (what manifests and indexes record)."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else str(model)


def encoding_settings(
    max_length: int | None = None,
    dtype: str = "auto",
    backend: str = "torch",
    stride: int | None = None,
    window_pooling: str = "max",
) -> list[str]:
    """The encoding options that change the vectors, as parts of their cache key (none for the defaults).

    An ONNX backend is keyed with its export recipe's version: encodings from an older graph are not reused."""
    parts = ([f"len{max_length}"] if max_length else []) + ([dtype] if dtype != "auto" else [])
    if backend != "torch":
        from lsr.models.onnx import RECIPE

        parts.append(f"{backend}-r{RECIPE['version']}")
    return parts + ([f"stride{stride}{window_pooling}"] if stride else [])


def vectors_entry(root: Path, source: TextSource, model: str | Path, settings: Sequence[str] = ()) -> Path:
    """The cache folder of ``model``'s encodings of ``source`` (``settings``: non-default encoding options)."""
    name = "-".join([model_key(root, model), *settings])
    return root / "vectors" / corpus_key(root, source) / name


def _complete(folder: Path) -> bool:
    from lsr.encode.shards import MANIFEST, Manifest

    if not (folder / MANIFEST).is_file():
        return False
    try:
        manifest = Manifest.load(folder)
    except Exception:  # noqa: BLE001 - any unreadable entry is a miss, encoded again
        return False
    return manifest.complete and all((folder / shard["file"]).is_file() for shard in manifest.shards)


def _about(source: TextSource, model: str | Path, settings: Sequence[str], encoder: Encoder | None) -> dict:
    about: dict = {"model": model_name(model), "corpus": source.name, "settings": "-".join(settings)}
    similarity = getattr(encoder, "similarity", None) if encoder is not None else None
    if isinstance(similarity, str):
        about["similarity"] = similarity  # lets lsr index build a dense index without loading the model
    return about


def find_vectors(root: Path, source: TextSource, model: str | Path, settings: Sequence[str] = ()) -> Path | None:
    """The complete cached encodings of ``model`` over ``source``, or None."""
    folder = vectors_entry(root, source, model, settings)
    if not _complete(folder):
        return None
    record_use(folder)
    _console.print(f"encodings of {Path(model_name(model)).name} over {source.name}: from the cache ({folder})")
    return folder


def cached_vectors(
    root: Path,
    source: TextSource,
    model: str | Path,
    load: Callable[[], Encoder],
    batch_size: int = 32,
    settings: Sequence[str] = (),
) -> Path:
    """The cached encodings of ``model`` over ``source``; on a miss ``load()`` gives the encoder and the corpus is
    encoded into the cache (resumed if an earlier run was interrupted)."""
    from lsr.encode.corpus import encode_corpus

    found = find_vectors(root, source, model, settings)
    if found is not None:
        return found
    folder = vectors_entry(root, source, model, settings)
    encoder = load()
    with forcing():  # the entry is the cache's own: vectors of an interrupted, different run there are replaced
        encode_corpus(encoder, model_name(model), source, folder, SHARD_SIZE, batch_size, restart_stale=True)
    record_use(folder, _about(source, model, settings, encoder))
    return folder


def similarity(folder: Path) -> str | None:
    """The similarity of the dense model whose encodings these are, if recorded."""
    value = read_info(folder).get("similarity")
    return value if isinstance(value, str) else None


def materialise(source: Path, destination: Path) -> None:
    """Put a copy of the vectors folder ``source`` at ``destination`` atomically: hard links where the two share a
    disk (the files are never modified in place, only replaced), copies elsewhere. The cache's bookkeeping stays."""
    with atomic_dir(destination) as tmp:
        for path in sorted(source.iterdir()):
            if path.name in (INFO, MARKER) or path.name.startswith(".") or not path.is_file():
                continue
            try:
                os.link(path, tmp / path.name)
            except OSError:
                shutil.copy2(path, tmp / path.name)


def publish_vectors(
    folder: Path, root: Path, source: TextSource, model: str | Path, settings: Sequence[str], encoder: Encoder | None
) -> Path:
    """Link the complete encodings ``lsr encode`` wrote at ``folder`` into the cache, so that other commands over
    the same model and corpus use them."""
    entry = vectors_entry(root, source, model, settings)
    if not _complete(entry):
        with forcing():
            materialise(folder, entry)
    record_use(entry, _about(source, model, settings, encoder))
    return entry
