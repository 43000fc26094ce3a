"""GPU batch search against the card's memory-bandwidth limit, on a synthetic corpus fitted to SPLADE.

The bound: a query must at least read its terms' postings once (4-byte document
number + 2-byte weight code each), so ``bytes read per query / bandwidth`` is the
fastest it could possibly run; the reported fraction is that bound divided by the
measured time per query. The CPU kernel is timed on the same index and queries.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from lsr.eval.bench.output import json_output, save_json
from lsr.eval.bench.synthetic import Profile, generate_documents, generate_queries
from lsr.indexing.sparse.build import build_index
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.search import Searcher
from lsr.indexing.sparse.tiles import TILE

BYTES_PER_POSTING = 6
TILE_BYTES_PER_POSTING = 4  # the tiled copy: 16-bit document offset + 16-bit weight code


def _timed_gpu(gpu, queries, k: int) -> tuple[float, np.ndarray]:  # noqa: ANN001
    import torch

    gpu.search(queries[: gpu.batch_size], k=k)  # compile and warm up
    torch.cuda.synchronize()
    started = time.perf_counter()
    docs, _, _ = gpu.search(queries, k=k)
    torch.cuda.synchronize()
    return (time.perf_counter() - started) / queries.shape[0], docs


def _breakdown(gpu, batch, k: int) -> dict[str, float]:  # noqa: ANN001
    """Milliseconds of scoring and of the final top-k for one (warm) batch, the median of three.

    For ``tiles`` scoring includes each tile's own top-k (the kernel's output is the tiles' candidates).
    """
    from lsr.indexing.sparse.gpu import _select
    from numba import cuda

    tiles = gpu.strategy == "tiles"
    score_ms, select_ms = [], []
    for _ in range(3):
        cuda.synchronize()
        started = time.perf_counter()
        scored = gpu.candidates(batch, k) if tiles else gpu.score(batch)
        cuda.synchronize()
        middle = time.perf_counter()
        _select(*scored, k) if tiles else gpu.select(scored, k)
        cuda.synchronize()
        score_ms.append(1000 * (middle - started))
        select_ms.append(1000 * (time.perf_counter() - middle))
    return {"score_ms_per_batch": float(np.median(score_ms)), "select_ms_per_batch": float(np.median(select_ms))}


def measure(
    index: SparseIndex,
    queries,  # noqa: ANN001
    k: int,
    batch_sizes: list[int],
    bandwidth_gbs: float,
    strategies: tuple[str, ...] = ("tiles", "forward"),
    registers: tuple[int, ...] = (0,),
) -> dict[str, Any]:
    """GPU time per query for each kernel and batch size against the bandwidth bound; CPU exact on the same queries."""
    import torch
    from lsr.indexing.sparse.gpu import GpuSearcher

    lengths = np.diff(np.asarray(index.offsets))
    postings = np.array(
        [lengths[queries.indices[queries.indptr[i] : queries.indptr[i + 1]]].sum() for i in range(queries.shape[0])]
    )
    bound_s = postings.mean() * BYTES_PER_POSTING / (bandwidth_gbs * 1e9)
    # the tiles kernel reads 4 bytes a posting plus two 8-byte segment bounds per (tile, query term)
    n_tiles = -(-index.num_docs // TILE)
    tile_bytes = postings.mean() * TILE_BYTES_PER_POSTING + 16 * n_tiles * np.diff(queries.indptr).mean()
    tile_bound_s = tile_bytes / (bandwidth_gbs * 1e9)
    cpu = Searcher(index)
    cpu.search(queries[:2], k=k)
    started = time.perf_counter()
    cpu_docs, _, _ = cpu.search(queries, k=k)
    cpu_s = (time.perf_counter() - started) / queries.shape[0]
    rows = []
    runs = [
        (s, cap or None, size)
        for s in strategies
        for cap in (registers if s == "tiles" else (0,))
        for size in batch_sizes
    ]
    for strategy, cap, size in runs:
        started = time.perf_counter()
        gpu = GpuSearcher(index, batch_size=size, strategy=strategy, registers=cap)
        setup_s = time.perf_counter() - started
        gpu_s, gpu_docs = _timed_gpu(gpu, queries, k)
        rows.append(
            {
                "strategy": strategy,
                "registers_cap": cap,
                "registers_used": gpu.registers_used(),
                "batch_size": gpu.batch_size,
                "gpu_ms_per_query": 1000 * gpu_s,
                "fraction_of_bandwidth_bound": bound_s / gpu_s,
                "fraction_of_own_bandwidth_bound": (tile_bound_s if strategy == "tiles" else bound_s) / gpu_s,
                "gpu_cpu_top10_agreement": float((gpu_docs == cpu_docs).mean()),
                "setup_s": setup_s,
                **_breakdown(gpu, queries[: gpu.batch_size], k),
            }
        )
        del gpu
    return {
        "documents": index.num_docs,
        "postings": index.meta.nnz,
        "queries": queries.shape[0],
        "k": k,
        "postings_per_query": float(postings.mean()),
        "bandwidth_bound_ms_per_query": 1000 * bound_s,
        "tiles_bandwidth_bound_ms_per_query": 1000 * tile_bound_s,
        "cpu_ms_per_query": 1000 * cpu_s,
        "cpu_threads": cpu.threads,
        "gpu": rows,
        "device": torch.cuda.get_device_name(),
        "bandwidth_gbs": bandwidth_gbs,
    }


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--profile", type=Path, required=True, help="profile.json from `lsr bench synthetic`")
    parser.add_argument("--documents", type=int, required=True)
    parser.add_argument("--index", type=Path, required=True, help="index folder: built here unless it exists")
    parser.add_argument("--build-only", action="store_true", help="build the index and stop (for time-limited hosts)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--strategies", nargs="+", default=["tiles", "forward"], help="GPU kernels to time")
    parser.add_argument(
        "--registers", type=int, nargs="+", default=[0], help="tiles: registers-per-thread caps to time (0: none)"
    )
    parser.add_argument("--bandwidth-gbs", type=float, help="the card's memory bandwidth, GB/s")
    parser.add_argument("--output", type=json_output)
    args = parser.parse_args(argv)
    profile = Profile.load(args.profile)
    if not (args.index / "meta.json").exists():
        started = time.perf_counter()
        workers = os.cpu_count() or 1
        build_index(
            lambda: generate_documents(profile, args.documents, workers=workers), args.index, "synthetic", "splade"
        )
        print(f"generated and indexed {args.documents:,} documents in {time.perf_counter() - started:.0f} s")
    if args.build_only:
        return
    if args.bandwidth_gbs is None:
        parser.error("--bandwidth-gbs is needed to measure")
    result = measure(
        SparseIndex.open(args.index, verify=False),
        generate_queries(profile, args.queries),
        args.k,
        args.batch_sizes,
        args.bandwidth_gbs,
        tuple(args.strategies),
        tuple(args.registers),
    )
    print(json.dumps(result, indent=2))
    if args.output:
        save_json(result, args.output)


if __name__ == "__main__":
    main()
