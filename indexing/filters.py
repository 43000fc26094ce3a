"""Document filters for search: the mask of documents a search may return, built from document ids.

Every searcher (sparse CPU and GPU, every dense backend) takes ``allow``: an array of one boolean (or uint8) per
document number, true where the document may be returned. The searchers test it inside the search, when the top
k is selected or by scoring only the allowed documents when they are few, so a filtered search returns exactly
the top k among the allowed documents at about the cost of an unfiltered one; filtering an unfiltered search's
hits afterwards needs ever deeper searches until k allowed hits are left (100x the cost for a one-id filter).

Ids become numbers through :class:`DocNumbers`: 64-bit hashes of the ids, sorted once per index, 16 bytes a
document (a dict of 8.8M ids would hold about 1 GB), each id found by binary search and confirmed byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
from lsr.indexing.hits import DocFilter
from numba import njit

UNKNOWN = -1
"""The number :meth:`DocNumbers.numbers` gives an id the index does not hold; :func:`allow_mask` skips it."""


def allow_mask(
    num_docs: int,
    allow_numbers: Sequence[int] | np.ndarray | None = None,
    deny_numbers: Sequence[int] | np.ndarray = (),
) -> np.ndarray:
    """The documents a search may return: those in ``allow_numbers`` (every one when None) less ``deny_numbers``.

    :data:`UNKNOWN` numbers (ids the index does not hold) are skipped, so an allow list of unknown ids allows
    nothing; any other number outside ``[0, num_docs)`` is an error, not a silent wraparound.
    """
    mask = np.ones(num_docs, dtype=bool) if allow_numbers is None else np.zeros(num_docs, dtype=bool)
    for numbers, value in ((allow_numbers, True), (deny_numbers, False)):
        if numbers is None:
            continue
        numbers = np.asarray(numbers, dtype=np.int64).ravel()
        numbers = numbers[numbers != UNKNOWN]
        if np.any((numbers < 0) | (numbers >= num_docs)):
            raise ValueError(f"document numbers must be in [0, {num_docs}), or {UNKNOWN} for an unknown id")
        mask[numbers] = value
    return mask


def check_allow(allow: np.ndarray | None, num_docs: int) -> np.ndarray | None:
    """``allow`` as the kernels read it: a contiguous bool array of ``num_docs`` entries (uint8 masks converted:
    NumPy counts and lists bools several times faster, and any non-zero byte must read as true).

    None, and a mask that allows every document, are both None: no filter, and no cost.
    """
    if allow is None:
        return None
    allow = np.asarray(allow)
    if allow.shape != (num_docs,) or allow.dtype not in (np.bool_, np.uint8):
        raise ValueError(f"allow must be a bool or uint8 mask of {num_docs} documents, not {allow.dtype} {allow.shape}")
    mask = np.ascontiguousarray(allow, dtype=bool)
    return None if mask.all() else mask


@njit(nogil=True, cache=True)
def id_hashes(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """FNV-1a, 64-bit, of each id ``blob[offsets[i]:offsets[i + 1]]`` (UTF-8 bytes)."""
    out = np.empty(len(offsets) - 1, dtype=np.uint64)
    for i in range(len(out)):
        value = np.uint64(0xCBF29CE484222325)
        for p in range(offsets[i], offsets[i + 1]):
            value = (value ^ np.uint64(blob[p])) * np.uint64(0x100000001B3)
        out[i] = value
    return out


@njit(nogil=True, cache=True)
def _find(blob, offsets, order, hashes, wanted, wanted_offsets, wanted_hashes) -> np.ndarray:  # noqa: ANN001
    """The number of each wanted id, or UNKNOWN: the documents of equal hash compared byte for byte."""
    out = np.full(len(wanted_offsets) - 1, UNKNOWN, dtype=np.int64)
    for i in range(len(out)):
        start, end = wanted_offsets[i], wanted_offsets[i + 1]
        for j in range(np.searchsorted(hashes, wanted_hashes[i]), len(hashes)):
            if hashes[j] != wanted_hashes[i]:
                break
            number = order[j]
            first, last = offsets[number], offsets[number + 1]
            if last - first == end - start and np.all(blob[first:last] == wanted[start:end]):
                out[i] = number
                break
    return out


def encoded_ids(ids: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """Ids as one UTF-8 blob and the offsets of each id in it (the sparse index's own layout)."""
    encoded = [i.encode("utf-8") for i in ids]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.array([len(e) for e in encoded], dtype=np.int64), out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


class DocNumbers:
    """Document ids to document numbers, for filters; built once per index (about a second at 8.8M documents)."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray) -> None:
        """``blob[offsets[n]:offsets[n + 1]]`` is the UTF-8 id of document ``n``."""
        self._blob, self._offsets = blob, offsets
        hashes = id_hashes(blob, offsets)
        self._order = np.argsort(hashes, kind="stable")  # among equal ids, the lowest number is found first
        self._hashes = hashes[self._order]

    @classmethod
    def of(cls, ids: Sequence[str]) -> DocNumbers:
        """From a list of ids in document order."""
        return cls(*encoded_ids(ids))

    def numbers(self, ids: Iterable[str]) -> np.ndarray:
        """The number of each id (int64), :data:`UNKNOWN` where the index holds no such id."""
        wanted, offsets = encoded_ids(ids)
        return _find(self._blob, self._offsets, self._order, self._hashes, wanted, offsets, id_hashes(wanted, offsets))


def filter_mask(allow: DocFilter, num_docs: int, numbers: Callable[[Iterable[str]], np.ndarray]) -> np.ndarray:
    """The mask of a :class:`~lsr.indexing.hits.DocFilter` (document ids) over one index, given its id lookup."""
    allowed = None if allow.allow is None else numbers(allow.allow)
    return allow_mask(num_docs, allowed, numbers(allow.deny) if allow.deny else ())
