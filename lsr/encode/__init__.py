"""Corpus encoding to vector shards on disk (streamed, resumable), and IDF tables for inference-free models."""
