"""Encode a corpus into vector shards, resuming where an earlier run stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from lsr.data.beir import Document, read_corpus
from lsr.data.textio import TextSource
from lsr.encode.shards import MANIFEST, Manifest, write_shard
from lsr.errors import LsrError
from lsr.fsutil import claim_dir, forcing_enabled
from lsr.models import DenseEncoder, SparseEncoder


def document_text(doc: Document) -> str:
    """What an encoder sees of a document: title and text joined by a space, as BEIR models are evaluated."""
    return f"{doc.title} {doc.text}" if doc.title else doc.text


def corpus_fingerprint(src: TextSource) -> dict[str, object]:
    stat = src.path.stat()
    return {"path": str(src.path.resolve()), "member": src.member, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _blocks(docs: Iterator[Document], size: int) -> Iterator[list[Document]]:
    while block := list(islice(docs, size)):
        yield block


def encode_texts(
    encoder: SparseEncoder | DenseEncoder,
    texts: list[str],
    batch_size: int,
    progress: Callable[[int], object] | None = None,
) -> sp.csr_matrix | np.ndarray:
    """One shard's vectors, encoded in pieces (texts sorted by length within a piece, and the progress step);
    the single-process and the Ray encoder both call this, so their shards agree."""
    piece = max(16 * batch_size, 256)
    parts = []
    for start in range(0, len(texts), piece):
        chunk = texts[start : start + piece]
        parts.append(encoder.encode_document(chunk, batch_size=batch_size))
        if progress is not None:
            progress(len(chunk))
    if isinstance(encoder, DenseEncoder):
        return np.vstack(parts)
    return sp.vstack(parts, format="csr")


def open_output(
    output: str | Path,
    model_name: str,
    kind: str,
    dense: bool,
    dimension: int,
    shard_size: int,
    src: TextSource,
    restart_stale: bool = False,
) -> Manifest:
    """The manifest of a vectors folder: a fresh one, or the one of an earlier run with the same model, corpus and
    shard size (to resume); anything else there is an error rather than silently mixed, unless ``restart_stale``
    (or ``--force``) says the folder's vectors may be dropped and encoding started afresh. Shared by the
    single-process and the Ray encoder so that both write, and resume, the same folders."""
    output = Path(output)
    earlier = Manifest.load(output) if (output / MANIFEST).is_file() else None
    claim_dir(output, force=True if earlier else None)  # a valid lsr manifest proves the folder is lsr's
    fresh = Manifest(
        model=model_name,
        kind=kind,
        dense=dense,
        dimension=dimension,
        shard_size=shard_size,
        corpus=corpus_fingerprint(src),
    )
    if earlier is not None:
        settings = ("model", "kind", "shard_size", "corpus", "dimension")
        if all(getattr(earlier, name) == getattr(fresh, name) for name in settings):
            return earlier
        if not (restart_stale or forcing_enabled()):
            raise LsrError(
                f"{output} holds vectors of another model, corpus or shard size; choose a new folder, "
                "or pass --force to drop them and encode afresh"
            )
        for stale in output.glob("shard-*.npz"):  # by pattern: file names read from the manifest are not trusted
            stale.unlink()
    fresh.save(output)
    return fresh


def encode_corpus(
    encoder: SparseEncoder | DenseEncoder,
    model_name: str,
    src: TextSource,
    output: str | Path,
    shard_size: int = 10_000,
    batch_size: int = 32,
    restart_stale: bool = False,
) -> Manifest:
    """Encode every document of ``src`` into ``output``; a folder from an interrupted run with the same
    model, corpus and shard size is resumed, anything else there is an error rather than silently mixed."""
    dense = isinstance(encoder, DenseEncoder)
    dimension = encoder.dimension if dense else len(encoder.vocabulary)
    manifest = open_output(output, model_name, encoder.kind, dense, dimension, shard_size, src, restart_stale)
    output = Path(output)
    if manifest.complete:
        return manifest
    done = len(manifest.shards)
    docs = read_corpus(src)
    for _ in islice(docs, done * shard_size):  # documents already encoded: read (and validated) only
        pass
    with tqdm(initial=done * shard_size, desc=f"encode {src.path.name}", unit=" docs") as bar:
        for number, block in enumerate(_blocks(docs, shard_size), start=done):
            vectors = encode_texts(encoder, [document_text(d) for d in block], batch_size, bar.update)
            manifest.shards.append(write_shard(output, number, [d.id for d in block], vectors))
            manifest.save(output)
    manifest.complete = True
    manifest.save(output)
    return manifest
