"""How a sparse retriever searches its index: exact (the default) or one of the approximate methods, with their knobs.

Kept apart from the searchers so that :class:`~lsr.indexing.retrieval.RetrieverOptions`, ``lsr serve`` and ``lsr
eval run`` can carry the choice without importing the Numba kernels.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pruning:
    """Approximate search: ``budget`` postings per term, the heaviest ``query_terms``, ``rerank`` candidates
    rescored exactly, dynamic pruning with ``alpha`` in (0, 1], or clustered search with ``heap_factor`` over the
    ``query_cut`` heaviest terms' lists (:mod:`lsr.indexing.sparse.clustered`). The default is exact search."""

    budget: int = 0
    query_terms: int | None = None
    rerank: int = 0
    alpha: float | None = None
    gpu_kernel: str = "tiles"
    heap_factor: float | None = None
    query_cut: int | None = None

    @property
    def exact(self) -> bool:
        return not (
            self.budget or self.query_terms or self.rerank or self.alpha is not None or self.heap_factor is not None
        )


EXACT = Pruning()
"""Exact search: the default of every sparse searcher."""
