"""Filters inside the search (issue 20, item 2): every searcher given an ``allow`` mask returns the top k of the
allowed documents, as brute force over those documents alone does, with the scores an unfiltered search gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from gpu_support import run_gpu_check
from lsr.indexing.dense import build_dense_index, exact_top_k, normalise, open_dense_index, recall_at
from lsr.indexing.filters import UNKNOWN, DocNumbers, allow_mask, check_allow
from lsr.indexing.sparse.build import build_index
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.search import LISTED_SHARE, Searcher, brute_force
from lsr.indexing.sparse.topk import LISTED_COST

DOCS, VOCAB = 3000, 400
IDS = [f"doc-{i}" if i != 9 else "dé-9" for i in range(DOCS)]


def random_vectors(docs: int, density: float, seed: int) -> sp.csr_matrix:
    matrix = sp.random(docs, VOCAB, density=density, random_state=seed, format="csr", dtype=np.float32)
    matrix.data *= 3
    return matrix


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> SparseIndex:
    matrix = random_vectors(DOCS, 0.03, 0)
    matrix[17] = matrix[5]  # a tie, broken by the lower document number
    matrix = sp.csr_matrix(matrix)
    folder = tmp_path_factory.mktemp("sparse") / "idx"
    build_index(lambda: [(IDS[:1000], matrix[:1000]), (IDS[1000:], matrix[1000:])], folder, "m", "splade")
    return SparseIndex.open(folder)


@pytest.fixture(scope="module")
def queries(index: SparseIndex) -> sp.csr_matrix:
    """Long queries (the dense and tiled paths), short ones (the touched-list path), and document 5 itself."""
    return sp.vstack(
        [random_vectors(25, 0.05, 1), random_vectors(25, 0.004, 2), index.to_csr()[5]], format="csr", dtype=np.float32
    )


@pytest.fixture(scope="module")
def unfiltered(index: SparseIndex, queries: sp.csr_matrix) -> list[dict[int, float]]:
    """Every query's score of every document it matches, from an unfiltered search."""
    docs, scores, sizes = Searcher(index, tiled=False).search(queries, k=DOCS)
    return [dict(zip(docs[row, : sizes[row]], scores[row, : sizes[row]], strict=True)) for row in range(len(docs))]


def masks() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    few = allow_mask(DOCS, [5, 17, 40, 2000, 2999])
    return {
        "half": rng.random(DOCS) < 0.5,
        "tenth": rng.random(DOCS) < 0.1,
        "hundredth": (rng.random(DOCS) < 0.01) | few,
        "five": few,
        "two": allow_mask(DOCS, [5, 17]),  # a tie
        "uint8": (rng.random(DOCS) < 0.3).astype(np.uint8) * 7,  # any non-zero byte allows
    }


def restricted(index: SparseIndex, queries: sp.csr_matrix, mask: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """Brute force over the allowed documents alone (the others' rows emptied), and how many hits each query has."""
    docs, scores = brute_force(sp.diags(mask.astype(bool).astype(np.float32)) @ index.to_csr(), queries, k)
    return docs, scores, (docs >= 0).sum(axis=1)


def padded(docs: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Search output's documents with -1 in the unfilled slots, as brute force and recall_at have them."""
    return np.where(np.arange(docs.shape[1]) < sizes[:, None], docs, -1)


def assert_filtered(
    index: SparseIndex,
    queries: sp.csr_matrix,
    got: tuple[np.ndarray, ...],
    mask: np.ndarray,
    unfiltered: list[dict[int, float]],
) -> None:
    """The same documents, order and hit counts as brute force over the allowed documents; the same float32
    scores, bit for bit, as the unfiltered search gives those documents."""
    docs, scores, sizes = got
    ref_docs, ref_scores, ref_sizes = restricted(index, queries, mask, docs.shape[1])
    assert np.array_equal(sizes, ref_sizes)
    assert np.array_equal(padded(docs, sizes), ref_docs)
    np.testing.assert_allclose(np.where(ref_docs >= 0, scores, 0), ref_scores, rtol=1e-5)
    for row, known in enumerate(unfiltered):
        assert [known[d] for d in docs[row, : sizes[row]]] == list(scores[row, : sizes[row]])


@pytest.mark.parametrize("k", [1, 10, 200])
@pytest.mark.parametrize("tiled", [False, True])
@pytest.mark.parametrize("name", list(masks()))
def test_exact_search_with_a_mask_is_brute_force_over_the_allowed(
    index: SparseIndex, queries: sp.csr_matrix, unfiltered: list[dict[int, float]], name: str, tiled: bool, k: int
) -> None:
    mask = masks()[name]
    searcher = Searcher(index, tiled=tiled, tile=1000)
    assert_filtered(index, queries, searcher.search(queries, k=k, allow=mask), mask, unfiltered)
    assert (searcher._tiles is not None) == tiled  # the long queries took the tiled kernel


def test_few_allowed_documents_are_scored_alone_or_by_the_postings_as_each_query_costs(
    index: SparseIndex, queries: sp.csr_matrix, unfiltered: list[dict[int, float]]
) -> None:
    """Two allowed documents are listed; the long queries read more postings than scoring them alone costs
    (:func:`lsr.indexing.sparse.topk.top_of_listed`), the short ones fewer (selection by mask): both paths."""
    mask = masks()["two"]
    assert LISTED_SHARE * mask.sum() <= DOCS
    lengths, average = np.diff(np.asarray(index.offsets)), index.meta.nnz / DOCS
    cheaper = [
        LISTED_COST * mask.sum() * (average + queries[row].nnz) < lengths[queries[row].indices].sum()
        for row in range(queries.shape[0])
    ]
    assert any(cheaper) and not all(cheaper)
    for k in (1, 3, 10):
        assert_filtered(index, queries, Searcher(index).search(queries, k=k, allow=mask), mask, unfiltered)


def test_allow_one_document_and_deny_all(index: SparseIndex, queries: sp.csr_matrix) -> None:
    searcher = Searcher(index)
    for number in (0, 5, 17, 1234, DOCS - 1):
        mask = allow_mask(DOCS, index.doc_numbers([IDS[number]]))
        docs, scores, sizes = searcher.search(index.to_csr()[number], k=10, allow=mask)
        assert (sizes[0], docs[0, 0]) == (1, number) and scores[0, 0] > 0
        _, _, sizes = searcher.search(queries, k=10, allow=mask)
        assert np.all(sizes <= 1)
    for options in ({}, {"budget": 5}, {"budget": 5, "rerank": 20}, {"alpha": 0.5}):
        for mask in (np.zeros(DOCS, dtype=bool), allow_mask(DOCS, index.doc_numbers(["no such id"]))):
            docs, scores, sizes = searcher.search(queries, k=10, allow=mask, **options)
            assert not sizes.any() and not docs.any() and not scores.any()


def test_deny_one_document(index: SparseIndex, queries: sp.csr_matrix, unfiltered: list[dict[int, float]]) -> None:
    searcher = Searcher(index)
    docs, _, sizes = searcher.search(queries, k=11)
    mask = allow_mask(DOCS, deny_numbers=index.doc_numbers([IDS[5]]))
    denied = searcher.search(queries, k=10, allow=mask)
    assert_filtered(index, queries, denied, mask, unfiltered)
    for row in range(queries.shape[0]):
        expected = [d for d in docs[row, : sizes[row]] if d != 5][:10]
        assert list(denied[0][row, : len(expected)]) == expected


def test_pruned_and_reranked_search_return_only_allowed_documents(index: SparseIndex, queries: sp.csr_matrix) -> None:
    """A budget that reads every posting is exact search, reranked too (rescored in the forward index's order, so
    scores agree to rounding); smaller budgets keep to the mask."""
    searcher = Searcher(index)
    longest = int(np.diff(np.asarray(index.offsets)).max())
    for name in ("half", "tenth", "five"):
        mask = masks()[name]
        exact = searcher.search(queries, k=10, allow=mask)
        for options in ({"budget": longest}, {"budget": longest, "rerank": 30}):
            docs, scores, sizes = searcher.search(queries, k=10, allow=mask, **options)
            assert np.array_equal(docs, exact[0]) and np.array_equal(sizes, exact[2])
            np.testing.assert_allclose(scores, exact[1], rtol=1e-5)
        for options in ({"budget": 5}, {"budget": 5, "rerank": 30}, {"budget": 20, "query_terms": 3}):
            docs, _, sizes = searcher.search(queries, k=10, allow=mask, **options)
            assert all(mask[docs[row, : sizes[row]]].all() for row in range(queries.shape[0]))


@pytest.mark.parametrize("name", ["half", "tenth", "hundredth", "five"])
def test_dynamic_pruning_with_a_mask_is_exact_at_alpha_one(
    index: SparseIndex, queries: sp.csr_matrix, name: str
) -> None:
    """Its stopping test counts allowed documents only, so alpha 1 stays safe: with every candidate rescored
    it is exact search over the allowed documents, and with 50 it keeps nearly all of the top 10."""
    mask = masks()[name]
    searcher = Searcher(index)
    exact = searcher.search(queries, k=10, allow=mask)
    safe = searcher.search(queries, k=10, alpha=1.0, rerank=DOCS, allow=mask)
    assert np.array_equal(safe[0], exact[0]) and np.array_equal(safe[2], exact[2])
    np.testing.assert_allclose(safe[1], exact[1], rtol=1e-5)
    docs, _, sizes = searcher.search(queries, k=10, alpha=1.0, rerank=50, allow=mask)
    hit = exact[2] > 0  # recall_at counts a query without hits as recall 0
    assert recall_at(padded(docs, sizes)[hit], padded(exact[0], exact[2])[hit]) > 0.95
    docs, _, sizes = searcher.search(queries, k=10, alpha=0.3, rerank=10, allow=mask)
    assert all(mask[docs[row, : sizes[row]]].all() for row in range(queries.shape[0]))


def test_masks_and_id_lookup(index: SparseIndex) -> None:
    assert list(index.doc_numbers(["doc-17", "dé-9", "nope", "", "doc-2999", "doc-17"])) == [17, 9, -1, -1, 2999, 17]
    assert list(DocNumbers.of(["a", "b", "a"]).numbers(["a", "b", "c"])) == [0, 1, UNKNOWN]  # the lower of a repeat
    assert list(DocNumbers.of([]).numbers(["a"])) == [UNKNOWN]
    assert allow_mask(4, [1, UNKNOWN]).tolist() == [False, True, False, False]
    assert allow_mask(4, None, [2]).tolist() == [True, True, False, True]
    assert allow_mask(4, [1, 2], [2, UNKNOWN]).tolist() == [False, True, False, False]
    assert not allow_mask(4, []).any()
    with pytest.raises(ValueError, match="document numbers"):
        allow_mask(4, [4])
    with pytest.raises(ValueError, match="document numbers"):
        allow_mask(4, None, [-2])
    assert check_allow(None, 4) is None and check_allow(np.ones(4, dtype=bool), 4) is None  # no filter: no cost
    assert check_allow(np.array([0, 2, 255, 1], dtype=np.uint8), 4).tolist() == [False, True, True, True]
    for bad in (np.ones(3, dtype=bool), np.ones(4, dtype=np.int64), np.ones((4, 1), dtype=bool)):
        with pytest.raises(ValueError, match="mask of 4 documents"):
            check_allow(bad, 4)
    with pytest.raises(ValueError, match="mask"):
        Searcher(index).search(random_vectors(1, 0.05, 5), k=10, allow=np.ones(DOCS - 1, dtype=bool))


GPU_CHECK = """
import sys, numpy as np, scipy.sparse as sp
from lsr.indexing.filters import allow_mask
from lsr.indexing.sparse.format import SparseIndex
from lsr.indexing.sparse.gpu import GpuSearcher
from lsr.indexing.sparse.search import Searcher
index = SparseIndex.open(sys.argv[1])
queries = sp.load_npz(sys.argv[2])
rng = np.random.default_rng(0)
for mask in (rng.random(index.num_docs) < 0.3, allow_mask(index.num_docs, [3, 11]), np.zeros(index.num_docs, bool)):
    cpu = Searcher(index).search(queries, k=10, allow=mask)
    for strategy in ("tiles", "postings", "forward"):
        gpu = GpuSearcher(index, batch_size=4, strategy=strategy).search(queries, k=10, allow=mask)
        assert np.array_equal(cpu[2], gpu[2]) and np.array_equal(cpu[0], gpu[0]), strategy
        np.testing.assert_allclose(cpu[1], gpu[1], rtol=1e-5)
    wide = GpuSearcher(index, strategy="tiles").search(queries, k=20, allow=mask)  # handed over to forward
    assert np.array_equal(Searcher(index).search(queries, k=20, allow=mask)[0], wide[0])
print("agree")
"""


@pytest.mark.parametrize("mode", ["simulator", "gpu"])
def test_gpu_kernels_filter_as_the_cpu_kernel(tmp_path: Path, mode: str) -> None:
    """Every GPU strategy applies the mask on the device and returns the CPU kernel's documents (run in a
    subprocess: the simulator is chosen by an environment variable read at import)."""
    matrix = sp.random(300, 50, density=0.1, random_state=0, format="csr", dtype=np.float32)
    matrix[11] = matrix[3]
    matrix = sp.csr_matrix(matrix)
    build_index(lambda: [([f"d{i}" for i in range(300)], matrix)], tmp_path / "idx", "m", "splade")
    queries = sp.vstack([sp.random(5, 50, density=0.2, random_state=1, format="csr", dtype=np.float32), matrix[3]])
    sp.save_npz(tmp_path / "q.npz", sp.csr_matrix(queries))
    run_gpu_check(GPU_CHECK, [str(tmp_path / "idx"), str(tmp_path / "q.npz")], mode)


RNG = np.random.default_rng(11)
CORPUS = RNG.standard_normal((1500, 24)).astype(np.float32)
DENSE_QUERIES = RNG.standard_normal((30, 24)).astype(np.float32)
DENSE_IDS = [f"row{i}" for i in range(len(CORPUS))]
BACKENDS = {
    "exact": {},
    "hnsw": {"m": 16},
    "faiss-flat": {},
    "faiss-hnsw": {"m": 16},
    "faiss-ivf": {"nlist": 16, "train": 1500},
}
EXACT = {"exact", "faiss-flat", "faiss-ivf"}  # faiss-ivf visiting every list (nprobe = nlist) is exact too


def dense_shards() -> list[tuple[list[str], np.ndarray]]:
    return [(DENSE_IDS[s : s + 500], CORPUS[s : s + 500]) for s in range(0, len(CORPUS), 500)]


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_dense_search_with_a_mask(tmp_path: Path, backend: str) -> None:
    """Inside the backend (``scan_rows = 0``) and by an exact scan of the allowed rows (the default for a filter
    this small): the exact top k of the allowed rows, approximately for the graphs; one row; none."""
    if backend.startswith("faiss"):
        pytest.importorskip("faiss")
    build_dense_index(dense_shards, tmp_path / "i", "m", "cosine", backend, BACKENDS[backend])
    index = open_dense_index(tmp_path / "i")
    params = {"nprobe": 16} if backend == "faiss-ivf" else {}
    mask = RNG.random(len(CORPUS)) < 0.2
    allowed = np.flatnonzero(mask)
    truth, truth_scores = exact_top_k(normalise(CORPUS)[allowed], normalise(DENSE_QUERIES), 10)
    truth = allowed[truth]
    for scan_rows in (0, len(CORPUS)):
        index.scan_rows = scan_rows
        rows, scores = index.search(DENSE_QUERIES, 10, allow=mask, **params)
        assert rows.shape == (len(DENSE_QUERIES), 10) and mask[rows].all()
        if backend in EXACT or scan_rows:
            np.testing.assert_array_equal(rows, truth)
            np.testing.assert_allclose(scores, truth_scores, rtol=1e-5, atol=1e-6)
        else:
            assert recall_at(rows, truth) >= 0.9
        one = allow_mask(len(CORPUS), index.doc_numbers(["row77"]))
        rows, scores = index.search(DENSE_QUERIES, 10, allow=one, **params)
        assert rows.shape == (len(DENSE_QUERIES), 1)
        if backend in EXACT or scan_rows:
            assert (rows == 77).all()
        else:  # a graph walk may never reach a lone allowed row: the reason small filters are scanned
            assert set(rows.ravel()) <= {77, -1}
        for nothing in (np.zeros(len(CORPUS), dtype=bool), allow_mask(len(CORPUS), index.doc_numbers(["nope"]))):
            rows, scores = index.search(DENSE_QUERIES, 10, allow=nothing, **params)
            assert rows.shape == scores.shape == (len(DENSE_QUERIES), 0)
    everything = np.ones(len(CORPUS), dtype=bool)  # no filter at all
    np.testing.assert_array_equal(
        index.search(DENSE_QUERIES, 10, allow=everything, **params)[0], index.search(DENSE_QUERIES, 10, **params)[0]
    )
