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


class DataWarning(UserWarning):
    """Input that BEIR tolerates but that is probably a mistake (e.g. qrels naming unknown documents)."""


class OfflineError(LsrError):
    """A download was needed but the network (or the remote host) cannot be reached."""


class ChecksumError(LsrError):
    """A downloaded file does not match its published checksum."""
