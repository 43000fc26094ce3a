"""Encoded sparse vectors packed small enough to cross between machines whose file transfers are capped.

Why: the GPU machine encodes a million documents in a minute but returns only a few
files of 16 MiB; float32 shards are ten times that. A pack holds each document's
term ids (sorted, delta-coded as uint16) and its weights as integer impacts
``round(100 w)`` (uint16) — exactly the quantisation the speed benchmark gives every
engine, so nothing the benchmark sees is lost — split into files of whole documents,
each LZMA-compressed. Document ids are not carried: a pack records the CRC32 of the
joined ids, and :func:`unpack` takes the ids from the corpus and refuses a mismatch.
"""

from __future__ import annotations

import io
import json
import lzma
import os
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from lsr.encode.shards import Manifest, iter_shards, stack, write_shard
from lsr.errors import LsrError
from lsr.fsutil import atomic_dir, atomic_file

SCALE = 100
FORMAT = "lsr-vector-pack/1"


def ids_crc(ids: list[str]) -> int:
    """CRC32 of the ids joined by newlines: a cheap check that a pack belongs to a corpus."""
    return zlib.crc32("\n".join(ids).encode())


def _pack_rows(matrix: sp.csr_matrix) -> bytes:
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.sort_indices()
    lengths = np.diff(matrix.indptr)
    if lengths.max(initial=0) >= 2**16:
        raise LsrError("a document has 65,536 or more terms; a pack stores lengths as uint16")
    deltas = np.diff(matrix.indices, prepend=0).astype(np.int64)
    deltas[matrix.indptr[:-1][lengths > 0]] = matrix.indices[matrix.indptr[:-1][lengths > 0]]
    impacts = np.rint(matrix.data * SCALE)
    if impacts.max(initial=0) >= 2**16 or deltas.max(initial=0) >= 2**16:
        raise LsrError("impacts or term ids do not fit uint16")
    buffer = io.BytesIO()
    np.savez(
        buffer, lengths=lengths.astype(np.uint16), deltas=deltas.astype(np.uint16), impacts=impacts.astype(np.uint16)
    )
    return lzma.compress(buffer.getvalue(), preset=9)


def _unpack_rows(blob: bytes, dimension: int) -> sp.csr_matrix:
    with np.load(io.BytesIO(lzma.decompress(blob)), allow_pickle=False) as arrays:
        lengths, deltas, impacts = (arrays[name].astype(np.int64) for name in ("lengths", "deltas", "impacts"))
    indptr = np.concatenate(([0], np.cumsum(lengths)))
    indices = np.cumsum(deltas)
    indices -= np.repeat(np.concatenate(([0], indices[indptr[1:-1] - 1])), lengths) if len(lengths) else 0
    return sp.csr_matrix((impacts.astype(np.float32) / SCALE, indices, indptr), shape=(len(lengths), dimension))


def pack(vectors: Path, output: Path, files: int) -> list[Path]:
    """Pack a complete sparse vectors folder into ``files`` files named ``pack-NN.xz`` plus ``pack.json``."""
    manifest = Manifest.load(vectors)
    ids: list[str] = []
    parts = []
    for shard_ids, matrix in iter_shards(vectors):
        ids += shard_ids
        parts.append(sp.csr_matrix(matrix))
    matrix = stack(parts)
    bounds = np.linspace(0, len(ids), files + 1).astype(int)
    output.mkdir(parents=True, exist_ok=True)
    written = []
    pieces = [matrix[bounds[number] : bounds[number + 1]] for number in range(files)]
    with ProcessPoolExecutor(min(files, os.cpu_count() or 1)) as pool:  # LZMA at preset 9 is the slow part
        for number, blob in enumerate(pool.map(_pack_rows, pieces)):
            path = output / f"pack-{number:02d}.xz"
            with atomic_file(path, mode="wb", encoding=None) as handle:
                handle.write(blob)
            written.append(path)
    info = {
        "format": FORMAT,
        "model": manifest.model,
        "kind": manifest.kind,
        "dimension": manifest.dimension,
        "documents": len(ids),
        "bounds": bounds.tolist(),
        "ids_crc32": ids_crc(ids),
    }
    with atomic_file(output / "pack.json") as handle:
        json.dump(info, handle, indent=2)
    return written


def unpack(pack_folder: Path, ids: list[str], output: Path, shard_size: int = 100_000) -> Manifest:
    """An ``lsr encode`` vectors folder from a pack and the corpus's ids (which must be the packed corpus's)."""
    info = json.loads((pack_folder / "pack.json").read_text())
    if info.get("format") != FORMAT:
        raise LsrError(f"{pack_folder / 'pack.json'}: not a {FORMAT} pack")
    if len(ids) != info["documents"] or ids_crc(ids) != info["ids_crc32"]:
        raise LsrError(f"{pack_folder}: packed for another corpus ({info['documents']} documents, other ids)")
    blobs = sorted(pack_folder.glob("pack-*.xz"))
    matrix = stack([_unpack_rows(blob.read_bytes(), info["dimension"]) for blob in blobs])
    if matrix.shape[0] != len(ids):
        raise LsrError(f"{pack_folder}: {matrix.shape[0]} packed vectors for {len(ids)} ids")
    corpus = {"path": f"pack:{pack_folder.name}", "member": None, "size": len(ids), "mtime_ns": info["ids_crc32"]}
    manifest = Manifest(info["model"], info["kind"], False, info["dimension"], shard_size, corpus)
    with atomic_dir(output) as tmp:
        for number, start in enumerate(range(0, len(ids), shard_size)):
            end = min(start + shard_size, len(ids))
            manifest.shards.append(write_shard(tmp, number, ids[start:end], matrix[start:end]))
        manifest.complete = True
        manifest.save(tmp)
    return manifest
