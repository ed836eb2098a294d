"""The authors' linear experiment as one compiled program over many seeds equals the staged
run and the loop over seeds."""

import jax
import numpy as np
import pytest

from muso_jax.data.bundled import load_binary
from muso_jax.experiments import linear

CONFIG = linear.Config(num_frequencies=100, sigma=30.0, n_retain=40, reps=2, tol=1e-8, max_epochs=300)


@pytest.fixture(scope="module")
def data():
    d = load_binary("digits", (3, 7), n_train=80)
    return d.x_train, d.y_train, d.x_test, d.y_test


def _close(a: linear.MethodResult, b: linear.MethodResult):
    # Same arithmetic in one program or several; XLA may fuse differently across program
    # boundaries, so parameters agree to round-off, not bitwise. Accuracies and epoch counts
    # are discrete and must match exactly. delta = ||theta - theta_r||^2 / M is a small
    # difference of parameters of norm ~10: ~1e4 SGD updates of ~eps ||theta|| round-off each
    # (sqrt growth: ~2e-13 absolute) against the smallest gap here, sqrt(M delta) ~ 3e-5 (the
    # retrain row), is ~1e-8 relative on delta; 1e-6 keeps a margin (measured: bitwise equal).
    np.testing.assert_array_equal(a.ta, b.ta)
    np.testing.assert_array_equal(a.fa, b.fa)
    np.testing.assert_array_equal(a.epochs, b.epochs)
    np.testing.assert_allclose(a.delta, b.delta, rtol=1e-6, atol=1e-20)


def test_one_call_equals_the_loop_over_seeds(data):
    """(The staged path, one program per stage, runs the same stage functions; the CLI test
    covers it.)"""
    keys = jax.random.split(jax.random.key(7), CONFIG.reps)
    stages = []
    one = linear.run(CONFIG, *data, on_stage=stages.append, one_call=True, keys=keys)
    assert stages == ["all"]
    loop = [linear.run(CONFIG, *data, keys=keys[i:i + 1]) for i in range(CONFIG.reps)]
    assert set(one) == set(linear.ROWS)
    for method in linear.ROWS:
        stacked = linear.MethodResult(*(np.concatenate(parts) for parts in zip(*(run[method] for run in loop))))
        _close(one[method], stacked)
    # The experiment did real work: within these 300 epochs MUSO is already two orders of
    # magnitude closer to the oracle than the bad-teacher baseline (it converges later).
    assert np.max(one["muso"].delta) < 1e-2 * np.min(one["bad_teacher"].delta)


def test_sign_accuracy_is_a_percentage_in_the_features_precision():
    import jax.numpy as jnp

    phi = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    theta = jnp.array([1.0, -1.0])
    acc = linear.sign_accuracy(phi, theta, jnp.array([1.0, -1.0, 1.0]))  # signs +, -, 0: two of three
    # float64 under x64: within a few ulp of 200/3 (float32, as it used to be, is ~2e-6 off).
    assert acc.dtype == jnp.float64 and abs(float(acc) - 200 / 3) < 1e-12


def test_the_early_stop_includes_a_gap_of_exactly_the_window():
    import jax.numpy as jnp

    # Every pair of forget accuracies on N_f = 500 rows, as sign_accuracy computes them (float64).
    n_f = 500
    hits = np.arange(n_f + 1)
    fa = 100.0 * jnp.asarray(hits / n_f)
    gap_in_rows = np.abs(hits[:, None] - hits[None, :])
    within = np.asarray(linear._within_window(fa[:, None], fa[None, :], 3.0))
    # 3 points = 15 rows; without the slack, round-off puts 200 of the 972 exact-window pairs outside.
    np.testing.assert_array_equal(within, gap_in_rows <= 15)
