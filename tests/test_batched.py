"""Batches of forget sets: one vmapped call equals the loop over the single-set closed forms."""

import jax
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


# sgd_many: B runs of SGD in one program against the loop of single runs (muso_jax.sgd).
# The runs replay the same arithmetic in another summation order (batched products), so theta
# agrees to float64 round-off accumulated over the run: measured <= 4e-15 relative; 1e-12 leaves
# room for the longest runs here (a few thousand steps) and fails on any wrong row or step.
SGD_EXACT = 1e-12
SGD_VARIANTS = {  # batch size: step size inside the stable range for unit-norm RFF rows
    1: 1.0,  # per-sample (Kaczmarz step)
    4: 0.3,  # minibatch
    None: 0.1,  # full batch: lr < 2 / s_max(Phi)^2 for these problems
}


def _runs_equal_the_loop(thetas, info, singles):
    for b, (theta, one) in enumerate(singles):
        assert rel(thetas[b], theta) < SGD_EXACT, b
        assert int(info.steps[b]) == int(one.steps) and float(info.epochs[b]) == float(one.epochs), b
        assert bool(info.converged[b]) == bool(one.converged) and not bool(info.diverged[b]), b


@settings(max_examples=6)  # each (form, batch size) compiles one batched and one single program
@given(st.sampled_from([0, 1, 2]), st.sampled_from(["primal", "dual"]), st.sampled_from(list(SGD_VARIANTS)),
       st.sampled_from(["shuffle", "cyclic"]))
def test_sgd_many_equals_separate_runs_on_separate_problems(seed, form, batch_size, order):
    ps = [problem(seed * 10 + s, *SHAPES[0]) for s in range(3)]
    keys = jax.random.split(jax.random.key(seed), 3)
    kw = dict(lr=SGD_VARIANTS[batch_size], batch_size=batch_size, order=order, tol=1e-9, max_epochs=4000, form=form)
    thetas, info = batched.sgd_many(keys, *(np.stack([getattr(p, f) for p in ps]) for f in ("phi", "y", "theta0")),
                                    **kw)
    singles = [mj.sgd(keys[b], p.phi, p.y, p.theta0, **kw) for b, p in enumerate(ps)]
    _runs_equal_the_loop(thetas, info, singles)
    for b, p in enumerate(ps):  # and each lands on the closed form: tol 1e-9 / s_min ~ 1e-8
        assert rel(thetas[b], mj.min_norm_solution(p.phi, p.y, p.theta0)) < 1e-6


@pytest.mark.parametrize("form", ["primal", "dual"])
def test_sgd_many_over_forget_sets_freezes_each_run_at_its_own_stop(form):
    """One problem, B forget sets (retain masks): the runs stop at different epochs; each
    frozen run keeps its separate run's theta, steps and epochs while the others go on."""
    p = problem(5, *SHAPES[1])
    n = p.phi.shape[0]
    rng = np.random.default_rng(0)
    retain = rng.random((4, n)) > 0.3
    retain[0] = np.arange(n) < 3  # three rows: converges within a few epochs
    keys = jax.random.split(jax.random.key(1), 4)
    kw = dict(lr=1.0, tol=1e-10, max_epochs=3000, form=form)
    thetas, info = batched.sgd_many(keys, p.phi, p.y, p.theta0, retain=retain, **kw)
    singles = [mj.sgd(keys[b], p.phi, p.y, p.theta0, retain=retain[b], **kw) for b in range(4)]
    _runs_equal_the_loop(thetas, info, singles)
    epochs = np.asarray(info.epochs)
    assert epochs[0] < epochs.max() and len(set(epochs.tolist())) > 1  # stops really differ
    assert (info.alpha is None) == (form == "primal")


def test_sgd_many_reports_the_runs_that_diverge():
    ps = [problem(7, *SHAPES[0]) for _ in range(3)]
    phi = np.stack([p.phi for p in ps])
    phi[1] *= 3.0  # ||phi_i||^2 = 9: lr = 1 is outside (0, 2 / 9)
    with pytest.raises(ValueError, match=r"argument `lr`: runs \[1\] diverged with lr = 1"):
        batched.sgd_many(jax.random.split(jax.random.key(0), 3), phi, ps[0].y, ps[0].theta0, lr=1.0, max_epochs=50)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(y=np.ones((3, 12))), r"argument `y`: expected the batch size 2 of `key`; got 3 runs"),
        (dict(key=None, order="cyclic"), r"argument `key`: expected a \(B,\) array of keys or some argument"),
        (dict(key=None, y=np.ones((2, 12))), r"argument `key`: expected \(B,\) PRNG keys for order='shuffle'; got None"),
        (dict(key=np.zeros((2, 2), np.uint32)), r"argument `key`: expected a \(B,\) array of PRNG keys"),
        (dict(y=np.ones(11)), r"argument `y`: expected 12 targets per run"),
        (dict(theta0=np.ones(7)), r"argument `theta0`: expected 80 entries per run"),
        (dict(retain=np.ones((2, 12), int)), r"argument `retain`: expected a boolean mask of shape \(12,\) or \(B, 12\)"),
        (dict(batch_size=None, checks_per_epoch=2), r"argument `checks_per_epoch`: expected 1 for full-batch GD"),
        (dict(form="kernel"), r"argument `form`"),
        (dict(lr=-1.0), r"argument `lr`"),
    ],
)
def test_sgd_many_bad_arguments_name_the_argument(change, match):
    p = problem(0, *SHAPES[0])
    args = dict(key=jax.random.split(jax.random.key(0), 2), phi=p.phi, y=p.y, theta0=p.theta0)
    kwargs = {k: v for k, v in change.items() if k not in args}
    args.update({k: v for k, v in change.items() if k in args})
    with pytest.raises(ValueError, match=match):
        batched.sgd_many(args["key"], args["phi"], args["y"], args["theta0"], max_epochs=2, **kwargs)
