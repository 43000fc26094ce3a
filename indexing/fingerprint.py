"""A fingerprint of the set of document ids an index holds, so that a hybrid refuses legs over different corpora.

Fusion (RRF or normalised weighted sums) adds up what the legs give the same document id. Legs built from
different corpora, or from two versions of one corpus, fuse without any error and return a ranking that mixes
two collections, with ids that one leg can never return. Comparing the corpus paths the indexes recorded would
refuse an index built from a copy of the same corpus (another machine, another folder) and miss a corpus that
changed in place; the ids themselves are what fusion relies on, so they are what is compared.

The fingerprint does not depend on the order of the ids (a sparse and a dense index over one corpus may number
the documents differently): the 64-bit FNV-1a hashes of the ids (:func:`lsr.indexing.filters.id_hashes`, the same
hashes filters look ids up by) are sorted, and the sorted array is hashed with BLAKE2b. About 0.1 s at a million
documents; retrievers compute it once, when a hybrid first needs it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
from lsr.indexing.filters import encoded_ids, id_hashes

from lsr.errors import LsrError

UNKNOWN = ""
"""The fingerprint of a retriever that cannot tell which ids it holds (an index of an older lsr): not compared."""


def blob_fingerprint(blob: np.ndarray, offsets: np.ndarray) -> str:
    """The fingerprint of the ids ``blob[offsets[n]:offsets[n + 1]]`` (UTF-8 bytes), whatever their order."""
    hashes = np.sort(id_hashes(blob, offsets))
    return f"{len(hashes)}:{hashlib.blake2b(hashes.tobytes(), digest_size=16).hexdigest()}"


def is_fingerprint(text: str) -> bool:
    """Whether ``text`` is a fingerprint as :func:`blob_fingerprint` writes it (an index's file may hold anything)."""
    return re.fullmatch(r"[0-9]+:[0-9a-f]{32}", text) is not None


def ids_fingerprint(ids: Sequence[str]) -> str:
    """The fingerprint of a list of document ids (see :func:`blob_fingerprint`)."""
    return blob_fingerprint(*encoded_ids(ids))


def check_same_documents(legs: Sequence[tuple[str, str]]) -> None:
    """Refuse to fuse legs whose documents differ: ``legs`` are ``(name, fingerprint)``; legs whose fingerprint is
    :data:`UNKNOWN` are not compared."""
    known = [(name, fingerprint) for name, fingerprint in legs if fingerprint != UNKNOWN]
    for name, fingerprint in known[1:]:
        first, expected = known[0]
        if fingerprint != expected:
            raise LsrError(
                f"the {first} and {name} retrievers hold different documents ({_count(expected)} and "
                f"{_count(fingerprint)} ids, not the same set): a hybrid fuses scores by document id, so its legs "
                "must be indexed from the same corpus"
            )


def _count(fingerprint: str) -> str:
    """The number of ids a fingerprint covers (its first field), with thousands separators; "?" for a retriever of
    another package whose fingerprint is written otherwise."""
    return f"{int(fingerprint.split(':', 1)[0]):,}" if is_fingerprint(fingerprint) else "?"
