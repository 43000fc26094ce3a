"""CIFF (Common Index File Format) export and import of lsr sparse indexes, as integer impacts.

Why: CIFF (github.com/osirrc/ciff) is how inverted indexes travel between engines: PISA, Anserini,
Terrier, BMP and pyterrier read and write it. Exporting lsr's postings to CIFF feeds every other
engine the identical postings; importing one makes an index built elsewhere searchable by lsr.

The file is a sequence of length-delimited protobuf messages (each preceded by its byte length as a
varint): one ``Header``, ``num_postings_lists`` ``PostingsList`` messages (``term``, ``df``, ``cf``,
repeated ``Posting {docid, tf}`` with docids gap-encoded in increasing order) and ``num_doc_records``
``DocRecord`` messages (``docid``, ``collection_docid``, ``doclength``). The wire format is written
and read here directly (Numba for the postings, the bulk of the bytes), so a damaged file fails with
the message, field and byte offset at fault instead of a bare parser error.

Weights become integer impacts ``round(100 w)`` (:data:`lsr.indexing.lucene.impact.SCALE`, Anserini's
quantisation for SPLADE) stored as ``tf``; a posting whose impact rounds to 0 is left out, as Anserini
does. Postings lists are in increasing byte order of their terms (PISA's lexicon is searched by
bisection), named by the model's tokens when a vocabulary is given, else by decimal term ids. The
header's ``description`` carries lsr's own metadata (model, vocabulary size, scale) as JSON after
:data:`DESCRIPTION_TAG`, so an lsr export imports back without options. An index whose weights are
already impacts / 100 (as an import writes them) goes through export and import unchanged, postings
and search results alike, while impacts stay below about 1,000 (float16 keeps 11 significant bits).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from lsr.indexing.lucene.impact import SCALE
from lsr.indexing.sparse.build import build_index
from lsr.indexing.sparse.format import IndexMeta, SparseIndex
from numba import njit

from lsr.errors import LsrError
from lsr.fsutil import atomic_file

VERSION = 1
DESCRIPTION_TAG = "lsr-ciff "
"""Prefix of the header description lsr writes; the JSON after it names the model and the scale."""


class CiffError(LsrError):
    """A CIFF file that cannot be read, or an index that cannot be written as one."""


# -- protobuf wire format ---------------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    """Protobuf varint of an integer; negatives as their 64-bit two's complement (int32 / int64 fields)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value) if value else b""


def _bytes_field(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value if value else b""


def _double_field(number: int, value: float) -> bytes:
    return _varint(number << 3 | 1) + np.float64(value).tobytes() if value else b""


def _delimited(message: bytes) -> bytes:
    return _varint(len(message)) + message


@njit(cache=True)
def _put_varint(out: np.ndarray, at: int, value: int) -> int:
    while value >= 0x80:
        out[at] = (value & 0x7F) | 0x80
        value >>= 7
        at += 1
    out[at] = value
    return at + 1


@njit(cache=True)
def _varint_size(value: int) -> int:
    return 1 + (value >= 1 << 7) + (value >= 1 << 14) + (value >= 1 << 21) + (value >= 1 << 28)


@njit(cache=True)
def _encode_postings(docs: np.ndarray, tfs: np.ndarray) -> np.ndarray:
    """Field 4 of a PostingsList: one length-delimited ``Posting {docid gap, tf}`` per posting (docs increasing)."""
    out = np.empty(len(docs) * 16, dtype=np.uint8)  # at most 4 + 2 x 5 varint bytes (int32) each
    at = 0
    previous = 0
    for i in range(len(docs)):
        gap = docs[i] - previous
        previous = docs[i]
        size = 1 + _varint_size(tfs[i]) + (1 + _varint_size(gap) if gap else 0)  # proto3 leaves a zero out
        out[at] = 0x22
        out[at + 1] = size
        at += 2
        if gap:
            out[at] = 0x08
            at = _put_varint(out, at + 1, gap)
        out[at] = 0x10
        at = _put_varint(out, at + 1, tfs[i])
    return out[:at]


# Problems the Numba parser reports, by code (the byte offset comes with it).
_PROBLEMS = {
    1: "truncated varint",
    2: "a length-delimited field runs past the end of its message",
    3: "unknown wire type",
    4: "a negative or oversized docid gap",
    5: "a tf (impact) that is not a positive int32",
    6: "a docid beyond the header's num_doc_records",
    7: "docids that do not increase (a zero gap after the first posting)",
    8: "a field of the wrong wire type",
}


@njit(cache=True)
def _read_varint(buf: np.ndarray, at: int, end: int) -> tuple[int, int]:
    """``(value, next offset)``; next offset -1 when the varint is truncated or longer than 10 bytes."""
    value = 0
    shift = 0
    while at < end and shift < 70:
        byte = buf[at]
        value |= (np.int64(byte) & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7
    return 0, -1


@njit(cache=True)
def _skip(buf: np.ndarray, at: int, end: int, wire: int) -> int:
    """Offset after an unknown field's value; -1 truncated varint, -2 past the end, -3 unknown wire type."""
    if wire == 0:
        return _read_varint(buf, at, end)[1]
    if wire == 1 or wire == 5:
        at += 8 if wire == 1 else 4
        return at if at <= end else -2
    if wire == 2:
        size, at = _read_varint(buf, at, end)
        if at < 0:
            return -1
        return at + size if 0 <= size <= end - at else -2
    return -3


@njit(cache=True)
def _parse_postings_list(buf: np.ndarray, start: int, end: int, num_docs: int):  # noqa: ANN202 - Numba tuple
    """Parse one PostingsList message in ``buf[start:end]``.

    Returns ``(problem, offset, term_start, term_end, docs, tfs)``: ``problem`` 0 when it parsed, else a key
    of :data:`_PROBLEMS` with the offset it was found at. Two passes: count the postings, then decode them.
    """
    empty = np.empty(0, dtype=np.int64)
    count = 0
    term_start, term_end = -1, -1
    at = start
    while at < end:  # pass 1: the term and the number of postings
        key, at = _read_varint(buf, at, end)
        if at < 0:
            return 1, end, -1, -1, empty, empty
        wire = key & 7
        if key >> 3 == 4 or key >> 3 == 1:
            if wire != 2:
                return 8, at, -1, -1, empty, empty
            if key >> 3 == 4:
                count += 1
            else:
                size, inner = _read_varint(buf, at, end)
                term_start, term_end = inner, inner + size
        field_at = at
        at = _skip(buf, at, end, wire)
        if at < 0:
            return (1, 2, 3)[-at - 1], field_at, -1, -1, empty, empty
    docs = np.empty(count, dtype=np.int64)
    tfs = np.empty(count, dtype=np.int64)
    n = 0
    doc = 0
    at = start
    while at < end:  # pass 2: the postings (every length was checked by pass 1)
        key, at = _read_varint(buf, at, end)
        if key >> 3 != 4:
            at = _skip(buf, at, end, key & 7)
            continue
        size, at = _read_varint(buf, at, end)
        stop = at + size
        gap, tf = 0, 0
        while at < stop:
            inner_key, at = _read_varint(buf, at, stop)
            if at < 0:
                return 1, stop, -1, -1, empty, empty
            field_at = at
            if inner_key == 0x08 or inner_key == 0x10:
                value, at = _read_varint(buf, at, stop)
                if at < 0:
                    return 1, field_at, -1, -1, empty, empty
                if inner_key == 0x08:
                    gap = value
                else:
                    tf = value
            else:
                at = _skip(buf, at, stop, inner_key & 7)
                if at < 0:
                    return (1, 2, 3)[-at - 1], field_at, -1, -1, empty, empty
        if gap < 0 or gap >= 1 << 31:
            return 4, stop, -1, -1, empty, empty
        if tf <= 0 or tf >= 1 << 31:
            return 5, stop, -1, -1, empty, empty
        if n > 0 and gap == 0:
            return 7, stop, -1, -1, empty, empty
        doc += gap
        if doc >= num_docs:
            return 6, stop, -1, -1, empty, empty
        docs[n] = doc
        tfs[n] = tf
        n += 1
    return 0, end, term_start, term_end, docs, tfs


@dataclass(frozen=True)
class _Message:
    """One length-delimited message: its payload's byte range in the file."""

    start: int
    end: int


class _Reader:
    """Walks the length-delimited messages of a CIFF file held as a byte array, naming the offset of any fault."""

    def __init__(self, path: Path) -> None:
        self.path = path
        size = path.stat().st_size
        # a plain array view of the map: Numba takes ndarrays, not the memmap subclass
        self.buf = np.asarray(np.memmap(path, dtype=np.uint8, mode="r")) if size else np.zeros(0, np.uint8)
        self.at = 0

    def fail(self, what: str, offset: int, problem: str) -> CiffError:
        return CiffError(f"{self.path}: {what} at byte {offset}: {problem}")

    def message(self, what: str) -> _Message:
        if self.at >= len(self.buf):
            raise self.fail(what, self.at, "the file ends here (fewer messages than the header announces)")
        size, after = _read_varint(self.buf, self.at, len(self.buf))
        if after < 0:
            raise self.fail(what, self.at, "truncated length prefix")
        if size > len(self.buf) - after:
            raise self.fail(what, self.at, f"length {size} runs past the end of the file ({len(self.buf)} bytes)")
        self.at = after + size
        return _Message(after, after + size)

    def fields(self, message: _Message, what: str) -> Iterator[tuple[int, int | bytes | float]]:
        """``(field number, value)`` of a small message: varints as int64, length-delimited as bytes."""
        buf, at, end = self.buf, message.start, message.end
        while at < end:
            key, at = _read_varint(buf, at, end)
            if at < 0:
                raise self.fail(what, end, "truncated field key")
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, after = _read_varint(buf, at, end)
                if after < 0:
                    raise self.fail(what, at, f"field {number}: truncated varint")
                yield number, int(value)
            elif wire == 2:
                size, after = _read_varint(buf, at, end)
                if after < 0 or size > end - after:
                    raise self.fail(what, at, f"field {number}: length runs past the end of the message")
                after += size
                yield number, bytes(buf[after - size : after])
            elif wire in (1, 5):
                after = at + (8 if wire == 1 else 4)
                if after > end:
                    raise self.fail(what, at, f"field {number}: runs past the end of the message")
                yield number, float(np.frombuffer(bytes(buf[at:after]), "<f8" if wire == 1 else "<f4")[0])
            else:
                raise self.fail(what, at, f"field {number}: unknown wire type {wire}")
            at = after


def _typed(reader: _Reader, what: str, message: _Message, kinds: dict[int, tuple[str, type]]) -> dict[str, object]:
    """A small message's known fields by name, each checked for its type (int, str or float)."""
    out: dict[str, object] = {}
    for number, value in reader.fields(message, what):
        if number not in kinds:
            continue  # unknown fields are skipped, as protobuf readers do
        name, kind = kinds[number]
        if kind is str:
            if not isinstance(value, bytes):
                raise reader.fail(what, message.start, f"field {name!r} is not a string")
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise reader.fail(what, message.start, f"field {name!r} is not UTF-8") from exc
        elif not isinstance(value, kind):
            raise reader.fail(what, message.start, f"field {name!r} has the wrong wire type")
        out[name] = value
    return out


HEADER = {
    1: ("version", int),
    2: ("num_postings_lists", int),
    3: ("num_doc_records", int),
    4: ("total_postings_lists", int),
    5: ("total_docs", int),
    6: ("total_terms_in_collection", int),
    7: ("average_doclength", float),
    8: ("description", str),
}
DOC_RECORD = {1: ("docid", int), 2: ("collection_docid", str), 3: ("doclength", int)}


# -- export -----------------------------------------------------------------------------------------------------


def term_names(vocabulary: Sequence[str] | None, size: int) -> list[str]:
    """Term strings of ids 0..size-1: the model's tokens, or decimal ids without a vocabulary."""
    if vocabulary is None:
        return [str(t) for t in range(size)]
    if len(vocabulary) < size:
        raise CiffError(f"the vocabulary has {len(vocabulary)} tokens, the index {size} terms")
    names = list(vocabulary[:size])
    if len(set(names)) != size:
        raise CiffError("the vocabulary repeats a token; CIFF terms must be unique")
    return names


def _column(impacts: sp.csc_matrix, term: int) -> tuple[np.ndarray, np.ndarray]:
    """One term's postings in increasing document order, impacts as int64, zeros left out."""
    start, end = impacts.indptr[term], impacts.indptr[term + 1]
    docs = np.asarray(impacts.indices[start:end], dtype=np.int64)
    values = np.asarray(impacts.data[start:end], dtype=np.int64)
    order = np.argsort(docs, kind="stable")
    keep = values[order] > 0
    return docs[order][keep], values[order][keep]


def write_ciff(
    path: str | Path, impacts: sp.csc_matrix, doc_ids: Sequence[str], names: Sequence[str], about: dict[str, object]
) -> dict[str, int]:
    """Write documents x terms integer ``impacts`` as CIFF (replaced atomically); ``about`` goes in the description.

    Rows of a column may come in any order (an lsr index keeps them in impact order); values must be integers.
    """
    num_docs, vocab = impacts.shape
    if len(doc_ids) != num_docs or len(names) < vocab:
        raise CiffError(f"{num_docs} documents and {vocab} terms, but {len(doc_ids)} ids and {len(names)} term names")
    data = np.asarray(impacts.data)
    if np.any(data < 0) or np.any(data != np.rint(data)) or data.max(initial=0) >= 1 << 31:
        raise CiffError("CIFF stores non-negative int32 impacts (tf); quantise the weights first")
    lengths = np.bincount(np.asarray(impacts.indices), weights=data, minlength=num_docs).astype(np.int64)
    if lengths.max(initial=0) >= 1 << 31:
        raise CiffError(f"a document's summed impacts ({lengths.max()}) overflow CIFF's int32 doclength")
    columns = np.repeat(np.arange(vocab), np.diff(impacts.indptr))
    lists = len(np.unique(columns[data > 0]))
    header = b"".join(
        (
            _int_field(1, VERSION),
            _int_field(2, lists),
            _int_field(3, num_docs),
            _int_field(4, vocab),
            _int_field(5, num_docs),
            _int_field(6, int(lengths.sum())),
            _double_field(7, float(lengths.mean()) if num_docs else 0.0),
            _bytes_field(8, (DESCRIPTION_TAG + json.dumps(about)).encode("utf-8")),
        )
    )
    written = 0
    with atomic_file(path, "wb") as out:
        out.write(_delimited(header))
        for term in sorted(range(vocab), key=lambda t: names[t].encode("utf-8")):  # PISA bisects its lexicon
            docs, values = _column(impacts, term)
            if not len(docs):
                continue
            body = _bytes_field(1, names[term].encode("utf-8")) + _int_field(2, len(docs))
            body += _int_field(3, int(values.sum())) + _encode_postings(docs, values).tobytes()
            out.write(_delimited(body))
            written += 1
        for start in range(0, num_docs, 65536):
            out.write(
                b"".join(
                    _delimited(
                        _int_field(1, n) + _bytes_field(2, doc_ids[n].encode("utf-8")) + _int_field(3, int(lengths[n]))
                    )
                    for n in range(start, min(start + 65536, num_docs))
                )
            )
    if written != lists:
        raise CiffError(f"wrote {written} postings lists, the header says {lists}")  # pragma: no cover - a bug
    return {"postings_lists": lists, "documents": num_docs, "postings": int(np.count_nonzero(data))}


def export_ciff(
    index_folder: str | Path, path: str | Path, vocabulary: Sequence[str] | None = None, scale: int = SCALE
) -> dict[str, int]:
    """Write an lsr index as a CIFF file of impacts ``round(scale w)`` (replaced atomically); return its counts."""
    index = SparseIndex.open(index_folder)
    meta = index.meta
    impacts = np.rint(index.codebook[np.asarray(index.codes)].astype(np.float64) * scale).astype(np.float32)
    matrix = sp.csc_matrix(
        (impacts, np.asarray(index.docs), np.asarray(index.offsets)), (meta.num_docs, meta.vocab_size)
    )
    about = {"model": meta.model, "model_kind": meta.model_kind, "vocab_size": meta.vocab_size, "scale": scale}
    ids = index.doc_ids(np.arange(meta.num_docs)) if meta.num_docs else []
    return write_ciff(path, matrix, ids, term_names(vocabulary, meta.vocab_size), about)


# -- import -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CiffContents:
    """A CIFF file read whole: postings as a documents x terms CSR of impacts, and what the header says."""

    header: dict[str, object]
    lsr: dict[str, object]
    """lsr's metadata from the description (model, model_kind, vocab_size, scale); empty for other writers."""
    doc_ids: list[str]
    impacts: sp.csr_matrix
    term_names: list[str]


def _lsr_description(header: dict[str, object]) -> dict[str, object]:
    text = str(header.get("description", ""))
    if not text.startswith(DESCRIPTION_TAG):
        return {}
    try:
        about = json.loads(text[len(DESCRIPTION_TAG) :])
    except json.JSONDecodeError:
        return {}
    return about if isinstance(about, dict) else {}


def _header_count(reader: _Reader, header: dict[str, object], name: str) -> int:
    value = header.get(name, 0)
    if not isinstance(value, int) or not 0 <= value < 1 << 31:
        raise reader.fail("Header", 0, f"field {name!r} must be a count (0 to 2^31 - 1), not {value!r}")
    return value


def read_header(path: str | Path) -> dict[str, Any]:
    """The header's fields, and under ``lsr`` what an lsr export recorded, without reading the postings."""
    reader = _Reader(Path(path))
    header = _typed(reader, "Header", reader.message("Header"), HEADER)
    return {**header, "lsr": _lsr_description(header)}


def read_ciff(path: str | Path, vocabulary: Sequence[str] | None = None) -> CiffContents:
    """Read a CIFF file; terms become ids by ``vocabulary`` (tokens), else they must be decimal term ids."""
    reader = _Reader(Path(path))
    header = _typed(reader, "Header", reader.message("Header"), HEADER)
    lists = _header_count(reader, header, "num_postings_lists")
    num_docs = _header_count(reader, header, "num_doc_records")
    lookup = {token: number for number, token in enumerate(vocabulary)} if vocabulary is not None else None
    terms, docs, tfs, names = [], [], [], []
    for number in range(lists):
        what = f"PostingsList {number}"
        message = reader.message(what)
        problem, offset, term_start, term_end, list_docs, list_tfs = _parse_postings_list(
            reader.buf, message.start, message.end, num_docs
        )
        if problem:
            raise reader.fail(what, offset, _PROBLEMS[problem])
        try:
            name = bytes(reader.buf[term_start:term_end]).decode("utf-8") if term_start >= 0 else ""
        except UnicodeDecodeError as exc:
            raise reader.fail(what, message.start, "field 'term' is not UTF-8") from exc
        term = _term_id(reader, what, message.start, name, lookup)
        names.append(name)
        terms.append(np.full(len(list_docs), term, dtype=np.int64))
        docs.append(list_docs)
        tfs.append(list_tfs)
    ids: list[str] = []
    for number in range(num_docs):
        what = f"DocRecord {number}"
        message = reader.message(what)
        record = _typed(reader, what, message, DOC_RECORD)
        if record.get("docid", 0) != number:
            raise reader.fail(what, message.start, f"field 'docid' is {record.get('docid', 0)}, expected {number}")
        ids.append(str(record.get("collection_docid", "")))
    if reader.at != len(reader.buf):
        raise reader.fail(
            "the end of the file", reader.at, f"{len(reader.buf) - reader.at} bytes after the last record"
        )
    all_terms = np.concatenate(terms) if terms else np.zeros(0, np.int64)
    about = _lsr_description(header)
    recorded = about.get("vocab_size")
    vocab = int(all_terms.max(initial=-1)) + 1
    if vocabulary is not None:
        vocab = len(vocabulary)
    elif isinstance(recorded, int) and recorded > vocab:
        vocab = recorded  # an lsr export of ids: the model's vocabulary, terms without postings included
    matrix = sp.csc_matrix(
        (
            np.concatenate(tfs).astype(np.float32) if tfs else np.zeros(0, np.float32),
            (np.concatenate(docs) if docs else np.zeros(0, np.int64), all_terms),
        ),
        shape=(num_docs, vocab),
    ).tocsr()
    if matrix.nnz != len(all_terms):
        raise CiffError(f"{path}: two postings lists name the same term")
    matrix.sort_indices()
    return CiffContents(header, about, ids, matrix, names)


def _term_id(reader: _Reader, what: str, offset: int, name: str, lookup: dict[str, int] | None) -> int:
    if lookup is not None:
        if name not in lookup:
            raise reader.fail(what, offset, f"term {name!r} is not in the vocabulary")
        return lookup[name]
    if not name.isdigit():
        raise reader.fail(what, offset, f"term {name!r} is not a term id; give the model's vocabulary to map tokens")
    return int(name)


def import_ciff(
    path: str | Path,
    index_folder: str | Path,
    vocabulary: Sequence[str] | None = None,
    model: str | None = None,
    model_kind: str | None = None,
    weights: str = "float16",
    shard: int = 100_000,
) -> IndexMeta:
    """Build an lsr index (replaced atomically) from a CIFF file; weights are impacts / scale.

    ``model`` and ``model_kind`` default to what an lsr export recorded, the scale too (else 100).
    """
    contents = read_ciff(path, vocabulary)
    about = contents.lsr
    scale = about.get("scale", SCALE)
    if not isinstance(scale, int) or scale <= 0:
        raise CiffError(f"{path}: the description's scale {scale!r} is not a positive integer")
    weights_matrix = sp.csr_matrix(contents.impacts, dtype=np.float32, copy=True)
    weights_matrix.data /= np.float32(scale)
    ids = contents.doc_ids

    def shards() -> Iterator[tuple[list[str], sp.csr_matrix]]:
        for start in range(0, len(ids), shard):
            yield ids[start : start + shard], weights_matrix[start : start + shard]

    return build_index(
        shards,
        index_folder,
        model or str(about.get("model", "unknown")),
        model_kind or str(about.get("model_kind", "splade")),
        weights,
    )
