"""Where a benchmark's JSON result goes: checked before the work, written crash-safe after it.

The ``python -m lsr.eval.bench.*`` entry points run on machines with no console script (the device machines), and
they write to a path the user typed as the CLI's ``lsr bench`` commands do: an existing file that is not a JSON
result is refused before minutes of measuring (``lsr.fsutil.check_file_replaceable``), and the result replaces
the file in one rename (``lsr.fsutil.atomic_file``), so a killed run leaves the previous result whole.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lsr.fsutil import OutputError, atomic_file, check_file_replaceable


def json_output(value: str) -> Path:
    """An argparse ``type=`` for ``--output``: the path, refused at parse time if it holds something else."""
    try:
        check_file_replaceable(value, "json")
    except OutputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return Path(value)


def save_json(result: Any, path: str | Path) -> None:
    """Write ``result`` as indented JSON at ``path`` in one atomic replacement (a folder at ``path`` is refused)."""
    with atomic_file(path) as handle:
        json.dump(result, handle, indent=2)
        handle.write("\n")
