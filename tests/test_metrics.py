"""Unlearning metrics: accuracies, the two MIA conventions, Avg. Gap, parameter distance."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from muso_jax import metrics

K = 10
N_R, N_T, N_F = 300, 150, 100


def _member_like(rng, n):
    """Confidently correct outputs: a margin of 8 on the true class, entropy near 0."""
    y = rng.integers(0, K, n)
    return 8.0 * np.eye(K)[y] + 0.3 * rng.standard_normal((n, K)), y


def _non_member_like(rng, n):
    """Diffuse outputs: small noise only, entropy near log K, true-class probability near 1/K."""
    return 0.3 * rng.standard_normal((n, K)), rng.integers(0, K, n)


def _sets(forget_like):
    rng = np.random.default_rng(0)
    return _member_like(rng, N_R), _non_member_like(rng, N_T), forget_like(rng, N_F)


def test_accuracy_on_hand_made_logits():
    logits = jnp.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [4.0, 4.0, 0.0]])
    # Rows 0-2 correct; row 3 ties between classes 0 and 1, and the tie goes to class 0.
    assert metrics.accuracy(logits, np.array([0, 1, 2, 1])) == 75.0
    assert metrics.accuracy(logits, jnp.array([0, 1, 2, 0])) == 100.0
    assert metrics.accuracy(logits, np.array([1, 0, 0, 1])) == 0.0


# With N_F = 100 rows a coin-flip attack scores 50 +- 5 (binomial std), so a 95 / 5
# threshold sits 9 standard deviations away and cannot be met by chance.
@pytest.mark.parametrize("seed", [0, 1])
def test_forget_set_drawn_like_members_is_called_member(seed):
    (lr, yr), (lt, yt), (lf, yf) = _sets(_member_like)
    assert metrics.mia_entropy(lr, lt, lf, seed=seed) >= 95.0
    assert metrics.mia_entropy(lr, lt, lf, subsample=True, seed=seed) >= 95.0
    assert metrics.mia_efficacy(lr, yr, lt, yt, lf, yf, seed=seed) <= 5.0


@pytest.mark.parametrize("seed", [0, 1])
def test_forget_set_drawn_like_non_members_is_called_non_member(seed):
    (lr, yr), (lt, yt), (lf, yf) = _sets(_non_member_like)
    assert metrics.mia_entropy(lr, lt, lf, seed=seed) <= 5.0
    assert metrics.mia_entropy(lr, lt, lf, subsample=True, seed=seed) <= 5.0
    assert metrics.mia_efficacy(lr, yr, lt, yt, lf, yf, seed=seed) >= 95.0


def test_mia_is_deterministic_given_the_seed():
    rng = np.random.default_rng(3)

    def draw(n, margin):
        y = rng.integers(0, K, n)
        return margin * np.eye(K)[y] + rng.standard_normal((n, K)), y

    # Overlapping members and non-members, so the fitted boundary depends on the D_r subset.
    (lr, yr), (lt, yt), (lf, yf) = draw(N_R, 1.5), draw(N_T, 0.5), draw(N_F, 1.0)
    efficacy = [metrics.mia_efficacy(lr, yr, lt, yt, lf, yf, seed=s) for s in range(4)]
    entropy = [metrics.mia_entropy(lr, lt, lf, subsample=True, seed=s) for s in range(4)]
    assert efficacy == [metrics.mia_efficacy(lr, yr, lt, yt, lf, yf, seed=s) for s in range(4)]
    assert entropy == [metrics.mia_entropy(lr, lt, lf, subsample=True, seed=s) for s in range(4)]
    assert len(set(efficacy)) > 1 and len(set(entropy)) > 1  # the seed is actually used


def test_protocol_metrics_combines_the_definitions():
    (lr, yr), (lt, yt), (lf, yf) = _sets(_member_like)
    out = metrics.protocol_metrics(lr, yr, lf, yf, lt, yt, seed=0)
    assert list(out) == list(metrics.DEFINITIONS)
    assert out["TA"] == metrics.accuracy(lt, yt)
    assert out["RA"] == metrics.accuracy(lr, yr) == 100.0
    assert out["FA"] == 100.0 and out["UA"] == 0.0
    assert out["MIA_entropy"] == metrics.mia_entropy(lr, lt, lf)
    assert out["MIA_efficacy"] == metrics.mia_efficacy(lr, yr, lt, yt, lf, yf, seed=0)


def test_avg_gap_exact():
    m = {"TA": 90.0, "FA": 80.0, "MIA": 50.0, "RA": 1.0}
    r = {"TA": 92.0, "FA": 86.0, "MIA": 47.0}
    # A handful of float64 operations on small exact numbers: an ulp or two (1e-15 ~ 4.5 ulp).
    assert metrics.avg_gap(m, r, ["TA", "FA", "MIA"]) == pytest.approx(11.0 / 3.0, rel=1e-15)
    assert metrics.avg_gap(m, r, ("TA",)) == 2.0


def test_param_distance_exact():
    a = {"w": jnp.array([[1.0, 2.0], [3.0, 4.0]]), "b": jnp.array([1.0])}
    b = {"w": jnp.array([[1.0, 2.0], [3.0, 0.0]]), "b": jnp.array([4.0])}
    # a - b = (0, 0, 0, 4, -3): ||a - b|| = 5, ||b|| = sqrt(1 + 4 + 9 + 16) = sqrt(30), M = 5.
    # Sums of small integers and one sqrt: an ulp or two (1e-15 ~ 4.5 ulp).
    out = metrics.param_distance(a, b)
    assert out["l2"] == pytest.approx(5.0, rel=1e-15)
    assert out["relative"] == pytest.approx(5.0 / math.sqrt(30.0), rel=1e-15)
    assert out["per_param"] == pytest.approx(25.0 / 5.0, rel=1e-15)
    assert metrics.param_distance(b, b) == {"l2": 0.0, "relative": 0.0, "per_param": 0.0}


GOOD = np.eye(3)
LABELS = np.array([0, 1, 2])


@pytest.mark.parametrize(
    "logits, labels, name",
    [
        (np.eye(3)[:2], LABELS, "labels"),  # mismatched lengths
        (np.zeros((0, 3)), np.zeros(0, int), "logits"),  # empty set
        (np.array([[np.nan, 0, 0], [0, 1, 0], [0, 0, 1]]), LABELS, "logits"),  # non-finite
        (np.ones(3), LABELS, "logits"),  # not 2-D
        (GOOD, np.array([0.0, 1.0, 2.0]), "labels"),  # float labels
        (GOOD, np.array([0, 1, 3]), "labels"),  # out of range
    ],
)
def test_accuracy_errors(logits, labels, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        metrics.accuracy(logits, labels)


def test_mia_errors():
    e = np.eye(3)
    with pytest.raises(ValueError, match="`logits_test`: expected a non-empty"):
        metrics.mia_entropy(e, np.zeros((0, 3)), e)
    with pytest.raises(ValueError, match="`logits_forget`: expected finite"):
        metrics.mia_entropy(e, e, np.full((3, 3), np.inf))
    with pytest.raises(ValueError, match="`logits_forget`: expected number of classes"):
        metrics.mia_entropy(e, e, np.eye(4))
    with pytest.raises(ValueError, match="`labels_test`: expected number of rows 3"):
        metrics.mia_efficacy(e, LABELS, e, LABELS[:2], e, LABELS)
    with pytest.raises(ValueError, match="`labels_forget`: expected labels in"):
        metrics.mia_efficacy(e, LABELS, e, LABELS, e, np.array([0, 1, -1]))
    with pytest.raises(ValueError, match="`y_forget`: expected number of rows"):
        metrics.protocol_metrics(e, LABELS, e, LABELS[:1], e, LABELS)
    with pytest.raises(ValueError, match="`logits_test`: expected number of classes"):
        metrics.protocol_metrics(e, LABELS, e, LABELS, np.eye(3, 4), LABELS)


def test_avg_gap_errors():
    m, r = {"TA": 1.0, "FA": 2.0}, {"TA": 1.0}
    with pytest.raises(ValueError, match=r"`reference`: expected the keys .* missing \['FA'\]"):
        metrics.avg_gap(m, r, ["TA", "FA"])
    with pytest.raises(ValueError, match=r"`metrics`: expected the keys .* missing \['RA'\]"):
        metrics.avg_gap(m, r, ["RA"])
    with pytest.raises(ValueError, match="`keys`: expected at least one"):
        metrics.avg_gap(m, r, [])
    with pytest.raises(ValueError, match="`keys`: expected an iterable"):
        metrics.avg_gap(m, r, "TA")
    with pytest.raises(ValueError, match="`metrics`: expected a finite value"):
        metrics.avg_gap({"TA": float("nan")}, r, ["TA"])


def test_param_distance_errors():
    a = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="`reference`: expected the pytree structure"):
        metrics.param_distance(a, {"v": jnp.ones(2)})
    with pytest.raises(ValueError, match="`reference`: expected the pytree structure"):
        metrics.param_distance(a, [jnp.ones(2)])
    with pytest.raises(ValueError, match="`reference`: expected leaf shapes"):
        metrics.param_distance(a, {"w": jnp.ones(3)})
    with pytest.raises(ValueError, match="`reference`: expected a nonzero"):
        metrics.param_distance(a, {"w": jnp.zeros(2)})
    with pytest.raises(ValueError, match="`params`: expected finite"):
        metrics.param_distance({"w": jnp.array([1.0, jnp.nan])}, a)
    with pytest.raises(ValueError, match="`params`: expected at least one scalar"):
        metrics.param_distance({"w": jnp.ones(0)}, {"w": jnp.ones(0)})
