"""Posting loops shared by the CPU kernels (:mod:`lsr.indexing.sparse.search`, :mod:`lsr.indexing.sparse.dynamic`).

Each loop runs from 0 over slices of the posting arrays and reads document numbers as unsigned: Numba
compiles a ``for p in range(start, end): scores[docs[p]] += ...`` loop over signed indices with a
negative-index wraparound test on every access, which cost most of a kernel's time (about 3x).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(inline="always")
def add_segment(scores, weight, docs, codes, table, start, end) -> None:  # noqa: ANN001
    """``scores[docs[p]] += weight * table[codes[p]]`` for ``p`` in ``[start, end)``."""
    segment_docs, segment_codes = docs[start:end], codes[start:end]
    for j in range(end - start):
        scores[np.uint32(segment_docs[j])] += weight * table[segment_codes[j]]


@njit(inline="always")
def add_segment_touched(scores, touched, n_touched, weight, docs, codes, table, start, end) -> int:  # noqa: ANN001
    """:func:`add_segment`, listing each document seen for the first time in ``touched``; returns the new count.

    Scores start at zero and every contribution is positive, so a zero score means a document not yet seen.
    """
    segment_docs, segment_codes = docs[start:end], codes[start:end]
    for j in range(end - start):
        doc = np.uint32(segment_docs[j])
        if scores[doc] == 0.0:
            touched[n_touched] = doc
            n_touched += 1
        scores[doc] += weight * table[segment_codes[j]]
    return n_touched
