"""Indexes and retrievers (installed as ``lsr.indexing``): the retriever contract and registry
(:mod:`.retrieval`), lsr's learned-sparse inverted index on CPU and GPU (:mod:`.sparse`), dense indexes
(:mod:`.dense`), Lucene BM25 (:mod:`.lucene`), fusion, filters, the encoding/index cache and Milvus."""
