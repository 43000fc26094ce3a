"""On-disk layout of a sparse inverted index, opened by memory map and checked at open.

Files in an index folder:

- ``meta.json``: format version, the encoder the vectors came from, sizes, the
  weight codebook's kind, and a CRC-32 of every array file;
- ``offsets.npy`` (int64, vocab + 1): term ``t``'s postings are ``offsets[t]:offsets[t+1]``;
- ``postings_docs.npy`` (int32): document numbers, per term in decreasing weight order
  (impact order: exact search may read them in any order, pruned search reads a prefix);
- ``postings_codes.npy`` (uint16 or uint8): weight codes, decoded by ``codebook.npy``
  (float32): float16 bits (``float16``) or a linear 8-bit quantisation (``uint8``);
- ``doc_ids.bin`` + ``doc_id_offsets.npy``: the corpus ids of document numbers, so
  ids of any length cost nothing until a hit is returned;
- ``forward_indptr.npy`` / ``forward_terms.npy`` / ``forward_codes.npy``: the same
  weights by document (CSR), to rescore a pruned search's candidates exactly.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lsr.errors import LsrError

FORMAT = "lsr-index/1"
META = "meta.json"
ARRAYS = (
    "offsets.npy",
    "postings_docs.npy",
    "postings_codes.npy",
    "codebook.npy",
    "doc_id_offsets.npy",
    "forward_indptr.npy",
    "forward_terms.npy",
    "forward_codes.npy",
)
FILES = (*ARRAYS, "doc_ids.bin")


class IndexFormatError(LsrError):
    """The index folder is missing, corrupt, or not what the caller expects."""


@dataclass
class IndexMeta:
    """What ``meta.json`` records."""

    model: str
    model_kind: str
    vocab_size: int
    num_docs: int
    nnz: int
    weights: str
    checksums: dict[str, int] = field(default_factory=dict)
    format: str = FORMAT

    def save(self, folder: Path) -> None:
        (folder / META).write_text(json.dumps(asdict(self), indent=2))


def crc32_file(path: Path, chunk: int = 1 << 24) -> int:
    """CRC-32 of a file, read in chunks."""
    crc = 0
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            crc = zlib.crc32(block, crc)
    return crc


def _load(folder: Path, name: str) -> np.ndarray:
    try:
        return np.load(folder / name, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"{folder / name}: unreadable ({exc})") from exc


class SparseIndex:
    """A sparse inverted index opened read-only by memory map; safe to share between threads."""

    def __init__(self, folder: Path, meta: IndexMeta, arrays: dict[str, np.ndarray], ids_blob: np.ndarray) -> None:
        self.path = folder
        self.meta = meta
        self.offsets = arrays["offsets.npy"]
        self.docs = arrays["postings_docs.npy"]
        self.codes = arrays["postings_codes.npy"]
        self.codebook = np.ascontiguousarray(arrays["codebook.npy"])
        self._id_offsets = arrays["doc_id_offsets.npy"]
        self._ids = ids_blob
        self.forward_indptr = arrays["forward_indptr.npy"]
        self.forward_terms = arrays["forward_terms.npy"]
        self.forward_codes = arrays["forward_codes.npy"]

    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> SparseIndex:
        """Open an index; structure is always checked, file checksums too when ``verify``."""
        folder = Path(path)
        try:
            raw: dict[str, Any] = json.loads((folder / META).read_text())
            meta = IndexMeta(**raw)
        except FileNotFoundError as exc:
            raise IndexFormatError(f"{folder}: not an lsr index (no {META})") from exc
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise IndexFormatError(f"{folder / META}: unreadable ({exc})") from exc
        if meta.format != FORMAT:
            raise IndexFormatError(f"{folder}: index format {meta.format!r}, this lsr reads {FORMAT!r}")
        for name in FILES:
            if not (folder / name).is_file():
                raise IndexFormatError(f"{folder}: missing {name}")
        for name in FILES if verify else ():
            if crc32_file(folder / name) != meta.checksums.get(name):
                raise IndexFormatError(f"{folder / name}: checksum mismatch, the file is corrupt or from another index")
        arrays = {name: _load(folder, name) for name in ARRAYS}
        ids = np.memmap(folder / "doc_ids.bin", dtype=np.uint8, mode="r") if meta.num_docs else np.zeros(0, np.uint8)
        index = cls(folder, meta, arrays, ids)
        index._check_structure()
        return index

    def _check_structure(self) -> None:
        m, where = self.meta, self.path
        expected = {
            "offsets.npy": ((m.vocab_size + 1,), np.int64),
            "postings_docs.npy": ((m.nnz,), np.int32),
            "doc_id_offsets.npy": ((m.num_docs + 1,), np.int64),
            "forward_indptr.npy": ((m.num_docs + 1,), np.int64),
            "forward_terms.npy": ((m.nnz,), np.int32),
        }
        arrays = {
            "offsets.npy": self.offsets,
            "postings_docs.npy": self.docs,
            "doc_id_offsets.npy": self._id_offsets,
            "forward_indptr.npy": self.forward_indptr,
            "forward_terms.npy": self.forward_terms,
        }
        for name, (shape, dtype) in expected.items():
            if arrays[name].shape != shape or arrays[name].dtype != dtype:
                raise IndexFormatError(
                    f"{where / name}: shape {arrays[name].shape} {arrays[name].dtype}, expected {shape} {dtype}"
                )
        codes_ok = self.forward_codes.shape == self.codes.shape and self.forward_codes.dtype == self.codes.dtype
        if not codes_ok or self.codes.shape != (m.nnz,) or len(self.codebook) != 2 ** (8 * self.codes.itemsize):
            raise IndexFormatError(f"{where}: weight codes do not match the codebook")
        if self.offsets[0] != 0 or self.offsets[-1] != m.nnz or np.any(np.diff(self.offsets) < 0):
            raise IndexFormatError(f"{where / 'offsets.npy'}: offsets are not a monotone cover of the postings")
        if self._id_offsets[-1] != len(self._ids):
            raise IndexFormatError(f"{where / 'doc_ids.bin'}: size does not match doc_id_offsets.npy")

    @property
    def num_docs(self) -> int:
        return self.meta.num_docs

    def doc_id(self, number: int) -> str:
        start, end = self._id_offsets[number], self._id_offsets[number + 1]
        return bytes(self._ids[start:end]).decode("utf-8")

    def postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        """Document numbers and decoded weights of one term, in impact order."""
        start, end = self.offsets[term], self.offsets[term + 1]
        return np.asarray(self.docs[start:end]), self.codebook[np.asarray(self.codes[start:end])]

    def to_csr(self):  # noqa: ANN201 - scipy type
        """The whole index as a documents x vocabulary CSR matrix of decoded weights (for checks and brute force)."""
        import scipy.sparse as sp

        weights = self.codebook[np.asarray(self.codes)]
        csc = sp.csc_matrix(
            (weights, np.asarray(self.docs), np.asarray(self.offsets)), shape=(self.meta.num_docs, self.meta.vocab_size)
        )
        return csc.tocsr()
