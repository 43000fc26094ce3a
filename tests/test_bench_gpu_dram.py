"""The Nsight Compute summary behind the GPU DRAM figures: bytes summed per kernel family, percentages averaged."""

from __future__ import annotations

from pathlib import Path

from lsr.eval.bench.gpu_dram import family, summarize

HEADER = '"ID","Process ID","Kernel Name","Metric Name","Metric Unit","Metric Value"\n'


def row(launch: int, kernel: str, metric: str, value: str) -> str:
    return f'"{launch}","1","{kernel}","{metric}","byte","{value}"\n'


def test_summary_sums_bytes_per_family_and_averages_percentages(tmp_path: Path) -> None:
    tile = "lsr::_tile_top_py[abi:v1,xyz](Array<int, 1, C, mutable, aligned>)"
    topk = "void sbtopk::gatherTopK<long, unsigned int, 2, 0>(cuda::TensorInfo<const T1, T2>)"
    lines = ["queries 2 k 10 unique_posting_bytes 10\n", "==PROF== Disconnected\n", HEADER]
    lines += [row(0, tile, "dram__bytes_read.sum", "1,000"), row(0, tile, "sm__throughput.pct", "80")]
    lines += [row(1, tile, "dram__bytes_read.sum", "2,500"), row(1, tile, "sm__throughput.pct", "90")]
    lines += [row(2, topk, "dram__bytes_read.sum", "7")]
    path = tmp_path / "ncu.csv"
    path.write_text("".join(lines), encoding="utf-8")
    summary = summarize(path)
    assert summary["_tile_top_py"] == {"launches": 2, "dram__bytes_read.sum": 3500.0, "sm__throughput.pct": 85.0}
    assert summary["torch top-k/sort"] == {"launches": 1, "dram__bytes_read.sum": 7.0}


def test_kernel_families_with_and_without_the_module_prefix() -> None:
    assert family("lsr::_tile_top_py[abi:v1](Array)") == family("_tile_top_py[v1,abc](Array)") == "_tile_top_py"
    assert family("void at::bitonicSortKVInPlace<2>(cuda::TensorInfo)") == "torch top-k/sort"
    assert family("void at::vectorized_elementwise_kernel<4>(int)") == "torch elementwise/reduce"
