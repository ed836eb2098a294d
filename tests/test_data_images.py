"""Offline image loaders: bundled digits/MNIST splits, tiny CIFAR archives and an .npz
written here in the archives' exact pickle format, and every bad-input error."""

import pickle

import numpy as np
import pytest

from muso_jax.data import IMAGE_DATASETS, ImageData, load_images
from muso_jax.data.images import DIGITS_SUPERCLASSES

SIDE = 32
PLANE = SIDE * SIDE


def _cifar_rows(n: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """n CIFAR rows in the archive layout (R plane, G plane, B plane, each row-major 32x32),
    and the (n, 32, 32, 3) images they must decode to: the three planes differ, and each
    pixel's value encodes its row, column and image."""
    r, c = np.meshgrid(np.arange(SIDE), np.arange(SIDE), indexing="ij")
    images = np.stack(
        [np.stack([(r + 2 * c + offset + i) % 256, (3 * r + c + 7 * i) % 256,
                   np.full_like(r, 50 + i + offset)], axis=-1) for i in range(n)]
    ).astype(np.uint8)
    rows = np.concatenate([images[..., ch].reshape(n, PLANE) for ch in range(3)], axis=1)
    return rows, images


def _dump(path, obj) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)


@pytest.fixture
def cifar10_dir(tmp_path):
    """A cifar-10-batches-py folder with 3 images per batch; returns (folder, expected images)."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    expected = {}
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        rows, images = _cifar_rows(3, offset=10 * k)
        labels = [(k + j) % 10 for j in range(3)]
        _dump(folder / name, {b"batch_label": name.encode(), b"data": rows, b"labels": labels})
        expected[name] = (images, labels)
    return folder, expected


@pytest.fixture
def cifar100_dir(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    expected = {}
    for k, name in enumerate(["train", "test"]):
        rows, images = _cifar_rows(4, offset=k)
        fine, coarse = [99, 8, 41, 0][: 4 - k], [19, 18, 19, 4][: 4 - k]
        _dump(folder / name, {b"data": rows[: 4 - k], b"fine_labels": fine, b"coarse_labels": coarse})
        expected[name] = (images[: 4 - k], fine, coarse)
    return folder, expected


def _is_image_data(d: ImageData, hwc: tuple[int, int, int]) -> None:
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        assert x.dtype == np.float32 and x.shape[1:] == hwc and x.shape[0] == y.shape[0]
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert y.dtype == np.int32 and 0 <= y.min() and y.max() < d.num_classes


# --- digits and MNIST ----------------------------------------------------------------------

@pytest.mark.parametrize("name, hwc, n", [("digits", (8, 8, 1), 1797), ("mnist", (28, 28, 1), 5000)])
def test_bundled_shapes_ranges_and_stratified_split(name, hwc, n):
    d = load_images(name, seed=3, test_fraction=0.25)
    _is_image_data(d, hwc)
    assert d.num_classes == 10 and len(d.y_train) + len(d.y_test) == n
    assert d.x_train.max() == 1.0  # scaled by the format's maximum pixel (16 or 255)
    counts = np.bincount(np.concatenate([d.y_train, d.y_test]), minlength=10)
    # Stratified: each class sends exactly round(25% of its rows) to the test set.
    assert np.bincount(d.y_test, minlength=10).tolist() == [round(0.25 * c) for c in counts]
    # Shuffled: the files are sorted by label, so the first rows must mix classes.
    assert len(np.unique(d.y_train[:50])) > 5 and len(np.unique(d.y_test[:50])) > 5
    # Each row's coarse label is its digit's group in DIGITS_SUPERCLASSES.
    lookup = {digit: g for g, group in enumerate(DIGITS_SUPERCLASSES) for digit in group}
    assert d.coarse_train.tolist() == [lookup[v] for v in d.y_train.tolist()]
    assert d.coarse_test.tolist() == [lookup[v] for v in d.y_test.tolist()]


def test_digits_superclasses_partition_the_ten_digits():
    assert sorted(d for group in DIGITS_SUPERCLASSES for d in group) == list(range(10))
    assert len(DIGITS_SUPERCLASSES) == 5


def test_digits_split_is_determined_by_the_seed():
    a, b, c = (load_images("digits", seed=s) for s in (7, 7, 8))
    for field in ("x_train", "y_train", "x_test", "y_test", "coarse_train"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.y_train, c.y_train)
    # Every image lands in exactly one split, whatever the seed: train + test is the whole set.
    whole = np.sort(np.concatenate([a.x_train, a.x_test]).reshape(1797, -1), axis=0)
    other = np.sort(np.concatenate([c.x_train, c.x_test]).reshape(1797, -1), axis=0)
    np.testing.assert_array_equal(whole, other)


# --- CIFAR archives ------------------------------------------------------------------------

def test_cifar10_decodes_channel_major_rows_pixel_exactly(cifar10_dir):
    folder, expected = cifar10_dir
    d = load_images("cifar10", path=folder)
    _is_image_data(d, (32, 32, 3))
    assert d.num_classes == 10 and d.coarse_train is None and d.coarse_test is None
    train = np.concatenate([expected[f"data_batch_{i}"][0] for i in range(1, 6)])
    np.testing.assert_array_equal(d.x_train, train.astype(np.float32) / 255)
    np.testing.assert_array_equal(d.x_test, expected["test_batch"][0].astype(np.float32) / 255)
    assert d.y_train.tolist() == sum((expected[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert d.y_test.tolist() == expected["test_batch"][1]
    # Spot checks against the layout itself: pixel (row 1, col 2) of the first image. float32
    # k / 255 * 255 is k up to ~255 * 6e-8 ~ 1.5e-5; 1e-4 still tells any two bytes apart.
    rows, _ = _cifar_rows(1, offset=0)
    assert d.x_train[0, 1, 2, 0] * 255 == pytest.approx(rows[0, 0 * PLANE + 1 * SIDE + 2], abs=1e-4)
    assert d.x_train[0, 1, 2, 1] * 255 == pytest.approx(rows[0, 1 * PLANE + 1 * SIDE + 2], abs=1e-4)
    assert d.x_train[0, 1, 2, 2] * 255 == pytest.approx(50, abs=1e-4)


def test_cifar100_fine_and_coarse_labels(cifar100_dir):
    folder, expected = cifar100_dir
    d = load_images("cifar100", path=folder)
    _is_image_data(d, (32, 32, 3))
    assert d.num_classes == 100
    np.testing.assert_array_equal(d.x_train, expected["train"][0].astype(np.float32) / 255)
    np.testing.assert_array_equal(d.x_test, expected["test"][0].astype(np.float32) / 255)
    assert d.y_train.tolist() == expected["train"][1] and d.coarse_train.tolist() == expected["train"][2]
    assert d.y_test.tolist() == expected["test"][1] and d.coarse_test.tolist() == expected["test"][2]
    assert d.coarse_train.dtype == np.int32


# --- npz -----------------------------------------------------------------------------------

def test_npz_round_trip_with_channel_axis_and_255_scaling(tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    x_test = rng.integers(0, 256, (3, 5, 4), dtype=np.uint8)
    x_train[0, 0, 0] = 255
    file = tmp_path / "toy.npz"
    np.savez(file, x_train=x_train, y_train=[0, 1, 2, 0, 1, 2], x_test=x_test, y_test=[2, 1, 0],
             coarse_train=[0, 0, 1, 0, 0, 1], coarse_test=[1, 0, 0])
    d = load_images("npz", path=file)
    _is_image_data(d, (5, 4, 1))
    np.testing.assert_array_equal(d.x_train[..., 0], x_train.astype(np.float32) / 255)
    np.testing.assert_array_equal(d.x_test[..., 0], x_test.astype(np.float32) / 255)
    assert d.num_classes == 3 and d.y_test.tolist() == [2, 1, 0]
    assert d.coarse_train.tolist() == [0, 0, 1, 0, 0, 1] and d.coarse_test.tolist() == [1, 0, 0]


def test_npz_already_in_unit_range_is_kept_and_coarse_is_optional(tmp_path):
    x = np.linspace(0, 1, 2 * 3 * 3 * 2, dtype=np.float32).reshape(2, 3, 3, 2)
    file = tmp_path / "unit.npz"
    np.savez(file, x_train=x, y_train=[0, 1], x_test=x[:1], y_test=[1])
    d = load_images("npz", path=str(file))
    np.testing.assert_array_equal(d.x_train, x)
    assert d.coarse_train is None and d.coarse_test is None and d.num_classes == 2


# --- errors --------------------------------------------------------------------------------

def test_bad_name_seed_and_fraction():
    with pytest.raises(ValueError, match=r"`name`.*'cifar10'.*'svhn'"):
        load_images("svhn")
    for bad in (0, 1, 1.5, -0.1, float("nan"), "0.2", True):
        with pytest.raises(ValueError, match="`test_fraction`.*\\(0, 1\\)"):
            load_images("digits", test_fraction=bad)
    with pytest.raises(ValueError, match="`test_fraction`.*class"):
        load_images("digits", test_fraction=0.001)  # round(0.001 * ~180) = 0 test rows
    with pytest.raises(ValueError, match="`seed`"):
        load_images("digits", seed=-1)
    assert IMAGE_DATASETS == ("digits", "mnist", "cifar10", "cifar100", "npz", "fashion-mnist", "mnist-idx")


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "npz"])
def test_missing_or_nonexistent_path(name, tmp_path):
    with pytest.raises(ValueError, match="`path`.*None"):
        load_images(name)
    with pytest.raises(ValueError, match="`path`.*existing.*nowhere"):
        load_images(name, path=tmp_path / "nowhere")


def test_cifar_missing_file_corrupt_pickle_and_bad_contents(cifar10_dir, cifar100_dir):
    folder, _ = cifar10_dir
    (folder / "data_batch_3").unlink()
    with pytest.raises(ValueError, match="`path`.*'data_batch_3'.*not found"):
        load_images("cifar10", path=folder)
    (folder / "data_batch_3").write_bytes(b"\x80\x04 not a pickle")
    with pytest.raises(ValueError, match="`path`.*cannot unpickle.*data_batch_3"):
        load_images("cifar10", path=folder)
    rows, _ = _cifar_rows(2, 0)
    cases = [
        ({b"data": rows}, "keys \\['labels'\\]"),
        ({b"data": rows[:, :100], b"labels": [0, 1]}, "\\(n, 3072\\) uint8"),
        ({b"data": rows.astype(np.int64), b"labels": [0, 1]}, "uint8"),
        ({b"data": rows, b"labels": [0]}, "2 integer labels"),
        ({b"data": rows, b"labels": [0, 10]}, "labels in \\[0, 10\\)"),
        ([rows], "expected a dict"),
    ]
    for content, message in cases:
        _dump(folder / "data_batch_3", content)
        with pytest.raises(ValueError, match=f"`path`.*{message}"):
            load_images("cifar10", path=folder)
    folder100, _ = cifar100_dir
    rows4, _ = _cifar_rows(4, 0)
    _dump(folder100 / "train",
          {b"data": rows4, b"fine_labels": [0, 1, 2, 3], b"coarse_labels": [0, 1, 20, 3]})
    with pytest.raises(ValueError, match="`path`.*coarse_labels.*labels in \\[0, 20\\)"):
        load_images("cifar100", path=folder100)


def test_npz_errors(tmp_path):
    file = tmp_path / "d.npz"
    x = np.zeros((2, 4, 4), np.float32)
    cases = [
        (dict(x_train=x, y_train=[0, 1], x_test=x), "arrays \\['y_test'\\]"),
        (dict(x_train=x[0], y_train=[0, 1], x_test=x, y_test=[0, 1]), "x_train.*\\(N, H, W\\)"),
        (dict(x_train=x, y_train=[0, 1], x_test=x[:, :3], y_test=[0, 1]), "x_test.*image shape"),
        (dict(x_train=x + np.nan, y_train=[0, 1], x_test=x, y_test=[0, 1]), "finite"),
        (dict(x_train=x, y_train=[0, 1, 1], x_test=x, y_test=[0, 1]), "y_train.*2 integer labels"),
        (dict(x_train=x, y_train=[0.0, 1.0], x_test=x, y_test=[0, 1]), "y_train.*integer"),
        (dict(x_train=x, y_train=[0, -1], x_test=x, y_test=[0, 1]), "y_train.*labels >= 0"),
        (dict(x_train=x, y_train=[0, 1], x_test=x, y_test=[0, 1], coarse_train=[0, 0]), "both coarse"),
    ]
    for arrays, message in cases:
        np.savez(file, **arrays)
        with pytest.raises(ValueError, match=f"`path`.*{message}"):
            load_images("npz", path=file)
    file.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(ValueError, match="`path`.*cannot read.*d.npz"):
        load_images("npz", path=file)
    np.save(tmp_path / "single.npy", x)
    with pytest.raises(ValueError, match="`path`.*not an .npz"):
        load_images("npz", path=tmp_path / "single.npy")


# --- issue 11: explicit pixel scaling and strict labels -----------------------------------

def _npz(tmp_path, name="d.npz", **arrays):
    file = tmp_path / name
    np.savez(file, **arrays)
    return file


def test_npz_auto_scale_is_decided_on_the_train_split_and_reported(tmp_path):
    # Features already in [0, 1] on train, a few test values above 1: nothing is divided.
    x_train = np.linspace(0, 1, 2 * 9, dtype=np.float32).reshape(2, 3, 3)
    x_test = x_train.copy()
    x_test[0, 0, 0] = 1.5
    d = load_images("npz", path=_npz(tmp_path, x_train=x_train, y_train=[0, 1], x_test=x_test, y_test=[1, 0]))
    np.testing.assert_array_equal(d.x_test[..., 0], x_test)
    assert d.divided_by == 1.0 and "not rescaled" in d.description
    # 0-255 values on train: both splits divided by 255, and the data say so.
    x8 = np.array([[[0, 255], [7, 9]], [[1, 2], [3, 4]]], np.uint8)
    d = load_images("npz", path=_npz(tmp_path, "u8.npz", x_train=x8, y_train=[0, 1], x_test=x8, y_test=[1, 0]))
    np.testing.assert_array_equal(d.x_test[..., 0], x8.astype(np.float32) / 255)
    assert d.divided_by == 255.0 and "divided by 255" in d.description


def test_npz_scale_option(tmp_path):
    x8 = np.array([[[0, 255], [7, 9]], [[1, 2], [3, 4]]], np.uint8)
    file = _npz(tmp_path, x_train=x8, y_train=[0, 1], x_test=x8, y_test=[1, 0])
    d = load_images("npz", path=file, scale="none")
    np.testing.assert_array_equal(d.x_train[..., 0], x8.astype(np.float32))
    assert d.divided_by == 1.0
    unit = (x8 / 255).astype(np.float32)
    d = load_images("npz", path=_npz(tmp_path, "u.npz", x_train=unit, y_train=[0, 1], x_test=unit, y_test=[1, 0]),
                    scale="255")  # asked for: divides even values in [0, 1]
    np.testing.assert_allclose(d.x_train[..., 0], unit / 255, rtol=1e-6)  # float32 round-off: eps 6e-8 a division
    standardized = np.array([[[-1.5, 2.0]], [[0.5, -0.2]]], np.float32)
    d = load_images("npz", path=_npz(tmp_path, "s.npz", x_train=standardized, y_train=[0, 1], x_test=standardized,
                                     y_test=[0, 1]))  # auto: outside [0, 255], kept as is
    np.testing.assert_array_equal(d.x_train[..., 0], standardized)
    with pytest.raises(ValueError, match="`scale`.*'auto'.*'bogus'"):
        load_images("npz", path=file, scale="bogus")
    with pytest.raises(ValueError, match="`path`.*s.npz.*\\[0, 255\\]"):
        load_images("npz", path=tmp_path / "s.npz", scale="255")
    with pytest.raises(ValueError, match="`scale`.*digits"):
        load_images("digits", scale="none")


@pytest.mark.parametrize("y_train, y_test, message", [
    ([3, 7, 9, 3], [3, 7], "every label 0..K-1.*\\[3, 7, 9\\]"),
    ([0, 0, 0, 0], [0, 0], "at least 2 classes"),
    ([0, 1, 0, 1], [0, 2], "y_test.*2.*not in the training labels"),
])
def test_npz_labels_must_be_0_to_k_minus_1_present_in_train(y_train, y_test, message, tmp_path):
    x = np.zeros((4, 2, 2), np.uint8)
    file = _npz(tmp_path, "labels.npz", x_train=x, y_train=y_train, x_test=x[:2], y_test=y_test)
    with pytest.raises(ValueError, match=f"`path`.*{message}") as err:
        load_images("npz", path=file)
    assert "labels.npz" in str(err.value)


# --- training_subset ----------------------------------------------------------------------

def test_training_subset_is_stratified_exact_in_size_and_fixed_by_its_seed():
    from muso_jax.data import load_images, training_subset

    d = load_images("digits")
    s = training_subset(d, 500, seed=3)
    assert len(s.y_train) == 500 and s.x_train.shape == (500,) + d.x_train.shape[1:]
    _, full = np.unique(d.y_train, return_counts=True)
    _, sub = np.unique(s.y_train, return_counts=True)
    # largest-remainder rounding: every class within one row of its exact share
    assert np.all(np.abs(sub - 500 * full / full.sum()) < 1)
    # the rows are rows of the data (image and labels travel together), in stored order
    rows = [int(np.flatnonzero((d.x_train == xi).all(axis=(1, 2, 3)))[0]) for xi in s.x_train[:20]]
    assert rows == sorted(rows) and np.array_equal(d.y_train[rows], s.y_train[:20])
    assert np.array_equal(d.coarse_train[rows], s.coarse_train[:20])
    assert np.array_equal(training_subset(d, 500, seed=3).x_train, s.x_train)
    assert not np.array_equal(training_subset(d, 500, seed=4).x_train, s.x_train)
    assert np.array_equal(s.x_test, d.x_test) and "stratified random 500" in s.description
    assert training_subset(d, len(d.y_train)) is d


def test_training_subset_rounds_by_largest_remainder():
    from muso_jax.data import training_subset
    from muso_jax.data.images import ImageData

    # classes of 5, 3 and 2 rows, 4 kept: shares 2.0, 1.2, 0.8 -> floors 2, 1, 0; the one row left
    # goes to the largest remainder (0.8, class 2), not to the first class: counts 2, 1, 1.
    y = np.array([0] * 5 + [1] * 3 + [2] * 2, np.int32)
    x = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
    d = ImageData(x, y, x[:2], y[:2], 3, None, None, "toy")
    s = training_subset(d, 4, seed=1)
    assert np.bincount(s.y_train, minlength=3).tolist() == [2, 1, 1]
    assert np.array_equal(s.y_train, y[s.x_train.ravel().astype(int)])  # rows travel with their labels


@pytest.mark.parametrize("size", [0, -1, 10**6, 2.5, True])
def test_training_subset_refuses_a_bad_size(size):
    from muso_jax.data import load_images, training_subset

    with pytest.raises(ValueError, match="argument `size`: expected an integer in \\[1, "):
        training_subset(load_images("digits"), size)


def test_a_data_file_replaced_within_one_process_is_read_again(tmp_path):
    """experiment.load_split caches the images of the last setup; the cache key includes the
    file's modification stamp, so rewriting the file is seen (it was keyed on the path alone)."""
    import os

    from muso_jax.nn import experiment

    file = tmp_path / "d.npz"
    x = np.zeros((8, 3, 3, 1), np.float32)
    setup = experiment.Setup(data="npz", path=str(file), forget=25.0)
    np.savez(file, x_train=x, y_train=[0, 1] * 4, x_test=x[:2], y_test=[0, 1])
    first = experiment.load_split(setup)[0]
    np.savez(file, x_train=x + 0.5, y_train=[0, 1] * 4, x_test=x[:2], y_test=[0, 1])
    os.utime(file, ns=(1, 1))  # a distinct stamp even on a file system with coarse mtimes
    second = experiment.load_split(setup)[0]
    assert float(first.x_train.max()) == 0.0 and float(second.x_train.max()) == 0.5
    assert experiment.load_split(setup)[0] is second  # unchanged file: the cached arrays
