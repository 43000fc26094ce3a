"""The sparse inverted index: build, reopen, corruption, interrupted builds, exact and pruned search."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from lsr.indexing.sparse.build import build_index
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.search import Searcher, brute_force
from tiny_models import tiny_bert
from typer.testing import CliRunner

from lsr.cli import app
from lsr.errors import LsrError
from lsr.runs import read_run


def random_vectors(docs: int, vocab: int, density: float, seed: int) -> sp.csr_matrix:
    matrix = sp.random(docs, vocab, density=density, random_state=seed, format="csr", dtype=np.float32)
    matrix.data *= 3
    return matrix


def index_args(model: Path, corpus: Path, output: Path) -> list[str]:
    """`lsr index` of a BEIR folder with a model, on the CPU."""
    return ["index", "--model", str(model), "--corpus", str(corpus), "--output", str(output), "--device", "cpu"]


def shards_of(matrix: sp.csr_matrix, size: int):  # noqa: ANN201 - a zero-argument pass factory
    ids = [f"doc-{i}" for i in range(matrix.shape[0])]
    return lambda: [(ids[s : s + size], matrix[s : s + size]) for s in range(0, matrix.shape[0], size)]


@pytest.fixture(scope="module")
def corpus() -> sp.csr_matrix:
    matrix = random_vectors(3000, 400, 0.03, 0)
    matrix[17] = matrix[5]  # two identical documents: ties are broken by the lower document number
    return sp.csr_matrix(matrix)


@pytest.fixture
def index(corpus: sp.csr_matrix, tmp_path: Path) -> SparseIndex:
    build_index(shards_of(corpus, 700), tmp_path / "idx", "some-model", "splade")
    return SparseIndex.open(tmp_path / "idx")


def test_build_and_reopen(index: SparseIndex, corpus: sp.csr_matrix) -> None:
    assert (index.num_docs, index.meta.vocab_size, index.meta.model) == (3000, 400, "some-model")
    half = corpus.toarray().astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(index.to_csr().toarray(), half)  # float16 weights, exactly
    assert [index.doc_id(i) for i in (0, 1234, 2999)] == ["doc-0", "doc-1234", "doc-2999"]
    for term in (0, 7, 399):
        docs, weights = index.postings(term)
        assert np.all(np.diff(weights) <= 0)  # impact order
        tied = np.diff(weights) == 0
        assert np.all(np.diff(docs)[tied] > 0)  # equal weights in document order


@pytest.mark.parametrize("k", [1, 10, 200])
def test_exact_search_equals_brute_force(index: SparseIndex, k: int) -> None:
    # long queries take the dense accumulation path, short ones the touched-list path
    long_queries, short_queries = random_vectors(40, 400, 0.05, 1), random_vectors(40, 400, 0.004, 7)
    queries = sp.vstack([long_queries, short_queries, sp.csr_matrix(index.to_csr()[5])], format="csr")
    docs, scores, sizes = Searcher(index).search(queries, k=k)
    ref_docs, ref_scores = brute_force(index.to_csr(), queries, k)
    filled = ref_docs >= 0
    assert np.array_equal(sizes, filled.sum(1))
    assert np.array_equal(np.where(filled, docs, -1), ref_docs)
    np.testing.assert_allclose(np.where(filled, scores, 0), ref_scores, rtol=1e-5)
    assert docs[-1, 0] == 5 and (k == 1 or docs[-1, 1] == 17)  # the tied pair, lower number first


def _in_query_order(index: SparseIndex, queries: sp.csr_matrix, k: int) -> tuple[np.ndarray, ...]:
    """Reference top-k whose scores add each term's float32 products in query order, as every kernel must."""
    queries = sp.csr_matrix(queries, dtype=np.float32)
    offsets, docs, codes = (np.asarray(a) for a in (index.offsets, index.docs, index.codes))
    table = np.asarray(index.codebook)
    out_docs = np.zeros((queries.shape[0], k), dtype=np.int32)
    out_scores = np.zeros((queries.shape[0], k), dtype=np.float32)
    sizes = np.zeros(queries.shape[0], dtype=np.int64)
    for row in range(queries.shape[0]):
        scores = np.zeros(index.num_docs, dtype=np.float32)
        for p in range(queries.indptr[row], queries.indptr[row + 1]):
            start, end = offsets[queries.indices[p]], offsets[queries.indices[p] + 1]
            scores[docs[start:end]] += queries.data[p] * table[codes[start:end]]  # a term's documents are distinct
        hits = np.flatnonzero(scores > 0)
        order = hits[np.lexsort((hits, -scores[hits]))][:k]
        sizes[row] = len(order)
        out_docs[row, : len(order)] = order
        out_scores[row, : len(order)] = scores[order]
    return out_docs, out_scores, sizes


@pytest.mark.parametrize("k", [1, 10, 200])
@pytest.mark.parametrize(("tiled", "tile"), [(False, 0), (True, 1000), (True, 999), (True, 8192), (True, 65536)])
def test_exact_search_is_bit_identical_to_query_order_sums(index: SparseIndex, k: int, tiled: bool, tile: int) -> None:
    """Untiled and tiled kernels, dense and touched-list paths: the same float32 scores, bit for bit."""
    long_queries, short_queries = random_vectors(30, 400, 0.05, 3), random_vectors(30, 400, 0.004, 9)
    queries = sp.vstack([long_queries, short_queries, sp.csr_matrix(index.to_csr()[5])], format="csr")
    searcher = Searcher(index, tiled=tiled, tile=tile or 1)
    for got, expected in zip(searcher.search(queries, k=k), _in_query_order(index, queries, k), strict=True):
        assert np.array_equal(got, expected)
    assert (searcher._tiles is not None) == tiled


def test_single_queries_and_empty_query(index: SparseIndex) -> None:
    searcher = Searcher(index)
    empty = sp.csr_matrix((1, 400), dtype=np.float32)
    _, _, sizes = searcher.search(empty, k=10)
    assert sizes[0] == 0
    with pytest.raises(ValueError, match="dimensions"):
        searcher.search(sp.csr_matrix((1, 9), dtype=np.float32))
    with pytest.raises(ValueError, match="non-negative"):
        searcher.search(sp.csr_matrix(-np.ones((1, 400), dtype=np.float32)))


def test_one_vector_searches_as_its_matrix_row(index: SparseIndex) -> None:
    """search_vector (term ids and weights, no SciPy matrix) returns what search returns for the same row, for exact,
    pruned and clustered settings; explicit zeros are dropped; ids outside the vocabulary and bad weights are refused
    before a kernel could read out of bounds."""
    from lsr.indexing.sparse.cluster_build import build_clusters

    build_clusters(index).save(index)
    searcher = Searcher(index, threads=1)
    queries = sp.csr_matrix(random_vectors(12, 400, 0.05, 7), dtype=np.float32)
    for settings in ({}, {"query_terms": 3}, {"alpha": 0.5, "rerank": 20}, {"heap_factor": 0.9, "query_cut": 3}):
        together = searcher.search(queries, k=10, **settings)
        for row in range(queries.shape[0]):
            terms, weights = queries[row].indices, queries[row].data
            alone = searcher.search_vector(terms, weights, k=10, **settings)
            for got, expected in zip(alone, together, strict=True):
                assert np.array_equal(got[0], expected[row]), settings
    terms, weights = queries[0].indices, queries[0].data
    padded = searcher.search_vector(np.append(terms, 3), np.append(weights, 0.0), k=10)
    assert np.array_equal(padded[0], searcher.search_vector(terms, weights, k=10)[0])
    with pytest.raises(ValueError, match="vocabulary"):
        searcher.search_vector(np.array([400]), np.array([1.0]))
    with pytest.raises(ValueError, match="vocabulary"):
        searcher.search_vector(np.array([-1]), np.array([1.0]))
    with pytest.raises(ValueError, match="non-negative"):
        searcher.search_vector(np.array([3]), np.array([np.nan]))
    with pytest.raises(ValueError, match="one length"):
        searcher.search_vector(np.array([3, 4]), np.array([1.0]))


def test_pruned_search_trades_recall(index: SparseIndex) -> None:
    queries = random_vectors(60, 400, 0.05, 2)
    searcher = Searcher(index)
    exact, _, _ = searcher.search(queries, k=10)
    longest = int(np.diff(index.offsets).max())
    same, _, _ = searcher.search(queries, k=10, budget=longest)
    assert np.array_equal(same, exact)
    recall = []
    for budget in (5, 20, 60):
        got, _, _ = searcher.search(queries, k=10, budget=budget)
        recall.append(np.mean([len(set(got[i]) & set(exact[i])) / 10 for i in range(queries.shape[0])]))
    assert recall[0] < recall[1] <= recall[2] <= 1.0 and recall[2] > 0.8
    fewer, _, _ = searcher.search(queries, k=10, query_terms=3)
    assert not np.array_equal(fewer, exact)


def test_dynamic_pruning_is_exact_at_alpha_one_and_trades_recall_below(index: SparseIndex) -> None:
    queries = sp.vstack([random_vectors(60, 400, 0.05, 2), sp.csr_matrix(index.to_csr()[5])], format="csr")
    searcher = Searcher(index)
    exact, exact_scores, _ = searcher.search(queries, k=10)
    # every touched document rescored: what dynamic pruning skipped could not have entered the top 10
    safe, safe_scores, _ = searcher.search(queries, k=10, alpha=1.0, rerank=index.num_docs)
    assert np.array_equal(safe, exact)
    np.testing.assert_allclose(safe_scores, exact_scores, rtol=1e-5)
    assert safe[-1, 0] == 5 and safe[-1, 1] == 17
    # safe with the fewest candidates too: the seen documents below the rerank cut are settled by their bound
    for got, want in zip(searcher.search(queries, k=10, alpha=1.0, rerank=10), (exact, exact_scores), strict=False):
        assert np.array_equal(got, want)

    def recall(alpha: float, rerank: int) -> float:
        got, _, _ = searcher.search(queries, k=10, alpha=alpha, rerank=rerank)
        return float(np.mean([len(set(got[i]) & set(exact[i])) / 10 for i in range(queries.shape[0])]))

    assert recall(1.0, 100) > 0.95
    assert recall(0.05, 10) < recall(1.0, 100)
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="alpha"):
            searcher.search(queries, k=10, alpha=bad)
    with pytest.raises(ValueError, match="budget"):
        searcher.search(queries, k=10, alpha=0.5, budget=10)


@pytest.mark.parametrize("fillers", [0, 40])
def test_dynamic_pruning_at_alpha_one_rescores_a_seen_document_below_the_rerank_cut(
    tmp_path: Path, fillers: int
) -> None:
    """Regression: alpha = 1 stopped once no unseen document could reach the top k, then rescored only the
    ``rerank`` best partial scores, so a seen document ranked below them by its partial score but above them
    exactly was lost (recall 0.9998 on 450k packages documents). Here, query ``a + b``: the first round reads
    ``a`` (contributions 8 and 5, at least 4), not ``b``'s 3.5; nothing unseen can reach 8 > 3.5, so reading
    stops, and with ``rerank`` = k = 1 only document 0 (partial 8 = exact 8) was rescored, while document 1
    scores 5 + 3.5 = 8.5. ``fillers`` documents without the query's terms take the kernel's touched-list path
    (without them, the dense one)."""
    corpus = sp.lil_matrix((2 + fillers, 3), dtype=np.float32)
    corpus[0, 0], corpus[1, 0], corpus[1, 1] = 8.0, 5.0, 3.5
    for filler in range(2, 2 + fillers):
        corpus[filler, 2] = 1.0
    build_index(shards_of(sp.csr_matrix(corpus), 100), tmp_path / "idx", "m", "splade")
    searcher = Searcher(SparseIndex.open(tmp_path / "idx"))
    query = sp.csr_matrix(np.array([[1.0, 1.0, 0.0]], dtype=np.float32))
    docs, scores, sizes = searcher.search(query, k=1, alpha=1.0, rerank=1)
    assert (docs[0, 0], scores[0, 0], sizes[0]) == (1, 8.5, 1)
    for got, want in zip(searcher.search(query, k=2, alpha=1.0, rerank=2), searcher.search(query, k=2), strict=True):
        assert np.array_equal(got, want)


def _dynamic_reference(
    index: SparseIndex, queries: sp.csr_matrix, k: int, alpha: float, rerank: int
) -> tuple[np.ndarray, ...]:
    """Dynamic pruning as :mod:`lsr.indexing.sparse.dynamic` describes it, in NumPy with the kernel's float32 order:
    rounds read every contribution of at least ``level`` (halved each round, term by term); reading stops once
    at least ``k`` partial scores exceed ``alpha x`` the unread terms' bound; the ``rerank`` best partial scores
    are rescored in the forward index's order. At ``alpha`` = 1, stopped early, the result is exact search's, bit
    for bit (the forward index's order is the query's, ascending terms)."""
    exact = Searcher(index).search(queries, k=k)
    queries = sp.csr_matrix(queries, dtype=np.float32)
    offsets, docs, codes, table = (np.asarray(a) for a in (index.offsets, index.docs, index.codes, index.codebook))
    fwd_indptr, fwd_terms, fwd_codes = (
        np.asarray(a) for a in (index.forward_indptr, index.forward_terms, index.forward_codes)
    )
    out = (np.zeros((queries.shape[0], k), np.int32), np.zeros((queries.shape[0], k), np.float32))
    sizes = np.zeros(queries.shape[0], dtype=np.int64)
    for row in range(queries.shape[0]):
        terms = queries.indices[queries.indptr[row] : queries.indptr[row + 1]]
        weights = queries.data[queries.indptr[row] : queries.indptr[row + 1]]
        lists = [docs[offsets[t] : offsets[t + 1]] for t in terms]
        contributions = [w * table[codes[offsets[t] : offsets[t + 1]]] for w, t in zip(weights, terms, strict=True)]
        level = max((c[0] for c in contributions if len(c)), default=np.float32(0.0))
        cursor = [0] * len(terms)
        scores = np.zeros(index.num_docs, dtype=np.float32)
        while True:
            level = level * np.float32(0.5)
            remaining = np.float32(0.0)
            for i, contribution in enumerate(contributions):
                stop = int(np.searchsorted(-contribution, -level, side="right"))  # the first one below level
                if stop < len(contribution):
                    remaining += contribution[stop]
                scores[lists[i][cursor[i] : stop]] += contribution[cursor[i] : stop]
                cursor[i] = stop
            if remaining == 0.0 or np.count_nonzero(scores > np.float32(alpha) * remaining) >= k:
                break
        hits = np.flatnonzero(scores > 0)
        best = hits[np.lexsort((hits, -scores[hits]))]
        if remaining > 0.0 and alpha == 1.0:  # stopped early, safe: every document that could reach the top k
            sizes[row] = exact[2][row]
            out[0][row], out[1][row] = exact[0][row], exact[1][row]
            continue
        if remaining > 0.0:  # stopped early: rescore the best partial scores exactly
            best = best[:rerank]
            dense_query = np.zeros(index.meta.vocab_size, dtype=np.float32)
            dense_query[terms] = weights
            for doc in best:
                exact = np.float32(0.0)
                for p in range(fwd_indptr[doc], fwd_indptr[doc + 1]):
                    exact += dense_query[fwd_terms[p]] * table[fwd_codes[p]]
                scores[doc] = exact
            best = best[np.lexsort((best, -scores[best]))]
        sizes[row] = min(k, len(best))
        out[0][row, : sizes[row]] = best[:k]
        out[1][row, : sizes[row]] = scores[best[:k]]
    return *out, sizes


@pytest.mark.parametrize(
    ("alpha", "rerank", "k"),
    [(1.0, 10, 10), (1.0, 50, 10), (0.5, 20, 10), (0.2, 10, 10), (0.2, 100, 10), (1.0, 3000, 3000)],
)
def test_dynamic_pruning_is_bit_identical_to_its_reference(
    index: SparseIndex, alpha: float, rerank: int, k: int
) -> None:
    """Dense queries (no touched list, scans of the score array) and short ones (touched list) alike; with k as
    large as the corpus, every posting is read."""
    long_queries, short_queries = random_vectors(30, 400, 0.05, 4), random_vectors(30, 400, 0.004, 8)
    lengths = np.diff(np.asarray(index.offsets))
    dense = [4 * lengths[q.indices].sum() >= index.num_docs for q in (long_queries, short_queries[0])]
    assert dense == [True, False]  # both of the kernel's paths are taken
    queries = sp.vstack([long_queries, short_queries, sp.csr_matrix(index.to_csr()[5])], format="csr")
    got = Searcher(index).search(queries, k=k, alpha=alpha, rerank=rerank)
    for found, expected in zip(got, _dynamic_reference(index, queries, k, alpha, rerank), strict=True):
        assert np.array_equal(found, expected)


def test_uint8_weights(corpus: sp.csr_matrix, tmp_path: Path) -> None:
    build_index(shards_of(corpus, 1000), tmp_path / "q", "m", "splade", weights="uint8")
    quantised = SparseIndex.open(tmp_path / "q")
    assert quantised.codes.dtype == np.uint8
    np.testing.assert_allclose(quantised.to_csr().toarray(), corpus.toarray(), atol=corpus.data.max() / 255)
    queries = random_vectors(20, 400, 0.05, 3)
    docs, _, _ = Searcher(quantised).search(queries, k=10)
    assert np.array_equal(docs, brute_force(quantised.to_csr(), queries, 10)[0])


def test_corruption_is_detected_at_open(index: SparseIndex) -> None:
    folder = index.path
    raw = bytearray((folder / "postings_docs.npy").read_bytes())
    raw[-3] ^= 0xFF
    (folder / "postings_docs.npy").write_bytes(bytes(raw))
    with pytest.raises(LsrError, match="postings_docs.npy: checksum mismatch"):
        SparseIndex.open(folder)
    np.save(folder / "offsets.npy", np.zeros(5, dtype=np.int64))
    with pytest.raises(LsrError, match=r"offsets.npy: shape \(5,\)"):
        SparseIndex.open(folder, verify=False)
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps(meta | {"format": "lsr-index/0"}))
    with pytest.raises(LsrError, match="index format 'lsr-index/0'"):
        SparseIndex.open(folder)
    (folder / "doc_ids.bin").unlink()
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(LsrError, match="missing doc_ids.bin"):
        SparseIndex.open(folder)
    with pytest.raises(LsrError, match="not an lsr index"):
        SparseIndex.open(folder.parent)


def test_interrupted_build_leaves_nothing(corpus: sp.csr_matrix, tmp_path: Path) -> None:
    passes = {"n": 0}

    def failing():  # noqa: ANN202
        passes["n"] += 1
        yield ["a"], corpus[:1]
        if passes["n"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_index(failing, tmp_path / "idx", "m", "splade")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(LsrError, match="negative weights"):
        build_index(lambda: [(["a"], sp.csr_matrix(-np.ones((1, 4), dtype=np.float32)))], tmp_path / "n", "m", "s")
    with pytest.raises(LsrError, match="dense"):
        build_index(lambda: [(["a"], np.ones((1, 4), dtype=np.float32))], tmp_path / "d", "m", "s")


def test_index_and_search_commands(beir_dir: Path, tmp_path: Path) -> None:
    model = tiny_bert(tmp_path / "bert")
    runner = CliRunner()
    result = runner.invoke(app, index_args(model, beir_dir, tmp_path / "idx"))
    assert result.exit_code == 0, result.output
    assert "indexed 5 documents" in result.output and not (tmp_path / "idx.vectors").exists()
    result = runner.invoke(
        app,
        [
            "search",
            "--index",
            str(tmp_path / "idx"),
            "--queries",
            str(beir_dir / "queries.jsonl"),
            "--k",
            "3",
            "--output",
            str(tmp_path / "run.trec"),
            "--encode-device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"ms/query; a first untimed query took [\d.]+ s", result.output)  # JIT compile not in the speed
    run = read_run(tmp_path / "run.trec")
    assert set(run) == {"q1", "q2", "q3"} and all(len(hits) == 3 for hits in run.values())
    search = ["search", "--index", str(tmp_path / "idx"), "--queries", str(beir_dir / "queries.jsonl"), "--k", "3"]
    result = runner.invoke(app, [*search, "--output", str(tmp_path / "a.trec"), "--approximate", "1.0"])
    assert result.exit_code == 0, result.output
    approximate = read_run(tmp_path / "a.trec")  # five documents, all rescored: the exact lists
    assert {q: list(h) for q, h in approximate.items()} == {q: list(h) for q, h in run.items()}
    bad = ["--output", str(tmp_path / "b.trec"), "--approximate", "0.5", "--budget", "2"]
    result = runner.invoke(app, [*search, *bad])
    assert isinstance(result.exception, LsrError) and "does not combine" in str(result.exception)
    (beir_dir / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td4\t1\nq1\td1\t1\n")
    result = runner.invoke(app, [*search, "--output", str(tmp_path / "dev.trec"), "--split", "dev"])
    assert result.exit_code == 0, result.output
    assert set(read_run(tmp_path / "dev.trec")) == {"q1", "q3"} and "2 queries" in result.output
    result = runner.invoke(app, [*search, "--output", str(tmp_path / "x.trec"), "--split", "nope"])
    assert isinstance(result.exception, LsrError) and "nope.tsv: no such qrels file" in str(result.exception)
    assert "dev, test" in str(result.exception) and not (tmp_path / "x.trec").exists()


def test_search_benchmark_reports_recall(index: SparseIndex) -> None:
    from lsr.eval.bench.search import bench_search

    result = bench_search(index, random_vectors(30, 400, 0.05, 4), k=10, budgets=(5, 1000))
    exact, small, large = result["rows"]
    assert exact["recall@10"] == 1.0 and large["recall@10"] == 1.0 and small["recall@10"] < 1.0
    assert all(row["p50_ms"] > 0 and row["p99_ms"] >= row["p50_ms"] for row in result["rows"])


def test_splade_tiny_on_scifact_equals_brute_force(shared: Path, tmp_path: Path) -> None:
    from itertools import islice

    from lsr.data.beir import BeirDataset
    from lsr.encode.corpus import document_text
    from lsr.models import SpladeEncoder

    data = BeirDataset(shared / "data" / "beir" / "scifact")
    docs = list(islice(data.corpus(), 300))
    encoder = SpladeEncoder.from_pretrained(shared / "models" / "splade-tiny", device="cpu")
    vectors = encoder.encode_document([document_text(d) for d in docs])
    build_index(lambda: [([d.id for d in docs], vectors)], tmp_path / "idx", "splade-tiny", "splade")
    opened = SparseIndex.open(tmp_path / "idx")
    queries = encoder.encode_query(list(data.queries().values())[:100])
    found, _, _ = Searcher(opened).search(queries, k=10)
    reference, _ = brute_force(opened.to_csr(), queries, 10)
    assert np.array_equal(found, reference)


def test_export_to_lucene_and_search_it(beir_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyserini")
    from lsr.indexing.lucene.impact import ImpactSearcher, quantise

    from lsr.data.beir import corpus_source
    from lsr.encode.corpus import encode_corpus
    from lsr.encode.shards import iter_shards
    from lsr.models import SpladeEncoder

    model = tiny_bert(tmp_path / "bert")
    encoder = SpladeEncoder.from_pretrained(model, device="cpu")
    encode_corpus(encoder, str(model), corpus_source(beir_dir), tmp_path / "vec")
    result = CliRunner().invoke(
        app,
        [
            "export",
            "lucene",
            "--vectors",
            str(tmp_path / "vec"),
            "--output",
            str(tmp_path / "jv"),
            "--index",
            str(tmp_path / "lucene"),
        ],
    )
    assert result.exit_code == 0, result.output
    first = json.loads((tmp_path / "jv" / "part-00000.jsonl").read_text().splitlines()[0])
    assert first["id"] == "d1" and all(isinstance(v, int) and v > 0 for v in first["vector"].values())
    assert set(first["vector"]) <= set(encoder.vocabulary)  # terms are the model's own tokens
    queries = quantise(encoder.encode_query(["inverted index postings"]))
    lucene = ImpactSearcher(tmp_path / "lucene", encoder.vocabulary).search(queries, 0, 5)
    shards = [(ids, quantise(vectors)) for ids, vectors in iter_shards(tmp_path / "vec")]
    build_index(lambda: shards, tmp_path / "idx", "m", "splade")  # the same impacts in lsr's index
    opened = SparseIndex.open(tmp_path / "idx")
    docs, _, sizes = Searcher(opened).search(queries, k=5)
    assert lucene == [opened.doc_id(int(d)) for d in docs[0, : sizes[0]]]


@pytest.mark.parametrize("with_nul", [False, True])
def test_doc_ids_in_one_gather_equal_doc_id_one_by_one(tmp_path: Path, with_nul: bool) -> None:
    """Replies read many ids at once: the gather must give each id exactly, whatever bytes it holds, in any order
    and with repeats (a NUL inside an id takes the slower path, and still must)."""
    ids = ["doc-0", "café/é", "東京", "x" * 300, "a b", "a\x00b" if with_nul else "plain", "9"]
    vectors = sp.csr_matrix(np.eye(len(ids), 8, dtype=np.float32))
    build_index(lambda: [(ids, vectors)], tmp_path / "idx", "m", "splade")
    index = SparseIndex.open(tmp_path / "idx")
    numbers = np.array([5, 0, 3, 3, 1, 6, 2, 4])
    assert index.doc_ids(numbers) == [index.doc_id(int(n)) for n in numbers] == [ids[n] for n in numbers]
    assert index.doc_ids(np.zeros(0, dtype=np.int64)) == []
