"""Encode a corpus into vector shards, resuming where an earlier run stopped."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from lsr.data.beir import Document, read_corpus
from lsr.data.textio import TextSource
from lsr.encode.shards import Manifest, write_shard
from lsr.errors import LsrError
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


def encode_corpus(
    encoder: SparseEncoder | DenseEncoder,
    model_name: str,
    src: TextSource,
    output: str | Path,
    shard_size: int = 10_000,
    batch_size: int = 32,
) -> Manifest:
    """Encode every document of ``src`` into ``output``; a folder from an interrupted run with the same
    model, corpus and shard size is resumed, anything else there is an error rather than silently mixed."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    dense = isinstance(encoder, DenseEncoder)
    dimension = encoder.dimension if dense else len(encoder.vocabulary)
    fresh = Manifest(
        model=model_name,
        kind=encoder.kind,
        dense=dense,
        dimension=dimension,
        shard_size=shard_size,
        corpus=corpus_fingerprint(src),
    )
    if (output / "manifest.json").is_file():
        manifest = Manifest.load(output)
        same = (manifest.model, manifest.kind, manifest.shard_size, manifest.corpus, manifest.dimension) == (
            fresh.model,
            fresh.kind,
            fresh.shard_size,
            fresh.corpus,
            fresh.dimension,
        )
        if not same:
            raise LsrError(f"{output} holds vectors of another model, corpus or shard size; choose a new folder")
        if manifest.complete:
            return manifest
    else:
        manifest = fresh
        manifest.save(output)
    done = len(manifest.shards)
    docs = read_corpus(src)
    for _ in islice(docs, done * shard_size):  # documents already encoded: read (and validated) only
        pass
    piece = max(16 * batch_size, 256)  # texts sorted by length together, and the progress step
    with tqdm(initial=done * shard_size, desc=f"encode {src.path.name}", unit=" docs") as bar:
        for number, block in enumerate(_blocks(docs, shard_size), start=done):
            parts = []
            for start in range(0, len(block), piece):
                texts = [document_text(d) for d in block[start : start + piece]]
                parts.append(encoder.encode_document(texts, batch_size=batch_size))
                bar.update(len(texts))
            vectors = np.vstack(parts) if dense else sp.vstack(parts, format="csr")
            manifest.shards.append(write_shard(output, number, [d.id for d in block], vectors))
            manifest.save(output)
    manifest.complete = True
    manifest.save(output)
    return manifest
