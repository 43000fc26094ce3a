"""Seismic's JSONL input from an lsr index: one ``{"id", "content", "vector": {term: impact}}`` per line.

Why: Seismic (``pyseismic-lsr``) builds its index from this file (``SeismicIndex.build(path)``), as its
documentation describes; writing it from lsr's index gives Seismic the identical postings the other
engines get through CIFF: integer impacts ``round(100 w)`` (zeros left out), terms named by the model's
tokens or by decimal term ids, documents in index order, an empty ``content``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from lsr.indexing.lucene.impact import SCALE
from lsr.indexing.sparse.ciff import term_names
from lsr.indexing.sparse.format import SparseIndex

from lsr.fsutil import atomic_file


def export_seismic_jsonl(
    index_folder: str | Path, path: str | Path, vocabulary: Sequence[str] | None = None, scale: int = SCALE
) -> int:
    """Write every document of an lsr index as Seismic JSONL (replaced atomically); return the count."""
    index = SparseIndex.open(index_folder)
    names = term_names(vocabulary, index.meta.vocab_size)
    indptr = np.asarray(index.forward_indptr)
    chunk = 10_000
    with atomic_file(path, "w") as out:
        for start in range(0, index.num_docs, chunk):
            numbers = np.arange(start, min(start + chunk, index.num_docs))
            low, high = int(indptr[numbers[0]]), int(indptr[numbers[-1] + 1])
            terms = np.asarray(index.forward_terms[low:high])
            impacts = np.rint(index.codebook[np.asarray(index.forward_codes[low:high])].astype(np.float64) * scale)
            lines = []
            for number, doc_id in zip(numbers.tolist(), index.doc_ids(numbers), strict=True):
                a, b = int(indptr[number]) - low, int(indptr[number + 1]) - low
                pairs = zip(terms[a:b].tolist(), impacts[a:b].tolist(), strict=True)
                vector = {names[t]: int(w) for t, w in pairs if w > 0}
                lines.append(json.dumps({"id": doc_id, "content": "", "vector": vector}, ensure_ascii=False))
            out.write("\n".join(lines) + "\n")
    return index.num_docs
