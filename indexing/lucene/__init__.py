"""Lucene through pyserini: a JVM started the right way, and BM25 indexes of BEIR corpora."""
