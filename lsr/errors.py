"""Errors and warnings that users see.

Every error about input data names the file and, where there is one, the line,
so a user can open the file at the right place instead of guessing.
"""

from __future__ import annotations

from pathlib import Path


class LsrError(Exception):
    """Base class of errors the CLI reports as a one-line message, without a traceback."""


class DataFormatError(LsrError):
    """A data file is malformed: the message says which file, which line and what is wrong."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


def print_problem(label: str, colour: str, message: object) -> None:
    """One line on stderr: ``label:`` in ``colour``, then the message exactly as written. The message is not read as
    rich markup, which would drop anything in square brackets (``pip install 'lsr[lucene]'``, a path like
    ``runs/[old]``) from the very line meant to say what to do."""
    from rich.console import Console
    from rich.text import Text

    Console(stderr=True, soft_wrap=True).print(Text.assemble((f"{label}:", colour), " ", str(message)))


class DataWarning(UserWarning):
    """Input that BEIR tolerates but that is probably a mistake (e.g. qrels naming unknown documents)."""


class OfflineError(LsrError):
    """A download was needed but the network (or the remote host) cannot be reached."""


class ChecksumError(LsrError):
    """A downloaded file does not match its published checksum."""


def no_folder(folder: str | Path, what: str) -> str:
    """Why ``folder`` is not a ``what`` folder when it is not a folder at all ("" when it is one), naming what
    exists beside it: a misspelt path is the usual cause, and the neighbours show the right spelling."""
    folder = Path(folder)
    if folder.is_dir():
        return ""
    if folder.exists():
        return f"{folder}: is a file, not {what} folder"
    parent = folder.parent
    near = sorted(p.name for p in parent.iterdir() if not p.name.startswith("."))[:8] if parent.is_dir() else []
    where = f"; {parent} holds {', '.join(near)}" if near else f"; {parent} does not exist either"
    return f"{folder}: does not exist{where if parent != folder else ''}"
