"""Helpers of the fault-injection tests: real vector folders, and a child process that dies at a chosen step.

The child builds (or merges) a real index with :func:`lsr.indexing.sparse.build.build_index` after wrapping each
file-system step that matters for crash safety (array writes, fsyncs, renames, the swap, removals) so that the
N-th step kills the process with SIGKILL — no handler, no clean-up, as a power cut or the OOM killer would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from lsr.encode.shards import Manifest, write_shard

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, os, signal, sys, tempfile
import numpy as np
import lsr.fsutil as fs
from lsr.indexing.sparse.build import build_index
from lsr.encode.shards import iter_merged

target, kill_at, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
folders = json.loads(sys.argv[4])
steps = [0]

def step(fn):
    def run(*args, **kwargs):
        steps[0] += 1
        if steps[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return fn(*args, **kwargs)
    return run

if mode == "two-renames":
    fs._exchange = lambda a, b: False  # a file system without RENAME_EXCHANGE
for owner, name in [(np, "save"), (np.lib.format, "open_memmap"), (os, "rename"), (os, "replace"),
                    (os, "unlink"), (fs, "_exchange"), (fs, "_fsync"), (fs, "_remove"), (tempfile, "mkdtemp")]:
    setattr(owner, name, step(getattr(owner, name)))
build_index(lambda: iter_merged([__import__("pathlib").Path(f) for f in folders]), target, "m", "splade")
print(steps[0])
"""


def vectors_folder(folder: Path, first: int, count: int, seed: int, vocab: int = 64) -> Path:
    """A complete lsr vectors folder of ``count`` random sparse documents named ``d<first>..``."""
    rng = np.random.default_rng(seed)
    matrix = sp.random(count, vocab, density=0.15, random_state=rng, format="csr", dtype=np.float32)
    matrix.data += 0.01
    manifest = Manifest(model="m", kind="splade", dense=False, dimension=vocab, shard_size=count, corpus={})
    folder.mkdir(parents=True)
    manifest.shards.append(write_shard(folder, 0, [f"d{first + i}" for i in range(count)], matrix))
    manifest.complete = True
    manifest.save(folder)
    return folder


def run_child(target: Path, kill_at: int, mode: str, folders: list[Path]) -> subprocess.CompletedProcess:
    """Build ``target`` from ``folders`` in a child killed at step ``kill_at`` (0: never)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-c", CHILD, str(target), str(kill_at), mode, json.dumps([str(f) for f in folders])]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, check=False)


def unshare_prefix() -> list[str] | None:
    """A command prefix that runs its argument in a private mount namespace (so a test may mount a small
    tmpfs), or None where this machine does not allow it."""
    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare", "--mount"], ["unshare", "--mount", "--map-root-user"]):
        probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True)
        if probe.returncode == 0:
            return prefix
    return None
