"""Synthetic sparse corpora whose statistics are fitted to real SPLADE vectors, for benchmarks at scale.

A profile records, from real document and query vectors: the distribution of
vector lengths (non-zeros), how often each vocabulary term occurs (its
probability of appearing), and the weight distribution within each of ten term
frequency bands (rare terms carry larger weights in SPLADE, common ones smaller).
Generated vectors draw their length, then their terms (by those probabilities,
duplicates merged), then each weight from its term's band.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from lsr.eval.bench.output import save_json

BANDS = 10
QUANTILES = 101


@dataclass
class Side:
    """Statistics of one side (documents or queries)."""

    lengths: list[int]
    term_probability: list[float]
    band_of_term: list[int]
    band_weights: list[list[float]]


@dataclass
class Profile:
    vocab_size: int
    documents: Side
    queries: Side

    def save(self, path: Path) -> None:
        save_json(asdict(self), path)

    @classmethod
    def load(cls, path: Path) -> Profile:
        raw = json.loads(path.read_text())
        return cls(raw["vocab_size"], Side(**raw["documents"]), Side(**raw["queries"]))


def _fit_side(matrix: sp.csr_matrix, rng: np.random.Generator) -> Side:
    lengths = np.diff(matrix.indptr)
    counts = np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.float64)
    probability = counts / counts.sum()
    used = np.flatnonzero(counts)
    order = used[np.argsort(-counts[used], kind="stable")]
    band = np.full(matrix.shape[1], BANDS - 1, dtype=np.int64)
    band[order] = np.minimum(np.arange(len(order)) * BANDS // max(len(order), 1), BANDS - 1)
    weights = []
    for b in range(BANDS):
        values = matrix.data[band[matrix.indices] == b]
        values = values if len(values) else matrix.data
        weights.append(np.quantile(values, np.linspace(0, 1, QUANTILES)).tolist())
    sample = rng.choice(lengths, size=min(len(lengths), 20_000), replace=False)
    return Side(sample.astype(int).tolist(), probability.tolist(), band.tolist(), weights)


def fit_profile(docs: sp.csr_matrix, queries: sp.csr_matrix, seed: int = 0) -> Profile:
    rng = np.random.default_rng(seed)
    return Profile(docs.shape[1], _fit_side(sp.csr_matrix(docs), rng), _fit_side(sp.csr_matrix(queries), rng))


def _generate(side: Side, vocab: int, count: int, rng: np.random.Generator) -> sp.csr_matrix:
    lengths = rng.choice(np.asarray(side.lengths), size=count)
    rows = np.repeat(np.arange(count, dtype=np.int64), lengths)
    terms = rng.choice(vocab, size=len(rows), p=np.asarray(side.term_probability))
    keys = np.sort(rows * vocab + terms)  # sorts each row's terms; np.unique's hashing is 8x slower here
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]  # merges repeated terms
    rows, terms = keys // vocab, keys % vocab
    band = np.asarray(side.band_of_term)[terms]
    table = np.asarray(side.band_weights, dtype=np.float64)
    position = rng.random(len(terms)) * (QUANTILES - 1)
    low = np.floor(position).astype(np.int64)
    frac = position - low
    high = np.minimum(low + 1, QUANTILES - 1)
    weights = (table[band, low] * (1 - frac) + table[band, high] * frac).astype(np.float32)
    indptr = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=count), out=indptr[1:])
    matrix = sp.csr_matrix((weights, terms.astype(np.int32), indptr), shape=(count, vocab))
    matrix.eliminate_zeros()
    return matrix


def _shard(job: tuple[Profile, int, int, int, int]) -> tuple[list[str], sp.csr_matrix]:
    profile, start, size, seed, number = job
    rng = np.random.default_rng([seed, number])  # one stream per shard: any worker can make any shard
    return [f"s{i}" for i in range(start, start + size)], _generate(profile.documents, profile.vocab_size, size, rng)


def generate_documents(
    profile: Profile, count: int, shard_size: int = 100_000, seed: int = 1, workers: int = 1
) -> Iterator[tuple[list[str], sp.csr_matrix]]:
    """Shards of ``count`` synthetic documents, ids ``s0``, ``s1``, ..., in order; the same for any ``workers``."""
    jobs = [
        (profile, start, min(shard_size, count - start), seed, number)
        for number, start in enumerate(range(0, count, shard_size))
    ]
    if workers <= 1:
        yield from map(_shard, jobs)
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(_shard, jobs)


def generate_queries(profile: Profile, count: int, seed: int = 2) -> sp.csr_matrix:
    return _generate(profile.queries, profile.vocab_size, count, np.random.default_rng(seed))


def real_vectors(folder: Path) -> sp.csr_matrix:
    """Every document vector of an ``lsr encode`` folder, unquantised: what a profile's document side is fitted to."""
    from lsr.encode.shards import iter_shards

    return sp.vstack([matrix for _, matrix in iter_shards(folder)], format="csr")


def encoded_queries(vectors: Path, dataset: Path) -> tuple[list[str], sp.csr_matrix]:
    """Every query of the BEIR folder ``dataset`` (ids and vectors), encoded on the CPU by the model that encoded
    ``vectors``: what a profile's query side is fitted to, so real and generated queries come from one model."""
    from lsr.data.beir import BeirDataset
    from lsr.encode.shards import Manifest
    from lsr.models import load_encoder

    queries = BeirDataset(dataset).queries()
    return list(queries), load_encoder(Manifest.load(vectors).model, device="cpu").encode_query(list(queries.values()))
