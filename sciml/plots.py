"""Figures: `save_figure` writes a matplotlib figure to a PNG file atomically."""
from __future__ import annotations

import os
from pathlib import Path

from ._io import atomic_path


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write `fig` to `path` as a PNG through a temporary file (a failed write leaves nothing), close it.

    Creates the parent folder; returns the path.
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path
