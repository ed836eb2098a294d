"""The idx reader and the two idx datasets (fashion-mnist, mnist-idx) on tiny files written here,
raw and gzip: round trips, every malformed file, and the messages that say how to get the data.
Nothing here needs the Debian package dataset-fashion-mnist."""

import gzip
import re
import struct

import numpy as np
import pytest

from muso_jax import cli
from muso_jax.data import images as images_module
from muso_jax.data import load_images, read_idx
from muso_jax.data.images import DIGITS_SUPERCLASSES, FASHION_MNIST_CLASSES, FASHION_MNIST_SUPERCLASSES, IDX_FILES

TYPE_BYTES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def _idx_bytes(array: np.ndarray) -> bytes:
    """``array`` in the idx format: 0, 0, type byte, ndim, big-endian uint32 sizes, big-endian values."""
    header = bytes([0, 0, TYPE_BYTES[array.dtype.type], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write(path, data: bytes, *, gz: bool):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _where(path) -> str:
    """The file as the messages name it, as a regex."""
    return re.escape(repr(str(path)))


# --- read_idx ------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("dtype", list(TYPE_BYTES))
def test_round_trip_of_every_type(dtype, gz, tmp_path):
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else np.finfo(dtype)
    values = np.array([info.min, info.max, 0, 1, 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59,
                       61, 67, 71], dtype=dtype)
    if not np.issubdtype(dtype, np.integer):
        values[2:6] = [-0.5, np.pi, -np.e, np.inf]
    x = values.reshape(2, 3, 4)
    out = read_idx(_write(tmp_path / "x.idx", _idx_bytes(x), gz=gz))
    assert out.shape == (2, 3, 4) and out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, x)
    assert out.flags.writeable
    labels = read_idx(_write(tmp_path / "y.idx", _idx_bytes(values), gz=gz), ndim=1)
    np.testing.assert_array_equal(labels, values)


def test_gzip_is_detected_by_its_magic_bytes_not_the_name(tmp_path):
    x = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(read_idx(_write(tmp_path / "gzip-named-raw", _idx_bytes(x), gz=True)), x)
    np.testing.assert_array_equal(read_idx(_write(tmp_path / "raw-named.gz", _idx_bytes(x), gz=False)), x)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_truncated_payload_and_trailing_bytes(gz, tmp_path):
    data = _idx_bytes(np.arange(24, dtype=np.int16).reshape(2, 3, 4))  # 16-byte header, 48 bytes of values
    short = _write(tmp_path / "short", data[:-3], gz=gz)
    with pytest.raises(ValueError, match=rf"`path`: expected 48 bytes of data after the 16-byte header of "
                                         rf"{_where(short)} \(shape 2x3x4 of int16, 2 byte\(s\) each\); "
                                         rf"got 45 \(3 missing: truncated\)"):
        read_idx(short)
    long = _write(tmp_path / "long", data + b"\x00\x01", gz=gz)
    with pytest.raises(ValueError, match=rf"expected 48 bytes .*{_where(long)}.*; got 50 \(2 trailing\)"):
        read_idx(long)
    header_only = _write(tmp_path / "header", data[:10], gz=gz)
    with pytest.raises(ValueError, match=rf"expected a 16-byte idx header \(3 dimension sizes\) in "
                                         rf"{_where(header_only)}; got a file of 10 bytes"):
        read_idx(header_only)
    tiny = _write(tmp_path / "tiny", data[:3], gz=gz)
    with pytest.raises(ValueError, match=rf"at least 4 header bytes in {_where(tiny)}; got 3 bytes"):
        read_idx(tiny)


def test_wrong_magic_type_and_dimension_count(tmp_path):
    good = _idx_bytes(np.arange(6, dtype=np.uint8))
    bad_magic = _write(tmp_path / "magic", b"\x01" + good[1:], gz=False)
    with pytest.raises(ValueError, match=rf"expected the idx magic number .* of {_where(bad_magic)}; "
                                         rf"got bytes 01 00 08 01"):
        read_idx(bad_magic)
    bad_type = _write(tmp_path / "type", good[:2] + b"\x0a" + good[3:], gz=True)
    with pytest.raises(ValueError, match=rf"expected an idx type byte \(0x08 uint8, .*0x0E float64\) in "
                                         rf"{_where(bad_type)}; got 0x0A"):
        read_idx(bad_type)
    labels = _write(tmp_path / "labels", good, gz=False)
    with pytest.raises(ValueError, match=rf"expected 3 dimension\(s\) in the idx header of {_where(labels)}; got 1"):
        read_idx(labels, ndim=3)
    no_dims = _write(tmp_path / "no-dims", good[:3] + b"\x00", gz=False)
    with pytest.raises(ValueError, match=rf"expected at least 1 dimension\(s\) .*{_where(no_dims)}; got 0"):
        read_idx(no_dims)


def test_corrupt_gzip_stream_and_missing_file(tmp_path):
    packed = gzip.compress(_idx_bytes(np.arange(4000, dtype=np.int32)))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    flipped = tmp_path / "flipped.gz"
    flipped.write_bytes(packed[:20] + bytes([packed[20] ^ 0xFF]) + packed[21:])
    for file in (cut, flipped):
        with pytest.raises(ValueError, match=rf"`path`: expected a complete gzip stream in {_where(file)} .*; "
                                             rf"got a damaged one"):
            read_idx(file)
    with pytest.raises(ValueError, match=rf"expected an existing idx file; got {_where(tmp_path / 'nowhere')}"):
        read_idx(tmp_path / "nowhere")


# --- fashion-mnist and mnist-idx -----------------------------------------------------------

N_TRAIN, N_TEST = 20, 10


def _idx_folder(folder, *, gz=True, n=(N_TRAIN, N_TEST), seed=0, overrides=None):
    """The four idx files of a tiny MNIST-format dataset (labels covering 0..9); returns the arrays
    written, by split. ``overrides`` maps a file's base name to the array written instead."""
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for (split, (image_name, label_name)), count in zip(IDX_FILES.items(), n):
        pixels = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        pixels[0, 0, :2] = [0, 255]
        labels = (np.arange(count) % 10).astype(np.uint8)
        for base, array in ((image_name, pixels), (label_name, labels)):
            array = (overrides or {}).get(base, array)
            _write(folder / (f"{base}.gz" if gz else base), _idx_bytes(array), gz=gz)
        written[split] = (pixels, labels)
    return written


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize("name, groups", [("fashion-mnist", FASHION_MNIST_SUPERCLASSES),
                                          ("mnist-idx", DIGITS_SUPERCLASSES)])
def test_loads_shapes_scaling_split_and_coarse_labels(name, groups, gz, tmp_path):
    written = _idx_folder(tmp_path / "data", gz=gz)
    d = load_images(name, path=tmp_path / "data", seed=5, test_fraction=0.5)  # seed, fraction unused
    for x, y, coarse, (pixels, labels) in ((d.x_train, d.y_train, d.coarse_train, written["train"]),
                                           (d.x_test, d.y_test, d.coarse_test, written["test"])):
        assert x.shape == (len(pixels), 28, 28, 1) and x.dtype == np.float32
        np.testing.assert_array_equal(x[..., 0], pixels / np.float32(255))  # exact float32 division
        assert y.dtype == np.int32 and coarse.dtype == np.int32
        np.testing.assert_array_equal(y, labels)  # the stored order, the stored split
        np.testing.assert_array_equal(coarse, [next(g for g, fine in enumerate(groups) if c in fine) for c in y])
    assert d.x_train.min() == 0.0 and d.x_train.max() == 1.0
    assert d.num_classes == 10 and d.divided_by == 255.0
    assert f"{N_TRAIN} train / {N_TEST} test" in d.description and str(tmp_path / "data") in d.description
    assert "divided by 255" in d.description and "official split" in d.description


def test_fashion_mnist_super_classes_are_the_documented_ones():
    assert len(FASHION_MNIST_CLASSES) == 10
    named = [tuple(FASHION_MNIST_CLASSES[c] for c in group) for group in FASHION_MNIST_SUPERCLASSES]
    assert named == [("T-shirt/top", "Pullover", "Coat", "Shirt"), ("Sandal", "Sneaker", "Ankle boot"),
                     ("Trouser", "Dress", "Bag")]
    assert sorted(c for group in FASHION_MNIST_SUPERCLASSES for c in group) == list(range(10))


def test_scale_none_keeps_bytes_and_a_raw_file_wins_over_its_gz(tmp_path):
    folder = tmp_path / "data"
    written = _idx_folder(folder, gz=False)
    _idx_folder(folder, gz=True, seed=1)  # different pixels under the .gz names
    d = load_images("mnist-idx", path=folder, scale="none")
    np.testing.assert_array_equal(d.x_train[..., 0], written["train"][0].astype(np.float32))
    assert d.divided_by == 1.0 and "not rescaled" in d.description and "(raw)" in d.description


def test_missing_folder_says_how_to_get_fashion_mnist(tmp_path, monkeypatch):
    monkeypatch.setattr(images_module, "FASHION_MNIST_PATH", tmp_path / "not-installed")
    how = r"apt-get install dataset-fashion-mnist .*make fashion-mnist.*Zalando Research .*zalandoresearch"
    with pytest.raises(ValueError, match=rf"`path`: expected an existing folder .*the default.*; got "
                                         rf"{_where(tmp_path / 'not-installed')}, absent\. .*{how}.*as `path`"):
        load_images("fashion-mnist")
    with pytest.raises(ValueError, match=rf"`path`: .*got {_where(tmp_path / 'elsewhere')}, absent.*{how}"):
        load_images("fashion-mnist", path=tmp_path / "elsewhere")
    with pytest.raises(ValueError, match=r"`path`: dataset 'mnist-idx' reads a local folder .*; got None\. "
                                         r".*t10k-labels-idx1-ubyte\.gz from the MNIST database page .*as `path`"):
        load_images("mnist-idx")


def test_missing_file_names_both_spellings_and_how_to_get_it(tmp_path):
    _idx_folder(tmp_path / "data")
    (tmp_path / "data" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ValueError, match=rf"expected t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte\.gz in "
                                         rf"{_where(tmp_path / 'data')}; got neither \(the folder holds .*"
                                         rf"t10k-images-idx3-ubyte\.gz.*\)\. .*apt-get install dataset-fashion-mnist"):
        load_images("fashion-mnist", path=tmp_path / "data")


@pytest.mark.parametrize("base, array, message", [
    ("t10k-labels-idx1-ubyte", np.zeros(9, np.uint8), r"expected 10 labels in {file}, one per image of "
                                                      r"t10k-images-idx3-ubyte\.gz; got 9"),
    ("train-labels-idx1-ubyte", np.arange(N_TRAIN, dtype=np.uint8) % 11, r"expected labels in 0\.\.9 in {file}; "
                                                                         r"got min 0, max 10"),
    ("train-labels-idx1-ubyte", np.arange(N_TRAIN, dtype=np.uint8) % 9,
     r"expected every label 0\.\.9 in {file} .*; got none of \[9\]"),
    ("train-labels-idx1-ubyte", np.arange(N_TRAIN, dtype=np.float32) % 10, r"expected integer labels in {file}; "
                                                                           r"got float32"),
    ("train-images-idx3-ubyte", np.zeros((N_TRAIN, 27, 28), np.uint8),
     r"expected \(N, 28, 28\) unsigned-byte images .* in {file}; got shape \(20, 27, 28\) of uint8"),
    ("train-images-idx3-ubyte", np.zeros((N_TRAIN, 28, 28), np.int16),
     r"expected \(N, 28, 28\) unsigned-byte images .* in {file}; got shape \(20, 28, 28\) of int16"),
    ("t10k-images-idx3-ubyte", np.zeros((N_TEST, 784), np.uint8),
     r"expected 3 dimension\(s\) in the idx header of {file}; got 2"),
])
def test_bad_files_are_refused_naming_the_file(base, array, message, tmp_path):
    _idx_folder(tmp_path / "data", overrides={base: array})
    file = _where(tmp_path / "data" / f"{base}.gz")
    with pytest.raises(ValueError, match=r"argument `path`: " + message.format(file=file)):
        load_images("mnist-idx", path=tmp_path / "data")


# --- the CLI -------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [["--data", "fashion-mnist", "--path", "MISSING"], ["--data", "mnist-idx"]])
def test_cli_refuses_a_missing_idx_folder_before_training(data, tmp_path, capsys, monkeypatch):
    from muso_jax.io.cache import NetworkCache
    from muso_jax.nn import experiment, train

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the data was checked")

    for owner in (experiment, train):  # trained here, or through the cache
        monkeypatch.setattr(owner, "train", no_training)
    monkeypatch.setattr(NetworkCache, "trained", no_training)
    missing = str(tmp_path / "missing")
    rc = cli.main(["unlearn", "--epochs", "1", "--cache", str(tmp_path / "c"), "--json", str(tmp_path / "x.json"),
                   *[missing if a == "MISSING" else a for a in data]])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.startswith("muso unlearn: error: argument --path: ") and "`path`" not in err
    assert "as --path" in err  # "pass that folder as --path"
    assert ("apt-get install dataset-fashion-mnist" in err and missing in err) if data[1] == "fashion-mnist" \
        else "MNIST database page" in err
    assert not (tmp_path / "x.json").exists()
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())
