"""Batches for training: each query with its positive, sampled hard negatives and the teachers' scores.

A prepared folder (``lsr train prepare``) is a BEIR dataset (its corpus, and any
held-out dev queries) plus ``examples.jsonl.gz``; several folders can be mixed, and
their documents become in-batch negatives for each other's queries. A query's
group is ``[positive, negative, ...]`` (``group_size`` documents): the positive is
drawn from its positives, the negatives from the top ``negative_depth`` of its
guarded hard negatives, topped up with random corpus documents when it has too few.
Teacher scores follow each document; a document the teachers did not score gets the
normalised minimum, 0.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from lsr.data.beir import BeirDataset
from lsr.encode.corpus import document_text
from lsr.errors import LsrError
from lsr.train.examples import Example, read_examples

EXAMPLES_FILE = "examples.jsonl.gz"


@dataclass
class Batch:
    """``queries[i]``'s group is ``documents[i * n : (i + 1) * n]``, positive first; ``teacher`` is ``[B, n]``."""

    queries: list[str]
    documents: list[str]
    teacher: torch.Tensor


class TrainingSet:
    """Examples and document texts of one or more prepared folders."""

    def __init__(self, folders: Sequence[str | Path], group_size: int = 8, negative_depth: int = 30) -> None:
        if group_size < 1:
            raise LsrError("the group size must be at least 1 (the positive)")
        self.group_size = group_size
        self.negative_depth = negative_depth
        self.corpora: list[dict[str, str]] = []
        self.items: list[tuple[int, Example, dict[str, float]]] = []
        for number, folder in enumerate(folders):
            corpus = {doc.id: document_text(doc) for doc in BeirDataset(folder).corpus()}
            examples = read_examples(Path(folder) / EXAMPLES_FILE)
            for example in examples:
                missing = [d for d in example.positives + example.negatives if d not in corpus]
                if missing:
                    raise LsrError(f"{folder}: query {example.qid!r} names document {missing[0]!r}, not in the corpus")
            self.corpora.append(corpus)
            self.items.extend(
                (number, example, dict(zip(example.candidates, example.scores, strict=True))) for example in examples
            )
        self._ids = [list(corpus) for corpus in self.corpora]

    def __len__(self) -> int:
        return len(self.items)

    def group(
        self, number: int, example: Example, scores: dict[str, float], rng: random.Random
    ) -> tuple[list[str], list[float]]:
        """Texts and teacher scores (``scores``: the example's, by document) of one query's group."""
        positive = rng.choice(example.positives)
        pool = example.negatives[: self.negative_depth]
        negatives = rng.sample(pool, min(len(pool), self.group_size - 1))
        taken = {positive, *negatives}
        while len(negatives) < self.group_size - 1:
            doc = rng.choice(self._ids[number])
            if doc not in taken:
                negatives.append(doc)
                taken.add(doc)
        docs = [positive, *negatives]
        return [self.corpora[number][d] for d in docs], [scores.get(d, 0.0) for d in docs]

    def batches(self, batch_size: int, seed: int) -> Iterator[Batch]:
        """Endless shuffled batches (a new permutation per epoch); the stream is fixed by ``seed``."""
        rng = random.Random(seed)
        while True:
            order = list(range(len(self.items)))
            rng.shuffle(order)
            for start in range(0, len(order) - batch_size + 1, batch_size):
                queries, documents, teacher = [], [], []
                for index in order[start : start + batch_size]:
                    number, example, known = self.items[index]
                    texts, scores = self.group(number, example, known, rng)
                    queries.append(example.query)
                    documents.extend(texts)
                    teacher.append(scores)
                yield Batch(queries, documents, torch.tensor(teacher, dtype=torch.float32))
            if len(order) < batch_size:
                raise LsrError(f"only {len(order)} training queries: fewer than one batch of {batch_size}")
