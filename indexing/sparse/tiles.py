"""Tiled postings: the index re-cut into blocks of ``TILE`` consecutive documents, a small inverted index each.

Term-at-a-time exact search spends its time on scattered read-modify-writes into a score array as
large as the corpus (4 MB at 1M documents, 35 MB at 8.8M), which misses every cache. Cutting the
documents into tiles of 8,192 lets one tile's scores live in 32 KB — a core's L1 cache, or a GPU
block's shared memory — while each (tile, term) posting segment is still read front to back. Within a
segment documents ascend and are stored as 16-bit offsets from the tile's first document, so a
posting costs 4 bytes (offset + weight code) instead of 6, and a tile's top-k is found before the next
tile is scored, so no score matrix is ever written.

The GPU needs tiles of :data:`TILE` documents (shared memory). The CPU kernel uses :data:`CPU_TILE`
(65,536: 256 KB of scores, in a core's L2): per query it reads one segment per (tile, term), and with
8,192-document tiles a 1M-document query's ~5,500 short segments each started with cache misses.

The tiles are derived from the forward (document-major) copy every index already has: each tile is a
contiguous slice of it, transposed by a counting sort, in parallel over tiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from lsr.indexing.sparse.format import SparseIndex
from numba import njit, prange

TILE = 8192  # documents per tile: 32 KB of float32 scores, within L1 and a GPU block's 48 KB of shared memory
CPU_TILE = 1 << 16  # the CPU kernel's: 256 KB of scores stay in L2, and a query has 8x fewer segments than at TILE
MAX_TILE = 1 << 16  # local document offsets are 16-bit


@dataclass(frozen=True)
class Tiles:
    """``offsets[tile * (vocab + 1) + term]`` .. ``[... + term + 1]`` bound a term's postings in a tile."""

    offsets: np.ndarray  # int64, n_tiles * (vocab + 1): absolute positions in docs/codes
    docs: np.ndarray  # uint16, nnz: document number minus the tile's first document
    codes: np.ndarray  # the index's weight codes, same dtype
    vocab_size: int
    num_docs: int
    tile: int = TILE  # documents per tile

    @property
    def n_tiles(self) -> int:
        return len(self.offsets) // (self.vocab_size + 1)

    @property
    def nbytes(self) -> int:
        return self.offsets.nbytes + self.docs.nbytes + self.codes.nbytes


@njit(parallel=True, nogil=True, cache=True)
def _transpose(indptr, terms, codes, vocab, n_tiles, tile, out_offsets, out_docs, out_codes) -> None:  # noqa: ANN001
    n_docs = len(indptr) - 1
    for t in prange(n_tiles):
        first, last = t * tile, min((t + 1) * tile, n_docs)
        base = indptr[first]
        row = out_offsets[t * (vocab + 1) : (t + 1) * (vocab + 1)]
        counts = np.zeros(vocab + 1, dtype=np.int64)
        for p in range(base, indptr[last]):
            counts[terms[p] + 1] += 1
        row[0] = base
        for term in range(vocab):
            row[term + 1] = row[term] + counts[term + 1]
        cursor = row[:vocab].copy()
        for doc in range(first, last):  # ascending, so every segment's documents ascend
            for p in range(indptr[doc], indptr[doc + 1]):
                slot = cursor[terms[p]]
                out_docs[slot] = doc - first
                out_codes[slot] = codes[p]
                cursor[terms[p]] = slot + 1


def build_tiles(index: SparseIndex, tile: int = TILE) -> Tiles:
    """Tile an opened index (in memory: 4 bytes per posting plus 8 per term per tile) in tiles of ``tile`` documents.

    The GPU kernels need :data:`TILE` (a block's shared memory); the CPU kernel may take larger tiles, up to
    :data:`MAX_TILE` (16-bit offsets), since fewer tiles mean fewer segment bounds to fetch per query.
    """
    if not 1 <= tile <= MAX_TILE:
        raise ValueError(f"tile must be in [1, {MAX_TILE}], not {tile}")
    vocab, n_docs = index.meta.vocab_size, index.num_docs
    n_tiles = max(1, -(-n_docs // tile))
    offsets = np.zeros(n_tiles * (vocab + 1), dtype=np.int64)
    docs = np.empty(index.meta.nnz, dtype=np.uint16)
    codes = np.empty(index.meta.nnz, dtype=index.forward_codes.dtype)
    if n_docs:
        _transpose(
            index.forward_indptr, index.forward_terms, index.forward_codes, vocab, n_tiles, tile, offsets, docs, codes
        )
    return Tiles(offsets, docs, codes, vocab, n_docs, tile)
