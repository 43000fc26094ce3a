"""Benchmarks: each measures lsr against the real competitor in the same run and reports the ratio."""
