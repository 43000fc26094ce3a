"""Pseudo-queries made from a corpus itself, for adapting a model to a corpus that has no labelled queries.

Two kinds, as in label-free retrieval training (Contriever's independent cropping,
and title-as-query as in the BEIR/GPL literature): a document's title, and short
spans cropped from one of its sentences. Each pseudo-query remembers the document
it came from; the teacher ensemble (not that origin) decides what is relevant, so a
span that many documents share does not teach a wrong label.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from lsr.data.beir import Document

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
PSEUDO_SPLIT = "pseudo"  # the split of a prepared folder that holds pseudo-queries held out of training


@dataclass(frozen=True)
class PseudoQuery:
    """A query text and the document it was cut from."""

    qid: str
    text: str
    source: str


def _crop(sentence: str, rng: random.Random, min_words: int, max_words: int, max_share: float = 1.0) -> str:
    """A span of ``min_words`` to ``max_words`` words, at most ``max_share`` of the sentence (never under
    ``min_words``); a sentence within that limit is kept whole."""
    words = sentence.split()
    longest = min(max_words, max(min_words, int(len(words) * max_share)))
    if len(words) <= longest:
        return " ".join(words)
    width = rng.randint(min(min_words, longest), longest)
    start = rng.randint(0, len(words) - width)
    return " ".join(words[start : start + width])


def pseudo_queries(
    documents: Iterable[Document],
    per_document: int = 3,
    min_words: int = 4,
    max_words: int = 16,
    seed: int = 13,
    max_share: float = 1.0,
) -> Iterator[PseudoQuery]:
    """Up to ``per_document`` queries per document: its title (if it has one of ``min_words`` words or more),
    then crops of distinct sentences chosen at random; texts shorter than ``min_words`` words are skipped.

    ``max_share`` below 1 makes harder queries for corpora of one-line documents (package summaries, titles):
    there a whole sentence fits ``max_words``, so every query would repeat its document word for word, which
    any lexical teacher finds at rank 1 and which teaches the student nothing about partial matches. A crop
    then keeps at most that share of the sentence's words (never fewer than ``min_words``).
    """
    if not 0.0 < max_share <= 1.0:
        raise ValueError(f"max_share={max_share}: a share of a sentence's words, in (0, 1]")
    rng = random.Random(seed)
    for doc in documents:
        texts: list[str] = []
        if len(doc.title.split()) >= min_words:
            texts.append(doc.title.strip())
        sentences = [s for s in _SENTENCE.split(doc.text) if len(s.split()) >= min_words]
        rng.shuffle(sentences)
        for sentence in sentences:
            if len(texts) >= per_document:
                break
            texts.append(_crop(sentence, rng, min_words, max_words, max_share))
        for number, text in enumerate(texts[:per_document]):
            yield PseudoQuery(f"{doc.id}#pq{number}", text, doc.id)
