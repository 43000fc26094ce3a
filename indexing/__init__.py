"""Indexes: Lucene (through pyserini) for BM25 baselines; later the learned-sparse inverted index, dense and hybrid search."""
