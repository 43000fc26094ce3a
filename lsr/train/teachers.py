"""The teacher ensemble: several retrievers of different kinds score each query's candidates.

Teachers are retrievers by their registered name (:mod:`lsr.indexing.retrieval`): ``bm25`` (Lucene), ``dense`` (a
sentence-transformers bi-encoder, all-MiniLM-L6-v2 by default, searched exactly) and ``sparse`` (a SPLADE model),
or any other registered one. Each retrieves its top ``depth`` documents for every query through the same cached
retrievers ``lsr eval run`` opens (so a corpus is encoded once for evaluation and teaching).

A teacher can also be ``run=FILE``, a TREC run made earlier or elsewhere: it lets teachers live on different
machines (BM25 where Java runs, a dense model where a GPU encodes a million documents), and it lets a prepared
folder be re-weighted, since ``lsr train prepare`` keeps every teacher's run in it.

At a million documents a dense or sparse teacher's search costs a full encoding of the corpus (most of an hour on
two CPU cores: all-MiniLM-L6-v2 encodes about 400 package summaries a second there). With ``rerank`` it scores only the
documents the first-stage teachers (BM25 and run teachers) found for each query, as a cross-encoder teacher
would: the candidates the ensemble keeps come from those teachers' top documents anyway, and the reranking teacher
still reorders them. What it loses is the documents only it would have found.

A candidate a teacher did not retrieve gets that teacher's lowest retrieved score, an upper bound on what it would
have scored. Scores of different teachers live on different scales (BM25 ~ 10-40, cosine < 1), so
:func:`ensemble_scores` min-max normalises each teacher per query before the weighted sum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from tqdm import tqdm

from lsr.data.beir import BeirDataset
from lsr.defaults import DEFAULT_DENSE
from lsr.encode.corpus import document_text
from lsr.errors import LsrError
from lsr.indexing.dense.base import normalise
from lsr.indexing.dense.settings import DenseSettings
from lsr.indexing.retrieval import Corpus, RetrieverOptions, check_names, open_retriever
from lsr.models import DenseEncoder, load_encoder
from lsr.models.base import document_batch_size
from lsr.runs import Run, ranked, read_run, truncate
from lsr.train.losses import combine_teachers


@dataclass(frozen=True)
class Teacher:
    """One teacher: the retriever's name, the model it runs (none for BM25) and its weight in the ensemble."""

    retriever: str
    model: str | None = None
    weight: float = 1.0

    @property
    def name(self) -> str:
        return self.retriever if self.model is None else f"{self.retriever}:{self.model}"

    @property
    def file_name(self) -> str:
        """The teacher's run in a prepared folder: ``TEACHERS_DIR/<retriever>[-<model's last part>].trec``."""
        tail = Path(self.model).name.removesuffix(".gz").removesuffix(".trec") if self.model else ""
        return f"{self.retriever}-{tail}.trec" if tail else f"{self.retriever}.trec"


RUN_TEACHER = "run"  # a teacher read from a TREC run file, not run here
TEACHERS_DIR = "teachers"  # where a prepared folder keeps each teacher's run
_NEEDS = {"sparse": "model, e.g. sparse=MODEL", RUN_TEACHER: "TREC file, e.g. run=FILE.trec"}


def parse_teachers(spec: str) -> list[Teacher]:
    """``"bm25,dense,sparse=PATH"`` with optional ``@weight`` per teacher, e.g. ``"bm25@0.5,dense"``.

    ``dense`` alone means the embedded all-MiniLM-L6-v2; ``sparse`` needs its model, ``run`` its TREC file.
    """
    teachers = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        head, _, weight = part.partition("@")
        name, _, model = head.partition("=")
        check_names([name], f"teacher in {part!r}:", also=[RUN_TEACHER])
        if name == "bm25" and model:
            raise LsrError(f"teacher {part!r}: BM25 takes no model")
        if name in _NEEDS and not model:
            raise LsrError(f"teacher {part!r}: a {name} teacher needs its {_NEEDS[name]}")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise LsrError(f"teacher {part!r}: weight {weight!r} is not a number") from None
        if value <= 0:
            raise LsrError(f"teacher {part!r}: the weight must be positive")
        teachers.append(Teacher(name, model or (DEFAULT_DENSE if name == "dense" else None), value))
    if not teachers:
        raise LsrError("no teachers given")
    return teachers


def _read_teacher_run(teacher: Teacher, queries: dict[str, str], depth: int) -> Run:
    """A run teacher's hits for ``queries``, cut to ``depth``. A query the file lacks is one the teacher found
    nothing for (TREC runs cannot say so otherwise), unless most queries are lacking: then the run was made for
    other queries, and training on it would silently train on the other teachers alone."""
    path = Path(teacher.model or "")
    if not path.is_file():
        raise LsrError(f"teacher run={path}: no such file")
    run = read_run(path)
    missing = [qid for qid in queries if not run.get(qid)]
    if len(missing) * 2 > len(queries):
        raise LsrError(
            f"teacher run={path}: {len(missing):,} of {len(queries):,} training queries have no hits there "
            f"(first: {missing[0]!r}); make the run for the same queries (`lsr train prepare` keeps its teachers' "
            f"runs in {TEACHERS_DIR}/)"
        )
    return truncate({qid: run.get(qid, {}) for qid in queries}, depth)


FIRST_STAGE = ("bm25", RUN_TEACHER)  # teachers whose candidates a reranking teacher scores
RERANKERS = ("dense", "sparse")  # teachers that score candidates under ``rerank`` (any other one searches)


def _candidates(runs: Sequence[Run], queries: Mapping[str, str], rerank: int) -> dict[str, list[str]]:
    """Each query's union of the first-stage runs' top ``rerank`` documents, in first-seen order."""
    pools: dict[str, list[str]] = {}
    for qid in queries:
        seen: dict[str, None] = {}
        for run in runs:
            seen.update(dict.fromkeys(doc for doc, _ in ranked(run.get(qid, {}))[:rerank]))
        pools[qid] = list(seen)
    return pools


def _rerank(teacher: Teacher, dataset: BeirDataset, queries: Mapping[str, str], pools: dict[str, list[str]]) -> Run:
    """The teacher's model scores each query's candidates: the dot product of its query and document vectors
    (cosine for a dense model that compares by cosine), every candidate document encoded once."""
    encoder = load_encoder(teacher.model or DEFAULT_DENSE)
    wanted = {doc for pool in pools.values() for doc in pool}
    docs = [doc for doc in dataset.corpus() if doc.id in wanted]
    row = {doc.id: i for i, doc in enumerate(docs)}
    batch = document_batch_size(encoder)
    doc_vectors = encoder.encode_document([document_text(d) for d in docs], batch_size=batch, show_progress=True)
    query_vectors = encoder.encode_query([queries[qid] for qid in pools], batch_size=batch)
    if isinstance(encoder, DenseEncoder) and encoder.similarity == "cosine":
        doc_vectors, query_vectors = normalise(doc_vectors), normalise(query_vectors)
    run: Run = {}
    for i, (qid, pool) in enumerate(tqdm(pools.items(), desc=f"reranking with {teacher.name}", unit="query")):
        rows = [row[doc] for doc in pool if doc in row]
        scores = doc_vectors[rows] @ query_vectors[i].T
        scores = (scores.toarray() if sp.issparse(scores) else np.asarray(scores)).ravel()
        run[qid] = {docs[r].id: float(s) for r, s in zip(rows, scores, strict=True)}
    return run


def teacher_runs(
    dataset: BeirDataset,
    queries: dict[str, str],
    teachers: Sequence[Teacher],
    cache: Path,
    depth: int,
    rerank: int | None = None,
) -> list[Run]:
    """Each teacher's top-``depth`` run over ``queries`` (exact search for a dense teacher); with ``rerank``, the
    dense and sparse teachers score the first-stage teachers' top ``rerank`` documents instead of searching (other
    retrievers, a user's registered one, still search)."""
    if rerank and all(t.retriever not in FIRST_STAGE for t in teachers):
        raise LsrError("--rerank: no first-stage teacher (bm25 or run=FILE) to take the candidates from")
    corpus = Corpus(dataset, cache)
    runs: dict[int, Run] = {}
    for i, teacher in enumerate(teachers):
        if teacher.retriever == RUN_TEACHER:
            runs[i] = _read_teacher_run(teacher, queries, depth)
        elif not rerank or teacher.retriever not in RERANKERS:
            model = teacher.model or ""
            options = RetrieverOptions(model=model or None, dense_model=model, dense=DenseSettings("exact"))
            runs[i] = open_retriever(teacher.retriever, corpus, options).retrieve(queries, depth)
    if rerank:
        pools = _candidates(list(runs.values()), queries, rerank)
        for i, teacher in enumerate(teachers):
            if i not in runs:
                runs[i] = truncate(_rerank(teacher, dataset, queries, pools), depth)
    return [runs[i] for i in range(len(teachers))]


def ensemble_scores(
    hits: Sequence[dict[str, float]], candidates: Sequence[str], weights: Sequence[float]
) -> list[float]:
    """The combined score of each candidate: every teacher's scores min-max normalised over the candidates,
    then summed with ``weights`` (normalised to sum 1)."""
    rows = []
    for teacher_hits in hits:
        floor = min(teacher_hits.values(), default=0.0)
        rows.append(torch.tensor([[teacher_hits.get(doc, floor) for doc in candidates]], dtype=torch.float64))
    total = sum(weights)
    combined = combine_teachers(rows, weights=[w / total for w in weights])
    return combined[0].tolist()
