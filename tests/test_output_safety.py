"""What survives a crash, a full disk, a mistyped output and a second writer (issue 19, items 1, 3, 4, 7).

Each test drives the real code: real indexes built from real vector folders, killed by SIGKILL at every
file-system step, filled on a real (small tmpfs) file system, and commands run as users run them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from fault_support import REPO, run_child, unshare_prefix, vectors_folder
from lsr.indexing.sparse.format import SparseIndex
from typer.testing import CliRunner

from lsr.cli import app
from lsr.fsutil import MARKER, OutputError, atomic_dir, atomic_file, claim_dir, forcing, writing

runner = CliRunner()


def _ids(index: Path) -> set[str]:
    opened = SparseIndex.open(index)  # checksums verified: a half-written index fails here
    return {opened.doc_id(i) for i in range(opened.num_docs)}


def _index(vectors: list[Path], output: Path, *extra: str) -> object:
    args = ["index", "--output", str(output)]
    for folder in vectors:
        args += ["--vectors", str(folder)]
    return runner.invoke(app, [*args, *extra])


@pytest.fixture
def vectors(tmp_path: Path) -> list[Path]:
    return [vectors_folder(tmp_path / "a", 0, 30, seed=1), vectors_folder(tmp_path / "b", 30, 30, seed=2)]


# -- item 1: never destroy what lsr did not create ---------------------------------------------------------


def test_index_refuses_a_users_folder_and_a_file(vectors: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("months of work")
    result = _index(vectors, folder)
    assert result.exit_code != 0 and isinstance(result.exception, OutputError)
    assert "not written by lsr" in str(result.exception) and "--force" in str(result.exception)
    assert (folder / "chapter1.tex").read_text() == "months of work"
    note = tmp_path / "notes.txt"
    note.write_text("keep me")
    result = _index(vectors, note)
    assert isinstance(result.exception, OutputError) and "is a file" in str(result.exception)
    assert note.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "notes.txt", "thesis"]  # nothing left over


def test_force_replaces_and_lsr_outputs_are_replaced_freely(vectors: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("draft")
    assert _index(vectors, folder, "--force").exit_code == 0
    assert not (folder / "chapter1.tex").exists() and (folder / MARKER).is_file()
    assert _index(vectors[:1], folder).exit_code == 0  # lsr's own output: replaced without --force
    assert _ids(folder) == {f"d{i}" for i in range(30)}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _index(vectors, empty).exit_code == 0  # an empty folder holds nothing to lose


def test_current_folder_and_its_parents_are_refused_even_with_force(
    vectors: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.txt").write_text("x")
    monkeypatch.chdir(work)
    for output in (".", "..", str(work)):
        result = _index(vectors, Path(output), "--force")
        assert isinstance(result.exception, OutputError) and "current folder" in str(result.exception)
    assert (work / "data.txt").read_text() == "x"


def test_a_file_never_replaces_a_folder(tmp_path: Path) -> None:
    (tmp_path / "run.trec").mkdir()
    with pytest.raises(OutputError, match="is a folder"), atomic_file(tmp_path / "run.trec") as handle:
        handle.write("x")
    assert (tmp_path / "run.trec").is_dir()


def test_claimed_folders_refuse_foreign_content_and_adopt_their_own(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x").write_text("x")
    with pytest.raises(OutputError, match="not written by lsr"):
        claim_dir(foreign)
    own = claim_dir(tmp_path / "own")
    (own / "metrics.json").write_text("{}")
    assert claim_dir(own) == own and (own / "metrics.json").exists()
    with forcing():
        assert claim_dir(foreign) == foreign and (foreign / "x").exists()  # claiming adds, never deletes


# -- item 4: atomic at every step, nothing left behind, one writer -----------------------------------------


@pytest.mark.parametrize("mode", ["exchange", "two-renames"])
def test_a_build_killed_at_any_step_leaves_the_old_index_or_the_new(
    vectors: list[Path], tmp_path: Path, mode: str
) -> None:
    """SIGKILL at each file-system step of replacing an index by a merge of two vectors folders: the path
    holds the complete old index or the complete new one (after the next writer's recovery on file systems
    without an atomic exchange), and the next build reclaims every temporary."""
    target = tmp_path / "out" / "idx"
    old, new = {f"d{i}" for i in range(30)}, {f"d{i}" for i in range(60)}
    assert _index(vectors[:1], target).exit_code == 0
    clean = run_child(target, 0, mode, vectors)
    assert clean.returncode == 0, clean.stderr
    steps = int(clean.stdout.split()[-1])
    assert steps > 10
    seen = set()
    for kill_at in range(1, steps + 1):
        assert _index(vectors[:1], target).exit_code == 0  # back to the old index, reclaiming leftovers
        assert sorted(os.listdir(target.parent)) == ["idx"]
        child = run_child(target, kill_at, mode, vectors)
        assert child.returncode == -9, (kill_at, child.returncode, child.stderr[-2000:])
        if not target.exists():  # only between the two renames of the fallback
            assert mode == "two-renames", kill_at
            with pytest.raises(RuntimeError), atomic_dir(target):
                raise RuntimeError("a writer that fails after recovering")
        state = _ids(target)
        assert state in (old, new), kill_at
        seen.add(frozenset(state))
    assert seen == {frozenset(old), frozenset(new)}  # the kills did land before and after the swap


def test_a_second_writer_fails_at_once(tmp_path: Path, vectors: list[Path]) -> None:
    target = tmp_path / "idx"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import sys; from lsr.fsutil import writing\nwith writing({str(target)!r}):\n"
         "    print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = _index(vectors, target)
        assert isinstance(result.exception, OutputError)
        assert f"another lsr process (pid {holder.pid})" in str(result.exception)
    finally:
        holder.communicate("")
    assert _index(vectors, target).exit_code == 0  # released with its holder
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "idx"]


def test_a_second_thread_fails_and_the_same_thread_reenters(tmp_path: Path) -> None:
    target = tmp_path / "idx"
    errors: list[Exception] = []
    with writing(target), atomic_dir(target) as tmp:
        (tmp / "x").write_text("1")

        def other() -> None:
            try:
                with atomic_dir(target):
                    pass
            except OutputError as exc:
                errors.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert len(errors) == 1 and "another thread" in str(errors[0])
    assert (target / "x").read_text() == "1"


def test_stale_temporaries_of_a_killed_writer_are_reclaimed(tmp_path: Path) -> None:
    stale_dir = tmp_path / ".idx.lsr-tmp.999999999.abc"
    stale_dir.mkdir()
    (stale_dir / "postings_docs.npy").write_bytes(b"0" * 1000)
    stale_file = tmp_path / ".run.trec.lsr-tmp.999999999.xyz"
    stale_file.write_text("half a run")
    foreign = tmp_path / ".idx.other"
    foreign.write_text("not ours")
    with atomic_dir(tmp_path / "idx") as tmp:
        (tmp / "x").write_text("1")
    with atomic_file(tmp_path / "run.trec") as handle:
        handle.write("q 0 d 1 1.0 t\n")
    assert sorted(os.listdir(tmp_path)) == [".idx.other", "idx", "run.trec"]


def test_a_corrected_corpus_is_reindexed_without_deleting_anything_by_hand(beir_dir: Path, tmp_path: Path) -> None:
    from tiny_models import tiny_bert

    model = tiny_bert(tmp_path / "bert")
    corpus = beir_dir / "corpus.jsonl"
    good = corpus.read_text()
    corpus.write_text(good + '{"_id": "d9", "text": \n')
    args = ["index", "--model", str(model), "--corpus", str(beir_dir), "--output", str(tmp_path / "idx")]
    result = runner.invoke(app, [*args, "--device", "cpu"])
    assert result.exit_code != 0 and "corpus.jsonl:6" in str(result.exception)
    corpus.write_text(good)
    result = runner.invoke(app, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert len(_ids(tmp_path / "idx")) == 5


# -- item 3 and 7: a full disk, a read-only folder ---------------------------------------------------------

UNSHARE = unshare_prefix()
needs_mounts = pytest.mark.skipif(UNSHARE is None, reason="no private mount namespace here (unshare)")

FULL_DISK = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np, scipy.sparse as sp
    from lsr.indexing.sparse.build import build_index
    from lsr.indexing.sparse.format import SparseIndex
    from lsr.errors import LsrError
    root, docs = sys.argv[1], int(sys.argv[2])
    small = sp.random(20, 500, density=0.05, random_state=0, format="csr", dtype=np.float32)
    build_index(lambda: [([f"s{i}" for i in range(20)], small)], root + "/idx", "m", "splade")
    big = sp.random(docs, 500, density=0.05, random_state=1, format="csr", dtype=np.float32)
    try:
        build_index(lambda: [([f"d{i}" for i in range(docs)], big)], root + "/idx", "m", "splade")
        error = None
    except LsrError as exc:
        error = str(exc)
    print(json.dumps({"error": error, "listing": sorted(os.listdir(root)),
                      "old": SparseIndex.open(root + "/idx").num_docs}))
    """
)


@needs_mounts
@pytest.mark.parametrize("docs", [2_000, 6_000, 40_000])
def test_a_full_disk_is_a_clear_error_that_keeps_the_old_index(tmp_path: Path, docs: int) -> None:
    """A 1 MiB tmpfs: the build runs out of space at different steps (the reserved postings, the arrays
    saved after them); the old index stays, nothing is left, and no SIGBUS."""
    mount = tmp_path / "small"
    mount.mkdir()
    script = f'mount -t tmpfs -o size=1m tmpfs {mount} && exec {sys.executable} -c "$0" {mount} {docs}'
    child = subprocess.run(
        [*UNSHARE, "sh", "-c", script, FULL_DISK],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout.splitlines()[-1])
    assert result["error"] and "no space left on the device" in result["error"]
    assert result["listing"] == ["idx"] and result["old"] == 20


@needs_mounts
def test_a_read_only_output_is_one_line(tmp_path: Path, vectors: list[Path]) -> None:
    mount = tmp_path / "ro"
    mount.mkdir()
    lsr = Path(sys.executable).with_name("lsr")
    command = (
        f"mount -t tmpfs tmpfs {mount} && mount -o remount,ro {mount} && "
        f"exec {lsr} index --vectors {vectors[0]} --output {mount}/runs/idx"
    )
    child = subprocess.run([*UNSHARE, "sh", "-c", command], capture_output=True, text=True, timeout=300, check=False)
    assert child.returncode == 2, child.stderr
    assert "read-only" in child.stderr and "Traceback" not in child.stderr


def test_named_output_files_are_checked_before_they_are_overwritten(tmp_path: Path) -> None:
    from lsr.fsutil import check_file_replaceable

    essay = tmp_path / "essay.txt"
    essay.write_text("Four score and seven years ago our fathers brought forth\n")
    for kind in ("trec", "json", "image"):
        with pytest.raises(OutputError, match=f"does not look like a {kind} file"):
            check_file_replaceable(essay, kind)
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 d1 1 2.5 lsr\nq1 Q0 d2 2 1.5 lsr\n")
    check_file_replaceable(run, "trec")  # an earlier run: replaced
    check_file_replaceable(tmp_path / "new.json", "json")
    with forcing():
        check_file_replaceable(essay, "trec")


def test_search_and_compare_refuse_to_overwrite_a_users_file(tmp_path: Path, vectors: list[Path]) -> None:
    essay = tmp_path / "essay.txt"
    essay.write_text("not a run\n")
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"_id": "q1", "text": "x"}\n')
    assert _index(vectors, tmp_path / "idx").exit_code == 0
    result = runner.invoke(
        app, ["search", "--index", str(tmp_path / "idx"), "--queries", str(queries), "--output", str(essay)]
    )
    assert isinstance(result.exception, OutputError) and "trec" in str(result.exception)
    result = runner.invoke(app, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--plot", str(essay)])
    assert isinstance(result.exception, OutputError) and "image" in str(result.exception)
    assert essay.read_text() == "not a run\n"
