"""Figures: matplotlib on its file-only backend, PNGs written atomically."""

from __future__ import annotations

from pathlib import Path

from muso_jax.io.files import atomic_write


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed).

    Returns
    -------
    module
        ``matplotlib.pyplot``.

    Examples
    --------
    >>> from muso_jax.io import figures
    >>> plt = figures.pyplot()
    >>> plt.get_backend().lower()
    'agg'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi: int = 130) -> Path:
    r"""Write ``fig`` as a PNG at ``path`` (atomically) and close it (pyplot keeps open figures).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure; closed afterwards, even when writing fails.
    path : str or os.PathLike
        The PNG file.
    dpi : int, optional
        Resolution.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from muso_jax.io import figures
    >>> plt = figures.pyplot()
    >>> fig, ax = plt.subplots(figsize=(2, 2))
    >>> _ = ax.semilogy([1, 2, 3], [1.0, 1e-6, 1e-12])
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = figures.save_figure(fig, Path(folder, "gap.png"), dpi=50)
    ...     magic = path.read_bytes()[:8]
    >>> magic, plt.fignum_exists(fig.number)
    (b'\x89PNG\r\n\x1a\n', False)
    """
    try:
        return atomic_write(path, lambda fh: fig.savefig(fh, dpi=dpi, bbox_inches="tight", format="png"))
    finally:
        pyplot().close(fig)
