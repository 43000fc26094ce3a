"""Cache keys made of content: a corpus by its file's bytes, a model by its weight, configuration and tokenizer files.

Keys by path made users encode the same corpus twice (a BEIR zip and its unpacked folder, a model copied to
another disk), and keys by modification time alone could not tell a touched file from an edited one. Hashing
content costs one read of each file, so every digest is remembered in ``<cache>/digests.json`` by the file's
path, size, modification time and inode: a file is read again only after it changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from lsr.data.textio import TextSource
from lsr.defaults import DEFAULT_DENSE
from lsr.fsutil import atomic_file

DIGESTS = "digests.json"
"""The remembered digests, in the cache root: ``{file id: [size, mtime_ns, inode, sha256]}``."""
KEY_LENGTH = 12
"""Hex digits of a digest in a key: collisions are out of reach for any cache, and keys stay short to read."""
MODEL_SKIP = (".md", ".txt.lock", ".lock", ".gitattributes")
"""Model files that never change what the model computes (read-me files, download locks)."""


def platform_cache_dir() -> Path:
    """Where the operating system keeps per-user caches (XDG on Linux, ~/Library/Caches, %LOCALAPPDATA%)."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache folder: the argument, else ``$LSR_CACHE``, else ``lsr`` in the platform's cache folder."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("LSR_CACHE") or platform_cache_dir() / "lsr")


class _Memo:
    """The digests remembered in one cache root, loaded once per process and saved when one is added."""

    def __init__(self, root: Path) -> None:
        self.path = root / DIGESTS
        try:
            self.known: dict[str, list] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.known = {}

    def digest(self, path: Path, member: str | None, compute: Callable[[], str]) -> str:
        stat = path.stat()
        ident = f"{path.resolve()}!{member}" if member else str(path.resolve())
        stamp = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
        remembered = self.known.get(ident)
        if remembered and remembered[:3] == stamp:
            return str(remembered[3])
        value = compute()
        self.known[ident] = [*stamp, value]
        try:
            with atomic_file(self.path) as out:
                json.dump(self.known, out)
        except OSError:
            pass  # a read-only cache still answers; the digest is only not remembered
        return value


_memos: dict[Path, _Memo] = {}


def _memo(root: Path) -> _Memo:
    key = root.resolve()
    if key not in _memos:
        _memos[key] = _Memo(key)
    return _memos[key]


def _sha256(path: Path, member: str | None = None) -> str:
    digest = hashlib.sha256()
    with zipfile.ZipFile(path) if member else open(path, "rb") as handle:
        stream = handle.open(member) if member else handle  # type: ignore[union-attr]
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def file_digest(root: Path, path: Path, member: str | None = None) -> str:
    """The sha256 of a file's bytes (of a zip member's uncompressed bytes), remembered in ``root``."""
    return _memo(root).digest(path, member, lambda: _sha256(path, member))


def corpus_key(root: Path, source: TextSource) -> str:
    """The key of a corpus: its content's digest (the same bytes in a zip or a folder share it)."""
    return file_digest(root, source.path, source.member)[:KEY_LENGTH]


def model_folder(model: str | Path) -> Path:
    """The local folder of a model name: a folder as given, the embedded default, or a Hugging Face snapshot."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if str(model) == DEFAULT_DENSE:
        from lsr.models.dense import default_dense_path

        return default_dense_path()
    from lsr.models.hub import resolve_model

    return resolve_model(str(model))


def model_key(root: Path, model: str | Path) -> str:
    """The key of a model: the digest of its files' names and contents (read-me files and hidden ones left out)."""
    folder = model_folder(model)
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or any(p.startswith(".") for p in rel.parts) or path.name.endswith(MODEL_SKIP):
            continue
        digest.update(f"{rel.as_posix()}\0{file_digest(root, path.resolve())}\0".encode())
    return digest.hexdigest()[:KEY_LENGTH]
