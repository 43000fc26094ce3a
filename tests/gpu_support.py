"""Running a GPU check script in a child process, on a real GPU or in Numba's CUDA simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_gpu_check(script: str, args: list[str], mode: str) -> None:
    """Run ``script`` (which prints ``agree``) with ``args``: in a subprocess because the simulator is chosen by an
    environment variable read at import; ``mode`` gpu skips where no GPU is visible."""
    if mode == "gpu":
        from numba import cuda

        if not cuda.is_available():
            pytest.skip("no GPU")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1" if mode == "simulator" else "0")
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode == 0 and "agree" in result.stdout, result.stderr[-3000:]
