"""The clusters build of two versions of lsr, timed alternately in one process on the same index.

Why: a build-time change is measured against the code it replaces on the same machine and load, and must build the
same arrays. The other version's build module comes from git (``git show REV:...``: ``cluster_build.py``, or
``clusters.py`` before the build had a module of its own) and is loaded as a module beside the installed one; both
build every round from one :class:`SparseIndex` (float16 weights, as ``lsr bench engines`` builds it), Numba's
compiled code warmed by an untimed first build of each.

    python -m lsr.eval.bench.clusters_build_ab VECTORS REV [ROUNDS] [--without-list-term]

prints the seconds of each build and whether every array equals the other version's. Both versions get the same
:class:`ClusterSettings` (this checkout's defaults); ``--without-list-term`` turns off ``keep_list_term``, which
versions before it was added ignore, so that their arrays can be compared with this checkout's.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np
from lsr.eval.bench.engines.inputs import corpus_vectors
from lsr.indexing.sparse import cluster_build
from lsr.indexing.sparse.build import build_index
from lsr.indexing.sparse.clusters import ClusterSettings
from lsr.indexing.sparse.format import SparseIndex

REPO = Path(__file__).resolve().parents[2]


BUILD_MODULES = ("indexing/sparse/cluster_build.py", "indexing/sparse/clusters.py")
"""Where ``build_clusters`` lived, newest first."""


def version(rev: str, folder: Path) -> ModuleType:
    """The module holding ``build_clusters`` as it was at ``rev``, imported under a name of its own."""
    for name in BUILD_MODULES:
        shown = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{name}"], capture_output=True)
        if shown.returncode == 0:
            break
    else:
        raise FileNotFoundError(f"{rev}: none of {', '.join(BUILD_MODULES)} in git")
    source = shown.stdout
    path = folder / f"clusters_{rev}.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def main(vectors: Path, rev: str, rounds: int = 2, settings: ClusterSettings | None = None) -> None:
    settings = settings or ClusterSettings()
    with tempfile.TemporaryDirectory(prefix="lsr-clusters-ab-") as tmp:
        docs = corpus_vectors(vectors, None)
        build_index(lambda: [(docs.ids, docs.matrix)], Path(tmp) / "lsr", "bench", "splade", weights="float16")
        index = SparseIndex.open(Path(tmp) / "lsr")
        versions = {rev: version(rev, Path(tmp)), "this checkout": cluster_build}
        built = {name: module.build_clusters(index, settings) for name, module in versions.items()}  # compiles
        for number in range(1, rounds + 1):
            for name, module in versions.items():
                started = time.perf_counter()
                module.build_clusters(index, settings)
                print(f"round {number}, {name}: {time.perf_counter() - started:.2f} s", flush=True)
        before, after = (result.arrays() for result in built.values())
        for name, array in after.items():
            print(f"{name}: {'same' if np.array_equal(before[name], array) else 'DIFFERENT'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("vectors", type=Path)
    parser.add_argument("rev")
    parser.add_argument("rounds", type=int, nargs="?", default=2)
    parser.add_argument("--without-list-term", action="store_true")
    args = parser.parse_args()
    main(args.vectors, args.rev, args.rounds, ClusterSettings(keep_list_term=not args.without_list_term))
