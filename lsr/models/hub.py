"""The Hugging Face Hub both ways: find a model folder (a local path, or an id downloaded or found in the cache),
and upload one (``lsr push``).

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

    try:
        folder = Path(snapshot_download(name, revision=revision, local_files_only=hub_offline(), etag_timeout=10))
    except RepositoryNotFoundError as exc:
        raise LsrError(f"{name}: no such model on the Hugging Face Hub (or it is private)") from exc
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise OfflineError(
            f"cannot fetch {name} from the Hugging Face Hub and it is not in the local cache "
            f"({exc.__class__.__name__}). "
            "Download it where the Hub is reachable (huggingface-cli download) and pass the folder instead"
        ) from exc
    return refuse_remote_code(folder)


def hub_offline() -> bool:
    """Whether the user has said the Hub is out of reach (``HF_HUB_OFFLINE``), so nothing should try it."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


#: Top-level modules of the HTTP clients huggingface_hub has used (requests, then httpx, then httpx2): their errors
#: mean the Hub could not be reached, whichever client the installed version uses.
TRANSPORTS = frozenset({"requests", "urllib3", "httpx", "httpx2", "httpcore"})


def push_folder(folder: Path, repo_id: str, private: bool = False) -> str:
    """Upload a model folder to the Hugging Face Hub (creating the repository if needed); returns its address.

    Lock files and lsr's marker (names starting with a dot) stay behind. Offline (``HF_HUB_OFFLINE``) it fails
    before any connection; an unreachable Hub, a missing token or a refusal each fail with one line.
    """
    from lsr.models.base import CONFIG_FILE

    if not (folder / CONFIG_FILE).is_file() and not (folder / "modules.json").is_file():
        raise LsrError(f"{folder}: not a model folder (no {CONFIG_FILE} nor modules.json)")
    if hub_offline():
        raise OfflineError(
            f"cannot upload {folder} to {repo_id}: HF_HUB_OFFLINE is set (unset it where the Hub is reachable)"
        )
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(folder_path=folder, repo_id=repo_id, ignore_patterns=[".*", "**/.*"])
    except LocalTokenNotFoundError as exc:
        raise LsrError("no Hugging Face token: log in (`hf auth login`) or set HF_TOKEN, then push again") from exc
    except HfHubHTTPError as exc:
        raise LsrError(f"the Hub refused the upload to {repo_id}: {str(exc).splitlines()[0]}") from exc
    except Exception as exc:
        if isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in TRANSPORTS:
            raise OfflineError(
                f"cannot reach the Hugging Face Hub to upload {folder} to {repo_id} ({exc.__class__.__name__}: {exc}); "
                "push again where it is reachable"
            ) from exc
        raise
    return str(url)


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
