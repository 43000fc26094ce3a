"""One contract for everything that answers queries, and one registry of retrievers by name.

A **retriever** turns query texts into ranked document ids. It does so in two steps so that a server can batch
and filter between them: :meth:`Retriever.encode` turns texts into whatever its index searches (a sparse or dense
matrix; the texts themselves for BM25) and :meth:`Retriever.search` returns each query's :class:`Hits` — string
ids and scores, best first, never padded. :meth:`Retriever.retrieve` chains the two into a :data:`~lsr.runs.Run`.

Retrievers are opened by name from the registry (:func:`open_retriever`), either over a BEIR corpus
(:class:`Corpus`: the corpus is encoded and indexed into the cache once, as ``lsr eval run`` and training
teachers need) or over an index folder already built (what ``lsr serve`` is given). ``lsr eval run``, ``lsr serve``,
the training teachers and the Milvus path all open retrievers this way, and :class:`Hybrid` fuses any number of
them. Adding a retriever is one class with :func:`register` on it; another package offers its retrievers through
the ``lsr.retrievers`` entry-point group (:data:`ENTRY_POINTS`), loaded by name when asked for.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
from lsr.indexing.dense.settings import DenseSettings
from lsr.indexing.fingerprint import UNKNOWN, check_same_documents
from lsr.indexing.hits import DocFilter, Hits
from lsr.indexing.sparse.settings import Pruning

from lsr.data.beir import BeirDataset
from lsr.defaults import DEFAULT_DENSE
from lsr.errors import LsrError
from lsr.runs import Run, ranked


@dataclass
class Corpus:
    """A BEIR corpus to retrieve from, with the cache its encodings and indexes are kept in."""

    dataset: BeirDataset
    cache: Path


@dataclass
class RetrieverOptions:
    """The knobs retrievers take; each retriever reads those it has (a sparse one ``model`` and ``pruning``, a dense
    one ``dense_model`` and ``dense``, BM25 ``multifield``) and ignores the rest."""

    model: str | None = None
    dense_model: str = DEFAULT_DENSE
    dense: DenseSettings = field(default_factory=DenseSettings)
    multifield: bool = False
    device: str = "auto"
    gpu: bool = False
    threads: int | None = None
    """CPU threads of one search (default: all); ``lsr serve`` keeps one for its express lane."""
    pruning: Pruning = field(default_factory=Pruning)
    """How a sparse index is searched: exact by default, or approximate (``lsr serve --heap-factor``)."""
    encoding: dict[str, Any] = field(default_factory=dict)
    """A sparse model's encoding settings beyond its own: ``backend``, ``max_length``, ``stride``, ``window_pooling``
    (``load_encoder`` arguments); they change the vectors, so they are part of the cached encodings' key."""


class Retriever(ABC):
    """Texts to ranked documents; see the module docstring for the two steps and how retrievers are opened."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_corpus(cls, corpus: Corpus, options: RetrieverOptions) -> Retriever:
        """Index (or reuse the cached index of) a corpus and open it."""

    @classmethod
    def from_index(cls, path: Path, options: RetrieverOptions) -> Retriever:
        """Open an index folder built before (``lsr serve``); retrievers without one of their own refuse."""
        raise LsrError(f"the {cls.name} retriever cannot be opened from an index folder")

    def encode(self, texts: Sequence[str]) -> Any:
        """What :meth:`search` takes for these texts; retrievers that search text directly keep the texts."""
        return list(texts)

    @abstractmethod
    def search(self, queries: Any, k: int, allow: DocFilter | None = None) -> list[Hits]:
        """The top ``k`` documents of each encoded query that ``allow`` admits."""

    @property
    def info(self) -> dict[str, Any]:
        """What to record about this retriever in a run's ``config.json``."""
        return {"retriever": self.name}

    @property
    def num_docs(self) -> int:
        """How many documents it searches. ``lsr serve`` needs this and :attr:`longest_id` to bound a reply's size
        before any work; a retriever that does not say cannot be served."""
        raise LsrError(f"the {self.name} retriever does not say how many documents it holds (num_docs)")

    @property
    def longest_id(self) -> int:
        """Bytes (UTF-8) of the longest document id it may return; see :attr:`num_docs`."""
        raise LsrError(f"the {self.name} retriever does not say how long its document ids are (longest_id)")

    @property
    def corpus(self) -> str:
        """Where its documents came from, as its index recorded it (a BEIR folder or zip, or a corpus file), or ``""``
        when unknown: ``lsr serve`` reports it so that ``lsr query`` can show the documents' titles."""
        return ""

    @property
    def id_fingerprint(self) -> str:
        """The set of document ids it holds, as :func:`lsr.indexing.fingerprint.blob_fingerprint` writes it, or
        ``""`` when it cannot tell: a hybrid refuses legs whose fingerprints differ (they hold different corpora)."""
        return UNKNOWN

    def express(self) -> Retriever | None:
        """A second retriever sharing this one's index and encoder but with a single-threaded searcher of its own,
        for a server's small searches to run beside large ones; None (the default) where there is no such thing."""
        return None

    def retrieve(self, queries: Mapping[str, str], k: int, allow: DocFilter | None = None) -> Run:
        ids = list(queries)
        hits = self.search(self.encode([queries[q] for q in ids]), k, allow) if ids else []
        return {qid: found.as_dict() for qid, found in zip(ids, hits, strict=True)}


R = TypeVar("R", bound=type[Retriever])
_REGISTRY: dict[str, type[Retriever]] = {}
_BUILT_IN = {
    "bm25": "lsr.indexing.lucene.retriever",
    "sparse": "lsr.indexing.sparse.retriever",
    "dense": "lsr.indexing.dense.retriever",
}
"""Where the built-in retrievers live; imported on first use so that the CLI starts without torch or the JVM."""
ENTRY_POINTS = "lsr.retrievers"
"""The entry-point group through which an installed package offers retrievers: ``NAME = "module"`` (or
``"module:Class"``); the module is imported only when a retriever of that name is asked for, and must register it."""


def _plugins() -> dict[str, Any]:
    """The retrievers other installed packages offer, by name (nothing imported yet)."""
    from importlib.metadata import entry_points

    return {point.name: point for point in entry_points(group=ENTRY_POINTS)}


def register(cls: R) -> R:
    """Make a retriever class available by its ``name`` to ``lsr eval run``, ``lsr serve``, teachers and hybrids."""
    if cls.name == Hybrid.name:
        raise LsrError(f"{Hybrid.name!r} is the fusion of other retrievers; choose another name")
    _REGISTRY[cls.name] = cls
    return cls


def retriever_names() -> list[str]:
    """Every registered retriever name (the built-ins first, then those registered or offered by installed
    packages), without ``hybrid``."""
    return list(dict.fromkeys([*_BUILT_IN, *_REGISTRY, *_plugins()]))


def retriever_class(name: str) -> type[Retriever]:
    """The class registered as ``name``; an unknown name is an error naming it and what exists."""
    if name not in _REGISTRY and name in _BUILT_IN:
        importlib.import_module(_BUILT_IN[name])
    if name not in _REGISTRY and name in (plugins := _plugins()):
        offered = plugins[name].load()
        if isinstance(offered, type) and issubclass(offered, Retriever) and offered.name not in _REGISTRY:
            register(offered)
    if name not in _REGISTRY:
        raise LsrError(f"unknown retriever {name!r}; choose one of {', '.join([*retriever_names(), Hybrid.name])}")
    return _REGISTRY[name]


def check_names(names: Sequence[str], what: str = "retriever", also: Sequence[str] = ()) -> None:
    """Fail fast, before any model or index is loaded, on a name that is not registered (or in ``also``)."""
    for name in names:
        if name not in _REGISTRY and name not in _BUILT_IN and name not in also and name not in _plugins():
            raise LsrError(f"unknown {what} {name!r}; choose one of {', '.join([*retriever_names(), *also])}")


def open_retriever(name: str, source: Corpus | Path, options: RetrieverOptions | None = None) -> Retriever:
    """The retriever ``name`` over a corpus (indexed into the cache) or over an index folder."""
    cls = retriever_class(name)
    options = options or RetrieverOptions()
    return cls.from_corpus(source, options) if isinstance(source, Corpus) else cls.from_index(source, options)


class Hybrid(Retriever):
    """Any number of retrievers fused into one ranking (:mod:`lsr.indexing.fusion`: RRF or normalised weighted sums).

    Each retriever returns ``depth`` hits (at least ``k``); ``prepare`` is applied to each retriever's run before
    fusion (``lsr eval run`` drops a document whose id is the query's, as BEIR does).
    """

    name = "hybrid"

    def __init__(
        self,
        retrievers: Sequence[Retriever],
        fusion: str = "rrf",
        weights: Sequence[float] | None = None,
        depth: int = 0,
        prepare: Callable[[Run], Run] | None = None,
    ) -> None:
        from lsr.indexing.fusion import METHODS

        if len(retrievers) < 2 or len({r.name for r in retrievers}) != len(retrievers):
            raise LsrError("a hybrid needs two or more different retrievers")
        if fusion not in METHODS:
            raise LsrError(f"unknown fusion {fusion!r}; choose one of {', '.join(METHODS)}")
        if weights is not None and len(weights) != len(retrievers):
            raise LsrError(f"{len(weights)} weights for {len(retrievers)} retrievers")
        check_same_documents([(r.name, r.id_fingerprint) for r in retrievers])
        self.retrievers = list(retrievers)
        self.fusion = fusion
        self.weights = tuple(weights) if weights is not None else None
        self.depth = depth
        self.prepare = prepare or (lambda run: run)

    @classmethod
    def from_corpus(cls, corpus: Corpus, options: RetrieverOptions) -> Retriever:
        raise LsrError("open each retriever of a hybrid by name and pass them to Hybrid")

    def encode(self, texts: Sequence[str]) -> Any:
        return [retriever.encode(texts) for retriever in self.retrievers]

    def runs(self, queries: Mapping[str, str], k: int, allow: DocFilter | None = None) -> list[Run]:
        """Each retriever's prepared run at the hybrid's depth: what :meth:`fuse` combines, and weights are tuned on."""
        depth = max(k, self.depth)
        return [self.prepare(retriever.retrieve(queries, depth, allow)) for retriever in self.retrievers]

    def fuse(self, runs: Sequence[Run], k: int) -> Run:
        from lsr.indexing.fusion import fuse

        return fuse(runs, self.fusion, self.weights, depth=k)

    def search(self, queries: Any, k: int, allow: DocFilter | None = None) -> list[Hits]:
        depth = max(k, self.depth)
        return self.combine([r.search(q, depth, allow) for r, q in zip(self.retrievers, queries, strict=True)], k)

    def combine(self, per_retriever: Sequence[Sequence[Hits]], k: int) -> list[Hits]:
        """The fused top ``k`` of each query, given each retriever's hits of the same queries (in retriever order,
        each searched ``max(k, depth)`` deep): how :meth:`search` fuses, and how ``lsr serve`` fuses the hits its
        retrievers' own batchers found."""
        runs = [self.prepare({str(i): h.as_dict() for i, h in enumerate(hits)}) for hits in per_retriever]
        fused = self.fuse(runs, k)
        return [_hits(fused.get(str(i), {})) for i in range(len(per_retriever[0]))]

    def retrieve(self, queries: Mapping[str, str], k: int, allow: DocFilter | None = None) -> Run:
        return self.fuse(self.runs(queries, k, allow), k)

    @property
    def info(self) -> dict[str, Any]:
        return {
            "retriever": self.name,
            "fusion": self.fusion,
            "weights": list(self.weights) if self.weights is not None else [1.0] * len(self.retrievers),
            "legs": {r.name: r.info for r in self.retrievers},
        }


def _hits(found: Mapping[str, float]) -> Hits:
    order = ranked(found)
    return Hits([doc for doc, _ in order], np.asarray([score for _, score in order], dtype=np.float32))
