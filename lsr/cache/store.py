"""The cache's entries: where each lives, what it holds, when it was last used, and removing them safely.

An entry is one folder: ``<cache>/vectors/<corpus key>/<model key>`` (a corpus's encodings),
``<cache>/index/<corpus key>/<model key>/<settings>`` (an index built from them, or BM25's over the text) or
``<cache>/titles/<corpus key>`` (a large corpus's titles for ``lsr query``, :mod:`lsr.cache.titles`).
Each holds :data:`INFO`, written when the entry is made and touched whenever it is used, so ``lsr cache ls``
can say what an entry is and ``lsr cache clear --older-than`` which ones nobody used lately. Clearing removes
only folders holding lsr's output marker (:data:`lsr.fsutil.MARKER`), never one a user put there, and skips an
entry another lsr process is writing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsr.errors import LsrError
from lsr.fsutil import MARKER, OutputError, atomic_file, writing

INFO = "lsr-cache.json"
"""In every entry: what it holds (model, corpus, settings); its modification time is when it was last used."""
DEPTH = {"vectors": 2, "index": 3, "titles": 1}
"""How deep entries lie under each kind's folder."""
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def record_use(folder: Path, about: Mapping[str, Any] | None = None) -> None:
    """Note that ``folder`` was just used, and what it holds (merged into :data:`INFO` when given)."""
    info = folder / INFO
    old = read_info(folder)
    new = {**old, **(about or {})}
    try:
        if new != old or not info.is_file():
            with atomic_file(info) as out:
                json.dump(new, out, indent=2)
        else:
            os.utime(info)
    except OSError:
        pass  # a read-only cache is still used; only its bookkeeping is not updated


def read_info(folder: Path) -> dict[str, Any]:
    """What :func:`record_use` recorded about an entry (empty for one an older lsr made)."""
    try:
        info = json.loads((folder / INFO).read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


@dataclass(frozen=True)
class Entry:
    """One cached encoding or index, as ``lsr cache ls`` shows it."""

    key: str
    path: Path
    kind: str
    what: str
    size: int
    last_used: float
    owned: bool


def _size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _describe(folder: Path, kind: str) -> str:
    info = read_info(folder)
    if not info:
        return f"{kind} (made by an older lsr)"
    corpus = _short(str(info.get("corpus", "?")))
    if kind == "titles":  # a corpus's (id, title) table for `lsr query`: no model
        return f"titles of {corpus}"
    model = Path(str(info.get("model", "?"))).name or str(info.get("model"))
    settings = f" [{info['settings']}]" if info.get("settings") else ""
    return f"{kind} of {model} over {corpus}{settings}"


def _short(path: str) -> str:
    """A recorded path as ``lsr cache ls`` shows it: relative when under the current folder, else from ``~`` when
    under the home folder (absolute paths, as recorded, fill a terminal line alone)."""
    full = Path(path)
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~/")):
        if full.is_absolute() and full.is_relative_to(base) and full != base:
            return prefix + full.relative_to(base).as_posix()
    return path


def _last_used(folder: Path) -> float:
    for path in (folder / INFO, folder / MARKER, folder):
        with contextlib.suppress(OSError):
            return path.stat().st_mtime
    return 0.0


def entries(root: Path) -> list[Entry]:
    """Every entry under the cache root, most recently used first."""
    found: list[Entry] = []
    for kind, depth in DEPTH.items():
        base = root / kind
        if not base.is_dir():
            continue
        for folder in base.glob("/".join(["*"] * depth)):
            if not folder.is_dir() or folder.is_symlink() or any(p.startswith(".") for p in folder.parts[-depth:]):
                continue
            found.append(
                Entry(
                    key=folder.relative_to(root).as_posix(),
                    path=folder,
                    kind=kind,
                    what=_describe(folder, kind),
                    size=_size(folder),
                    last_used=_last_used(folder),
                    owned=(folder / MARKER).is_file(),
                )
            )
    return sorted(found, key=lambda e: -e.last_used)


def parse_age(text: str) -> float:
    """Seconds in ``30d``, ``12h``, ``90m``, ``2w`` or ``45s`` (a bare number is days)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        raise LsrError(f"--older-than {text!r}: give a number and a unit, e.g. 30d, 12h, 90m, 2w (a bare number: days)")
    return float(match.group(1)) * _UNITS[match.group(2) or "d"]


def matches(entry: Entry, key: str) -> bool:
    """``key`` names the entry, a folder above it, or (from 6 characters) the start of one of its key's parts."""
    key = key.strip("/")
    if entry.key == key or entry.key.startswith(key + "/"):
        return True
    return len(key) >= 6 and any(part.startswith(key) for part in entry.key.split("/"))


def clear(root: Path, key: str | None = None, older_than: float | None = None) -> tuple[list[Entry], list[str]]:
    """Remove the entries ``key`` names (all without it) that were last used over ``older_than`` seconds ago.

    Returns the removed entries and one line for each one kept although selected: not lsr's (no output
    marker: something a user put there) or being written by another lsr process.
    """
    now = time.time()
    removed: list[Entry] = []
    kept: list[str] = []
    for entry in entries(root):
        if key is not None and not matches(entry, key):
            continue
        if older_than is not None and now - entry.last_used < older_than:
            continue
        if not entry.owned:
            kept.append(f"{entry.key}: kept, not written by lsr (no {MARKER} in it)")
            continue
        try:
            with writing(entry.path):
                shutil.rmtree(entry.path)
        except OutputError as exc:
            kept.append(f"{entry.key}: kept, {exc}")
            continue
        removed.append(entry)
        _prune_empty(entry.path.parent, root / entry.kind)
    return removed, kept


def _prune_empty(folder: Path, stop: Path) -> None:
    """Remove the folders above a removed entry that it left empty, up to the kind's folder."""
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
