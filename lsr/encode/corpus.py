"""Encode a corpus into vector shards, resuming where an earlier run stopped."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from itertools import chain, islice
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from lsr.data.beir import Document, read_corpus
from lsr.data.textio import TextSource
from lsr.encode.shards import MANIFEST, PARTIAL, Finished, Manifest, Vectors, load_partial, save_partial, write_shard
from lsr.errors import LsrError
from lsr.fsutil import claim_dir, forcing_enabled
from lsr.models import DenseEncoder, SparseEncoder


def document_text(doc: Document) -> str:
    """What an encoder sees of a document: title and text joined by a space, as BEIR models are evaluated."""
    return f"{doc.title} {doc.text}" if doc.title else doc.text


def _blocks(docs: Iterator[Document], size: int) -> Iterator[list[Document]]:
    while block := list(islice(docs, size)):
        yield block


def piece_size(batch_size: int) -> int:
    """Texts sorted by length together: enough that batches cut from them are of similar lengths (3.5% padding on
    SciFact at 512, 11% at 128)."""
    return max(16 * batch_size, 256)


STEP_BATCHES = 2
"""Batches per encoder call within a piece: the progress bar moves after each call, every few seconds even for a
slow model on a busy machine, not once per piece; and Ctrl-C keeps what every finished call encoded."""


def encode_texts(
    encoder: SparseEncoder | DenseEncoder,
    texts: list[str],
    batch_size: int,
    progress: Callable[[int], object] | None = None,
    finished: Finished | None = None,
) -> Vectors:
    """One shard's vectors, encoded in pieces of :func:`piece_size`; the single-process and the Ray encoder both
    call this, so their shards agree. ``finished`` collects every encoder call's rows and vectors as they come, so an
    interrupted caller keeps them; rows already in it are not redone, and the others are encoded in the batches an
    uninterrupted run makes, so the result is the same to the bit."""
    finished = Finished() if finished is None else finished
    done = np.zeros(len(texts), dtype=bool)
    done[finished.rows()] = True
    size = piece_size(batch_size)
    for start in range(0, len(texts), size):
        rows = start + _longest_first(texts[start : start + size])
        _encode_rows(encoder, texts, rows[~done[rows]], batch_size, progress, finished)
    return finished.in_order()


def _longest_first(texts: list[str]) -> np.ndarray:
    """The positions of a piece's texts by decreasing length (characters, which track tokens), ties in order: batches
    cut from this order are as even as one call over the piece would make them."""
    return np.argsort([-len(text) for text in texts], kind="stable")


def _encode_rows(
    encoder: SparseEncoder | DenseEncoder,
    texts: list[str],
    rows: np.ndarray,
    batch_size: int,
    progress: Callable[[int], object] | None,
    finished: Finished,
) -> None:
    """Encode ``texts`` at ``rows``, in that order, :data:`STEP_BATCHES` batches per call, each call recorded in
    ``finished`` and reported to ``progress`` as it ends."""
    step = STEP_BATCHES * batch_size
    for start in range(0, len(rows), step):
        chunk = rows[start : start + step]
        finished.calls.append((chunk, encoder.encode_document([texts[i] for i in chunk], batch_size=batch_size)))
        if progress is not None:
            progress(len(chunk))


def duration(seconds: float) -> str:
    """A wait as a person reads it: ``40 s``, ``12 min``, ``1 h 25 min``."""
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


class Estimate:
    """A progress callback that, once the first ``warm_up`` documents of this run are encoded, says how long the rest
    will take at the rate just measured on this machine: a user facing an hour's wait learns it at the start, not
    from a bar that has barely moved. The first few batches alone would mostly measure the model's first call."""

    def __init__(self, bar: tqdm, warm_up: int) -> None:
        self.bar = bar
        self.warm_up = warm_up
        self.started = time.perf_counter()
        self.counted = 0
        self.said = False

    def __call__(self, count: int) -> None:
        self.bar.update(count)
        self.counted += count
        if self.said or self.counted < self.warm_up:
            return
        self.said = True
        left = self.bar.total - self.bar.n
        if left > 0:
            rate = self.counted / max(time.perf_counter() - self.started, 1e-6)
            self.bar.write(
                f"estimate: {left + self.counted:,} documents at {rate:,.1f} docs/s (measured on the first"
                f" {self.counted:,} here): about {duration(left / rate)} more"
            )


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
        corpus=src.fingerprint(),
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
    total = sum(1 for _ in read_corpus(src))  # validates every line before any encoding, and sizes the bar
    docs = read_corpus(src)
    for _ in islice(docs, done * shard_size):  # documents already encoded
        pass
    blocks = enumerate(_blocks(docs, shard_size), start=done)
    first = next(blocks, None)
    # What an interrupted run kept (documents of the first block left, never of a later one) starts the bar rather
    # than counting as progress made now: counted as progress, it made the rate and the time left several times too
    # good.
    carried = load_partial(output, first[0], [d.id for d in first[1]]) if first is not None else Finished()
    start = manifest.documents + carried.documents
    bar = tqdm(total=total, initial=start, desc=f"encode {src.path.name}", unit=" docs", mininterval=2)
    with bar:
        progress = Estimate(bar, piece_size(batch_size))
        for number, block in chain([first] if first is not None else [], blocks):
            ids = [d.id for d in block]
            finished = carried if number == done else Finished()
            try:
                vectors = encode_texts(encoder, [document_text(d) for d in block], batch_size, progress, finished)
            except KeyboardInterrupt:
                kept = save_partial(output, number, ids, finished)
                bar.write(f"interrupted: {manifest.documents + kept:,} documents kept in {output}; rerun to resume")
                raise
            manifest.shards.append(write_shard(output, number, ids, vectors))
            manifest.save(output)
            (output / PARTIAL).unlink(missing_ok=True)
    manifest.complete = True
    manifest.save(output)
    return manifest
