"""Find a model folder: a local path, or a Hugging Face Hub id downloaded (or found in the cache).

Loading by Hub id uses the real download code (``huggingface_hub.snapshot_download``);
without network access it fails at once with a message saying how to load the
model from a local folder, instead of hanging or printing a long traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

from lsr.errors import LsrError, OfflineError


def resolve_model(name_or_path: str | Path, revision: str | None = None) -> Path:
    """A local folder holding the model's files."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if path.exists() or name.startswith((".", "/")) or name.count("/") > 1:
        raise LsrError(f"{name}: not a model folder")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    try:
        return Path(snapshot_download(name, revision=revision, local_files_only=offline, etag_timeout=10))
    except RepositoryNotFoundError as exc:
        raise LsrError(f"{name}: no such model on the Hugging Face Hub (or it is private)") from exc
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise OfflineError(
            f"cannot fetch {name} from the Hugging Face Hub and it is not in the local cache "
            f"({exc.__class__.__name__}). "
            "Download it where the Hub is reachable (huggingface-cli download) and pass the folder instead"
        ) from exc
