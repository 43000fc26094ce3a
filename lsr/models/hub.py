"""Find a model folder: a local path, or a Hugging Face Hub id downloaded (or found in the cache).

Loading by Hub id uses the real download code (``huggingface_hub.snapshot_download``);
without network access it fails at once with a message saying how to load the
model from a local folder, instead of hanging or printing a long traceback.

A model folder is data, never code: :func:`resolve_model` refuses one whose
configuration names code of its own (``auto_map``, a sentence-transformers module
outside the library, an attention kernel fetched from the Hub), and every loader
also passes ``trust_remote_code=False``, so a downloaded or edited folder cannot
run anything on the machine that loads it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lsr.errors import LsrError, OfflineError

#: Configuration keys whose value may name a Hub repository of kernels that transformers downloads and runs.
KERNEL_KEYS = frozenset({"attn_implementation", "_attn_implementation", "experts_implementation"})
#: The sentence-transformers modules a ``modules.json`` may name: those the installed library implements.
LIBRARY_MODULES = "sentence_transformers."


def resolve_model(name_or_path: str | Path, revision: str | None = None) -> Path:
    """A local folder holding the model's files, checked by :func:`refuse_remote_code`."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return refuse_remote_code(path)
    name = str(name_or_path)
    if path.exists():
        raise LsrError(f"{name}: is a file, not a model folder")
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        parent = path.parent
        near = sorted(p.name for p in parent.iterdir() if p.is_dir())[:8] if parent.is_dir() else []
        where = f"; {parent} holds {', '.join(near)}" if near else f"; {parent} does not exist either"
        raise LsrError(f"{name}: no such model folder{where}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    try:
        folder = Path(snapshot_download(name, revision=revision, local_files_only=offline, etag_timeout=10))
    except RepositoryNotFoundError as exc:
        raise LsrError(f"{name}: no such model on the Hugging Face Hub (or it is private)") from exc
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise OfflineError(
            f"cannot fetch {name} from the Hugging Face Hub and it is not in the local cache "
            f"({exc.__class__.__name__}). "
            "Download it where the Hub is reachable (huggingface-cli download) and pass the folder instead"
        ) from exc
    return refuse_remote_code(folder)


def refuse_remote_code(folder: Path) -> Path:
    """``folder``, unless one of its configurations (or its sentence-transformers modules') names code to run.

    ``trust_remote_code=False`` alone would either ignore such a setting silently or fail deep inside a library
    (sentence-transformers before 6 even imported any module class a local folder named); checking first gives
    one clear error naming the folder and the setting.
    """
    folders = [folder]
    modules = folder / "modules.json"
    if modules.is_file():
        entries = read_json(modules)
        for module in entries if isinstance(entries, list) else [entries]:
            kind = module.get("type", "") if isinstance(module, dict) else ""
            if not str(kind).startswith(LIBRARY_MODULES):
                _refuse(folder, modules, f"module type {kind!r} is not part of sentence-transformers")
            folders.append(folder / str(module.get("path", "")))
    for place in folders:
        for config in sorted(place.glob("*config*.json")):
            found = _code_reference(read_json(config))
            if found:
                _refuse(folder, config, found)
    return folder


def read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise LsrError(f"{path}: not a readable model configuration ({exc.__class__.__name__})") from exc


def _code_reference(config: object) -> str | None:
    """The first setting found in a parsed configuration that would make a library import or download code."""
    pending = [config]
    while pending:  # a loop, not recursion: a configuration nested deeper than the stack is checked too
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            for key, value in item.items():
                if key == "auto_map":
                    return f"auto_map {json.dumps(value)[:200]}"
                if key in KERNEL_KEYS and isinstance(value, str) and "/" in value:
                    return f"{key} {value!r} is a kernel from the Hugging Face Hub"
                pending.append(value)
    return None


def _refuse(folder: Path, config: Path, what: str) -> None:
    raise LsrError(
        f"{folder}: {config.name} asks to run code shipped with the model ({what}); lsr loads only models that "
        "the installed libraries implement (no remote code), so it refuses this folder"
    )
