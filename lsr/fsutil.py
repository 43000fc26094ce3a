"""Crash-safe writes that never destroy what lsr did not create.

Anything lsr writes (runs, indexes, models, converted datasets, downloads) is written under a temporary name
beside its destination, flushed to disk (fsync), and put in place by one atomic rename, so a killed process, a
power cut or a full disk leaves either the previous result or the new one, never a half-written one.

Four rules, each because a user lost data or time without it:

- **Ownership.** Every folder lsr writes holds a marker file (:data:`MARKER`). A destination that exists and is
  neither empty nor marked (a user's folder, a file, a link) is refused with :class:`OutputError` unless the
  caller forces it (``--force`` on the command line, :func:`forcing` from Python); the current folder and its
  parents are refused always, since replacing them would pull the ground from under the process.
- **One atomic step.** An existing folder is swapped with the new one by a single ``renameat2(RENAME_EXCHANGE)``
  (Linux); where the file system lacks it, by two renames whose gap :func:`_recover` closes on the next write.
- **Nothing left behind.** Temporaries are named ``.NAME.lsr-tmp.*``; a killed writer's ones are reclaimed by the
  next write to the same destination (under its lock, so no live writer owns them).
- **One writer at a time.** A lock file (``.NAME.lsr-lock``, ``flock``) makes a concurrent write to the same
  destination fail at once with a message naming the holder, instead of both reporting success.

A full disk, a read-only folder or a missing permission becomes a one-line :class:`OutputError`, the temporary
files removed and the previous result intact.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import errno
import fcntl
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from lsr.errors import LsrError

MARKER = ".lsr-output"
"""File in every folder lsr writes: proof that replacing the folder destroys nothing of the user's."""

_TMP = "lsr-tmp"
_OLD = "lsr-old"
_LOCK = "lsr-lock"
_force: contextvars.ContextVar[bool] = contextvars.ContextVar("lsr_force_replace", default=False)


class OutputError(LsrError):
    """A destination cannot or must not be written: not lsr's, locked, read-only, or the disk is full."""


@contextlib.contextmanager
def forcing(force: bool = True) -> Iterator[None]:
    """Within this block, writes may replace destinations lsr did not create (the ``--force`` of commands)."""
    token = _force.set(force)
    try:
        yield
    finally:
        _force.reset(token)


def forcing_enabled() -> bool:
    """Whether the current command was given ``--force``."""
    return _force.get()


def _absolute(path: str | Path) -> Path:
    """The absolute, normalised path, without resolving a final symbolic link (which is itself the target)."""
    return Path(os.path.abspath(os.fspath(path)))


def _sibling(target: Path, kind: str) -> str:
    return f".{target.name}.{kind}"


def check_replaceable(path: str | Path, force: bool | None = None) -> None:
    """Refuse a destination whose replacement would destroy something lsr did not write."""
    target = _absolute(path)
    cwd = Path.cwd()
    if target == cwd or target in cwd.parents or target == Path.home() or target.parent == target:
        raise OutputError(f"{target}: refusing to replace the current folder, one holding it, or the home folder")
    if force if force is not None else _force.get():
        return
    if target.is_symlink():
        raise OutputError(f"{target}: is a symbolic link; choose another output or pass --force to replace the link")
    if not target.exists():
        return
    if not target.is_dir():
        raise OutputError(f"{target}: is a file, not a folder lsr wrote; choose another output or pass --force")
    if (target / MARKER).is_file() or not any(target.iterdir()):
        return
    raise OutputError(
        f"{target}: exists and was not written by lsr (no {MARKER} in it), so replacing it would lose its files; "
        "choose another output or pass --force"
    )


def _trec_run(head: bytes) -> bool:
    lines = head.decode("utf-8", "replace").splitlines()[:5]
    return all(len(line.split()) == 6 for line in lines if line.strip())


FILE_KINDS: dict[str, Callable[[bytes], bool]] = {
    "trec": _trec_run,
    "json": lambda head: head.lstrip()[:1] in (b"{", b"["),
    "image": lambda head: head.startswith((b"\x89PNG", b"%PDF", b"<?xml", b"<svg")),
    # a CIFF file: a varint length (1-2 bytes), then the Header's first field, version (key 0x08)
    "ciff": lambda head: b"\x08" in head[1:3],
}
"""How a file lsr writes at a user's path starts: an existing file that does not look like one is refused."""


def check_file_replaceable(path: str | Path, kind: str, force: bool | None = None) -> None:
    """Refuse to overwrite a file that is not what lsr writes there (a TREC run, a JSON result, a plot)."""
    target = _absolute(path)
    if target.is_dir() and not target.is_symlink():
        raise OutputError(f"{target}: is a folder; give a file name")
    if (force if force is not None else _force.get()) or not target.is_file():
        return
    with open(target, "rb") as handle:
        head = handle.read(4096)
    if head and not FILE_KINDS[kind](head):
        raise OutputError(
            f"{target}: exists and does not look like a {kind} file lsr writes; choose another output or pass --force"
        )


def claim_dir(path: str | Path, force: bool | None = None) -> Path:
    """Create (or adopt) a folder that lsr fills file by file, marking it as lsr's; refuse a user's folder."""
    target = _absolute(path)
    check_replaceable(target, force)
    with _translated(target):
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            raise OutputError(f"{target}: is not a folder")
        target.mkdir(parents=True, exist_ok=True)
        if not (target / MARKER).is_file():
            with atomic_file(target / MARKER) as handle:
                handle.write("written by lsr\n")
    return target


_PERMISSION = (errno.EROFS, errno.EACCES, errno.EPERM)


@contextlib.contextmanager
def _translated(target: Path) -> Iterator[None]:
    """OS errors that mean "this destination cannot be written" become one line naming it and the cause.

    A full disk is the destination's problem wherever it strikes; a permission error only when it is about the
    destination, its folder or its temporaries (an unreadable input keeps its own error).
    """
    try:
        yield
    except OSError as exc:
        reasons = {
            errno.ENOSPC: "no space left on the device",
            errno.EDQUOT: "disk quota exceeded",
            errno.EFBIG: "file too large for the file system or the process's limit",
            errno.EROFS: "the file system is read-only",
            errno.EACCES: "permission denied",
            errno.EPERM: "operation not permitted",
        }
        where = str(exc.filename or target)
        ours = where in (str(target), str(target.parent)) or where.startswith(f"{target.parent}/.{target.name}.")
        if exc.errno not in reasons or (exc.errno in _PERMISSION and not ours):
            raise  # reading an input failed: not this destination's fault
        raise OutputError(
            f"{target}: cannot write ({reasons[exc.errno]}, at {where}); nothing was replaced and the "
            "temporary files were removed"
        ) from exc


_held: dict[Path, tuple[int, int]] = {}
"""Locks this process holds: destination -> (holding thread, depth)."""
_held_guard = threading.Lock()


def _enter_held(target: Path) -> bool:
    """True if this thread already holds ``target``'s lock (re-entry); an error if another thread does."""
    with _held_guard:
        holder = _held.get(target)
        if holder is None:
            return False
        thread, depth = holder
        if thread != threading.get_ident():
            raise OutputError(f"{target}: another thread of this process is writing it")
        _held[target] = (thread, depth + 1)
        return True


def _leave_held(target: Path) -> None:
    with _held_guard:
        thread, depth = _held[target]
        if depth > 1:
            _held[target] = (thread, depth - 1)
        else:
            del _held[target]


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Hold the destination's lock for a whole command, so a second writer fails at once instead of racing.

    Re-entrant within a thread (a command holds it around the :func:`atomic_dir` that takes it again); the lock
    file is removed on release, safely: a waiter that opened the old file re-checks it locked the current one.
    """
    target = _absolute(path)
    if _enter_held(target):
        try:
            yield
        finally:
            _leave_held(target)
        return
    with _translated(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = _lock_file(target)
    with _held_guard:
        _held[target] = (threading.get_ident(), 1)
    try:
        yield
    finally:
        _leave_held(target)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target.parent / _sibling(target, _LOCK))
        os.close(fd)


def _lock_file(target: Path) -> int:
    path = target.parent / _sibling(target, _LOCK)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise OutputError(
                f"{target}: another lsr process (pid {holder}) is writing it; wait for it to finish"
            ) from exc
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
                return fd
        os.close(fd)  # the previous holder unlinked the file between our open and our lock: lock the new one


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _recover(target: Path) -> None:
    """Called under the lock: finish or undo what a killed writer left (the two-rename gap, stale temporaries)."""
    old = target.parent / _sibling(target, _OLD)
    if old.exists() or old.is_symlink():
        if target.exists() or target.is_symlink():
            _remove(old)
        else:
            os.replace(old, target)  # killed between the two renames: the previous result goes back
    for stale in target.parent.glob(f"{_sibling(target, _TMP)}.*"):
        _remove(stale)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    return True


def _reclaim_files(target: Path) -> None:
    """Remove temporaries of ``target`` whose writer (the pid in their name) is dead: a killed write's leftovers."""
    for stale in target.parent.glob(f"{_sibling(target, _TMP)}.*"):
        pid = stale.name[len(_sibling(target, _TMP)) + 1 :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            _remove(stale)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` so the rename never publishes data still in the page cache."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            _fsync(Path(root) / name)
        _fsync(Path(root))


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step; False where the OS or file system cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), os.fspath(b))


def _swap_in(tmp: Path, target: Path) -> None:
    """Put the finished ``tmp`` at ``target``; the previous content, if any, ends under a reclaimable name."""
    if not (target.exists() or target.is_symlink()):
        os.rename(tmp, target)
    elif _exchange(tmp, target):
        _remove(tmp)  # now the previous content; if killed here, the next write reclaims it
    else:
        old = target.parent / _sibling(target, _OLD)
        os.rename(target, old)
        os.rename(tmp, target)  # if killed between the two, _recover restores ``old``
        _remove(old)
    _fsync(target.parent)


@contextlib.contextmanager
def atomic_dir(path: str | Path, force: bool | None = None) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it replaces ``path`` atomically.

    On any error (or a kill) the destination keeps its previous content. ``force`` (default: :func:`forcing`)
    allows replacing a destination lsr did not write.
    """
    target = _absolute(path)
    check_replaceable(target, force)
    with _translated(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        with writing(target):
            _recover(target)
            tmp = Path(tempfile.mkdtemp(prefix=f"{_sibling(target, _TMP)}.{os.getpid()}.", dir=target.parent))
            try:
                (tmp / MARKER).write_text("written by lsr\n")
                yield tmp
                _fsync_tree(tmp)
                _swap_in(tmp, target)
            except BaseException:
                _remove(tmp)
                raise


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it is flushed and replaces ``path``, on error removed.

    A folder at ``path`` is refused: a file never silently replaces a folder.
    """
    target = _absolute(path)
    if target.is_dir() and not target.is_symlink():
        raise OutputError(f"{target}: is a folder; give a file name")
    with _translated(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        _reclaim_files(target)
        fd, name = tempfile.mkstemp(prefix=f"{_sibling(target, _TMP)}.{os.getpid()}.", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
        try:  # opened by name, so handle.name is the path (hnswlib and others write to it by name)
            with open(tmp, mode, encoding=None if "b" in mode else encoding) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
            _fsync(target.parent)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
