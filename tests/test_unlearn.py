"""Unlearning: MUSO relabel + SGD from theta_p lands on theta_r (parameter space, float64);
every other relabeling lands where its own closed form says, measurably away from theta_r."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import muso_jax as mj
from helpers import SHAPES, problem, rel, sgd_error_bound

seeds = st.integers(0, 2**16)
TOL = 1e-12  # residual at which the SGD runs stop; the parameter bounds follow from it (helpers)


def _setup(seed, shape, k=0):
    p = problem(seed, *shape, k=k)
    theta_p, info = mj.sgd(jax.random.key(seed + 1), p.phi, p.y, p.theta0, tol=TOL, max_epochs=5000)
    assert bool(info.converged)
    forget = np.arange(shape[0]) % 3 == 0
    return p, theta_p, forget


@given(seeds, st.sampled_from(SHAPES), st.sampled_from([0, 3]), st.sampled_from([(1, 1.0), (4, 0.4)]))
def test_muso_lands_on_retraining_in_parameter_space(seed, shape, k, variant):
    p, theta_p, forget = _setup(seed, shape, k)
    batch_size, lr = variant
    theta_u, cert = mj.unlearn_linear(jax.random.key(seed), p.phi, p.y, p.theta0, theta_p, forget,
                                      batch_size=batch_size, lr=lr, tol=TOL, max_epochs=5000)
    assert bool(cert.converged)
    # The claim: <= 1e-8 of the distance unlearning had to travel. At Gram condition ~3 and a
    # residual of 1e-12 the implicit-bias bound is about 1e-11 absolute.
    assert float(cert.relative_gap) <= 1e-8
    assert float(cert.gap) <= sgd_error_bound(cert.sgd.residual, p.phi, jnp.linalg.norm(cert.theta_r))
    # ... and against an actual SGD retrain on D_r from theta0, not only the closed form.
    theta_retrain, info = mj.sgd(jax.random.key(seed + 2), p.phi[~forget], p.y[~forget], p.theta0,
                                 tol=TOL, max_epochs=5000)
    assert bool(info.converged)
    # Both lie within their implicit-bias bound of theta_r, hence within the sum of each other.
    bound = (sgd_error_bound(cert.sgd.residual, p.phi, jnp.linalg.norm(cert.theta_r))
             + sgd_error_bound(info.residual, p.phi[~forget], jnp.linalg.norm(cert.theta_r)))
    assert float(jnp.linalg.norm(theta_u - theta_retrain)) <= bound


def _predicted_limit(p, theta_p, forget, labels):
    """SGD limit from theta_p on the relabeled data (or D_r alone when labels is None)."""
    if labels is None:
        return mj.min_norm_solution(p.phi[~forget], p.y[~forget], theta_p)
    return mj.min_norm_solution(p.phi, p.y.at[np.flatnonzero(forget)].set(labels), theta_p)


@pytest.mark.parametrize("method", ["random_labels", "bad_teacher", "true_labels", "finetune_retain"])
@pytest.mark.parametrize("k", [0, 3])
def test_other_labelings_miss_theta_r_by_their_predicted_gap(method, k):
    p, theta_p, forget = _setup(11, SHAPES[1], k)
    theta_u, cert = mj.unlearn_linear(jax.random.key(3), p.phi, p.y, p.theta0, theta_p, forget,
                                      method=method, tol=TOL, max_epochs=5000)
    assert bool(cert.converged)
    predicted = _predicted_limit(p, theta_p, forget, cert.labels_f)
    # 10.0: the parameters' scale for the round-off term (theta0 ~ N(0, I) in M = 160 dims).
    assert float(jnp.linalg.norm(theta_u - predicted)) <= sgd_error_bound(cert.sgd.residual, p.phi, 10.0)
    # theta_u is within that bound (~1e-11) of `predicted`, and the gap is O(0.1) (more than 1e-2
    # of ||theta_p - theta_r||, below): ~1e-10 relative at worst (measured 1.3e-13).
    np.testing.assert_allclose(cert.gap, jnp.linalg.norm(predicted - cert.theta_r), rtol=1e-8)
    # Measurably away: at least 1% of the way from theta_p to theta_r is left.
    assert float(cert.relative_gap) > 1e-2


def test_finetune_retain_never_reads_the_forget_rows():
    p, _, forget = _setup(19, SHAPES[0])
    theta_p = p.theta0 + 0.3  # does not interpolate: fine-tuning has to move
    poisoned = p.y.at[np.flatnonzero(forget)].set(100.0)
    run = lambda y: mj.unlearn_linear(jax.random.key(0), p.phi, y, p.theta0, theta_p, forget,
                                      method="finetune_retain", tol=TOL)
    (a, cert), (b, _) = run(p.y), run(poisoned)
    assert bool(jnp.array_equal(a, b))
    # Converged: the residual on D_r is at most TOL (1e-10 leaves room); D_f is not fit (O(1)).
    assert float(cert.residual_r) < 1e-10 and rel(p.phi[forget] @ a, p.y[forget]) > 1e-2
    assert cert.labels_f is None and bool(jnp.isnan(cert.residual_f))


def test_muso_labels_in_the_certificate_are_the_retrained_outputs():
    p, theta_p, forget = _setup(12, SHAPES[0])
    _, cert = mj.unlearn_linear(jax.random.key(0), p.phi, p.y, p.theta0, theta_p, forget, tol=TOL)
    # The labels are Phi_f theta_r, the same product (measured 0); 1e-10 as for a closed form.
    assert rel(cert.labels_f, p.phi[forget] @ cert.theta_r) < 1e-10
    # Converged on all rows (relabeled D_f included): both residuals at most TOL, room to 1e-10.
    assert float(cert.residual_f) < 1e-10 and float(cert.residual_r) < 1e-10
    np.testing.assert_allclose(cert.delta, cert.gap**2 / p.phi.shape[1], rtol=1e-14)  # the same numbers: ~1 ulp


def test_index_array_and_boolean_mask_agree():
    p, theta_p, forget = _setup(13, SHAPES[0])
    a, _ = mj.unlearn_linear(jax.random.key(0), p.phi, p.y, p.theta0, theta_p, forget, tol=TOL)
    b, _ = mj.unlearn_linear(jax.random.key(0), p.phi, p.y, p.theta0, theta_p, np.flatnonzero(forget), tol=TOL)
    assert bool(jnp.array_equal(a, b))


def test_under_parameterized_is_warned_and_leaves_a_gap():
    p = problem(14, 60, 10)  # N = 60 > M = 20: no interpolant
    with pytest.warns(mj.UnderParameterizedWarning):
        theta_p = mj.min_norm_solution(p.phi, p.y, p.theta0)  # least-squares fit of D
    forget = np.arange(60) >= 45
    with pytest.warns(mj.UnderParameterizedWarning, match="does not have full row rank"):
        _, cert = mj.unlearn_linear(jax.random.key(0), p.phi, p.y, p.theta0, theta_p, forget,
                                    lr=0.5, max_epochs=300)
    # Per-sample SGD cannot converge without an interpolant: the gap stays well above zero.
    assert not bool(cert.converged)
    assert float(cert.relative_gap) > 1e-3


def test_repeated_rows_with_conflicting_labels_are_warned():
    p = problem(15, *SHAPES[0])
    phi = jnp.concatenate([p.phi, p.phi[:1]])
    y = jnp.concatenate([p.y, -p.y[:1]])
    with pytest.warns(mj.UnderParameterizedWarning):
        _, cert = mj.unlearn_linear(jax.random.key(0), phi, y, p.theta0, p.theta0, [3, 4],
                                    max_epochs=100)
    assert not bool(cert.converged)


def test_jit_equals_eager_and_vmap_equals_loop():
    p, theta_p, forget = _setup(16, SHAPES[0])

    def run(key, phi):
        theta, cert = mj.unlearn_linear(key, phi, p.y, p.theta0, theta_p, forget,
                                        method="random_labels", tol=1e-10, max_epochs=2000)
        return theta, cert.gap

    keys = jax.random.split(jax.random.key(1), 3)
    eager = [run(k, p.phi) for k in keys]
    # The same SGD program inside jit or vmap: round-off only (measured 0). The gap is a
    # difference of two parameter vectors, so its relative round-off is larger by ||theta|| / gap.
    np.testing.assert_allclose(jax.jit(run)(keys[0], p.phi)[0], eager[0][0], rtol=1e-12)
    thetas, gaps = jax.vmap(run, (0, None))(keys, p.phi)
    np.testing.assert_allclose(thetas, jnp.stack([e[0] for e in eager]), rtol=1e-12)
    np.testing.assert_allclose(gaps, jnp.stack([e[1] for e in eager]), rtol=1e-10)


@pytest.mark.parametrize(
    "forget, message",
    [
        (np.zeros(12, bool), "non-empty forget set"),
        (np.ones(12, bool), "at least one retained row"),
        (np.array([], int), "non-empty forget set"),
        (np.array([0, 12]), r"indices in \[0, 12\)"),
        (np.array([-13]), r"indices in \[0, 12\)"),
        (np.array([1, 2, 1]), "unique indices"),
        (np.ones(5, bool), "length N = 12"),
        (np.array([0.5, 1.0]), "boolean mask or integer indices"),
        (np.ones((2, 2), bool), "1-D boolean mask"),
            (np.array([-1]), "no negative indices"),
    ],
)
def test_bad_forget_sets_are_refused(forget, message):
    p = problem(17, *SHAPES[0])
    with pytest.raises(ValueError, match=rf"`forget`.*{message}"):
        mj.unlearn_linear(jax.random.key(0), p.phi, p.y, p.theta0, p.theta0, forget)


@pytest.mark.parametrize(
    "change, arg",
    [
        (dict(y=jnp.ones((12, 2))), "theta0"),
        (dict(y=jnp.full(12, jnp.nan)), "y"),
        (dict(theta_p=jnp.ones(7)), "theta_p"),
        (dict(phi=jnp.ones((11, 80))), "y"),
        (dict(method="amnesiac"), "method"),
        (dict(lr=7.0), "lr"),  # diverges: reported, never returned
    ],
)
def test_bad_arguments_are_refused(change, arg):
    p = problem(18, *SHAPES[0])
    args = dict(phi=p.phi, y=p.y, theta0=p.theta0, theta_p=p.theta0 + 0.1)
    kwargs = {k: change.pop(k) for k in list(change) if k not in args}
    args.update(change)
    with pytest.raises(ValueError, match=f"`{arg}`"):
        mj.unlearn_linear(jax.random.key(0), args["phi"], args["y"], args["theta0"], args["theta_p"],
                          [0, 1], max_epochs=300, **kwargs)


@pytest.mark.parametrize("k", [0, 3])
def test_baseline_labels_have_the_documented_form(k):
    p, theta_p, forget = _setup(20, SHAPES[0], k)
    phi_r, y_r, phi_f, y_f = p.phi[~forget], p.y[~forget], p.phi[forget], p.y[forget]
    am = mj.relabel(jax.random.key(1), "random_labels", phi_r, y_r, phi_f, y_f, p.theta0)
    if k == 0:
        assert set(np.unique(np.asarray(am))) <= {-1.0, 1.0}
    else:
        np.testing.assert_array_equal(np.sum(am, 1), 1.0)
        assert set(np.unique(np.asarray(am))) == {0.0, 1.0}
    # Bad teacher: Phi_f w with w ~ N(0, I), checked by its law rather than by redrawing the
    # implementation's key: over many keys the labels have mean 0 and covariance
    # Phi_f Phi_f^T (per target column), and they never read the targets.
    draws = 4000
    bt = jax.vmap(lambda key: mj.relabel(key, "bad_teacher", phi_r, y_r, phi_f, y_f, p.theta0))(
        jax.random.split(jax.random.key(2), draws))
    samples = np.asarray(bt).reshape(draws, phi_f.shape[0], -1).transpose(0, 2, 1).reshape(-1, phi_f.shape[0])
    cov = samples.T @ samples / len(samples)
    target = np.asarray(phi_f @ phi_f.T)
    # Monte Carlo error of a covariance from n >= 4000 Gaussian draws: about sqrt(2 / n) = 2%
    # of its scale; 10% is five of those.
    assert np.linalg.norm(cov - target) < 0.1 * np.linalg.norm(target)
    # The sample mean of n draws of variance <= max diag(target): 5 standard errors of 0.
    assert np.abs(samples.mean(0)).max() < 5 * np.sqrt(np.diag(target).max() / len(samples))
    again = mj.relabel(jax.random.key(5), "bad_teacher", phi_r, 2 * y_r, phi_f, -y_f, p.theta0)
    assert rel(again, mj.relabel(jax.random.key(5), "bad_teacher", phi_r, y_r, phi_f, y_f, p.theta0)) == 0.0
    assert mj.relabel(None, "finetune_retain", phi_r, y_r, phi_f, y_f, p.theta0) is None
    assert bool(jnp.array_equal(mj.relabel(None, "true_labels", phi_r, y_r, phi_f, y_f, p.theta0), y_f))
