"""Implicit-feedback datasets: the file formats papers ship, detected from a folder, and seeded splits.

Formats (each file may be gzipped):

* LightGCN ``train.txt`` / ``test.txt``: one line per user, ``user item item ...`` (Gowalla, Yelp2018);
* MovieLens ``u.data`` (``user item rating timestamp``, tab-separated) and its folds ``uN.base`` / ``uN.test``;
* Last.fm as LightGCN ships it: ``data1.txt`` / ``test1.txt``, ``user item weight`` tab-separated;
* CSV ``user,item[,rating,timestamp]`` (a header line starting with ``user`` is skipped): ``train.csv`` and
  ``test.csv``, or one ``interactions.csv`` (or any single ``*.csv``) to be split.

Every interaction counts as positive feedback, whatever its rating: that is how LightGCN, DSL and the
papers they compare with binarise MovieLens and Last.fm. Ids may be any strings; numeric ids are kept
in numeric order, so the LightGCN files' 0-based ids map to themselves.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from lsr.errors import DataFormatError, LsrError

SPLITS = ("given", "random", "latest")


@dataclass
class Interactions:
    """A train/test split as binary user × item CSR matrices, with the raw id of every row and column."""

    train: sp.csr_matrix
    test: sp.csr_matrix
    users: np.ndarray
    items: np.ndarray
    source: str

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        return self.train.shape[1]


@dataclass
class _Records:
    """Raw interactions as read: parallel arrays of user ids, item ids and (when the file has them) timestamps."""

    users: np.ndarray
    items: np.ndarray
    times: np.ndarray | None

    @staticmethod
    def concat(parts: list[_Records]) -> _Records:
        times = None if any(p.times is None for p in parts) else np.concatenate([p.times for p in parts])
        return _Records(np.concatenate([p.users for p in parts]), np.concatenate([p.items for p in parts]), times)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield number, line


def read_lightgcn(path: Path) -> _Records:
    """``user item item ...`` lines of non-negative integers; a user with no items is allowed."""
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    for number, line in _lines(path):
        fields = line.split()
        if not all(f.isdigit() for f in fields):
            bad = next(f for f in fields if not f.isdigit())
            raise DataFormatError(path, f"expected non-negative integer ids 'user item item ...', got {bad!r}", number)
        row = np.array(fields, dtype=np.int64)
        users.append(np.full(len(row) - 1, row[0]))
        items.append(row[1:])
    empty = np.zeros(0, dtype=np.int64)
    return _Records(np.concatenate(users or [empty]), np.concatenate(items or [empty]), None)


def read_table(path: Path, sep: str | None) -> _Records:
    """``user item [rating [timestamp]]`` rows split on ``sep`` (None: any whitespace); ratings are ignored."""
    users: list[str] = []
    items: list[str] = []
    times: list[float] = []
    for number, line in _lines(path):
        fields = [f.strip() for f in line.rstrip("\r\n").split(sep)]
        if number == 1 and fields[0].lower().startswith("user"):
            continue  # CSV header
        if len(fields) < 2 or not fields[0] or not fields[1]:
            raise DataFormatError(path, f"expected 'user{sep or ' '}item[...]', got {line.strip()!r}", number)
        users.append(fields[0])
        items.append(fields[1])
        if len(fields) >= 4:
            try:
                times.append(float(fields[3]))
            except ValueError:
                raise DataFormatError(path, f"timestamp {fields[3]!r} is not a number", number) from None
    has_times = len(times) == len(users) and users
    return _Records(np.array(users), np.array(items), np.array(times) if has_times else None)


def _reader(path: Path) -> _Records:
    name = path.name.removesuffix(".gz")
    if name.endswith(".csv"):
        return read_table(path, ",")
    if name in ("train.txt", "test.txt"):
        return read_lightgcn(path)
    return read_table(path, None)


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _layout(folder: Path, fold: int) -> tuple[tuple[Path, Path] | None, list[Path]]:
    """The folder's given (train, test) files, if any, and the files holding all its interactions."""
    pairs = [("train.txt", "test.txt"), (f"u{fold}.base", f"u{fold}.test"), ("data1.txt", "test1.txt")]
    pairs.append(("train.csv", "test.csv"))
    for train_name, test_name in pairs:
        train, test = _find(folder, train_name), _find(folder, test_name)
        if train and test:
            whole = _find(folder, "u.data")
            return (train, test), [whole] if whole else [train, test]
    whole = _find(folder, "u.data") or _find(folder, "interactions.csv")
    csvs = sorted(folder.glob("*.csv")) + sorted(folder.glob("*.csv.gz"))
    if whole is None and len(csvs) == 1:
        whole = csvs[0]
    if whole is None:
        raise LsrError(
            f"{folder}: no recommendation data found (expected train.txt+test.txt, u.data or uN.base+uN.test, "
            "data1.txt+test1.txt, train.csv+test.csv, or one interactions CSV)"
        )
    return None, [whole]


def _index(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ids (numeric order when all are integers) and each entry's position among them."""
    try:
        values = raw.astype(np.int64)
    except ValueError:
        values = raw
    names, inverse = np.unique(values, return_inverse=True)
    return names.astype(str), inverse.reshape(-1)


def _matrix(users: np.ndarray, items: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    matrix = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=shape)
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _holdout(users: np.ndarray, keys: np.ndarray, n_test: np.ndarray) -> np.ndarray:
    """Mask of test interactions: each user's ``n_test[user]`` interactions with the largest key."""
    order = np.lexsort((keys, users))
    sorted_users = users[order]
    counts = np.bincount(sorted_users, minlength=len(n_test))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(order)) - starts[sorted_users]
    is_test = np.zeros(len(users), dtype=bool)
    is_test[order] = rank >= counts[sorted_users] - n_test[sorted_users]
    return is_test


def split_records(
    user: np.ndarray, item: np.ndarray, times: np.ndarray | None, how: str, test_fraction: float, seed: int
) -> np.ndarray:
    """Mask of test interactions for a per-user ``random`` split or a leave-``latest``-out split.

    A user with a single interaction keeps it for training: a user with no training data cannot be ranked.
    """
    counts = np.bincount(user)
    if how == "random":
        keys = np.random.default_rng(seed).random(len(user))
        n_test = np.where(counts >= 2, np.maximum(1, np.round(test_fraction * counts)), 0).astype(np.int64)
        n_test = np.minimum(n_test, counts - 1)
    elif how == "latest":
        if times is None:
            raise LsrError("--split latest needs timestamps (4th column); this data has none")
        keys = times + np.random.default_rng(seed).random(len(user)) * 1e-3  # seeded tie-break
        n_test = (counts >= 2).astype(np.int64)
    else:
        raise LsrError(f"unknown split {how!r}: choose one of {', '.join(SPLITS)}")
    return _holdout(user, keys, n_test)


def load_dataset(
    folder: str | Path, split: str = "given", fold: int = 1, test_fraction: float = 0.2, seed: int = 0
) -> Interactions:
    """Read a folder in any supported format; ``split`` is ``given`` (the files' own), ``random`` or ``latest``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LsrError(f"{folder}: no such folder")
    given, whole = _layout(folder, fold)
    if split == "given":
        if given is None:
            raise LsrError(f"{folder}: no train/test files; use --split random or --split latest")
        parts = [_reader(p) for p in given]
        n_train = len(parts[0].users)
        records = _Records.concat(parts)
    else:
        records = _Records.concat([_reader(p) for p in whole])
    users, user_idx = _index(records.users)
    items, item_idx = _index(records.items)
    shape = (len(users), len(items))
    if split == "given":
        train = _matrix(user_idx[:n_train], item_idx[:n_train], shape)
        test = _matrix(user_idx[n_train:], item_idx[n_train:], shape)
        source = " + ".join(str(p) for p in given)
    else:
        # One interaction per (user, item): keep the latest, so a re-rating is not both train and test.
        keys = records.times if records.times is not None else np.zeros(len(user_idx))
        order = np.lexsort((keys, item_idx, user_idx))[::-1]
        _, first = np.unique(user_idx[order] * len(items) + item_idx[order], return_index=True)
        keep = order[first]
        times = None if records.times is None else records.times[keep]
        is_test = split_records(user_idx[keep], item_idx[keep], times, split, test_fraction, seed)
        train = _matrix(user_idx[keep][~is_test], item_idx[keep][~is_test], shape)
        test = _matrix(user_idx[keep][is_test], item_idx[keep][is_test], shape)
        source = f"{' + '.join(str(p) for p in whole)} ({split} split, seed {seed})"
    if train.nnz == 0:
        raise LsrError(f"{folder}: no training interactions")
    return Interactions(train, test, users, items, source)
