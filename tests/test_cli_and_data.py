"""The `muso linear` command end to end at tiny sizes, and the bundled data loaders."""

import json

import numpy as np
import pytest

from muso_jax import cli
from muso_jax.data import load_binary


def test_bundled_mnist_three_vs_seven():
    d = load_binary("mnist")
    assert d.x_train.shape == (800, 784) and d.x_test.shape == (200, 784)
    assert set(np.unique(d.y_train)) == {-1.0, 1.0}
    assert d.x_train.max() == 255.0  # raw pixels, as the paper's sigma = 20 assumes
    # Shuffled: the bundled file is sorted by label, the first 300 rows must mix both classes.
    assert 0.3 < np.mean(d.y_train[:300] == 1.0) < 0.7


def test_digits_fallback_and_bad_names():
    d = load_binary("digits", (1, 8), n_train=100)
    assert d.x_train.shape == (100, 64)
    with pytest.raises(ValueError, match="`dataset`.*'cifar'"):
        load_binary("cifar")
    with pytest.raises(ValueError, match="`classes`"):
        load_binary("digits", (3, 3))
    with pytest.raises(ValueError, match="`n_train`"):
        load_binary("digits", (3, 7), n_train=10_000)


def test_muso_linear_end_to_end(tmp_path, capsys):
    out = tmp_path / "r.json"
    fig = tmp_path / "r.png"
    rc = cli.main(["linear", "--data", "digits", "--frequencies", "300", "--sigma", "30", "--reps", "2",
                   "--n-train", "120", "--n-retain", "50", "--tol", "1e-9", "--max-epochs", "600",
                   "--json", str(out), "--figure", str(fig)])
    assert rc == 0
    rows = json.loads(out.read_text())
    assert [r["method"] for r in rows] == ["Retrain", "Original", "MUSO", "Am", "BT"]
    assert all({"ta", "fa", "delta", "ta_std", "fa_std", "delta_std"} <= set(r) for r in rows)
    by = {r["method"]: r for r in rows}
    # MUSO reaches retraining in parameter space; the baselines stay O(1e-2) away.
    assert by["MUSO"]["delta"] < 1e-4 * min(by[m]["delta"] for m in ("Original", "Am", "BT"))
    assert by["MUSO"]["fa"] == pytest.approx(by["Retrain"]["fa"])
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
    assert "MUSO" in capsys.readouterr().out


def test_muso_linear_bad_arguments_exit_with_a_named_error(tmp_path, capsys):
    rc = cli.main(["linear", "--data", "digits", "--n-train", "100", "--n-retain", "100",
                   "--json", str(tmp_path / "x.json")])
    assert rc == 2
    assert "`n_retain`" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
