"""The DRAM bytes a GPU search batch moves, as Nsight Compute counts them (issue 21, item 4).

A roofline needs the bytes that really cross HBM, not the bytes each query's postings would take: the kernel
shares postings across the queries of a batch through L2, and it also writes. So one batch is searched under
``ncu`` with profiling switched on around that batch only (after an unprofiled warm-up that compiles the
kernels), and the per-kernel counters are summed by kernel family::

    ncu --profile-from-start off --metrics dram__bytes_read.sum,dram__bytes_write.sum,gpu__time_duration.sum \\
        --csv python -m lsr.eval.bench.gpu_dram --index INDEX --model MODEL --dataset BEIR > ncu.csv
    python -m lsr.eval.bench.gpu_dram --summarize ncu.csv

The unique posting bytes of the batch (every posting of every distinct query term, once) are printed beside,
the least any exact kernel must read. Plain ``argparse``: it runs on the bare GPU image.
"""

from __future__ import annotations

import argparse
import csv
import io
from collections import Counter, defaultdict
from pathlib import Path


def profile_one_batch(index_path: Path, model: str, dataset: Path, queries: int, k: int) -> None:
    """Warm up, then search one batch of ``queries`` unjudged queries with the CUDA profiler on."""
    from lsr.eval.bench.packages_gpu import efficiency_queries, gpu_searcher, unique_posting_bytes
    from lsr.indexing.sparse.format import SparseIndex
    from numba import cuda

    from lsr.models import load_encoder

    index = SparseIndex.open(index_path)
    batch = efficiency_queries(dataset, load_encoder(model), queries)
    searcher = gpu_searcher(index)
    if searcher is None:
        raise SystemExit("no usable GPU")
    searcher.search(batch, k=k)  # compiles the kernels outside the profiled range
    print(f"queries {batch.shape[0]} k {k} unique_posting_bytes {unique_posting_bytes(index, batch)}")
    cuda.synchronize()
    cuda.profile_start()
    searcher.search(batch, k=k)
    cuda.synchronize()
    cuda.profile_stop()


def family(kernel: str) -> str:
    """lsr's own kernels by name (Numba names them after their Python function, ``lsr::`` first unless ncu's
    --kernel-name filter shortened it); torch's merge kernels grouped as top-k/sort or elementwise."""
    name = kernel.split("[")[0].removeprefix("lsr::")
    if name.startswith("_") and name.endswith("_py"):
        return name
    return "torch top-k/sort" if ("TopK" in kernel or "Sort" in kernel) else "torch elementwise/reduce"


def summarize(path: Path) -> dict[str, dict[str, float]]:
    """Each metric summed over the launches of each kernel family, percentages of peak averaged (``ncu --csv``
    output; lines before its header, the program's own output, are skipped)."""
    text = path.read_text(encoding="utf-8")
    rows = csv.DictReader(io.StringIO(text[text.index('"ID"') :]))
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    launches: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        name = family(row["Kernel Name"])
        totals[name][row["Metric Name"]] += float(row["Metric Value"].replace(",", ""))
        launches[name].add(row["ID"])
    summary = {}
    for name, metrics in totals.items():
        count = len(launches[name])  # a percentage of peak is averaged over the launches, not summed
        summary[name] = {"launches": count, **{m: v / count if "pct" in m else v for m, v in metrics.items()}}
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lsr.eval.bench.gpu_dram", description=__doc__)
    parser.add_argument("--summarize", type=Path, help="an `ncu --csv` file of a profiled run: print the sums")
    parser.add_argument("--index", type=Path, help="sparse index folder")
    parser.add_argument("--model", help="the query encoder")
    parser.add_argument("--dataset", type=Path, help="BEIR folder whose unjudged queries make the batch")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args(argv)
    if args.summarize:
        for name, metrics in summarize(args.summarize).items():
            print(name, {key: f"{value:,.0f}" for key, value in metrics.items()})
        return
    if not (args.index and args.model and args.dataset):
        parser.error("give --index, --model and --dataset (or --summarize FILE)")
    profile_one_batch(args.index, args.model, args.dataset, args.queries, args.k)


if __name__ == "__main__":
    main()
