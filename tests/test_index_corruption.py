"""Index files corrupted in their values, checksums recomputed as anyone editing the files would (issue 19, item 2).

Every such index is refused at open with an :class:`IndexFormatError` naming the file, with ``verify=False``
too (it skips checksums, never range checks), and ``lsr search`` says so in one line. Before these checks,
out-of-range ids segfaulted the search kernels or corrupted their heap, so the search paths run in
subprocesses: a crash fails a test instead of killing pytest.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from lsr.indexing.dense import DenseIndexError, build_dense_index, open_dense_index
from lsr.indexing.dense.faiss_index import flat_vectors
from lsr.indexing.dense.format import META as DENSE_META
from lsr.indexing.dense.hnsw import GRAPH, HEADER
from lsr.indexing.sparse.build import build_index
from lsr.indexing.sparse.format import FILES, META, META_CHECKSUM, IndexFormatError, SparseIndex, crc32_file, write_meta
from lsr.indexing.sparse.search import Searcher
from typer.testing import CliRunner

from lsr.cli import app

DOCS, VOCAB = 400, 60
IDS = [f"doc-{i}" if i != 3 else "dé-3" for i in range(DOCS)]  # one two-byte character, to split an id inside it
LSR = str(Path(sys.executable).with_name("lsr"))
REFUSED = 3  # the search script's exit status when the index is refused at open

Corruption = Callable[[Path], None]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    matrix = sp.random(DOCS, VOCAB, density=0.08, random_state=0, format="csr", dtype=np.float32)
    matrix.data *= 3
    folder = tmp_path_factory.mktemp("pristine") / "idx"
    build_index(lambda: [(IDS[:150], matrix[:150]), (IDS[150:], matrix[150:])], folder, "some-model", "splade")
    return folder


@pytest.fixture
def index_dir(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "idx"))


def reseal(folder: Path) -> None:
    """Recompute the file checksums and the metadata's own, so only the value checks can catch an edit."""
    raw = json.loads((folder / META).read_text())
    raw.pop(META_CHECKSUM)
    raw["checksums"] = {name: crc32_file(folder / name) for name in FILES}
    write_meta(folder / META, raw)


def array(name: str, change: Callable[[np.ndarray], np.ndarray | None]) -> Corruption:
    """Rewrite one array file with ``change`` applied (in place, or returning a new array)."""

    def corrupt(folder: Path) -> None:
        values = np.load(folder / name)
        np.save(folder / name, values if (changed := change(values)) is None else changed)
        reseal(folder)

    return corrupt


def at(position: int, value: float) -> Callable[[np.ndarray], None]:
    def change(values: np.ndarray) -> None:
        values[position] = value

    return change


def fall(position: int) -> Callable[[np.ndarray], None]:
    """Make ``values[position]`` exceed the next value: an out-of-order offset."""

    def change(values: np.ndarray) -> None:
        values[position] = values[position + 1] + 1

    return change


def meta(**fields: object) -> Corruption:
    """Set (or, with ``...``, delete) fields of ``meta.json``, its checksum recomputed."""

    def corrupt(folder: Path) -> None:
        raw = json.loads((folder / META).read_text())
        raw.pop(META_CHECKSUM)
        for name, value in fields.items():
            raw.pop(name) if value is ... else raw.__setitem__(name, value)
        write_meta(folder / META, raw)

    return corrupt


def meta_text(text: str) -> Corruption:
    return lambda folder: (folder / META).write_text(text)


def ids_blob(change: Callable[[bytearray], None]) -> Corruption:
    def corrupt(folder: Path) -> None:
        blob = bytearray((folder / "doc_ids.bin").read_bytes())
        change(blob)
        (folder / "doc_ids.bin").write_bytes(bytes(blob))
        reseal(folder)

    return corrupt


def split_id(values: np.ndarray) -> None:
    """Start document 4's id one byte early, inside the two-byte 'é' of document 3's id ("dé-3")."""
    values[4] = values[3] + 2


def used_weight(value: float) -> Corruption:
    """Set the codebook entry of the first posting's code: a weight every search of that term reads."""

    def corrupt(folder: Path) -> None:
        code = int(np.load(folder / "postings_codes.npy", mmap_mode="r")[0])
        array("codebook.npy", at(code, value))(folder)

    return corrupt


NAN_CODE, INF_CODE, MINUS_ONE_CODE = 0x7E00, 0x7C00, 0xBC00  # float16 bits

# (corruption, the file the error must name, a phrase of the error, whether a search kernel would read it)
CASES = {
    "docs-equal-num-docs": (array("postings_docs.npy", at(0, DOCS)), "postings_docs.npy", "outside", True),
    "docs-negative": (array("postings_docs.npy", at(-1, -1)), "postings_docs.npy", "outside", True),
    "docs-int32-max": (array("postings_docs.npy", at(7, 2**31 - 1)), "postings_docs.npy", "outside", True),
    "terms-equal-vocab": (array("forward_terms.npy", at(0, VOCAB)), "forward_terms.npy", "outside", True),
    "terms-negative": (array("forward_terms.npy", at(-1, -5)), "forward_terms.npy", "outside", True),
    "offsets-decrease": (array("offsets.npy", fall(10)), "offsets.npy", "decrease", True),
    "offsets-beyond-nnz": (array("offsets.npy", at(-1, 10**6)), "offsets.npy", "not from 0", True),
    "offsets-inner-beyond-nnz": (array("offsets.npy", at(30, 10**6)), "offsets.npy", "decrease", True),
    "offsets-start-negative": (array("offsets.npy", at(0, -4)), "offsets.npy", "not from 0", True),
    "indptr-decrease": (array("forward_indptr.npy", fall(100)), "forward_indptr.npy", "decrease", True),
    "indptr-beyond-nnz": (array("forward_indptr.npy", at(-1, 10**7)), "forward_indptr.npy", "not from 0", True),
    "id-offsets-decrease": (array("doc_id_offsets.npy", fall(20)), "doc_id_offsets.npy", "decrease", False),
    "id-offsets-beyond-blob": (array("doc_id_offsets.npy", at(-1, 10**5)), "doc_id_offsets.npy", "not from 0", False),
    "id-split-in-a-character": (array("doc_id_offsets.npy", split_id), "doc_ids.bin", "inside a UTF-8", False),
    "codebook-nan": (used_weight(np.nan), "codebook.npy", "not finite", True),
    "codebook-inf": (used_weight(np.inf), "codebook.npy", "not finite", True),
    "codebook-negative": (used_weight(-2.0), "codebook.npy", "positive", True),
    "codebook-zero": (used_weight(0.0), "codebook.npy", "positive", True),
    "codebook-short": (array("codebook.npy", lambda v: v[:256]), "codebook.npy", "shape", False),
    "codebook-float64": (
        array("codebook.npy", lambda v: np.nan_to_num(v).astype(np.float64)),
        "codebook.npy",
        "float64",
        False,
    ),
    "codes-nan": (array("postings_codes.npy", at(0, NAN_CODE)), "postings_codes.npy", "outside", True),
    "codes-inf": (array("postings_codes.npy", at(0, INF_CODE)), "postings_codes.npy", "outside", True),
    "codes-negative": (array("postings_codes.npy", at(0, MINUS_ONE_CODE)), "postings_codes.npy", "outside", True),
    "codes-zero": (array("postings_codes.npy", at(0, 0)), "postings_codes.npy", "outside", True),
    "forward-codes-nan": (array("forward_codes.npy", at(5, NAN_CODE)), "forward_codes.npy", "outside", True),
    "codes-int64": (array("postings_codes.npy", lambda v: v.astype(np.int64)), "postings_codes.npy", "int64", False),
    "ids-not-utf8": (ids_blob(lambda b: b.__setitem__(0, 0xFF)), "doc_ids.bin", "not UTF-8", False),
    "meta-num-docs-string": (meta(num_docs=str(DOCS)), META, "'num_docs' must be an integer", False),
    "meta-vocab-negative": (meta(vocab_size=-1), META, "'vocab_size' must be an integer >= 0", False),
    "meta-nnz-float": (meta(nnz=1.5), META, "'nnz' must be an integer", False),
    "meta-nnz-bool": (meta(nnz=True), META, "'nnz' must be an integer", False),
    "meta-model-number": (meta(model=5), META, "'model' must be a string", False),
    "meta-weights-unknown": (meta(weights="float32"), META, "'weights' is 'float32'", False),
    "meta-weights-swapped": (meta(weights="uint8"), "postings_codes.npy", "uint8", False),
    "meta-checksums-list": (meta(checksums=[1, 2]), META, "'checksums' must be an object", False),
    "meta-checksum-string": (meta(checksums={"offsets.npy": "0"}), META, "'checksums' must be an object", False),
    "meta-format-missing": (meta(format=...), META, "'format' is missing", False),
    "meta-num-docs-edited": (meta(num_docs=DOCS + 1), "doc_id_offsets.npy", "shape", False),
    "meta-vocab-edited": (meta(vocab_size=VOCAB - 1), "offsets.npy", "shape", False),
    "meta-nnz-edited": (meta(nnz=10), "postings_docs.npy", "shape", False),
    "meta-a-list": (meta_text("[1, 2]"), META, "JSON object expected", False),
    "meta-not-json": (meta_text('{"format": '), META, "unreadable", False),
}
KERNEL_CASES = [name for name, case in CASES.items() if case[3]]


@pytest.mark.parametrize("name", list(CASES))
def test_corruption_is_refused_at_open_naming_the_file(name: str, index_dir: Path) -> None:
    corrupt, file, phrase, _ = CASES[name]
    corrupt(index_dir)
    for verify in (True, False):
        with pytest.raises(IndexFormatError) as refused:
            SparseIndex.open(index_dir, verify=verify)
        message = str(refused.value)
        assert f"{index_dir / file}" in message and phrase in message and "\n" not in message, message


def test_metadata_edits_and_old_indexes_fail_the_checksum(index_dir: Path) -> None:
    raw = json.loads((index_dir / META).read_text())
    (index_dir / META).write_text(json.dumps(raw | {"model": "another-model"}))  # edited, checksum not recomputed
    with pytest.raises(IndexFormatError, match=r"meta.json: checksum mismatch.*rebuild the index"):
        SparseIndex.open(index_dir)
    assert SparseIndex.open(index_dir, verify=False).meta.model == "another-model"  # verify=False skips checksums
    raw.pop(META_CHECKSUM)
    (index_dir / META).write_text(json.dumps(raw))  # as lsr wrote it before the metadata had a checksum
    with pytest.raises(IndexFormatError, match=r"meta.json: no metadata checksum.*rebuild the index"):
        SparseIndex.open(index_dir)


@pytest.mark.parametrize("name", list(CASES))
def test_search_command_reports_corruption_in_one_line(name: str, index_dir: Path, beir_dir: Path) -> None:
    CASES[name][0](index_dir)
    search = ["search", "--index", str(index_dir), "--queries", str(beir_dir / "queries.jsonl")]
    result = CliRunner().invoke(app, [*search, "--output", str(index_dir.parent / "run.trec")])
    assert result.exit_code != 0 and isinstance(result.exception, IndexFormatError), result.output
    assert CASES[name][1] in str(result.exception) and "\n" not in str(result.exception)


def test_console_script_prints_one_line_and_no_traceback(index_dir: Path, beir_dir: Path) -> None:
    CASES["docs-equal-num-docs"][0](index_dir)
    result = subprocess.run(
        [
            LSR,
            "search",
            "--index",
            str(index_dir),
            "--queries",
            str(beir_dir / "queries.jsonl"),
            "--output",
            str(index_dir.parent / "run.trec"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "postings_docs.npy" in lines[0] and "Traceback" not in result.stderr, result.stderr


# The CPU search paths of `lsr search` (exact, --budget, --rerank, --approximate) on an index opened with
# verify=False: status REFUSED when the open refuses it; an out-of-range id or a non-finite score fails the script.
SEARCH_SCRIPT = """
import sys
import numpy as np
import scipy.sparse as sp
from lsr.indexing.sparse.format import IndexFormatError, SparseIndex
from lsr.indexing.sparse.search import Searcher, hits

try:
    index = SparseIndex.open(sys.argv[1], verify=False)
except IndexFormatError as exc:
    print(exc)
    sys.exit({refused})
vocab = index.meta.vocab_size
# every term alone (short queries: the touched-list paths), then all terms at once (the dense and tiled paths)
everything = sp.csr_matrix(np.ones((1, vocab), np.float32))
queries = sp.vstack([sp.identity(vocab, dtype=np.float32, format="csr"), everything], format="csr")
modes = {{
    "exact": dict(),
    "exact-untiled": dict(tiled=False),
    "budget": dict(budget=3),
    "rerank": dict(budget=3, rerank=20),
    "approximate": dict(alpha=0.5, rerank=100),
}}
for mode, options in modes.items():
    searcher = Searcher(index, tiled=options.pop("tiled", True))
    docs, scores, sizes = searcher.search(queries, k=10, **options)
    for row in range(len(sizes)):
        found, best = docs[row, : sizes[row]], scores[row, : sizes[row]]
        assert np.all((found >= 0) & (found < index.num_docs)) and np.all(np.isfinite(best)), (mode, row)
    hits(index, docs, scores, sizes)
    print(mode, "ok")
"""


def search_in_subprocess(script: str, folder: Path) -> subprocess.CompletedProcess:
    """Run a search script on ``folder`` in a fresh interpreter, so a crash is a status, not pytest's death."""
    return subprocess.run(
        [sys.executable, "-c", script.format(refused=REFUSED), str(folder)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_every_search_path_runs_on_the_pristine_index(pristine: Path) -> None:
    result = search_in_subprocess(SEARCH_SCRIPT, pristine)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split()[::2] == ["exact", "exact-untiled", "budget", "rerank", "approximate"]


@pytest.mark.parametrize("name", KERNEL_CASES)
def test_no_search_path_runs_on_a_corrupt_index(name: str, index_dir: Path) -> None:
    CASES[name][0](index_dir)
    result = search_in_subprocess(SEARCH_SCRIPT, index_dir)
    assert result.returncode == REFUSED, f"status {result.returncode}\n{result.stdout}\n{result.stderr[-2000:]}"


def test_searches_fail_clearly_rather_than_return_non_finite_scores(tmp_path: Path) -> None:
    huge = sp.csr_matrix(np.full((3, 4), 3e38, dtype=np.float32))  # finite weights whose sums overflow float32
    build_index(lambda: [(["a", "b", "c"], huge)], tmp_path / "idx", "m", "splade", weights="uint8")
    searcher = Searcher(SparseIndex.open(tmp_path / "idx"))
    with pytest.raises(ValueError, match="overflow"):
        searcher.search(sp.csr_matrix(np.ones((1, 4), dtype=np.float32)), k=2)
    with pytest.raises(ValueError, match="finite"):
        searcher.search(sp.csr_matrix(np.array([[np.nan, 1, 0, 0]], dtype=np.float32)), k=2)


# -- dense indexes: the same guarantee for hnswlib, faiss and exact search ------------------------------------------

VECTORS = np.random.default_rng(3).standard_normal((600, 8)).astype(np.float32)
BACKENDS = {"exact": {}, "hnsw": {"m": 8}, "faiss-flat": {}, "faiss-hnsw": {"m": 8}, "faiss-ivf": {"nlist": 4}}


@pytest.fixture(scope="module")
def dense_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("faiss")
    root = tmp_path_factory.mktemp("dense")
    ids = [f"d{i}" for i in range(len(VECTORS))]
    for backend, params in BACKENDS.items():
        build_dense_index(lambda: [(ids, VECTORS)], root / backend, "some-model", "dot", backend, params)
    return root


def reseal_dense(folder: Path) -> None:
    """Recompute the checksums ``meta.json`` lists and its own."""
    raw = json.loads((folder / DENSE_META).read_text())
    raw.pop(META_CHECKSUM)
    raw["checksums"] = {name: crc32_file(folder / name) for name in raw["checksums"]}
    write_meta(folder / DENSE_META, raw)


def dense_meta(**fields: object) -> Corruption:
    def corrupt(folder: Path) -> None:
        raw = json.loads((folder / DENSE_META).read_text())
        raw.pop(META_CHECKSUM)
        write_meta(folder / DENSE_META, raw | fields)

    return corrupt


def unchecked(name: str) -> Corruption:
    """Drop a file from the checksums ``meta.json`` lists, so ``verify`` would never read it."""

    def corrupt(folder: Path) -> None:
        raw = json.loads((folder / DENSE_META).read_text())
        raw.pop(META_CHECKSUM)
        raw["checksums"].pop(name)
        write_meta(folder / DENSE_META, raw)

    return corrupt


def ids_json(ids: object) -> Corruption:
    def corrupt(folder: Path) -> None:
        (folder / "ids.json").write_text(json.dumps(ids))
        reseal_dense(folder)

    return corrupt


def vectors(change: Callable[[np.ndarray], np.ndarray]) -> Corruption:
    def corrupt(folder: Path) -> None:
        np.save(folder / "vectors.npy", change(np.load(folder / "vectors.npy")))
        reseal_dense(folder)

    return corrupt


def nan_first(values: np.ndarray) -> np.ndarray:
    values[0, 0] = np.nan
    return values


def graph(change: Callable[[np.ndarray, np.ndarray], None]) -> Corruption:
    """Edit ``hnsw.bin`` through its layout: ``change(header, records)``, the header and the level-0 records."""

    def corrupt(folder: Path) -> None:
        raw = np.fromfile(folder / GRAPH, dtype=np.uint8)
        header = raw[: HEADER.itemsize].view(HEADER)
        size = int(header["element_size"][0])
        count = int(header["count"][0])
        change(header, raw[HEADER.itemsize : HEADER.itemsize + count * size].reshape(count, size))
        raw.tofile(folder / GRAPH)
        reseal_dense(folder)

    return corrupt


def first_link(value: int) -> Callable[[np.ndarray, np.ndarray], None]:
    def change(header: np.ndarray, records: np.ndarray) -> None:
        records[0, :2].view("<u2")[0] = max(1, records[0, :2].view("<u2")[0])
        records[0, 4:8].view("<u4")[0] = value

    return change


def label(header: np.ndarray, records: np.ndarray) -> None:
    offset = int(header["label_offset"][0])
    records[7, offset : offset + 8].view("<u8")[0] = 10**9


def degree(header: np.ndarray, records: np.ndarray) -> None:
    records[3, :2].view("<u2")[0] = 60000


def stored_nan(header: np.ndarray, records: np.ndarray) -> None:
    offset = int(header["data_offset"][0])
    records[11, offset : offset + 4].view("<f4")[0] = np.nan


def header(**fields: int) -> Callable[[np.ndarray, np.ndarray], None]:
    def change(head: np.ndarray, records: np.ndarray) -> None:
        for name, value in fields.items():
            head[name] = value

    return change


def upper_link_to_level_zero(folder: Path) -> None:
    """Point an upper-level link at an element that has no upper level: hnswlib would read its missing list."""
    raw = np.fromfile(folder / GRAPH, dtype=np.uint8)
    head = raw[: HEADER.itemsize].view(HEADER)[0]
    words = raw[HEADER.itemsize + int(head["count"]) * int(head["element_size"]) :].view("<u4")
    at, upper, ground = 0, None, None
    for element in range(int(head["count"])):
        size = int(words[at])
        if size and upper is None:
            upper = at + 1
        if not size and ground is None:
            ground = element
        at += 1 + size // 4
    words[upper] = max(1, words[upper] & 0xFFFF)
    words[upper + 1] = ground
    raw.tofile(folder / GRAPH)
    reseal_dense(folder)


def faiss_edit(change: Callable[[Any], None]) -> Corruption:
    def corrupt(folder: Path) -> None:
        faiss = pytest.importorskip("faiss")
        index = faiss.read_index(str(folder / "faiss.index"))
        change(index)
        faiss.write_index(index, str(folder / "faiss.index"))
        reseal_dense(folder)

    return corrupt


def faiss_flat_nan(index: Any) -> None:
    flat_vectors(index)[5, 2] = np.nan


def faiss_link(index: Any) -> None:
    import faiss

    links = faiss.vector_to_array(index.hnsw.neighbors)
    links[0] = 10**6
    faiss.copy_array_to_vector(links, index.hnsw.neighbors)


def faiss_upper_link(index: Any) -> None:
    """Point a level-1 link at a node with level 0 only (faiss's reader lets this through)."""
    import faiss

    graph = index.hnsw
    levels = faiss.vector_to_array(graph.levels)
    offsets = faiss.vector_to_array(graph.offsets).astype(np.int64)
    links = faiss.vector_to_array(graph.neighbors)
    upper, ground = int(np.flatnonzero(levels >= 2)[0]), int(np.flatnonzero(levels == 1)[0])
    links[offsets[upper] + faiss.vector_to_array(graph.cum_nneighbor_per_level)[1]] = ground
    faiss.copy_array_to_vector(links, graph.neighbors)


def faiss_list_id(index: Any) -> None:
    import faiss

    faiss.rev_swig_ptr(index.invlists.get_ids(0), index.invlists.list_size(0))[0] = 10**6


# (backend, corruption, the file the error must name, a phrase of the error, whether a search would read it)
DENSE_CASES = {
    "meta-dimension-string": ("hnsw", dense_meta(dimension="8"), DENSE_META, "'dimension' must be an integer", False),
    "meta-num-docs-negative": (
        "exact",
        dense_meta(num_docs=-1),
        DENSE_META,
        "'num_docs' must be an integer >= 0",
        False,
    ),
    "meta-params-list": ("hnsw", dense_meta(params=[8]), DENSE_META, "'params' must be an object", False),
    "meta-similarity": ("exact", dense_meta(similarity="l2"), DENSE_META, "'similarity' is 'l2'", False),
    "meta-dimension-zero": ("exact", dense_meta(dimension=0), DENSE_META, "not a vector size", False),
    "meta-unchecked-graph": ("hnsw", unchecked(GRAPH), DENSE_META, "lacks hnsw.bin", False),
    "meta-checksum-path": ("hnsw", dense_meta(checksums={"../x": 0}), DENSE_META, "not a file of the index", False),
    "meta-num-docs-edited": ("exact", dense_meta(num_docs=599), "ids.json", "600 ids", False),
    "ids-not-strings": ("exact", ids_json(list(range(600))), "ids.json", "not a string", False),
    "ids-not-a-list": ("exact", ids_json({"a": 1}), "ids.json", "not a list", False),
    "exact-nan": ("exact", vectors(nan_first), "vectors.npy", "NaN", True),
    "exact-transposed": ("exact", vectors(lambda v: np.ascontiguousarray(v.T)), "vectors.npy", "expected", True),
    "exact-float64": ("exact", vectors(lambda v: v.astype(np.float64)), "vectors.npy", "float64", True),
    "hnsw-link": ("hnsw", graph(first_link(10**6)), GRAPH, "link", True),
    "hnsw-link-max": ("hnsw", graph(first_link(2**32 - 1)), GRAPH, "link", True),
    "hnsw-label": ("hnsw", graph(label), GRAPH, "row label", True),
    "hnsw-degree": ("hnsw", graph(degree), GRAPH, "link count", True),
    "hnsw-nan": ("hnsw", graph(stored_nan), GRAPH, "NaN", True),
    "hnsw-entry": ("hnsw", graph(header(entry=10**6)), GRAPH, "entry point", True),
    "hnsw-count": ("hnsw", graph(header(count=601)), GRAPH, "header field count", True),
    "hnsw-label-offset": ("hnsw", graph(header(label_offset=10**6)), GRAPH, "label_offset", True),
    "hnsw-max-level": ("hnsw", graph(header(max_level=-1)), GRAPH, "level", True),
    "hnsw-upper-link": ("hnsw", upper_link_to_level_zero, GRAPH, "without that level", True),
    "faiss-flat-nan": ("faiss-flat", faiss_edit(faiss_flat_nan), "faiss.index", "NaN", True),
    "faiss-hnsw-link": ("faiss-hnsw", faiss_edit(faiss_link), "faiss.index", "1000000", True),
    "faiss-hnsw-upper-link": ("faiss-hnsw", faiss_edit(faiss_upper_link), "faiss.index", "without that level", True),
    "faiss-ivf-id": ("faiss-ivf", faiss_edit(faiss_list_id), "faiss.index", "row id", True),
}


@pytest.fixture
def dense_dir(request: pytest.FixtureRequest, dense_built: Path, tmp_path: Path) -> Path:
    backend, corrupt = DENSE_CASES[request.param][:2]
    folder = Path(shutil.copytree(dense_built / backend, tmp_path / backend))
    corrupt(folder)
    return folder


@pytest.mark.parametrize("dense_dir", list(DENSE_CASES), indirect=True)
def test_dense_corruption_is_refused_at_open_naming_the_file(dense_dir: Path, request: pytest.FixtureRequest) -> None:
    _, _, file, phrase, _ = DENSE_CASES[request.node.callspec.params["dense_dir"]]
    for verify in (True, False):
        with pytest.raises(DenseIndexError) as refused:
            open_dense_index(dense_dir, verify=verify)
        message = str(refused.value)
        assert f"{dense_dir / file}" in message and phrase in message and "\n" not in message, message


def test_dense_metadata_edits_fail_the_checksum(dense_built: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(dense_built / "hnsw", tmp_path / "hnsw"))
    raw = json.loads((folder / DENSE_META).read_text())
    (folder / DENSE_META).write_text(json.dumps(raw | {"model": "another-model"}))
    with pytest.raises(DenseIndexError, match=r"meta.json: checksum mismatch.*rebuild the dense index"):
        open_dense_index(folder)
    assert open_dense_index(folder, verify=False).meta.model == "another-model"


# A search of a dense index opened with verify=False, as SEARCH_SCRIPT does for the sparse one.
DENSE_SEARCH_SCRIPT = """
import sys
import numpy as np
from lsr.indexing.dense import DenseIndexError, open_dense_index

try:
    index = open_dense_index(sys.argv[1], verify=False)
except DenseIndexError as exc:
    print(exc)
    sys.exit({refused})
queries = np.random.default_rng(0).standard_normal((50, index.meta.dimension)).astype(np.float32)
rows, scores = index.search(queries, 10)
assert np.all((rows >= 0) & (rows < index.meta.num_docs)) and np.all(np.isfinite(scores))
index.hits(rows, scores)
print("ok")
"""


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_dense_search_runs_on_the_pristine_index(backend: str, dense_built: Path) -> None:
    result = search_in_subprocess(DENSE_SEARCH_SCRIPT, dense_built / backend)
    assert result.returncode == 0 and result.stdout.split() == ["ok"], result.stdout + result.stderr


@pytest.mark.parametrize("dense_dir", [name for name, case in DENSE_CASES.items() if case[4]], indirect=True)
def test_no_dense_search_runs_on_a_corrupt_index(dense_dir: Path) -> None:
    result = search_in_subprocess(DENSE_SEARCH_SCRIPT, dense_dir)
    assert result.returncode == REFUSED, f"status {result.returncode}\n{result.stdout}\n{result.stderr[-2000:]}"
