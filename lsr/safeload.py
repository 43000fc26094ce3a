"""Reading pickled weights so that a file from anyone else cannot run code.

``torch.load`` unpickles, and a pickle may name any function to call: with ``weights_only=False`` a crafted
checkpoint runs whatever it names. lsr saves its training states as tensors and plain containers only
(numbers, strings, lists, dicts, tuples), which torch's weights-only unpickler reads and which name no code;
transformers, peft and sentence-transformers read ``.bin`` weights the same way. A file holding anything else
is refused with one line naming it, whoever wrote it.
"""

from __future__ import annotations

import contextlib
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from lsr.errors import LsrError

#: What to do about a model folder whose weights were refused.
MODEL_REMEDY = "load a copy whose weights are safetensors (model.safetensors) from a source you trust"


@contextlib.contextmanager
def refusing_code(where: Path, remedy: str = MODEL_REMEDY) -> Iterator[None]:
    """Turn the weights-only unpickler's refusal inside the block into a one-line error naming ``where``.

    The unpickler's own message advises loading with ``weights_only=False``, which would run the code.
    """
    try:
        yield
    except pickle.UnpicklingError as exc:
        named = re.search(r"GLOBAL (\S+)", str(exc))
        raise LsrError(
            f"{where}: refused: it holds Python objects{f' ({named[1]})' if named else ''} that loading could run "
            f"as code, not only tensors and plain containers (an older, unsafe format, or a tampered file); {remedy}"
        ) from exc


def load_weights(path: Path, remedy: str, map_location: str | torch.device = "cpu") -> Any:
    """What ``torch.save`` wrote to ``path``, read weights-only (see :func:`refusing_code`)."""
    with refusing_code(path, remedy):
        return torch.load(path, map_location=map_location, weights_only=True)
