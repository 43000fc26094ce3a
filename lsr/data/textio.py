"""Line-oriented reading of plain, gzip and zip-member text files, with line numbers.

Datasets arrive as ``.jsonl``, ``.jsonl.gz`` or inside a BEIR ``.zip``; the rest of
the code should not care which. Reading is streamed line by line so a corpus is
never held in memory, and every line carries its number so errors can point at it.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from lsr.errors import DataFormatError


@dataclass(frozen=True)
class TextSource:
    """A UTF-8 text file on disk (gzip if its name ends in ``.gz``) or a member of a zip archive."""

    path: Path
    member: str | None = None

    @property
    def name(self) -> str:
        """How errors refer to this file: ``archive.zip!member`` for zip members."""
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    def fingerprint(self) -> dict[str, object]:
        """What identifies this file's content cheaply (path, member, size, modification time): encodings and
        indexes made from it are keyed by this, so an edited corpus is never served stale vectors."""
        stat = self.path.stat()
        return {
            "path": str(self.path.resolve()),
            "member": self.member,
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        }

    @contextlib.contextmanager
    def open_binary(self) -> Iterator[BinaryIO]:
        """Open for reading as bytes, decompressing on the fly."""
        with contextlib.ExitStack() as stack:
            if self.member is not None:
                archive = stack.enter_context(zipfile.ZipFile(self.path))
                raw: BinaryIO = stack.enter_context(archive.open(self.member))
                compressed = self.member.endswith(".gz")
            else:
                raw = stack.enter_context(open(self.path, "rb"))
                compressed = self.path.suffix == ".gz"
            if compressed:
                raw = stack.enter_context(gzip.GzipFile(fileobj=raw))
            yield raw

    def lines(self) -> Iterator[tuple[int, str]]:
        """Yield ``(line_number, line)`` from 1, without the line ending.

        Lines are decoded one at a time so a bad byte is reported on its own line.
        """
        number = 0
        try:
            with self.open_binary() as handle:
                for number, raw in enumerate(handle, start=1):  # noqa: B007 - used in the handlers
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise DataFormatError(self.name, f"not valid UTF-8 ({exc.reason})", number) from exc
                    yield number, line.rstrip("\r\n")
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataFormatError(self.name, f"cannot be read: {exc}", number + 1 if number else None) from exc

    def json_objects(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield ``(line_number, object)`` for each non-blank line, which must hold one JSON object."""
        for number, line in self.lines():
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(self.name, f"invalid JSON ({exc.msg} at column {exc.colno})", number) from exc
            if not isinstance(value, dict):
                raise DataFormatError(self.name, f"expected a JSON object, got {type(value).__name__}", number)
            yield number, value


def first_existing(folder: Path, names: list[str]) -> Path | None:
    """The first of ``names`` that exists in ``folder``, so ``corpus.jsonl`` and ``corpus.jsonl.gz`` both work."""
    for name in names:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None
