"""Seismic (Bruch, Nardini, Rulli and Venturini, SIGIR 2024) through ``pyseismic-lsr``.

How its authors run it (TusKANNy/seismic ``docs/Guidelines.md``): a JSONL collection of string tokens and
values (here term ids and the integer impacts, unchanged; ``{"id", "content", "vector"}`` per line) built
into a ``SeismicIndex`` by ``SeismicIndex.build`` with ``n_postings=3000`` (their range for ~10M documents
is 3000-6000), ``centroid_fraction=0.2`` (they found 0.05-0.2 reasonable), ``min_cluster_size=2``,
``summary_energy=0.5`` (0.4-0.6), ``max_fraction=6`` ("a good choice"), the Python default clustering
(``doc_cut=15``) and, optionally, a kNN graph of ``knn`` neighbours per document (they warn it takes much
longer to build), searched with ``query_cut=10``, ``heap_factor=0.8`` and ``sorted=False``: the
configuration their guide reports at 99% accuracy@10 on MS MARCO. Build settings: those above and ``knn``
(0: no graph; the benchmark builds one index with ``knn=0`` and one with ``knn=KNN``). Search settings:
``query_cut``, ``heap_factor``, ``n_knn`` (graph neighbours explored, at most ``knn``) and ``sorted`` (the first
list's blocks visited best summary first: the library's default, which the guide says "increases efficiency",
while ``False``, the guide's example, "increases effectiveness"). :meth:`Seismic.grid` sweeps ``query_cut`` x
``heap_factor`` (0.7-1.0, the range they recommend; the guide's setting first; deeper cuts at k > 10) x
``sorted`` and, with a graph, ``n_knn``; recall is matched over all of them.

Wheel: the authors recommend compiling for the CPU (``RUSTFLAGS="-C target-cpu=native" pip install
--no-binary :all: pyseismic-lsr``) for maximum speed. That build is not possible on the benchmark machine:
cargo is installed but crates.io, where the crate's Rust dependencies come from, cannot be reached (the
name does not resolve), so the generic manylinux wheel from the package index is what runs; :func:`wheel`
names the installed build so results can state it.

Why the file and not a ``SeismicDataset`` filled from Python: ``add_document`` slows as the dataset grows (43 s
for the packages corpus's first 100,000 documents, longer per document at each step), so at a million documents
the single-threaded loading alone outran a 7-minute build budget on the GPU machine; the same 100,000 documents
take 1.6 s to write and 1 s to read from the file, and the clustering is Seismic's own either way.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from lsr.eval.bench.engines.base import CLUSTER_CUTS, DEEP_CUTS, ENGINES, GUIDE_K, HEAP_FACTORS, Answer, Built, Vectors
from lsr.eval.bench.engines.support import Tunable, answer, disk_bytes, grid, require, term_strings

GUIDELINES = {
    "n_postings": 3000,
    "centroid_fraction": 0.2,
    "min_cluster_size": 2,
    "summary_energy": 0.5,
    "max_fraction": 6.0,
    "doc_cut": 15,
}
"""The build of the authors' guide (docs/Guidelines.md, the MS MARCO example)."""
KNN = 10
"""Neighbours per document of the optional kNN graph."""


def wheel() -> str:
    """The installed pyseismic-lsr wheel's tags (a generic ``manylinux`` one, or one compiled here)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        text = distribution("pyseismic-lsr").read_text("WHEEL") or ""
    except PackageNotFoundError:
        return "not installed"
    tags = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Tag:")]
    return ",".join(tags) or "unknown"


@ENGINES.add
class Seismic(Tunable):
    """Seismic's approximate search: summaries of clustered, pruned posting lists, optionally a kNN graph."""

    system = "seismic"
    exact = False
    parallel_batch = True
    package = "seismic"
    defaults = {"query_cut": 10, "heap_factor": 0.8, "n_knn": 0, "sorted": False}

    def __init__(self, knn: int = 0, **build: Any) -> None:
        unknown = set(build) - set(GUIDELINES)
        if unknown:
            raise ValueError(f"unknown Seismic build settings: {', '.join(sorted(unknown))}")
        super().__init__(knn=knn, **{**GUIDELINES, **build})
        self._index: Any = None

    def grid(self, k: int) -> list[dict[str, Any]]:
        """The guide's setting, then query_cut x heap_factor (0.7-1.0), and n_knn when the index has a graph.

        Beyond the guide's k (:data:`GUIDE_K`) the cuts go on to :data:`DEEP_CUTS`: a deep top k draws on the
        query's lighter terms too (SciFact's SPLADE-tiny queries have a median of 48 terms; at k = 1,000 a cut of
        15 left recall below 0.99 in a trial run), and a sweep that stops short would blame Seismic for it.
        """
        cuts = (*CLUSTER_CUTS, *(DEEP_CUTS if k > GUIDE_K else ()))
        if self.settings["knn"]:
            return [
                {},
                *grid(
                    query_cut=(3, 5, 10),
                    heap_factor=(0.7, 0.8, 0.9),
                    n_knn=(self.settings["knn"],),
                    sorted=(False, True),
                ),
            ]
        return [{}, *grid(query_cut=cuts, heap_factor=HEAP_FACTORS, sorted=(False, True))]

    def configure(self, **search_settings: Any) -> None:
        if search_settings.get("n_knn", 0) > self.settings["knn"]:
            raise ValueError(f"n_knn={search_settings['n_knn']} exceeds the graph's knn={self.settings['knn']}")
        super().configure(**search_settings)

    def build(self, docs: Vectors, workdir: Path, threads: int = 1) -> Built:
        require(self.package, "pyseismic-lsr")
        from seismic import SeismicIndex

        started = time.perf_counter()
        folder = Path(workdir) / "seismic"
        folder.mkdir(parents=True, exist_ok=True)
        collection = folder / "collection.jsonl"
        with open(collection, "w", encoding="utf-8") as out:
            for row in range(len(docs)):
                terms, impacts = docs.row(row)
                vector = dict(zip(term_strings(terms), impacts.astype(np.float32).tolist(), strict=True))
                out.write(json.dumps({"id": row, "content": "", "vector": vector}) + "\n")
        build = {name: value for name, value in self.settings.items() if name != "knn"}
        self._index = SeismicIndex.build(
            str(collection), nknn=self.settings["knn"], num_threads=threads, load_content=False, **build
        )
        collection.unlink()
        seconds = time.perf_counter() - started
        self._index.save(str(folder / "index"))  # searched in memory; saved only to measure its size
        return Built(seconds, disk_bytes(folder))

    @staticmethod
    def _tokens(terms: np.ndarray) -> np.ndarray:
        from seismic import get_seismic_string

        return np.array(term_strings(terms), dtype=get_seismic_string())

    def search(self, terms: np.ndarray, weights: np.ndarray, k: int) -> Answer:
        found = self._index.search("q", self._tokens(terms), weights.astype(np.float32), k=k, **self.search_settings)
        return answer([int(doc) for _, _, doc in found], [score for _, score, _ in found])

    def search_batch(self, queries: Vectors, k: int, threads: int) -> list[Answer]:
        """Seismic's own parallel batch search (Rayon threads over queries)."""
        rows = [queries.row(i) for i in range(len(queries))]
        found = self._index.batch_search(
            self._tokens(np.arange(len(rows))),
            [self._tokens(terms) for terms, _ in rows],
            [weights.astype(np.float32) for _, weights in rows],
            k,
            num_threads=threads,
            **self.search_settings,
        )
        return [answer([int(doc) for _, _, doc in hits], [score for _, score, _ in hits]) for hits in found]

    def close(self) -> None:
        self._index = None


@ENGINES.add
class SeismicKnn(Seismic):
    """Seismic with its kNN graph of :data:`KNN` neighbours per document, the guide's optional refinement, under
    its own name so one run compares Seismic with and without the graph (``--engine seismic --engine seismic-knn``)."""

    system = "seismic-knn"

    def __init__(self, **build: Any) -> None:
        super().__init__(knn=KNN, **build)
