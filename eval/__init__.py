"""Evaluation (installed as ``lsr.eval``): BEIR pipelines, the demo, run comparisons, recsys tables, benchmarks."""
