"""The audit statistics against known answers: identical samples are at chance (AUC 0.5,
epsilon 0), separated ones are found (AUC 1, epsilon at its cap), and a hand-computed epsilon."""

import math

import numpy as np
import pytest
from scipy.stats import norm

from muso_jax import audit

DELTA = 1e-5


def test_logit_confidence_is_log_p_over_one_minus_p():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 6, 5)) * 3
    y = rng.integers(0, 5, (4, 6))
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    py = np.take_along_axis(p, y[..., None], -1)[..., 0]
    # 1e-12: the same quantity by two float64 routes
    np.testing.assert_allclose(audit.logit_confidence(z, y), np.log(py) - np.log1p(-py), rtol=1e-12, atol=1e-12)
    # a confident model: p_y rounds to 1 in float64, the score stays finite and exact
    assert audit.logit_confidence(np.array([[60.0, 0.0]]), np.array([0]))[0] == pytest.approx(60.0, abs=1e-12)


def test_roc_and_auc_against_a_pair_count():
    rng = np.random.default_rng(1)
    s = np.round(rng.normal(size=300), 1)  # rounded: many ties
    pos = rng.random(300) < 0.4
    pairs = s[pos][:, None] - s[~pos][None]
    brute = (pairs > 0).mean() + 0.5 * (pairs == 0).mean()
    curve = audit.roc(s, pos)
    assert curve.auc == pytest.approx(brute, abs=1e-12)
    # the trapezoid under the curve is the same area (ties are diagonal segments)
    assert np.trapezoid(curve.tpr, curve.fpr) == pytest.approx(brute, abs=1e-12)
    assert curve.fpr[0] == curve.tpr[0] == 0 and curve.fpr[-1] == curve.tpr[-1] == 1
    assert np.all(np.diff(curve.fpr) >= 0) and np.all(np.diff(curve.tpr) >= 0)


def test_tpr_at_fpr_reads_the_curve():
    # positives 3, 2, 0.5; negatives 1, -1: at FPR 0 two of three positives are found
    curve = audit.roc(np.array([3.0, 2.0, 0.5, 1.0, -1.0]), np.array([True, True, True, False, False]))
    assert audit.tpr_at_fpr(curve, 0.0) == pytest.approx(2 / 3)
    assert audit.tpr_at_fpr(curve, 0.5) == 1.0
    assert curve.auc == pytest.approx(5 / 6)  # 5 of the 6 pairs ordered


def test_gaussian_log_lr_against_scipy():
    rng = np.random.default_rng(2)
    a, b, t = rng.normal(1, 2, (8, 5)), rng.normal(-1, 0.5, (9, 5)), rng.normal(size=(3, 5))
    want = (norm.logpdf(t, a.mean(0), a.std(0, ddof=1)) - norm.logpdf(t, b.mean(0), b.std(0, ddof=1)))
    np.testing.assert_allclose(audit.gaussian_log_lr(t, a, b), want, rtol=1e-12, atol=1e-12)


def _populations(rng, b, n, shift):
    """Scores of b unlearned models then b retrained ones on n examples."""
    base = rng.normal(size=n) * 3  # per-example difficulty: what a per-example attack calibrates away
    scores = np.concatenate([base + shift + rng.normal(size=(b, n)), base + rng.normal(size=(b, n))])
    unlearned = np.zeros(scores.shape, bool)
    unlearned[:b] = True
    shadow = np.tile(np.arange(b) < b // 2, 2)
    return scores, unlearned, shadow


def test_ulira_identical_populations_are_at_chance_and_separated_ones_are_found():
    rng = np.random.default_rng(3)
    scores, unlearned, shadow = _populations(rng, 32, 50, 0.0)
    same = scores.copy()
    same[:32] = scores[32:]  # the two populations equal, model for model
    tied = audit.ulira(same, unlearned, ~unlearned, shadow)
    assert tied.auc == 0.5 and tied.accuracy == 0.5  # every decision is a tie
    null = audit.ulira(scores, unlearned, ~unlearned, shadow)  # equal in distribution
    assert null.auc_low < 0.5 < null.auc_high
    far, far_unlearned, _ = _populations(rng, 32, 50, 4.0)
    found = audit.ulira(far, far_unlearned, ~far_unlearned, shadow)
    assert found.auc > 0.99 and found.tpr_at_1pct > 0.5
    # the per-example calibration matters: a population threshold on the raw scores does worse
    scores2, unl2, _ = _populations(np.random.default_rng(4), 32, 50, 1.0)
    per_example = audit.ulira(scores2, unl2, ~unl2, shadow).auc
    population = audit.auc(scores2, unl2)
    assert per_example > population + 0.1


def test_ulira_refuses_bad_inputs():
    rng = np.random.default_rng(5)
    scores, unlearned, shadow = _populations(rng, 4, 3, 0.0)
    with pytest.raises(ValueError, match="argument `unlearned`: expected booleans of the shape"):
        audit.ulira(scores, unlearned[:, :2], ~unlearned, shadow)
    with pytest.raises(ValueError, match="argument `out`: expected no pair both unlearned and out"):
        audit.ulira(scores, unlearned, np.ones_like(unlearned), shadow)
    with pytest.raises(ValueError, match="argument `unlearned`: expected at least 2 shadow models"):
        audit.ulira(scores, unlearned, ~unlearned, np.tile(np.arange(4) < 1, 2))
    with pytest.raises(ValueError, match="argument `shadow`: expected \\(8,\\) booleans"):
        audit.ulira(scores, unlearned, ~unlearned, shadow[:4])
    with pytest.raises(ValueError, match="argument `positive`: expected both positives and negatives"):
        audit.roc(np.arange(3.0), np.ones(3, bool))


def test_epsilon_rules_by_hand():
    # both rates 0: perfect separation, infinite; one rate 0: discarded (NaN)
    assert math.isinf(audit.epsilon_from_rates(0.0, 0.0, delta=DELTA))
    assert math.isnan(audit.epsilon_from_rates(0.0, 0.5, delta=DELTA))
    # FPR = FNR = 1/4: log((1 - delta - 1/4) / (1/4)) = log(3 - 4 delta)
    assert audit.epsilon_from_rates(0.25, 0.25, delta=DELTA) == pytest.approx(math.log(3 - 4 * DELTA), abs=1e-12)


def test_per_example_epsilon_hand_computed():
    # unlearned {2, 3, 4, 5}, retrained {0, 1, 2.5, 6}. The rules with both rates > 0 are at best
    # FPR = FNR = 1/4 (e.g. "unlearned iff s > 2.75": misses 2, accepts 6; or "iff 2.25 < s <= 5"
    # : misses 2, accepts 2.5); any rule with FPR = 0 or FNR = 0 here has the other rate > 0 and
    # is discarded. So epsilon = log((1 - delta - 1/4) / (1/4)).
    eps = audit.per_example_epsilon(np.array([[2.0, 3, 4, 5]]), np.array([[0.0, 1, 2.5, 6]]), delta=DELTA)
    assert eps[0] == pytest.approx(math.log(1 - DELTA - 0.25) - math.log(0.25), abs=1e-12)
    # its bucket: floor(1.0986 / 0.5) + 1 = 3, H = 2 / 2^3
    assert audit.forgetting_quality(eps) == 0.25
    # unlearned at both tails {0, 1, 8, 9}, retrained in the middle {3, 4, 5, 6}: the outside of
    # (1.5, 7] holds every unlearned score and no retrained one, both rates 0: perfect separation,
    # reported at the cap. No one-sided or inside rule separates them.
    eps = audit.per_example_epsilon(np.array([[0.0, 1, 8, 9]]), np.array([[3.0, 4, 5, 6]]), delta=DELTA)
    assert eps[0] == audit.EPSILON_CAP


def test_epsilon_identical_samples_zero_separated_at_the_cap():
    rng = np.random.default_rng(6)
    u = rng.normal(size=(20, 16))
    assert np.all(audit.per_example_epsilon(u, u.copy()) == 0.0)
    assert audit.forgetting_quality(audit.per_example_epsilon(u, u.copy())) == 1.0
    far = audit.per_example_epsilon(u + 100, u)
    assert np.all(far == audit.EPSILON_CAP) and audit.forgetting_quality(far) == 2.0 / 2.0**13
    # ordered: a larger shift is easier to detect
    small, large = (audit.per_example_epsilon(u + d, rng.normal(size=(20, 16))).mean() for d in (0.5, 2.0))
    assert small < large


def test_forgetting_quality_buckets():
    # width 0.5, 13 buckets, the last open above: H = 1, 1/2, 1/4, ..., 2 / 2^13
    e = np.array([0.0, 0.49, 0.5, 1.0, 6.0, 6.49, 6.5, 100.0, np.inf])
    k = np.array([1, 1, 2, 3, 13, 13, 13, 13, 13])
    for eps, want in zip(e, k):
        assert audit.forgetting_quality(np.array([eps])) == 2.0 / 2.0**want, eps
    assert audit.forgetting_quality(np.array([0.0, 0.5])) == 0.75


def test_challenge_score_and_refusals():
    assert audit.challenge_score(0.5, 90.0, 100.0, 80.0, 100.0) == pytest.approx(0.36)
    with pytest.raises(ValueError, match="argument `ra_retrained`"):
        audit.challenge_score(0.5, 90.0, 0.0, 80.0, 100.0)
    with pytest.raises(ValueError, match="argument `epsilons`"):
        audit.forgetting_quality(np.array([-1.0]))
    with pytest.raises(ValueError, match="argument `retrained_scores`"):
        audit.per_example_epsilon(np.zeros((3, 4)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="argument `y`: expected integer labels of shape"):
        audit.logit_confidence(np.zeros((3, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="argument `logits`: expected"):
        audit.logit_confidence(np.zeros((3, 1)), np.zeros(3, int))
    with pytest.raises(ValueError, match="argument `epsilons`"):
        audit.forgetting_quality(np.array([np.nan]))


def test_linear_shadow_models_vmap_equals_the_loop():
    """proofs_numeric.privacy_audit.shadow_models for three seeds at once equals three single calls."""
    import jax

    from proofs_numeric import privacy_audit

    phi, labels = privacy_audit.pool(jax.random.key(0), 24, 64, 3)
    y = jax.nn.one_hot(labels[:16], 3, dtype=phi.dtype)
    forget = np.arange(16) >= 12
    one = jax.jit(lambda k: privacy_audit.shadow_models(k, phi[:16], y, forget, phi))
    keys = jax.random.split(jax.random.key(1), 3)
    outputs, gaps = jax.vmap(one)(keys)
    for b in range(3):
        out_b, gap_b = one(keys[b])
        # 1e-12: the same closed forms; the batched program only reorders float64 round-off
        np.testing.assert_allclose(outputs[b], out_b, rtol=1e-12, atol=1e-12)
        assert abs(float(gaps[b]) - float(gap_b)) <= 1e-12
    assert float(gaps.max()) < 1e-9  # MUSO lands on the retrain from the original's own start
