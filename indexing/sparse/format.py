"""On-disk layout of a sparse inverted index, opened by memory map and checked at open.

Files in an index folder:

- ``meta.json``: format version, the encoder the vectors came from, sizes, the
  weight codebook's kind, the corpus when known, and a CRC-32 of every array file;
- ``offsets.npy`` (int64, vocab + 1): term ``t``'s postings are ``offsets[t]:offsets[t+1]``;
- ``postings_docs.npy`` (int32): document numbers, per term in decreasing weight order
  (impact order: exact search may read them in any order, pruned search reads a prefix);
- ``postings_codes.npy`` (uint16 or uint8): weight codes, decoded by ``codebook.npy``
  (float32): float16 bits (``float16``) or a linear 8-bit quantisation (``uint8``);
- ``doc_ids.bin`` + ``doc_id_offsets.npy``: the corpus ids of document numbers, so
  ids of any length cost nothing until a hit is returned;
- ``forward_indptr.npy`` / ``forward_terms.npy`` / ``forward_codes.npy``: the same
  weights by document (CSR), to rescore a pruned search's candidates exactly.

The search kernels index their arrays with the ids these files hold and check no bounds (that is most of their
speed), so :meth:`SparseIndex.open` proves every id in range before any kernel sees it, whatever the files hold:
document numbers below ``num_docs``, terms below ``vocab_size``, offsets that start at 0, never decrease and end at
their array's length, weight codes that decode to finite positive weights, ids that decode as UTF-8, and a
``meta.json`` of the right field types, itself under a checksum. ``verify=False`` skips the checksums (a full read
of every file), never these checks: one vectorised pass over the arrays, each read once, chunk by chunk (1 ms for
1M postings, 40 ms for 10M, against 6 and 186 ms for the checksums; shared 2-core Zen 5, files in the page cache).
"""

from __future__ import annotations

import codecs
import functools
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from lsr.indexing.filters import DocNumbers
from lsr.indexing.fingerprint import blob_fingerprint

from lsr.errors import LsrError, no_folder

FORMAT = "lsr-index/1"
META = "meta.json"
META_CHECKSUM = "meta_crc32"
"""Key in ``meta.json`` of the CRC-32 of its other fields (:func:`meta_checksum`)."""
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
CODES = {"float16": np.dtype(np.uint16), "uint8": np.dtype(np.uint8)}
"""The weight code type of each codebook kind."""
TOP_CODE = {"float16": 0x7BFF, "uint8": 0xFF}
"""The largest code of a positive finite weight: above 0x7BFF, float16 bits are infinities, NaNs or negative."""
CHUNK = 1 << 20
"""Elements checked at a time: a chunk stays in cache between its passes (min, max), so each file is read once."""


class IndexFormatError(LsrError):
    """The index folder is missing, corrupt, or not what the caller expects."""


def meta_checksum(fields: dict[str, Any]) -> int:
    """CRC-32 of metadata fields in a canonical form (sorted keys, no spaces), so whitespace never matters."""
    return zlib.crc32(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8"))


def write_meta(path: Path, fields: dict[str, Any]) -> None:
    """Write ``meta.json`` with the checksum of its fields, so an edit or a damaged byte is caught at open."""
    path.write_text(json.dumps({**fields, META_CHECKSUM: meta_checksum(fields)}, indent=2))


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_meta(
    path: Path,
    fields: dict[str, type],
    expected_format: str,
    verify: bool,
    error: type[LsrError],
    what: str = "index",
    optional: dict[str, type] | None = None,
) -> dict[str, Any]:
    """The checked fields of a ``meta.json`` (``fields``: name -> str, int (a count >= 0) or dict (of counts)).

    Every field must be there with its type, the format must be ``expected_format`` and, when ``verify``, the
    checksum must match; an error (``error``, about a ``what``) names the file and the field. ``optional`` fields
    are those a later lsr added: checked when there, left out of the result when absent, so a folder written before
    them still opens. Unknown fields are left out.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError) as exc:
        absent = no_folder(path.parent, f"{'an' if what[0] in 'aeiou' else 'a'} {what}")
        raise error(absent or f"{path.parent}: not an lsr {what} (no {path.name})") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: unreadable ({exc})") from exc
    if not isinstance(raw, dict):
        raise error(f"{path}: not a readable {what} description (a JSON object expected)")
    optional = optional or {}
    for name, kind in (fields | optional).items():
        value = raw.get(name)
        if name not in raw and name in optional:
            continue
        if name not in raw:
            problem = "is missing"
        elif kind is int and not _is_count(value):
            problem = f"must be an integer >= 0, not {value!r}"
        elif kind is dict and not (isinstance(value, dict) and all(map(_is_count, value.values()))):
            problem = f"must be an object of integers >= 0, not {value!r}"
        elif kind is str and not isinstance(value, str):
            problem = f"must be a string, not {value!r}"
        else:
            continue
        raise error(f"{path}: not a readable {what} description: field {name!r} {problem}")
    if raw["format"] != expected_format:
        raise error(f"{path}: {what} format {raw['format']!r}, this lsr reads {expected_format!r}; rebuild it")
    stored = raw.pop(META_CHECKSUM, None)
    if verify and stored is None:
        raise error(f"{path}: no metadata checksum (written by an older lsr); rebuild the {what}")
    if verify and stored != meta_checksum(raw):
        raise error(f"{path}: checksum mismatch, the metadata is corrupt or was edited; rebuild the {what}")
    return {name: raw[name] for name in fields | optional if name in raw}


META_FIELDS = {
    "model": str,
    "model_kind": str,
    "vocab_size": int,
    "num_docs": int,
    "nnz": int,
    "weights": str,
    "checksums": dict,
    "format": str,
}
SOURCE_FIELDS = {"corpus": str}
"""Optional fields of a sparse or dense index's ``meta.json``: ``corpus``, the resolved path of the corpus
``lsr index`` read (a BEIR folder or zip, or a corpus file), which ``lsr serve`` reports so that ``lsr query`` can
show titles; empty, or absent in folders written before it, when unknown."""


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
    corpus: str = ""

    def save(self, folder: Path) -> None:
        write_meta(folder / META, asdict(self))

    @classmethod
    def load(cls, folder: Path, verify: bool = True) -> IndexMeta:
        """Read and check ``meta.json`` (types, format, checksum when ``verify``, a known weight encoding)."""
        fields = read_meta(folder / META, META_FIELDS, FORMAT, verify, IndexFormatError, optional=SOURCE_FIELDS)
        meta = cls(**fields)
        if meta.weights not in CODES:
            raise IndexFormatError(
                f"{folder / META}: field 'weights' is {meta.weights!r}, not one of {', '.join(CODES)}"
            )
        return meta


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


def _chunks(values: np.ndarray, overlap: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, values[start : start + CHUNK + overlap])`` over the array."""
    for start in range(0, len(values), CHUNK):
        yield start, values[start : start + CHUNK + overlap]


def check_range(
    path: Path, values: np.ndarray, low: int, high: int, what: str, error: type[LsrError] = IndexFormatError
) -> None:
    """Every value in ``[low, high)``: the kernels index arrays of that size with these values, unchecked."""
    for start, chunk in _chunks(values):
        if chunk.min() < low or chunk.max() >= high:
            bad = start + int(np.flatnonzero((chunk < low) | (chunk >= high))[0])
            raise error(f"{path}: {what} {values[bad]} at position {bad} is outside [{low}, {high})")


def check_bounds(
    path: Path, bounds: np.ndarray, total: int, what: str, error: type[LsrError] = IndexFormatError
) -> None:
    """Slice bounds that start at 0, never decrease and end at ``total``, so every slice they cut is in range."""
    if bounds[0] != 0 or bounds[-1] != total:
        raise error(f"{path}: {what} run from {bounds[0]} to {bounds[-1]}, not from 0 to {total}")
    for start, chunk in _chunks(bounds, overlap=1):
        falls = chunk[1:] < chunk[:-1]
        if falls.any():
            bad = start + int(np.argmax(falls)) + 1
            raise error(f"{path}: {what} decrease at position {bad} ({bounds[bad - 1]}, then {bounds[bad]})")


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
        self._numbers: DocNumbers | None = None

    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> SparseIndex:
        """Open an index; every value a kernel may index with is checked always, file checksums when ``verify``."""
        folder = Path(path)
        meta = IndexMeta.load(folder, verify)
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
        index._check_values()
        return index

    def _check_structure(self) -> None:
        """Each array's type and length, from the metadata."""
        m, where = self.meta, self.path
        code = CODES[m.weights]
        expected = {
            "offsets.npy": (self.offsets, (m.vocab_size + 1,), np.dtype(np.int64)),
            "postings_docs.npy": (self.docs, (m.nnz,), np.dtype(np.int32)),
            "postings_codes.npy": (self.codes, (m.nnz,), code),
            "codebook.npy": (self.codebook, (2 ** (8 * code.itemsize),), np.dtype(np.float32)),
            "doc_id_offsets.npy": (self._id_offsets, (m.num_docs + 1,), np.dtype(np.int64)),
            "forward_indptr.npy": (self.forward_indptr, (m.num_docs + 1,), np.dtype(np.int64)),
            "forward_terms.npy": (self.forward_terms, (m.nnz,), np.dtype(np.int32)),
            "forward_codes.npy": (self.forward_codes, (m.nnz,), code),
        }
        for name, (array, shape, dtype) in expected.items():
            if array.shape != shape or array.dtype != dtype:
                raise IndexFormatError(
                    f"{where / name}: shape {array.shape} {array.dtype}, expected {shape} {dtype} "
                    f"(for {m.weights} weights)"
                )

    def _check_values(self) -> None:
        """Every id in range, every offset a monotone cover, every weight finite and positive, ids valid UTF-8."""
        m, where = self.meta, self.path
        check_bounds(where / "offsets.npy", self.offsets, m.nnz, "posting offsets")
        check_bounds(where / "forward_indptr.npy", self.forward_indptr, m.nnz, "document offsets")
        check_bounds(where / "doc_id_offsets.npy", self._id_offsets, len(self._ids), "id offsets")
        check_range(where / "postings_docs.npy", self.docs, 0, m.num_docs, "document number")
        check_range(where / "forward_terms.npy", self.forward_terms, 0, m.vocab_size, "term")
        top = TOP_CODE[m.weights]
        for name, codes in (("postings_codes.npy", self.codes), ("forward_codes.npy", self.forward_codes)):
            check_range(where / name, codes, 1, top + 1, f"code of a {m.weights} weight")
        weights = self.codebook[1 : top + 1]
        if not np.all(np.isfinite(weights) & (weights > 0)):
            bad = 1 + int(np.argmin(np.isfinite(weights) & (weights > 0)))
            raise IndexFormatError(
                f"{where / 'codebook.npy'}: weight {self.codebook[bad]} at code {bad} is not finite and positive"
            )
        self._check_ids()

    def _check_ids(self) -> None:
        """The ids blob is UTF-8 and each id starts on a character, so every id decodes when a hit is returned."""
        where, blob = self.path / "doc_ids.bin", self._ids
        decoder = codecs.getincrementaldecoder("utf-8")()
        for start, chunk in _chunks(blob):
            try:
                decoder.decode(chunk.tobytes(), final=start + CHUNK >= len(blob))
            except UnicodeDecodeError as exc:
                raise IndexFormatError(f"{where}: not UTF-8 at byte {start + exc.start}") from exc
        starts = np.asarray(self._id_offsets[:-1])
        inside = (blob[starts[starts < len(blob)]] & 0xC0) == 0x80  # a continuation byte: mid-character
        if inside.any():
            number = int(np.flatnonzero(starts < len(blob))[np.argmax(inside)])
            raise IndexFormatError(
                f"{where}: the id of document {number} starts inside a UTF-8 character "
                f"(byte {starts[number]}, from doc_id_offsets.npy)"
            )

    @property
    def num_docs(self) -> int:
        return self.meta.num_docs

    def doc_id(self, number: int) -> str:
        start, end = self._id_offsets[number], self._id_offsets[number + 1]
        return bytes(self._ids[start:end]).decode("utf-8")

    def doc_ids(self, numbers: np.ndarray) -> list[str]:
        """The ids of document ``numbers``, read in one gather from the id blob, each followed by a NUL byte, then
        decoded and split by one C call each: a server building replies of many hits holds the interpreter lock
        for a Python step per id otherwise (32,000 ids: 2.9 ms, against 4.6 ms sliced one by one; `lsr bench
        replies`). An id holding a NUL itself (possible, never seen) takes the slower path of slicing each id."""
        numbers = np.asarray(numbers, dtype=np.int64)
        if not len(numbers):
            return []
        starts = np.asarray(self._id_offsets[numbers], dtype=np.int64)
        lengths = np.asarray(self._id_offsets[numbers + 1], dtype=np.int64) - starts
        spans = lengths + 1  # each id and its separator
        bounds = np.cumsum(spans) - spans
        buffer = np.zeros(int(spans.sum()), dtype=np.uint8)
        within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        buffer[np.repeat(bounds, lengths) + within] = self._ids[np.repeat(starts, lengths) + within]
        data = buffer.tobytes()
        if data.count(0) == len(numbers):
            return data[:-1].decode("utf-8").split("\x00")
        ends = (bounds + lengths).tolist()
        return [data[a:b].decode("utf-8") for a, b in zip(bounds.tolist(), ends, strict=True)]

    @property
    def longest_id(self) -> int:
        """Bytes of the longest document id (UTF-8)."""
        return int(np.diff(self._id_offsets).max()) if self.num_docs else 0

    @functools.cached_property
    def id_fingerprint(self) -> str:
        """The fingerprint of its document ids (:mod:`lsr.indexing.fingerprint`), computed on first use."""
        return blob_fingerprint(self._ids, self._id_offsets)

    def doc_numbers(self, ids: Iterable[str]) -> np.ndarray:
        """The document number of each id (int64), -1 for ids not in the index: the input of
        :func:`.filters.allow_mask`. The lookup is built on first use (hashes of every id, 16 bytes each)."""
        if self._numbers is None:
            self._numbers = DocNumbers(self._ids, self._id_offsets)
        return self._numbers.numbers(ids)

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
