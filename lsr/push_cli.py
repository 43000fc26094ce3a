"""``lsr push``: a model folder to the Hugging Face Hub.

Not in :mod:`lsr.models` beside the code it drives: importing anything there runs that package's ``__init__``, which
loads torch, and ``lsr`` imports every command's module at start, so ``lsr --help`` and every command's argument
checks would wait seconds for torch first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def push(
    folder: Annotated[Path, typer.Argument(help="Model folder (saved by lsr or sentence-transformers).", exists=True)],
    repo_id: Annotated[str, typer.Option(help="Hub repository, user/name (created if it does not exist).")],
    private: Annotated[bool, typer.Option(help="Create the repository private.")] = False,
) -> None:
    """Upload a model folder, its model card included, to the Hugging Face Hub (needs a token: hf auth login)."""
    from lsr.models.hub import push_folder

    url = push_folder(folder, repo_id, private)
    Console().print(f"{folder} uploaded to {url}")
