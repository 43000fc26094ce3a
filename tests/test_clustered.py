"""Clustered search (`lsr index cluster`, `lsr search --heap-factor`): exact at its safest setting, approximate
below it with every returned score exact, filters honoured, and clusters that are missing, corrupt or from another
index refused with the file named."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import REPO
from lsr.indexing.filters import allow_mask
from lsr.indexing.sparse.build import build_index
from lsr.indexing.sparse.cluster_build import build_clusters
from lsr.indexing.sparse.clustered import ClusteredSearch
from lsr.indexing.sparse.clusters import FOLDER, Clusters, ClustersError, ClusterSettings
from lsr.indexing.sparse.format import META, META_CHECKSUM, SparseIndex, write_meta
from lsr.indexing.sparse.search import Searcher
from serve_support import Artifacts, demo_queries
from test_sparse_index import index_args, shards_of
from tiny_models import tiny_bert
from typer.testing import CliRunner

from lsr.cli import app
from lsr.errors import LsrError
from lsr.fsutil import OutputError
from lsr.runs import read_run

WHOLE = ClusterSettings(max_postings=100_000)
"""Clusters that keep every posting: with every list visited and no block skipped, search is exact."""


def topical(docs: int, vocab: int, topics: int, seed: int) -> sp.csr_matrix:
    """Documents drawn around a few topics (each a set of favoured terms), so that blocks of similar documents
    exist, as in real corpora; every weight positive."""
    rng = np.random.default_rng(seed)
    favoured = [rng.choice(vocab, 30, replace=False) for _ in range(topics)]
    rows = []
    for d in range(docs):
        own = rng.choice(favoured[d % topics], 8, replace=False)
        noise = rng.choice(vocab, 4, replace=False)
        terms = np.unique(np.concatenate([own, noise]))
        rows.append(
            sp.csr_matrix(
                (rng.uniform(0.2, 3.0, len(terms)).astype(np.float32), terms, [0, len(terms)]), shape=(1, vocab)
            )
        )
    return sp.csr_matrix(sp.vstack(rows))


@pytest.fixture(scope="module")
def corpus() -> sp.csr_matrix:
    return topical(4000, 600, 40, 0)


@pytest.fixture(scope="module")
def queries(corpus: sp.csr_matrix) -> sp.csr_matrix:
    """Queries near documents: a document's vector with half its weight moved to its heaviest terms."""
    rows = corpus[np.arange(0, 4000, 97)].copy()
    rows.data = np.round(rows.data * 10) / 10 + 0.1
    return sp.csr_matrix(rows, dtype=np.float32)


@pytest.fixture
def index(corpus: sp.csr_matrix, tmp_path: Path) -> SparseIndex:
    build_index(shards_of(corpus, 1000), tmp_path / "idx", "some-model", "splade")
    return SparseIndex.open(tmp_path / "idx")


def recall(exact: np.ndarray, found: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(exact, found, strict=True)]))


@pytest.mark.parametrize("weights", ["float16", "uint8"])
def test_heap_factor_zero_over_whole_lists_is_exact_search(
    weights: str, corpus: sp.csr_matrix, queries: sp.csr_matrix, tmp_path: Path
) -> None:
    """Both codebooks lsr writes: the kernel turns float16 codes into floats by moving bits, uint8 codes through
    their linear step (no table lookup either way)."""
    build_index(shards_of(corpus, 1000), tmp_path / "idx", "some-model", "splade", weights=weights)
    index = SparseIndex.open(tmp_path / "idx")
    build_clusters(index, WHOLE).save(index)
    searcher = Searcher(index, threads=2)
    for k in (1, 10, 50):
        docs, scores, sizes = searcher.search(queries, k=k)
        got = searcher.search(queries, k=k, heap_factor=0.0, query_cut=1000)
        # the same documents; scores summed in another order (vectorised), so equal to float32's rounding
        assert np.array_equal(got[2], sizes)
        np.testing.assert_allclose(got[1], scores, rtol=1e-6)
        if weights == "float16":
            assert np.array_equal(got[0], docs)
        else:  # 255 weight levels tie many scores, and rounding may order tied documents either way
            for found, expected, ranked, n in zip(got[0], docs, scores, sizes, strict=True):
                above = ranked[:n] > ranked[n - 1] * (1 + 1e-5)  # above the k-th score: no tie can cut them
                assert set(found[:n][above]) == set(expected[:n][above])


def expansion_heavy(docs: int, vocab: int, seed: int) -> sp.csr_matrix:
    """Documents as an inference-free model writes them: four light terms of their own text (from the first 100
    terms) among twenty heavier expansion terms; a block's summary cut to half its mass keeps expansion terms."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(docs):
        terms = np.concatenate([rng.choice(100, 4, replace=False), 100 + rng.choice(vocab - 100, 20, replace=False)])
        weights = np.concatenate([rng.uniform(0.2, 0.4, 4), rng.uniform(1.0, 1.2, 20)]).astype(np.float32)
        order = np.argsort(terms)
        rows.append(sp.csr_matrix((weights[order], terms[order], [0, len(terms)]), shape=(1, vocab)))
    return sp.csr_matrix(sp.vstack(rows))


def own_term_queries(corpus: sp.csr_matrix, stride: int) -> sp.csr_matrix:
    """Every ``stride``-th document's query: three of its own light terms (:func:`expansion_heavy`), weight 1."""
    rng = np.random.default_rng(1)
    rows = []
    for d in range(0, corpus.shape[0], stride):
        terms = np.sort(rng.choice(corpus[d].indices[corpus[d].indices < 100], 3, replace=False))
        rows.append(sp.csr_matrix((np.ones(3, np.float32), terms, [0, 3]), shape=(1, corpus.shape[1])))
    return sp.csr_matrix(sp.vstack(rows))


def test_keeping_each_blocks_list_term_finds_documents_the_energy_cut_hides(tmp_path: Path) -> None:
    """Queries of a document's own light terms: the energy cut leaves them out of every summary, so without
    ``keep_list_term`` each block of their lists is estimated at zero and, once k documents are found, skipped at
    any heap_factor above 0 (recall 0.09 here; NFCorpus with the shipped model stopped at 0.948). With the list
    term kept the same search finds them."""
    corpus = expansion_heavy(3000, 600, 0)
    queries = own_term_queries(corpus, 37)
    build_index(shards_of(corpus, 1000), tmp_path / "idx", "some-model", "splade")
    exact = Searcher(SparseIndex.open(tmp_path / "idx")).search(queries, k=10)[0]
    found = {}
    for keep in (False, True):
        index = SparseIndex.open(tmp_path / "idx")
        build_clusters(index, ClusterSettings(keep_list_term=keep)).save(index)
        found[keep] = recall(exact, Searcher(index).search(queries, k=10, heap_factor=0.5, query_cut=10)[0])
    assert found[False] < 0.2
    assert found[True] > 0.99


def test_clusters_search_ab_compares_both_variants_in_one_process(tmp_path: Path) -> None:
    """The A/B behind RESULTS' "each block's list term kept" rows, on the expansion-heavy corpus: every grid setting
    of both variants gets a recall and one latency per round, and the variant keeping the list term reaches
    recall targets the other cannot."""
    from bench_support import vectors_folder
    from lsr.eval.bench.clusters_search_ab import compare
    from lsr.eval.bench.engines.inputs import corpus_vectors, query_vectors

    corpus = expansion_heavy(1500, 600, 0)
    vectors_folder(tmp_path / "vectors", [f"d{i}" for i in range(1500)], corpus, "some-model")
    queries = own_term_queries(corpus, 31)
    ids = [f"q{i}" for i in range(queries.shape[0])]
    (tmp_path / "work").mkdir()
    result = compare(corpus_vectors(tmp_path / "vectors"), query_vectors(ids, queries), 2, tmp_path / "work")
    assert len(result["rows"]) == 2 * 25 and all(len(row["p50_ms"]) == 2 for row in result["rows"])
    best = {name: max(r["recall"] for r in result["rows"] if r["variant"] == name) for name in result["builds"]}
    assert best["keep_list_term=False"] < 0.3 < 0.9 < best["keep_list_term=True"]
    assert result["matched_recall"]["keep_list_term=False"]["0.90"] is None
    assert result["matched_recall"]["keep_list_term=True"]["0.90"]["recall"] >= 0.90


@pytest.mark.parametrize(("weights", "keep_list_term"), [("float16", True), ("uint8", True), ("float16", False)])
def test_each_summary_is_its_blocks_heaviest_maxima_up_to_the_energy(
    weights: str, keep_list_term: bool, corpus: sp.csr_matrix, tmp_path: Path
) -> None:
    """Step 3 of the clusters module's docstring, recomputed in plain Python per block: the coordinate-wise maximum of
    its documents, cut to the heaviest coordinates that first hold ``summary_energy`` of its mass (equal weights
    in the order their terms are first met, block documents in increasing number), with the block's own list term
    added where the cut left it out (``keep_list_term``), rounded up to 8 bits of the list's largest and sorted by
    term. uint8 weights tie often, so the tie rule is exercised."""
    build_index(shards_of(corpus, 1000), tmp_path / "idx", "some-model", "splade", weights=weights)
    index = SparseIndex.open(tmp_path / "idx")
    settings = ClusterSettings(max_postings=400, summary_energy=0.5, keep_list_term=keep_list_term)
    clusters = build_clusters(index, settings)
    indptr, terms = np.asarray(index.forward_indptr), np.asarray(index.forward_terms)
    weight = index.codebook[np.asarray(index.forward_codes)]
    checked, added = 0, 0
    for t in range(index.meta.vocab_size):
        expected: list[tuple[int, int, float]] = []
        for local, b in enumerate(range(clusters.term_blocks[t], clusters.term_blocks[t + 1])):
            maxima: dict[int, float] = {}
            for d in clusters.block_docs[clusters.block_offsets[b] : clusters.block_offsets[b + 1]]:
                for j in range(indptr[d], indptr[d + 1]):
                    maxima[int(terms[j])] = max(maxima.get(int(terms[j]), 0.0), float(weight[j]))
            ranked = sorted(maxima.items(), key=lambda item: -item[1])  # stable: ties keep first-met order
            total, mass, kept = sum(maxima.values()), 0.0, 0  # float64, in first-met order
            while kept < len(ranked) and mass < 0.5 * total:
                mass += ranked[kept][1]
                kept += 1
            expected += [(term, local, value) for term, value in ranked[:kept]]
            if keep_list_term and t not in dict(ranked[:kept]) and t in maxima:
                expected.append((t, local, maxima[t]))
                added += 1
        low, high = clusters.summary_offsets[t], clusters.summary_offsets[t + 1]
        assert high - low == len(expected)
        if not expected:
            continue
        expected.sort(key=lambda entry: entry[0])  # stable: a term's blocks in order
        scale = np.float32(max(value for _, _, value in expected) / 255.0)
        assert clusters.summary_scales[t] == scale
        assert clusters.summary_terms[low:high].tolist() == [term for term, _, _ in expected]
        assert clusters.summary_blocks[low:high].tolist() == [local for _, local, _ in expected]
        codes = [min(255, int(np.ceil(np.float32(value) / scale))) for _, _, value in expected]
        assert clusters.summary_codes[low:high].tolist() == codes
        checked += 1
    assert checked > 100
    assert added > 0 if keep_list_term else added == 0  # the case the setting is for occurs in this corpus


def _hash(a: int, b: int) -> int:
    """cluster_build._hash in Python integers (splitmix64's finaliser of two multiplied keys, modulo 2**64)."""
    full = (1 << 64) - 1
    x = ((a * 0x9E3779B97F4A7C15) & full) ^ ((b * 0xC2B2AE3D27D4EB4F) & full)
    x ^= x >> 31
    x = (x * 0xBF58476D1CE4E5B9) & full
    return x ^ (x >> 29)


def _nearest(vector: list[dict[int, float]], centroids: list[int], doc: int, removed: set[int]) -> int:
    """The local number of the centroid (not removed) of largest positive dot product with ``doc``, the first of
    equals; -1 if none."""
    scores = [sum(w * vector[c].get(u, 0.0) for u, w in vector[doc].items()) for c in centroids]
    alive = [(score, -c) for c, score in enumerate(scores) if score > 0 and c not in removed]
    return -max(alive)[1] if alive else -1


def test_each_document_joins_its_nearest_centroid(corpus: sp.csr_matrix, tmp_path: Path) -> None:
    """Step 2 of the clusters module's docstring, recomputed in plain Python (float64) for every list: centroids are
    the list's documents first by seeded hash, each document joins the centroid of largest dot product with its heaviest
    terms (the first of equals; the first centroid when none shares a term), clusters of ``min_cluster_size``
    documents or fewer are dissolved and their documents join their nearest remaining centroid."""
    build_index(shards_of(corpus, 1000), tmp_path / "idx", "some-model", "splade")
    index = SparseIndex.open(tmp_path / "idx")
    settings = ClusterSettings(max_postings=400)
    clusters = build_clusters(index, settings)
    indptr, terms = np.asarray(index.forward_indptr), np.asarray(index.forward_terms)
    weight = index.codebook[np.asarray(index.forward_codes)].astype(np.float64)
    vector = [
        dict(zip(terms[indptr[d] : indptr[d + 1]].tolist(), weight[indptr[d] : indptr[d + 1]].tolist(), strict=True))
        for d in range(index.num_docs)
    ]  # noqa: E501
    assert max(len(v) for v in vector) <= settings.doc_cut  # every term is among a document's heaviest: no tie to cut
    offsets, postings = np.asarray(index.offsets), np.asarray(index.docs)
    checked = 0
    for t in range(index.meta.vocab_size):
        docs = postings[offsets[t] : offsets[t] + min(offsets[t + 1] - offsets[t], settings.max_postings)].tolist()
        n_blocks = len(range(clusters.term_blocks[t], clusters.term_blocks[t + 1]))
        if n_blocks < 2:
            continue
        centroids = sorted(docs, key=lambda d: _hash(d + settings.seed, t))[:n_blocks]

        first = {doc: max(0, _nearest(vector, centroids, doc, set())) for doc in docs}
        sizes = np.bincount(list(first.values()), minlength=n_blocks)
        removed = {c for c in range(n_blocks) if sizes[c] <= settings.min_cluster_size}
        final = dict(first)
        if 0 < len(removed) < n_blocks:
            fallback = min(set(range(n_blocks)) - removed)
            for doc, c in first.items():
                if c in removed:
                    best = _nearest(vector, centroids, doc, removed)
                    final[doc] = fallback if best < 0 else best
        for local in range(n_blocks):
            b = clusters.term_blocks[t] + local
            got = clusters.block_docs[clusters.block_offsets[b] : clusters.block_offsets[b + 1]].tolist()
            assert got == sorted(doc for doc, c in final.items() if c == local), (t, local)
        checked += 1
    assert checked > 100


def test_lower_heap_factor_and_more_lists_raise_recall(index: SparseIndex, queries: sp.csr_matrix) -> None:
    """Default clusters (lists cut to their heaviest postings): recall grows toward the safe end of the knobs, and
    every hit's score is its exact score, best first, each document once."""
    build_clusters(index, ClusterSettings(max_postings=300, centroid_fraction=0.1)).save(index)
    searcher = Searcher(index, threads=1)
    exact, _, _ = searcher.search(queries, k=10)
    matrix = index.to_csr()
    recalls = {}
    for cut, factor in ((1, 1.5), (3, 1.0), (20, 0.5)):
        docs, scores, sizes = searcher.search(queries, k=10, query_cut=cut, heap_factor=factor)
        recalls[cut, factor] = recall(exact, docs)
        for q in range(queries.shape[0]):
            hits = docs[q, : sizes[q]]
            assert len(set(hits.tolist())) == sizes[q] and np.all(np.diff(scores[q, : sizes[q]]) <= 0)
            assert np.allclose(scores[q, : sizes[q]], (matrix[hits] @ queries[q].T).toarray().ravel(), rtol=1e-5)
    assert recalls[1, 1.5] < recalls[3, 1.0] <= recalls[20, 0.5] and recalls[20, 0.5] >= 0.95, recalls


def test_batches_in_threads_equal_single_queries(index: SparseIndex, queries: sp.csr_matrix) -> None:
    build_clusters(index).save(index)
    searcher = Searcher(index, threads=2)
    together = searcher.search(queries, k=10, query_cut=3, heap_factor=0.9)
    for q in range(queries.shape[0]):
        alone = searcher.search(queries[q], k=10, query_cut=3, heap_factor=0.9)
        assert np.array_equal(alone[0][0], together[0][q]) and np.array_equal(alone[1][0], together[1][q])


def test_raising_a_searchers_threads_widens_its_clustered_batches(index: SparseIndex, queries: sp.csr_matrix) -> None:
    """A searcher opened for one thread and later given two (the benchmark's throughput pass does this) searches its
    batches on two: its buffers grow with the thread count (they were sized once, so batches stayed on one)."""
    build_clusters(index).save(index)
    searcher = Searcher(index, threads=1)
    alone = searcher.search(queries, k=10, query_cut=3, heap_factor=0.9)
    assert searcher._cluster_work[0].shape[0] == 1
    searcher.threads = 2
    together = searcher.search(queries, k=10, query_cut=3, heap_factor=0.9)
    assert searcher._cluster_work[0].shape[0] == 2
    assert np.array_equal(alone[0], together[0]) and np.array_equal(alone[1], together[1])


def test_searchers_share_the_prepared_clusters_until_they_are_rebuilt(
    index: SparseIndex, queries: sp.csr_matrix
) -> None:
    """A server's main and express searchers read one prepared copy; clusters rebuilt on disk are searched by the
    searchers opened after (an open searcher keeps the clusters it opened, as it keeps its index)."""
    build_clusters(index, WHOLE).save(index)
    main, express = Searcher(index, threads=2), Searcher(index, threads=1, tiled=False)
    before = main.search(queries, k=10, heap_factor=0.0, query_cut=1000)
    alone = express.search(queries, k=10, heap_factor=0.0, query_cut=1000)
    assert np.array_equal(before[0], alone[0]) and ClusteredSearch.of(index) is ClusteredSearch.of(index)
    shared = ClusteredSearch.of(index)
    one_list = main.search(queries, k=10, heap_factor=0.0, query_cut=1)
    build_clusters(index, ClusterSettings(max_postings=10)).save(index)
    assert ClusteredSearch.of(index) is not shared
    assert np.array_equal(main.search(queries, k=10, heap_factor=0.0, query_cut=1)[0], one_list[0])
    after = Searcher(index, threads=2).search(queries, k=10, heap_factor=0.0, query_cut=1)
    assert recall(one_list[0], after[0]) < 0.9  # a list cut to 10 postings misses documents the whole list has


def test_filters_return_allowed_documents_only(index: SparseIndex, queries: sp.csr_matrix) -> None:
    build_clusters(index, WHOLE).save(index)
    searcher = Searcher(index, threads=1)
    allow = allow_mask(index.num_docs, np.arange(0, 4000, 3))
    exact = searcher.search(queries, k=10, allow=allow)
    got = searcher.search(queries, k=10, allow=allow, heap_factor=0.0, query_cut=1000)
    assert np.array_equal(got[0], exact[0])
    np.testing.assert_allclose(got[1], exact[1], rtol=1e-6)
    assert np.all(got[0][got[1] > 0] % 3 == 0)
    nothing = searcher.search(queries, k=10, allow=np.zeros(index.num_docs, bool), heap_factor=1.0)
    assert not nothing[2].any()


def test_bad_settings_are_refused(index: SparseIndex, queries: sp.csr_matrix) -> None:
    searcher = Searcher(index)
    with pytest.raises(ClustersError, match="lsr index cluster"):
        searcher.search(queries, k=10, heap_factor=1.0)
    build_clusters(index).save(index)
    with pytest.raises(ValueError, match="does not combine"):
        searcher.search(queries, k=10, heap_factor=1.0, budget=10)
    with pytest.raises(ValueError, match="does not combine"):
        searcher.search(queries, k=10, heap_factor=1.0, query_terms=3)
    with pytest.raises(ValueError, match="heap_factor"):
        searcher.search(queries, k=10, heap_factor=float("nan"))
    with pytest.raises(ValueError, match="query_cut"):
        searcher.search(queries, k=10, heap_factor=1.0, query_cut=0)
    with pytest.raises(ValueError, match="centroid_fraction"):
        build_clusters(index, ClusterSettings(centroid_fraction=0.0))


def test_corrupt_or_foreign_clusters_are_refused(index: SparseIndex, corpus: sp.csr_matrix, tmp_path: Path) -> None:
    folder = build_clusters(index).save(index)
    Clusters.open(index)
    docs = np.load(folder / "block_docs.npy")
    docs[3] = index.num_docs + 5  # a document number past the corpus: the kernel would read out of bounds
    np.save(folder / "block_docs.npy", docs)
    with pytest.raises(ClustersError, match="block_docs.npy: checksum mismatch"):
        Clusters.open(index)
    with pytest.raises(ClustersError, match=r"block_docs.npy: document number \d+ at position 3 is outside"):
        Clusters.open(index, verify=False)
    meta = json.loads((folder / META).read_text())
    meta["settings"]["summary_energy"] = 7
    (folder / META).write_text(json.dumps(meta))
    with pytest.raises(ClustersError, match="meta.json: checksum mismatch"):
        Clusters.open(index)
    build_index(shards_of(corpus[:2000], 1000), tmp_path / "other", "some-model", "splade")
    other = SparseIndex.open(tmp_path / "other")
    build_clusters(index).save(index)
    folder.rename(tmp_path / "other" / FOLDER)
    with pytest.raises(ClustersError, match="built from another index"):
        Clusters.open(other)


def test_clusters_written_before_keep_list_term_open_without_it(index: SparseIndex) -> None:
    """Clusters from an lsr that had no ``keep_list_term`` setting (its meta.json lacks the field) were built
    without the list term, so they open as ``keep_list_term=False``, not as today's default; a value other than
    true or false is refused with the field named."""
    folder = build_clusters(index, ClusterSettings(keep_list_term=False)).save(index)
    fields = json.loads((folder / META).read_text())
    del fields[META_CHECKSUM], fields["settings"]["keep_list_term"]
    write_meta(folder / META, fields)
    assert Clusters.open(index).settings == ClusterSettings(keep_list_term=False)
    fields["settings"]["keep_list_term"] = "yes"
    write_meta(folder / META, fields)
    with pytest.raises(ClustersError, match="field 'settings' is not readable .*keep_list_term must be true or false"):
        Clusters.open(index)


def test_a_codebook_lsr_does_not_write_is_refused(index: SparseIndex) -> None:
    """Clustered search decodes the two codebooks lsr writes without a table; any other (an index whose files
    were written elsewhere, checksums and all) would be searched with wrong weights, so it is refused."""
    clusters = build_clusters(index)
    codebook = index.codebook.copy()
    codebook[1] = 0.5  # a weight no float16's bits stand for
    index.codebook = codebook
    with pytest.raises(ClustersError, match="codebook.npy: not a float16 or 255-step linear codebook"):
        ClusteredSearch(index, clusters)


def test_a_folder_lsr_did_not_write_is_not_replaced(index: SparseIndex) -> None:
    mine = index.path / FOLDER
    mine.mkdir()
    (mine / "notes.txt").write_text("a user's file")
    with pytest.raises(OutputError, match="was not written by lsr"):
        build_clusters(index).save(index)
    assert (mine / "notes.txt").read_text() == "a user's file"


def test_cluster_and_search_commands(beir_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    model = tiny_bert(tmp_path / "bert")
    built = runner.invoke(app, index_args(model, beir_dir, tmp_path / "idx"))
    assert built.exit_code == 0, built.output
    search = ["search", "--index", str(tmp_path / "idx"), "--queries", str(beir_dir / "queries.jsonl"), "--k", "3"]
    missing = runner.invoke(app, [*search, "--output", str(tmp_path / "m.trec"), "--heap-factor", "0.9"])
    assert isinstance(missing.exception, LsrError) and "lsr index cluster" in str(missing.exception)
    clustered = runner.invoke(app, ["index", "cluster", "--index", str(tmp_path / "idx"), "--max-postings", "1000"])
    assert clustered.exit_code == 0 and "blocks" in clustered.output, clustered.output
    assert runner.invoke(app, [*search, "--output", str(tmp_path / "e.trec")]).exit_code == 0
    result = runner.invoke(
        app, [*search, "--output", str(tmp_path / "c.trec"), "--heap-factor", "0", "--query-cut", "1000"]
    )
    assert result.exit_code == 0, result.output
    exact, approximate = read_run(tmp_path / "e.trec"), read_run(tmp_path / "c.trec")
    assert {q: list(h) for q, h in approximate.items()} == {q: list(h) for q, h in exact.items()}
    alone = runner.invoke(app, [*search, "--output", str(tmp_path / "x.trec"), "--query-cut", "3"])
    assert isinstance(alone.exception, LsrError) and "give --heap-factor" in str(alone.exception)
    index = SparseIndex.open(tmp_path / "idx")
    assert Clusters.open(index).settings.keep_list_term
    without = runner.invoke(app, ["index", "cluster", "--index", str(tmp_path / "idx"), "--no-keep-list-term"])
    assert without.exit_code == 0, without.output
    assert not Clusters.open(index).settings.keep_list_term


def test_lsr_serve_answers_from_the_clusters(serve_artifacts: Artifacts, tmp_path: Path) -> None:
    """`lsr serve --heap-factor` (a real server process) returns what clustered search returns in process, through
    the express lane (one query) and the main searcher (a batch), and differs from exact search where the clusters
    cut lists; without clusters it refuses to start, naming the command that builds them."""
    from lsr.indexing.retrieval import RetrieverOptions
    from lsr.indexing.sparse.retriever import SparseRetriever
    from lsr.indexing.sparse.settings import Pruning
    from lsr.serve.client import Client

    folder = tmp_path / "sparse"
    shutil.copytree(serve_artifacts.sparse_index, folder)
    serve = ["serve", "--index", str(folder), "--heap-factor", "1.0", "--query-cut", "1"]
    refused = CliRunner().invoke(app, [*serve, "--port", "0"])
    assert isinstance(refused.exception, LsrError) and "lsr index cluster" in str(refused.exception)
    clustered = CliRunner().invoke(app, ["index", "cluster", "--index", str(folder), "--max-postings", "6"])
    assert clustered.exit_code == 0, clustered.output
    pruning = Pruning(heap_factor=1.0, query_cut=1)
    reference = SparseRetriever.from_index(folder, RetrieverOptions(device="cpu", pruning=pruning))
    exact = SparseRetriever.from_index(folder, RetrieverOptions(device="cpu"))
    texts = demo_queries()
    expected = reference.search(reference.encode(texts), 5)
    assert any(a.ids != b.ids for a, b in zip(expected, exact.search(exact.encode(texts), 5), strict=True))

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-c", "from lsr.cli import main; main()", *serve, "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        with Client(f"127.0.0.1:{port}") as client:
            client.wait_ready(timeout=90)
            one_by_one = [client.search(text, k=5) for text in texts]  # each costs under --express-cost (512)
            batch = client.batch_search(texts * 8, k=5)  # 96 queries cost over 96 x 6: the main searcher's
        for hits, alone, together in zip(expected * 8, one_by_one * 8, batch, strict=True):
            for got in (alone, together):
                assert [doc for doc, _ in got] == hits.ids
                np.testing.assert_allclose([score for _, score in got], hits.scores, rtol=1e-6)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert "clustered search, heap factor 1.0, query cut 1" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_clusters_build_ab_times_two_versions_and_compares_their_arrays(
    corpus: sp.csr_matrix, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The build-time A/B of RESULTS ("Clusters build 1.7× faster"): HEAD's clusters.py against this checkout's,
    on a small vectors folder, every array reported the same."""
    from bench_support import vectors_folder
    from lsr.eval.bench.clusters_build_ab import main

    vectors_folder(tmp_path / "vectors", [f"d{i}" for i in range(corpus.shape[0])], corpus, "some-model")
    main(tmp_path / "vectors", "HEAD", rounds=1)
    out = capsys.readouterr().out
    assert "round 1, HEAD:" in out and "round 1, this checkout:" in out
    assert out.count(": same") == 8 and "DIFFERENT" not in out
