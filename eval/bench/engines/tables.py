"""Markdown tables of an `lsr bench engines` result: what eval/RESULTS.md shows, generated, not retyped.

Why generated: every number in the results file must be the one the JSON beside it holds.
Two tables: matched recall (per engine, the fastest setting reaching each recall target)
and the exact engines' latency, each with the spread of its per-round means.
"""

from __future__ import annotations

from typing import Any

from lsr.eval.bench.engines.harness import TARGETS, matched


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}" if value < 1 else f"{value:.2f}"


def family(row: dict[str, Any]) -> str:
    """An engine's kind of search: lsr's exact, pruned and clustered settings apart, and an engine's on/off search
    switches (Seismic's ``sorted``) apart, so that each kind's best at a target is a row of its own."""
    settings = row.get("settings") or {}
    if row["system"] == "lsr":
        return "lsr clustered" if "query_cut" in settings else "lsr pruned" if settings else "lsr exact"
    switches = " ".join(f"{key}={value}" for key, value in sorted(settings.items()) if isinstance(value, bool))
    return f"{row['system']} {switches}".strip()


def matched_table(result: dict[str, Any], families: bool = False) -> str:
    """p50 (mean) ms per query at each recall target, per engine (or per :func:`family`); — where it never
    reached the target."""
    head = "| engine | " + " | ".join(f"recall ≥ {t:.2f}" for t in TARGETS) + " |"
    lines = [head, "| --- |" + " ---: |" * len(TARGETS)]
    grouped = matched(result["rows"], family) if families else matched(result["rows"])
    for system, targets in grouped.items():  # recomputed: the rule, not an older file's choice
        cells = []
        for target in TARGETS:
            best = targets[f"{target:.2f}"]
            cells.append("—" if best is None else f"{_ms(best['p50_ms'])} ({_ms(best['mean_ms'])})")
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _qps(row: dict[str, Any]) -> str:
    """Throughput, saying so when it came from processes (an engine without parallel search, BMP) or, in results
    from before processes, from the one thread such an engine used."""
    if row.get("throughput_qps") is None:
        return "—"
    workers = row.get("throughput_workers") or ""
    if workers.endswith("processes"):
        return f"{row['throughput_qps']:,.0f} ({workers})"
    return f"{row['throughput_qps']:,.0f}" + (" (1 thread)" if row.get("throughput_threads") == 1 else "")


def exact_table(result: dict[str, Any]) -> str:
    """Every setting checked exact: mean, p50, p99, the lowest and highest per-round mean, and throughput when
    measured."""
    lines = [
        "| engine, setting | same top-k scores | mean ms | per-round means, ms | p50 ms | p99 ms | QPS |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["rows"]:
        if row["exact_scores_match"] is None:
            continue
        low, high = min(row["rounds_mean_ms"]), max(row["rounds_mean_ms"])
        lines.append(
            f"| {row['label']} | {'yes' if row['exact_scores_match'] else '**no**'} | {_ms(row['mean_ms'])} | "
            f"{_ms(low)}–{_ms(high)} | {_ms(row['p50_ms'])} | {_ms(row['p99_ms'])} | {_qps(row)} |"
        )
    return "\n".join(lines)
