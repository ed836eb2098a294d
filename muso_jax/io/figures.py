"""Figures: matplotlib on its file-only backend, PNGs written atomically."""

from __future__ import annotations

from pathlib import Path

from muso_jax.io.files import atomic_write


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi: int = 130) -> Path:
    """Write ``fig`` as a PNG at ``path`` (atomically) and close it (pyplot keeps open figures)."""
    try:
        return atomic_write(path, lambda fh: fig.savefig(fh, dpi=dpi, bbox_inches="tight", format="png"))
    finally:
        pyplot().close(fig)
