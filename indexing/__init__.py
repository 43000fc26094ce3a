"""Indexes: Lucene (through pyserini) for BM25 baselines.

Later also the learned-sparse inverted index, dense and hybrid search.
"""
