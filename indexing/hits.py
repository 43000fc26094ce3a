"""What every search returns, and the filter it may be given: the vocabulary shared by all searchers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Hits:
    """One query's results, best first: document ids and their scores (no padding: maybe fewer than k)."""

    ids: list[str]
    scores: np.ndarray

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.ids, self.scores.tolist(), strict=True))


@dataclass(frozen=True)
class DocFilter:
    """Which documents a search may return: only ``allow`` (when given) and never ``deny``."""

    allow: frozenset[str] | None = None
    deny: frozenset[str] = frozenset()

    def admits(self, doc_id: str) -> bool:
        return doc_id not in self.deny and (self.allow is None or doc_id in self.allow)
