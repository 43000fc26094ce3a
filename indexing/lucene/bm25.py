"""BM25 over a BEIR corpus with Lucene (Anserini through pyserini), in both BEIR conventions.

*flat* indexes title and text as one field (Anserini's ``BeirFlatCollection``:
``title + "\\n" + text``); *multifield* indexes them as two fields searched with
weight 1.0 each (``BeirMultifieldCollection``). These are the collections and
settings behind Anserini's published BEIR regressions (k1=0.9, b=0.4), so the
numbers are comparable. Our validated corpus stream is written as the
collection's input, so zips and gzip corpora work and bad lines fail early.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from lsr.indexing.fingerprint import blob_fingerprint
from lsr.indexing.lucene.jvm import lucene_search_module, start_jvm
from tqdm.auto import tqdm

from lsr.data.beir import BeirDataset, Document
from lsr.errors import DataWarning, LsrError
from lsr.fsutil import atomic_dir
from lsr.runs import Run

META_FILE = "lsr-index.json"
SHARD_DOCS = 250_000  # Anserini indexes one input file per thread
COLLECTIONS = {"flat": "BeirFlatCollection", "multifield": "BeirMultifieldCollection"}


def _fingerprint(dataset: BeirDataset, convention: str) -> dict[str, object]:
    return {**dataset.corpus_source.fingerprint(), "convention": convention}


def _indexed_text(doc: Document, convention: str) -> str:
    """What Anserini puts in the ``contents`` field; documents where it is blank are skipped as empty."""
    return f"{doc.title}\n{doc.text}" if convention == "flat" else doc.text


def _write_shards(docs: Iterable[Document], folder: Path, convention: str) -> tuple[int, int, int, str]:
    """Write the collection's input files; return how many documents there are, how many Lucene will skip, the
    UTF-8 bytes of the longest id it indexes (what a server needs to bound a reply's size) and the fingerprint of
    every document id, the skipped ones too (:mod:`lsr.indexing.fingerprint`: a hybrid compares it with its other
    legs', which index the empty documents as well)."""
    count = empty = longest = 0
    blob, ends = bytearray(), [0]
    out = None
    try:
        for doc in docs:
            if count % SHARD_DOCS == 0:
                if out is not None:
                    out.close()
                out = open(folder / f"part-{count // SHARD_DOCS:05d}.jsonl", "w", encoding="utf-8")
            out.write(json.dumps({"_id": doc.id, "title": doc.title, "text": doc.text}, ensure_ascii=False) + "\n")
            count += 1
            encoded = doc.id.encode("utf-8")
            blob += encoded
            ends.append(len(blob))
            if _indexed_text(doc, convention).strip():
                longest = max(longest, len(encoded))
            else:
                empty += 1
    finally:
        if out is not None:
            out.close()
    return count, empty, longest, blob_fingerprint(np.frombuffer(blob, dtype=np.uint8), np.asarray(ends))


def build_index(dataset: BeirDataset, index_dir: str | Path, convention: str = "flat", threads: int = 0) -> Path:
    """Build a Lucene BM25 index of ``dataset``'s corpus at ``index_dir``, or reuse an identical one.

    The index is built in a temporary folder and renamed into place, with a
    metadata file that records which corpus and convention it holds.
    """
    if convention not in COLLECTIONS:
        raise LsrError(f"unknown BM25 convention {convention!r}; choose {' or '.join(COLLECTIONS)}")
    index_dir = Path(index_dir)
    fingerprint = _fingerprint(dataset, convention)
    meta_path = index_dir / META_FILE
    if meta_path.is_file():
        earlier = json.loads(meta_path.read_text())
        if earlier.get("source") == fingerprint and "longest_id" in earlier:  # an older lsr's index has no longest_id
            return index_dir
    start_jvm()
    from jnius import autoclass

    index_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=index_dir.parent, prefix=".corpus.") as staging, atomic_dir(index_dir) as tmp:
        docs = tqdm(dataset.corpus(), desc=f"read {dataset.name}", unit=" docs")
        count, empty, longest, ids = _write_shards(docs, Path(staging), convention)
        if count == empty:
            raise LsrError(f"{dataset.corpus_source.name}: the corpus has no text to index")
        if empty:
            missing = "text" if convention == "multifield" else "title or text"
            warnings.warn(
                f"{dataset.corpus_source.name}: {empty} document(s) have no {missing}"
                " and are not indexed (Anserini skips empty documents)",
                DataWarning,
                stacklevel=2,
            )
        shards = -(-count // SHARD_DOCS)
        args = [
            "-collection",
            COLLECTIONS[convention],
            "-input",
            staging,
            "-index",
            str(tmp / "lucene"),
            "-generator",
            "DefaultLuceneDocumentGenerator",
            "-threads",
            str(min(shards, threads or os.cpu_count() or 1)),
            "-storePositions",
            "-storeDocvectors",
            "-storeRaw",
            "-quiet",
        ]
        if convention == "multifield":
            args += ["-fields", "title"]
        with tqdm(total=count, desc="lucene index", unit=" docs") as bar:
            autoclass("io.anserini.index.IndexCollection").main(args)
            bar.update(count)
        searcher = lucene_search_module().LuceneSearcher(str(tmp / "lucene"))
        indexed = searcher.num_docs
        searcher.close()
        if indexed != count - empty:
            raise LsrError(f"Lucene indexed {indexed} of {count - empty} documents from {dataset.corpus_source.name}")
        meta = {"source": fingerprint, "documents": count, "empty_documents": empty, "longest_id": longest, "ids": ids}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    return index_dir


def open_searcher(index_dir: str | Path, k1: float = 0.9, b: float = 0.4) -> Any:
    """pyserini's ``LuceneSearcher`` over the index, scoring BM25 with ``k1`` and ``b``."""
    searcher = lucene_search_module().LuceneSearcher(str(Path(index_dir) / "lucene"))
    searcher.set_bm25(k1, b)
    return searcher


def search(
    index_dir: str | Path,
    queries: dict[str, str],
    k: int = 1000,
    convention: str = "flat",
    k1: float = 0.9,
    b: float = 0.4,
    threads: int = 0,
    batch_size: int = 512,
    searcher: Any = None,
    progress: bool = True,
) -> Run:
    """BM25 top-``k`` for every query; multifield weighs the text and title fields 1.0 each. ``searcher`` (from
    :func:`open_searcher`, kept open by a caller that searches often, like a server) replaces opening the index
    for this call, and then ``k1`` and ``b`` are the searcher's own."""
    own = searcher is None
    if own:
        searcher = open_searcher(index_dir, k1, b)
    try:
        fields = {"contents": 1.0, "title": 1.0} if convention == "multifield" else {}
        ids = list(queries)
        run: Run = {}
        with tqdm(total=len(ids), desc="bm25 search", unit=" queries", disable=not progress) as bar:
            for start in range(0, len(ids), batch_size):
                chunk = ids[start : start + batch_size]
                hits = searcher.batch_search(
                    [queries[q] for q in chunk], chunk, k=k, threads=threads or os.cpu_count() or 1, fields=fields
                )
                for qid in chunk:
                    run[qid] = {h.docid: float(h.score) for h in hits.get(qid, [])}
                bar.update(len(chunk))
    finally:
        if own:
            searcher.close()
    return run
