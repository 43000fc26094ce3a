"""One content-addressed cache of corpus encodings and indexes, shared by every command that makes them.

``lsr encode``, ``lsr index``, ``lsr eval run``, training teachers and the retrievers ``lsr serve`` opens over a
corpus all look encodings up here first, so the same model over the same corpus is encoded once, whatever path
either was given by. Keys are made of content: the corpus file's bytes and the model's weight, configuration and
tokenizer files (:mod:`lsr.cache.keys`), so a copied corpus or model finds its encodings and an edited one never
gets stale ones. ``lsr cache ls`` and ``lsr cache clear`` (:mod:`lsr.cache.store`) show and free it.
"""

from lsr.cache.keys import cache_root, corpus_key, model_key
from lsr.cache.store import Entry, clear, entries, record_use
from lsr.cache.vectors import cached_vectors, find_vectors, materialise, publish_vectors, vectors_entry

__all__ = [
    "Entry",
    "cache_root",
    "cached_vectors",
    "clear",
    "corpus_key",
    "entries",
    "find_vectors",
    "materialise",
    "model_key",
    "publish_vectors",
    "record_use",
    "vectors_entry",
]
