"""How the benchmarks finish a chart: one look for every plot saved beside a result JSON, and a crash-safe write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lsr.fsutil import atomic_file


def save_png(fig: Any, ax: Any, path: Path) -> None:
    """Grid and legend on ``ax``, then ``fig`` written to ``path`` as PNG through a temporary file and one rename
    (a killed run never leaves half a picture beside a finished JSON), and closed."""
    import matplotlib.pyplot as plt

    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_file(path, mode="wb", encoding=None) as handle:
        fig.savefig(handle, format="png", dpi=130)
    plt.close(fig)
