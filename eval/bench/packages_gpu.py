"""The packages corpus (1,038,337 documents) encoded, indexed and measured on the GPU machine in one run.

Why a program of its own: the GPU machine takes only the repository plus a few
compressed files and returns a few small files, and it lacks typer, pytrec_eval and
Java. So it gets the corpus as compressed columns (:func:`write_columns`, run here),
rebuilds the BEIR folder, and in one command

* ``shipped``: encodes every document with the shipped inference-free model, builds the
  index, writes the top-100 runs of the dev and test queries (scored later, on the CPU
  machine, with trec_eval's measures) and times exact search: GPU batch and batch-1,
  CPU with all cores and with one thread, on the same index;
* ``splade-tiny``: encodes every document with SPLADE-tiny (bf16 on the GPU), packs the
  vectors (:mod:`lsr.eval.bench.transport`) for the CPU engines' comparison, and times
  the same searches on that index.

Plain ``argparse`` and no imports beyond torch, numba, numpy and scipy, so it runs on a
bare GPU image: ``python -m lsr.eval.bench.packages_gpu --help``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import lzma
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from lsr.eval.bench.output import save_json

QUERY_SPLITS = ("dev", "test")


def write_columns(beir: Path, out: Path) -> None:
    """The corpus as three LZMA columns (source, title, text) plus queries and qrels: what travels to the GPU."""
    out.mkdir(parents=True, exist_ok=True)
    sources, titles, texts = [], [], []
    with gzip.open(beir / "corpus.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            source, name = doc["_id"].split("/", 1)
            if name != doc["title"] or any(c in doc["title"] + doc["text"] for c in "\n\r"):
                raise ValueError(f"{doc['_id']}: id, title or text do not fit the column form")
            sources.append(source)
            titles.append(doc["title"])
            texts.append(doc["text"])
    for name, column in (("source", sources), ("title", titles), ("text", texts)):
        with lzma.open(out / f"{name}.xz", "wt", encoding="utf-8", newline="\n", preset=9) as handle:
            handle.write("\n".join(column) + "\n")
    with open(beir / "queries.jsonl", "rb") as src, gzip.open(out / "queries.jsonl.gz", "wb", 9) as dst:
        shutil.copyfileobj(src, dst)
    for split in QUERY_SPLITS:
        shutil.copy(beir / "qrels" / f"{split}.tsv", out / f"{split}.tsv")


def read_columns(columns: Path, beir: Path) -> None:
    """Rebuild the BEIR folder from :func:`write_columns`' files (a column may come in parts, each carried by its
    own call when one call cannot carry them all)."""

    def lines(name: str) -> list[str]:
        """One column, from ``NAME.xz`` or its parts ``NAME-a.xz``, ``NAME-b.gz``, ... in order (gzip where xz
        would take too long to compress on a busy machine)."""
        out: list[str] = []
        for part in sorted(columns.glob(f"{name}.xz")) + sorted(columns.glob(f"{name}-*.[xg]z")):
            opener = gzip.open if part.suffix == ".gz" else lzma.open
            with opener(part, "rt", encoding="utf-8", newline="\n") as handle:
                out += handle.read().split("\n")[:-1]
        return out

    sources, titles, texts = lines("source"), lines("title"), lines("text")
    if not len(sources) == len(titles) == len(texts):
        raise ValueError(f"columns disagree: {len(sources)}, {len(titles)}, {len(texts)} lines")
    (beir / "qrels").mkdir(parents=True, exist_ok=True)
    with open(beir / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for source, title, text in zip(sources, titles, texts, strict=True):
            handle.write(json.dumps({"_id": f"{source}/{title}", "title": title, "text": text}) + "\n")
    shutil.copy(columns / "queries.jsonl.gz", beir / "queries.jsonl.gz")
    for split in QUERY_SPLITS:
        shutil.copy(columns / f"{split}.tsv", beir / "qrels" / f"{split}.tsv")


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"mean_ms": float(ms.mean()), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def _batch_1(searcher: Any, sample: sp.csr_matrix, k: int) -> dict[str, float]:
    """Latency of one query at a time, after 32 untimed ones (compilation, caches)."""
    for row in range(min(32, sample.shape[0])):
        searcher.search(sample[row], k=k)
    times = []
    for row in range(sample.shape[0]):
        started = time.perf_counter()
        searcher.search(sample[row], k=k)
        times.append(time.perf_counter() - started)
    return _percentiles(times)


def unique_posting_bytes(index: Any, queries: sp.csr_matrix) -> int:
    """Bytes a batch must read at least once: every posting of every distinct query term (doc id + weight code)."""
    terms = np.unique(queries.indices)
    lengths = np.diff(np.asarray(index.offsets))[terms]
    per_posting = index.docs.dtype.itemsize + index.codes.dtype.itemsize
    return int(lengths.sum()) * per_posting


def time_searches(index: Any, queries: sp.csr_matrix, k: int, single: int) -> dict[str, Any]:
    """Exact search on one index: GPU batch and batch-1, CPU all cores and one thread; the same queries for each."""
    import numba
    from lsr.indexing.sparse.search import Searcher

    out: dict[str, Any] = {"queries": queries.shape[0], "k": k, "cpu_threads": numba.config.NUMBA_NUM_THREADS}
    out["unique_posting_bytes_per_batch"] = unique_posting_bytes(index, queries)
    out["postings_scored_per_batch"] = int(np.diff(np.asarray(index.offsets))[queries.indices].sum())
    cpu = cpu_searcher(index)
    cpu.search(queries[:64], k=k)
    started = time.perf_counter()
    cpu.search(queries, k=k)
    out["cpu_all_threads_batch_s"] = time.perf_counter() - started
    one = Searcher(index, threads=1)
    single = min(single, queries.shape[0])
    sample = queries[:single]
    out["cpu_1_thread"] = _batch_1(one, sample, k)
    gpu = gpu_searcher(index)
    if gpu is None:
        return out
    gpu.search(queries[:256], k=k)
    started = time.perf_counter()
    gpu.search(queries, k=k)
    out["gpu_batch_s"] = time.perf_counter() - started
    out["gpu_batch_1"] = _batch_1(gpu, sample, k)
    out["gpu_postings_per_s"] = out["postings_scored_per_batch"] / out["gpu_batch_s"]
    out["device"] = _device_name()
    return out


def gpu_searcher(index: Any) -> Any:
    """The GPU kernel over ``index``, or None where no GPU is usable (the CPU rows are still measured)."""
    try:
        from lsr.indexing.sparse.gpu import GpuSearcher

        return GpuSearcher(index)
    except Exception as exc:  # noqa: BLE001 - numba raises several types when no driver or device is present
        print(f"no GPU search: {exc!r}")
        return None


def cpu_searcher(index: Any) -> Any:
    """lsr's CPU kernel with all cores."""
    from lsr.indexing.sparse.search import Searcher

    return Searcher(index)


def _device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def write_runs(index: Any, beir: Path, encoder: Any, out: Path, depth: int) -> dict[str, Any]:
    """Top-``depth`` TREC runs of the dev and test queries (LZMA), to be scored on the CPU machine."""
    from lsr.data.beir import BeirDataset

    dataset = BeirDataset(beir)
    searcher = gpu_searcher(index) or cpu_searcher(index)
    info = {}
    for split in QUERY_SPLITS:
        queries, _ = dataset.split(split, check_docs=False)
        ids = list(queries)
        docs, scores, sizes = searcher.search(encoder.encode_query([queries[q] for q in ids]), k=depth)
        with lzma.open(out / f"run-{split}.trec.xz", "wt", encoding="utf-8", preset=6) as handle:
            for row, qid in enumerate(ids):
                for rank in range(sizes[row]):
                    doc = index.doc_id(int(docs[row, rank]))
                    handle.write(f"{qid} Q0 {doc} {rank + 1} {scores[row, rank]:.6f} lsr\n")
        info[split] = len(ids)
    return info


def efficiency_queries(beir: Path, encoder: Any, limit: int) -> sp.csr_matrix:
    """The first ``limit`` queries no split judges, encoded: the timing workload."""
    from lsr.data.beir import BeirDataset

    dataset = BeirDataset(beir)
    judged = {q for split in QUERY_SPLITS for q in dataset.qrels(split, check_docs=False)}
    texts = [text for qid, text in dataset.queries().items() if qid not in judged][:limit]
    return encoder.encode_query(texts)


def run(model: str, name: str, columns: Path, work: Path, out: Path, pack_files: int, timing_queries: int) -> None:
    from lsr.eval.bench.transport import pack
    from lsr.indexing.sparse.build import build_index
    from lsr.indexing.sparse.format import SparseIndex

    from lsr.data.beir import BeirDataset
    from lsr.encode.corpus import encode_corpus
    from lsr.models import load_encoder

    beir = work / "packages"
    if not (beir / "corpus.jsonl").is_file():
        read_columns(columns, beir)
    report: dict[str, Any] = {"model": name, "load_average_start": list(os.getloadavg())}
    encoder = load_encoder(model)
    vectors = work / f"{name}.vectors"
    started = time.perf_counter()
    manifest = encode_corpus(encoder, model, BeirDataset(beir).corpus_source, vectors, 100_000, 256)
    report["encode_s"] = time.perf_counter() - started
    report["documents"] = manifest.documents
    report["postings"] = sum(s["nnz"] for s in manifest.shards)
    started = time.perf_counter()
    from lsr.encode.shards import iter_shards

    build_index(lambda: iter_shards(vectors), work / f"{name}.index", model, encoder.kind)
    report["index_s"] = time.perf_counter() - started
    index = SparseIndex.open(work / f"{name}.index")
    report["runs"] = write_runs(index, beir, encoder, out, 100)
    report["timing"] = time_searches(index, efficiency_queries(beir, encoder, timing_queries), 10, 500)
    if pack_files:
        started = time.perf_counter()
        pack(vectors, out / f"{name}-pack", pack_files)
        report["pack_s"] = time.perf_counter() - started
    report["load_average_end"] = list(os.getloadavg())
    save_json(report, out / f"report-{name}.json")
    print(json.dumps(report, indent=2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lsr.eval.bench.packages_gpu", description=__doc__)
    parser.add_argument("--model", required=True, help="encoder folder")
    parser.add_argument("--name", required=True, help="short name for outputs (shipped, splade-tiny)")
    parser.add_argument("--columns", type=Path, required=True, help="folder of write_columns' files")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (kept between calls)")
    parser.add_argument("--out", type=Path, required=True, help="folder whose files come back")
    parser.add_argument("--pack-files", type=int, default=0, help="pack the vectors into this many files")
    parser.add_argument("--timing-queries", type=int, default=10_000)
    args = parser.parse_args(argv)
    run(args.model, args.name, args.columns, args.work, args.out, args.pack_files, args.timing_queries)


if __name__ == "__main__":
    main()
