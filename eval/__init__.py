"""Evaluation: TREC run files, trec_eval-exact metrics, BEIR and recsys runs, benchmarks and results."""
