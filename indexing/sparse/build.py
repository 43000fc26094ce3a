"""Build a sparse inverted index from vector shards with memory bounded by one shard.

Two passes over the shards: the first counts each term's postings (so every
term's region in the output files is known), the second copies each shard's
postings into place through memory-mapped output arrays. Each term's postings
are then put in impact order. Everything is written in a temporary folder that
is renamed into place at the end (:func:`lsr.fsutil.atomic_dir`), so an
interrupted build leaves the previous index, or none.

The memory-mapped outputs get their disk blocks reserved before the first write
(:func:`_reserved_npy`): a store through a map onto a full disk is a SIGBUS that
kills the process with no message, a failed reservation is a clear error.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from lsr.indexing.sparse.format import ARRAYS, IndexMeta, crc32_file
from numba import njit, prange
from tqdm.auto import tqdm

from lsr.errors import LsrError
from lsr.fsutil import atomic_dir

Shards = Callable[[], Iterable[tuple[list[str], sp.csr_matrix]]]
"""A function returning a fresh pass over ``(doc_ids, vectors)`` shards, in corpus order."""


def codebook(kind: str, max_weight: float) -> np.ndarray:
    """Code-to-weight table: exact float16 values, or 255 linear steps up to ``max_weight``."""
    if kind == "float16":
        return np.arange(2**16, dtype=np.uint16).view(np.float16).astype(np.float32)
    if kind == "uint8":
        return (np.arange(256, dtype=np.float32) * np.float32(max_weight / 255 if max_weight > 0 else 0)).astype(
            np.float32
        )
    raise LsrError(f"unknown weight encoding {kind!r}; choose float16 or uint8")


def encode_weights(weights: np.ndarray, kind: str, max_weight: float) -> np.ndarray:
    """Codes for positive weights; a positive weight never gets code 0 (weight 0), so every posting counts."""
    if kind == "float16":
        half = weights.astype(np.float16)
        half[half == 0] = np.float16(2.0**-24)  # below float16's range: the smallest positive value instead
        return half.view(np.uint16)
    return np.clip(np.rint(weights / (max_weight / 255)), 1, 255).astype(np.uint8)


def _reserved_npy(path: Path, dtype: type, shape: tuple[int]) -> np.memmap:
    """A writable ``.npy`` memory map whose every disk block is allocated now, so later stores cannot fail."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise OSError(exc.errno, exc.strerror, str(path)) from exc
            # no fallocate on this file system: allocate by writing zeros, so ENOSPC is an error, not a SIGBUS
            header = size - array.nbytes
            handle.seek(header)
            for start in range(header, size, 1 << 24):
                handle.write(bytes(min(1 << 24, size - start)))
    return array


def _without_zeros(vectors: sp.csr_matrix) -> sp.csr_matrix:
    if np.any(vectors.data == 0):
        vectors = vectors.copy()
        vectors.eliminate_zeros()
    return vectors


@njit(parallel=True, cache=True)
def _impact_order(offsets: np.ndarray, docs: np.ndarray, codes: np.ndarray, table: np.ndarray) -> None:
    """Sort each term's postings by decreasing weight, in place; they arrive in increasing document order and
    the sort is stable, so ties stay in document order."""
    for term in prange(len(offsets) - 1):
        start, end = offsets[term], offsets[term + 1]
        if end - start < 2:
            continue
        key = np.empty(end - start, dtype=np.float32)
        for i in range(end - start):
            key[i] = -table[codes[start + i]]
        order = np.argsort(key, kind="mergesort")
        d = docs[start:end].copy()
        c = codes[start:end].copy()
        for i in range(end - start):
            docs[start + i] = d[order[i]]
            codes[start + i] = c[order[i]]


def build_index(
    shards: Shards, output: str | Path, model: str, model_kind: str, weights: str = "float16", corpus: str = ""
) -> IndexMeta:
    """Write an index of every shard's vectors at ``output``; ``corpus``, where the documents came from (when known),
    is recorded for ``lsr serve`` to report."""
    counts: np.ndarray | None = None
    num_docs = 0
    max_weight = 0.0
    for ids, vectors in tqdm(shards(), desc="index: count", unit=" shards"):
        if not sp.issparse(vectors):
            raise LsrError("these vectors are dense; a sparse index needs a sparse encoder's shards")
        vectors = _without_zeros(sp.csr_matrix(vectors))
        if np.any(vectors.data < 0):
            raise LsrError("sparse vectors with negative weights cannot be indexed for dot-product search")
        if counts is None:
            counts = np.zeros(vectors.shape[1], dtype=np.int64)
        if vectors.shape[1] != len(counts):
            raise LsrError(f"shards disagree on the vocabulary size ({vectors.shape[1]} vs {len(counts)})")
        counts += np.bincount(vectors.indices, minlength=len(counts))
        num_docs += len(ids)
        max_weight = max(max_weight, float(vectors.data.max(initial=0.0)))
    if counts is None or num_docs == 0:
        raise LsrError("no documents to index")
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    nnz = int(offsets[-1])
    code_dtype = np.uint16 if weights == "float16" else np.uint8
    table = codebook(weights, max_weight)
    with atomic_dir(output) as tmp:
        np.save(tmp / "offsets.npy", offsets)
        np.save(tmp / "codebook.npy", table)
        docs = _reserved_npy(tmp / "postings_docs.npy", np.int32, (nnz,))
        codes = _reserved_npy(tmp / "postings_codes.npy", code_dtype, (nnz,))
        forward_terms = _reserved_npy(tmp / "forward_terms.npy", np.int32, (nnz,))
        forward_codes = _reserved_npy(tmp / "forward_codes.npy", code_dtype, (nnz,))
        forward_indptr = np.zeros(num_docs + 1, dtype=np.int64)
        cursor = offsets[:-1].copy()
        base = 0
        id_offsets = np.zeros(num_docs + 1, dtype=np.int64)
        with open(tmp / "doc_ids.bin", "wb") as id_file:
            for ids, vectors in tqdm(shards(), desc="index: write", unit=" shards"):
                vectors = _without_zeros(sp.csr_matrix(vectors))
                csc = vectors.tocsc()
                csc.sort_indices()
                terms = np.repeat(np.arange(csc.shape[1]), np.diff(csc.indptr))
                rank = np.arange(csc.nnz) - csc.indptr[terms]
                position = cursor[terms] + rank
                docs[position] = csc.indices.astype(np.int32) + base
                codes[position] = encode_weights(csc.data, weights, max_weight)
                cursor += np.diff(csc.indptr)
                rows = sp.csr_matrix(vectors)
                rows.sort_indices()
                at = forward_indptr[base]
                forward_indptr[base + 1 : base + len(ids) + 1] = at + rows.indptr[1:]
                forward_terms[at : at + rows.nnz] = rows.indices
                forward_codes[at : at + rows.nnz] = encode_weights(rows.data, weights, max_weight)
                encoded = [i.encode("utf-8") for i in ids]
                id_offsets[base + 1 : base + len(ids) + 1] = id_offsets[base] + np.cumsum([len(e) for e in encoded])
                id_file.write(b"".join(encoded))
                base += len(ids)
        if base != num_docs or not np.array_equal(cursor, offsets[1:]):
            raise LsrError("the shards changed between the two passes of the index build")
        _impact_order(offsets, docs, codes, table)
        for array in (docs, codes, forward_terms, forward_codes):
            array.flush()
        del docs, codes, forward_terms, forward_codes
        np.save(tmp / "doc_id_offsets.npy", id_offsets)
        np.save(tmp / "forward_indptr.npy", forward_indptr)
        meta = IndexMeta(
            model=model,
            model_kind=model_kind,
            vocab_size=len(counts),
            num_docs=num_docs,
            nnz=nnz,
            weights=weights,
            corpus=corpus,
        )
        meta.checksums = {name: crc32_file(tmp / name) for name in (*ARRAYS, "doc_ids.bin")}
        meta.save(tmp)
    return meta
