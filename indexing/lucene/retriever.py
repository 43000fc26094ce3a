"""The BM25 retriever: Lucene (Anserini through pyserini) over a BEIR corpus, flat or multifield."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from lsr.indexing.cache import about, index_entry, record_use
from lsr.indexing.fingerprint import is_fingerprint
from lsr.indexing.lucene import bm25
from lsr.indexing.retrieval import Corpus, DocFilter, Hits, Retriever, RetrieverOptions, register

from lsr.errors import LsrError, no_folder
from lsr.fsutil import forcing
from lsr.runs import ranked


@register
class BM25Retriever(Retriever):
    """BM25 with Anserini's BEIR settings (k1 0.9, b 0.4); queries are searched as text."""

    name = "bm25"

    def __init__(self, index: Path, convention: str, meta: dict[str, Any]) -> None:
        self.index = index
        self.convention = convention
        self._meta = meta
        self._searcher: Any = None  # opened on the first search and kept: a server searches many times

    @classmethod
    def from_corpus(cls, corpus: Corpus, options: RetrieverOptions) -> BM25Retriever:
        convention = "multifield" if options.multifield else "flat"
        index = index_entry(corpus.cache, corpus.dataset, "bm25", convention)
        with forcing():  # the cache is lsr's: an entry from an older lsr (without the output marker) is replaced
            bm25.build_index(corpus.dataset, index, convention)
        record_use(index, about(corpus, "bm25", convention))
        return cls(index, convention, _read_meta(index))

    @classmethod
    def from_index(cls, path: Path, options: RetrieverOptions) -> BM25Retriever:
        if no_folder(path, "a BM25 index"):
            raise LsrError(no_folder(path, "a BM25 index"))
        meta = _read_meta(path)
        return cls(path, meta["source"]["convention"], meta)

    def search(self, queries: list[str], k: int, allow: DocFilter | None = None) -> list[Hits]:
        """Lucene's top ``k``; a filter is applied to a search widened until ``k`` admitted hits are found (pyserini
        exposes no filter inside Lucene's collector)."""
        names = [str(i) for i in range(len(queries))]
        texts = dict(zip(names, queries, strict=True))
        depth = k
        if self._searcher is None:
            self._searcher = bm25.open_searcher(self.index)
        while True:
            run = bm25.search(
                self.index, texts, k=depth, convention=self.convention, searcher=self._searcher, progress=False
            )
            hits = {q: [(d, s) for d, s in ranked(run.get(q, {})) if allow is None or allow.admits(d)] for q in names}
            if allow is None or all(len(hits[q]) >= k or len(run.get(q, {})) < depth for q in names):
                break
            depth *= 4
        return [_hits(hits[q][:k]) for q in names]

    @property
    def info(self) -> dict[str, Any]:
        return {"retriever": self.name, "convention": self.convention, "index": str(self.index)}

    @property
    def num_docs(self) -> int:
        return int(self._meta["documents"]) - int(self._meta.get("empty_documents", 0))

    @property
    def longest_id(self) -> int:
        if "longest_id" not in self._meta:
            raise LsrError(f"{self.index}: a BM25 index of an older lsr (no longest_id in {bm25.META_FILE}): rebuild")
        return int(self._meta["longest_id"])

    @property
    def id_fingerprint(self) -> str:
        """Written by ``build_index``; an index of an older lsr has none: unknown, not compared."""
        return self._meta.get("ids", "")


def _read_meta(path: Path) -> dict[str, Any]:
    """The index's ``lsr-index.json``, checked for the fields the retriever reads."""
    meta = path / bm25.META_FILE
    try:
        found = json.loads(meta.read_text())
        convention, documents = found["source"]["convention"], found["documents"]
        valid = convention in bm25.COLLECTIONS and isinstance(documents, int) and documents >= 0
        valid = valid and all(isinstance(found.get(key, 0), int) for key in ("empty_documents", "longest_id"))
        valid = valid and isinstance(ids := found.get("ids", ""), str) and (ids == "" or is_fingerprint(ids))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LsrError(f"{path}: not an lsr BM25 index (no readable {bm25.META_FILE})") from exc
    if not valid:
        raise LsrError(f"{meta}: fields convention, documents, empty_documents or longest_id have wrong values")
    return found


def _hits(found: list[tuple[str, float]]) -> Hits:
    return Hits([doc for doc, _ in found], np.asarray([score for _, score in found], dtype=np.float32))
