"""A small retriever added the way a user adds one: one class and ``@register``. The tests use it through
``lsr eval run``, hybrids and ``lsr serve`` (which loads it with ``--import retriever_support``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from lsr.indexing.retrieval import Corpus, DocFilter, Hits, Retriever, RetrieverOptions, register

from lsr.data.beir import BeirDataset


@register
class WordOverlap(Retriever):
    """A document scores the number of query words it contains; its "index" is a BEIR corpus folder."""

    name = "overlap"

    def __init__(self, documents: dict[str, set[str]]) -> None:
        self.documents = documents

    @classmethod
    def from_corpus(cls, corpus: Corpus, options: RetrieverOptions) -> WordOverlap:
        return cls({doc.id: set(f"{doc.title} {doc.text}".lower().split()) for doc in corpus.dataset.corpus()})

    @classmethod
    def from_index(cls, path: Path, options: RetrieverOptions) -> WordOverlap:
        return cls.from_corpus(Corpus(BeirDataset(path), path), options)

    @property
    def num_docs(self) -> int:
        return len(self.documents)

    @property
    def longest_id(self) -> int:
        return max((len(doc.encode()) for doc in self.documents), default=0)

    def encode(self, texts: Sequence[str]) -> list[set[str]]:
        return [set(text.lower().split()) for text in texts]

    def search(self, queries: list[set[str]], k: int, allow: DocFilter | None = None) -> list[Hits]:
        found = []
        admitted = {doc: terms for doc, terms in self.documents.items() if allow is None or allow.admits(doc)}
        for words in queries:
            scored = sorted(((len(words & terms), doc) for doc, terms in admitted.items()), key=lambda p: (-p[0], p[1]))
            top = [(doc, score) for score, doc in scored if score > 0][:k]
            found.append(Hits([d for d, _ in top], np.asarray([s for _, s in top], dtype=np.float32)))
        return found


class Words(WordOverlap):
    """The same retriever, not registered here: offered by a (pretend) installed package's entry point."""

    name = "words"
