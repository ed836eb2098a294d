"""Batches of forget sets: one vmapped call equals the loop over the single-set closed forms."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import muso_jax as mj
from muso_jax import batched
from helpers import SHAPES, problem, rel

# Same Cholesky algebra on each masked Gram, condition ~5 (helpers.SIGMA): float64 round-off
# ~cond N eps ~ 3e-14 (measured <= 1.2e-15); 1e-10 leaves a wide margin and fails on any wrong row.
EXACT = 1e-10


def _masks(seed, n, b=6):
    rng = np.random.default_rng(seed)
    masks = rng.random((b, n)) < 0.3
    masks[:, 0] = False  # keep at least one retained row
    masks[0] = False
    masks[0, n // 2:] = True  # one contiguous forget set, like a class
    return masks


@settings(max_examples=4)  # each example compiles the per-mask loop's programs anew
@given(st.integers(0, 2**16), st.sampled_from([0, 3]))
def test_batch_equals_loop(seed, k):
    p = problem(seed, *SHAPES[0], k=k)
    masks = _masks(seed, p.phi.shape[0])
    y_new, theta_r = batched.relabel_many(p.phi, p.y, p.theta0, masks)
    assert theta_r.shape == (len(masks),) + p.theta0.shape and y_new.shape == (len(masks),) + p.y.shape
    assert rel(batched.retrain_many(p.phi, p.y, p.theta0, masks), theta_r) < EXACT
    for b, f in enumerate(masks):
        r = ~f
        expected = mj.min_norm_solution(p.phi[r], p.y[r], p.theta0)
        assert rel(theta_r[b], expected) < EXACT
        labels = mj.muso_labels(p.phi[r], p.y[r], p.phi[f], p.theta0) if f.any() else None
        if labels is not None:
            assert rel(y_new[b][f], labels) < EXACT
        assert np.array_equal(np.asarray(y_new[b][r]), np.asarray(p.y[r]))


def test_ridge_is_passed_through():
    p = problem(2, *SHAPES[0])
    masks = _masks(2, p.phi.shape[0], b=2)
    theta_r = batched.retrain_many(p.phi, p.y, p.theta0, masks, ridge=0.5)
    r = ~masks[1]
    assert rel(theta_r[1], mj.min_norm_solution(p.phi[r], p.y[r], p.theta0, ridge=0.5)) < EXACT


@pytest.mark.parametrize("forget", [np.zeros((2, 5), bool), np.zeros(12, bool), np.zeros((2, 12), int)])
def test_bad_masks_name_the_argument(forget):
    p = problem(3, *SHAPES[0])
    with pytest.raises(ValueError, match=r"argument `forget`: expected a boolean \(B, N = 12\) array"):
        batched.retrain_many(p.phi, p.y, p.theta0, forget)


@pytest.mark.parametrize("row", [0, 1])
def test_empty_or_total_masks_are_refused_like_a_single_forget_set(row):
    p = problem(3, *SHAPES[0])
    masks = np.zeros((2, 12), bool)
    masks[:, 3] = True
    masks[row] = row == 1  # row 0: empty, row 1: total
    with pytest.raises(ValueError, match=rf"argument `forget`: .*empty or total masks at rows \[{row}\]"):
        batched.relabel_many(p.phi, p.y, p.theta0, masks)


def test_a_singular_gram_in_the_batch_takes_its_own_pseudo_inverse():
    """Under vmap each Gram takes its own Cholesky-or-SVD branch (muso_jax._linalg loops over
    the batch); a batch that holds a singular Gram (a repeated row kept) must equal the
    one-at-a-time solves."""
    p = problem(4, *SHAPES[0])
    phi = p.phi.at[1].set(p.phi[0])
    masks = np.zeros((3, phi.shape[0]), bool)
    masks[0, 0] = True  # drops the original of the repeat: nonsingular
    masks[1, 1] = True  # drops the repeat: nonsingular
    masks[2, 5] = True  # keeps it: singular
    theta_r = batched.retrain_many(phi, p.y, p.theta0, masks)
    for b, f in enumerate(masks):
        expected = mj.min_norm_solution(phi, p.y, p.theta0, retain=~f)
        # Each matrix takes the same branch (Cholesky, or the SVD pseudo-inverse for the singular
        # one) as the single solve: round-off only (measured 0), so EXACT, not a looser bound.
        assert rel(theta_r[b], expected) < EXACT


def test_min_norm_many_equals_the_loop_over_problems():
    ps = [problem(s, *SHAPES[0], k=3) for s in range(4)]
    phi, y, theta0 = (np.stack([getattr(p, f) for p in ps]) for f in ("phi", "y", "theta0"))
    theta = batched.min_norm_many(phi, y, theta0)
    for b, p in enumerate(ps):
        assert rel(theta[b], mj.min_norm_solution(p.phi, p.y, p.theta0)) < EXACT
    with pytest.raises(ValueError, match=r"argument `y`/`theta0`"):
        batched.min_norm_many(phi, y[:, :5], theta0)
