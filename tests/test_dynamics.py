"""SGD dynamics: the limit is the min-norm interpolant from theta0 (implicit bias), for every
order, batch size and schedule; full-batch GD matches the exact finite-step formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import muso_jax as mj
from helpers import SHAPES, problem, rel, sgd_error_bound

seeds = st.integers(0, 2**16)
TOL = 1e-12  # residual at which runs stop; the parameter bound follows from s_min (helpers)

# (batch_size, lr): lr below 2 / lambda_max(Phi_B^T Phi_B). RFF rows have unit norm, so
# per-sample steps are safe up to 2; batches of b rows have lambda_max <= b, full batch <= N.
VARIANTS = st.sampled_from([(1, 1.0), (1, 1.6), (3, 0.5), (8, 0.2), (None, 0.05)])


FORMS = st.sampled_from(["primal", "dual"])


@given(seeds, st.sampled_from(SHAPES), VARIANTS, st.sampled_from(["shuffle", "cyclic"]),
       st.sampled_from([0.0, 0.2]), st.sampled_from([0, 3]), FORMS)
def test_sgd_limit_is_the_min_norm_interpolant(seed, shape, variant, order, decay, k, form):
    p = problem(seed, *shape, k=k)
    batch_size, lr = variant
    theta, info = mj.sgd(jax.random.key(seed), p.phi, p.y, p.theta0, lr=lr, decay=decay,
                         batch_size=batch_size, order=order, tol=TOL, max_epochs=20000, form=form)
    assert bool(info.converged) and not bool(info.diverged)
    limit = mj.min_norm_solution(p.phi, p.y, p.theta0)
    assert float(jnp.linalg.norm(theta - limit)) <= sgd_error_bound(info.residual, p.phi, jnp.linalg.norm(limit))


@given(seeds, st.sampled_from([0, 1, 7, 40]))
def test_full_batch_gd_matches_the_exact_finite_step_formula(seed, steps):
    p = problem(seed, *SHAPES[1], k=3)
    lr = 0.03
    theta, info = mj.sgd(None, p.phi, p.y, p.theta0, lr=lr, batch_size=None, tol=0.0, max_epochs=max(steps, 1))
    if steps == 0:
        theta = p.theta0
    # Same linear recursion evaluated two ways; round-off grows with the step count only: at
    # most 40 steps of ~cond eps each (Gram condition ~5) ~ 5e-14; measured <= 1e-15.
    assert rel(theta, mj.gd_iterate(p.phi, p.y, p.theta0, lr, steps)) < 1e-12
    assert int(info.steps) == max(steps, 1)


def test_gd_iterate_vmaps_over_steps_and_tends_to_the_limit():
    p = problem(1, *SHAPES[0])
    ts = jnp.array([0, 5, 50, 100000])
    it = jax.vmap(lambda t: mj.gd_iterate(p.phi, p.y, p.theta0, 0.1, t))(ts)
    # t = 0 and t = 1e5 (the factor (1 - lr s^2)^t underflows to 0): theta0 and theta_inf up to
    # the round-off of splitting theta0 - theta_inf along row(Phi), ~cond eps ~ 1e-15 (measured
    # <= 5e-16). t = 5 traced (lax.pow) vs concrete (repeated squaring): a few ulp (measured 1e-16).
    assert rel(it[0], p.theta0) < 1e-12
    assert rel(it[1], mj.gd_iterate(p.phi, p.y, p.theta0, 0.1, 5)) < 1e-14
    assert rel(it[-1], mj.min_norm_solution(p.phi, p.y, p.theta0)) < 1e-12


def test_where_mask_equals_training_on_the_subset():
    p = problem(2, *SHAPES[1])
    keep = jnp.arange(SHAPES[1][0]) % 4 != 1
    kw = dict(lr=1.0, decay=0.2, order="cyclic", tol=1e-11, max_epochs=500)
    a, ia = mj.sgd(None, p.phi, p.y, p.theta0, retain=keep, **kw)
    b, ib = mj.sgd(None, p.phi[keep], p.y[keep], p.theta0, **kw)
    # Identical update sequence (cyclic order over the kept rows, same t): equal to round-off
    # (the masked rows add exact zeros; measured 0).
    assert rel(a, b) < 1e-13
    assert int(ia.steps) == int(ib.steps) and float(ia.epochs) == float(ib.epochs)


def test_trace_monitor_and_stop():
    p = problem(3, *SHAPES[0])
    limit = mj.min_norm_solution(p.phi, p.y, p.theta0)
    theta, info = mj.sgd(jax.random.key(0), p.phi, p.y, p.theta0, tol=1e-10, max_epochs=300,
                         checks_per_epoch=2, trace=True,
                         monitor=lambda t: jnp.linalg.norm(t - limit))
    n_checks = int(round(float(info.epochs) * 2))
    tr, mon = info.residual_trace, info.monitor_trace
    assert tr.shape == mon.shape == (601,)
    # The recorded values are the same norms recomputed here, maybe fused differently: a few ulp
    # (measured 0); the last residual is the same number as info.residual, exactly.
    np.testing.assert_allclose(tr[0], jnp.linalg.norm(p.phi @ p.theta0 - p.y), rtol=1e-14)
    np.testing.assert_allclose(tr[n_checks], info.residual, rtol=0)
    np.testing.assert_allclose(mon[n_checks], jnp.linalg.norm(theta - limit), rtol=1e-14)
    assert bool(jnp.all(jnp.isfinite(tr[: n_checks + 1]))) and bool(jnp.all(jnp.isnan(tr[n_checks + 1:])))
    # Converged to residual 1e-10, so within 1e-10 / s_min of the limit, against an O(1) start:
    # 1e-3 is a loose "it really moved to the limit", many orders above what is reached.
    assert float(mon[n_checks]) < 1e-3 * float(mon[0])
    _, info = mj.sgd(jax.random.key(0), p.phi, p.y, p.theta0, max_epochs=300, checks_per_epoch=3,
                     stop=lambda t: jnp.asarray(True))
    assert bool(info.stopped) and not bool(info.converged)
    np.testing.assert_allclose(info.epochs, 1 / 3, rtol=0)  # one check of three: 1 / 3 rounded the same way


def test_shuffled_order_is_replayed_by_the_key_and_changes_with_it():
    p = problem(4, *SHAPES[0])
    run = lambda key: mj.sgd(key, p.phi, p.y, p.theta0, tol=0.0, max_epochs=2)[0]
    a, b, c = run(jax.random.key(1)), run(jax.random.key(1)), run(jax.random.key(2))
    # Another key is another sample order: after two epochs the iterates differ by O(1e-2)
    # (measured 0.05), far above the round-off that 1e-6 rules out.
    assert bool(jnp.array_equal(a, b)) and rel(a, c) > 1e-6


@pytest.mark.parametrize("form", ["primal", "dual"])
def test_divergent_step_raises_and_is_nan_under_jit(form):
    p = problem(5, *SHAPES[0])
    with pytest.raises(ValueError, match=r"`lr`.*diverged.*lr < 2 / max_i"):
        mj.sgd(jax.random.key(0), p.phi, p.y, p.theta0, lr=2.5, max_epochs=2000, form=form)
    theta, info = jax.jit(lambda k: mj.sgd(k, p.phi, p.y, p.theta0, lr=2.5, max_epochs=2000, form=form))(
        jax.random.key(0))
    assert bool(info.diverged) and bool(jnp.all(jnp.isnan(theta)))
    assert info.alpha is None if form == "primal" else bool(jnp.all(jnp.isnan(info.alpha)))


def test_jit_equals_eager_and_vmap_equals_loop():
    p = problem(6, *SHAPES[0])
    run = lambda key: mj.sgd(key, p.phi, p.y, p.theta0, batch_size=3, lr=0.5, tol=1e-10, max_epochs=400)
    keys = jax.random.split(jax.random.key(7), 3)
    eager = [run(k) for k in keys]
    jitted = jax.jit(run)(keys[0])
    # The same program (sgd jits its loop already), called inside another jit or vmap: the same
    # steps, at most differently fused, so round-off only (measured 0).
    np.testing.assert_allclose(jitted[0], eager[0][0], rtol=1e-13)
    batched = jax.vmap(run)(keys)
    np.testing.assert_allclose(batched[0], jnp.stack([e[0] for e in eager]), rtol=1e-13)
    np.testing.assert_array_equal(batched[1].steps, jnp.stack([e[1].steps for e in eager]))


def test_float32_stays_float32_with_a_numpy_float64_step():
    p = problem(7, *SHAPES[0])
    f32 = lambda a: a.astype(jnp.float32)
    theta, info = mj.sgd(jax.random.key(0), f32(p.phi), f32(p.y), f32(p.theta0), lr=np.float64(1.0),
                         tol=1e-4, max_epochs=200)
    assert theta.dtype == jnp.float32 and bool(info.converged)


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        (dict(y=jnp.ones(5)), "y"),
        (dict(theta0=jnp.ones(3)), "theta0"),
        (dict(lr=0.0), "lr"),
        (dict(lr=float("inf")), "lr"),
        (dict(decay=-0.2), "decay"),
        (dict(batch_size=0), "batch_size"),
        (dict(order="random"), "order"),
        (dict(max_epochs=0), "max_epochs"),
        (dict(checks_per_epoch=2, batch_size=None), "checks_per_epoch"),
        (dict(key=None), "key"),
        (dict(retain=jnp.ones(3, bool)), "retain"),
        (dict(phi=jnp.full((12, 80), jnp.nan)), "phi"),
        (dict(form="kernel"), "form"),
        (dict(gram=jnp.eye(11)), "gram"),
        (dict(gram=2.0 * jnp.eye(12)), "gram"),  # right shape, not Phi Phi^T (unit rows)
        (dict(gram=jnp.eye(12), form="primal"), "gram"),
    ],
)
def test_bad_input_names_the_argument(kwargs, arg):
    p = problem(8, *SHAPES[0])
    args = dict(key=jax.random.key(0), phi=p.phi, y=p.y, theta0=p.theta0)
    args.update(kwargs)
    positional = [args.pop(name) for name in ("key", "phi", "y", "theta0")]
    with pytest.raises(ValueError, match=f"`{arg}`"):
        mj.sgd(*positional, **args)


@pytest.mark.parametrize("form", ["primal", "dual"])
@pytest.mark.parametrize("batch_size, checks_per_epoch", [(1, 1), (1, 3), (5, 2)])
def test_update_rule_matches_a_hand_written_loop(batch_size, checks_per_epoch, form):
    """Two cyclic epochs, step lr (t + 1)^-decay with t the batch index restarting each epoch,
    and the gradient of (1/2) ||Phi_B theta - y_B||^2 (a sum over the batch)."""
    p = problem(9, *SHAPES[0], k=3)
    phi, y, theta = np.asarray(p.phi), np.asarray(p.y), np.asarray(p.theta0).copy()
    lr, decay = 0.3, 0.2
    for _ in range(2):
        for t, start in enumerate(range(0, len(y), batch_size)):
            b = slice(start, start + batch_size)
            theta -= lr * (t + 1.0) ** -decay * phi[b].T @ (phi[b] @ theta - y[b])
    out, info = mj.sgd(None, p.phi, p.y, p.theta0, lr=lr, decay=decay, batch_size=batch_size,
                       order="cyclic", tol=0.0, max_epochs=2, checks_per_epoch=checks_per_epoch, form=form)
    assert rel(out, theta) < 1e-13  # same arithmetic in another order: round-off only
    assert int(info.steps) == 2 * -(-len(y) // batch_size)


def test_a_fresh_monitor_lambda_does_not_recompile():
    """monitor / stop are keyed by their code; the arrays they close over travel as data."""
    from muso_jax.dynamics import _sgd

    p = problem(5, *SHAPES[0])
    kw = dict(tol=1e-6, max_epochs=3, order="cyclic")
    results = []
    for shift in (0.0, 1.0, 2.0):
        ref = p.theta0 + shift
        theta, info = mj.sgd(None, p.phi, p.y, p.theta0, monitor=lambda t: jnp.linalg.norm(t - ref),
                             stop=lambda t: jnp.linalg.norm(t - ref) < -1.0, **kw)
        results.append((theta, info.monitor_trace))
        if shift == 0.0:
            size = _sgd._cache_size()
    assert _sgd._cache_size() == size
    # The closed-over array really is read: the traces differ by the shift, not a stale copy.
    assert float(results[1][1][0]) != float(results[0][1][0])
    # The monitor's first value is this norm of the same difference: round-off only (measured 0).
    np.testing.assert_allclose(results[2][1][0], jnp.linalg.norm(p.theta0 - (p.theta0 + 2.0)), rtol=1e-12)


def test_gd_iterate_refuses_an_unstable_step():
    p = problem(6, *SHAPES[0])
    s_max = float(np.linalg.svd(np.asarray(p.phi), compute_uv=False)[0])
    with pytest.raises(ValueError, match=r"argument `lr`: expected a stable step lr < 2 / s_max\(Phi\)\^2"):
        mj.gd_iterate(p.phi, p.y, p.theta0, 2.5 / s_max**2, 10)
    assert np.all(np.isfinite(mj.gd_iterate(p.phi, p.y, p.theta0, 1.5 / s_max**2, 10)))


# Dual form: theta_t = theta0 + Phi^T alpha_t. Batches as in VARIANTS; every iterate is recorded
# by a monitor that returns theta itself at a check after every batch.
@given(seeds, st.sampled_from(SHAPES), VARIANTS, st.sampled_from(["shuffle", "cyclic"]),
       st.sampled_from([0.0, 0.2]), st.sampled_from([0, 3]), st.booleans())
def test_dual_form_equals_the_primal_iterate_by_iterate(seed, shape, variant, order, decay, k, masked):
    p = problem(seed, *shape, k=k)
    n = shape[0]
    batch_size, lr = variant
    retain = jnp.arange(n) % 5 != 2 if masked else None
    checks = 1 if batch_size is None else -(-n // batch_size)  # one check per batch
    kw = dict(lr=lr, decay=decay, batch_size=batch_size, order=order, tol=0.0, max_epochs=3,
              checks_per_epoch=checks, retain=retain, trace=True, monitor=lambda t: t)
    key = jax.random.key(seed)
    theta_p, info_p = mj.sgd(key, p.phi, p.y, p.theta0, form="primal", **kw)
    theta_d, info_d = mj.sgd(key, p.phi, p.y, p.theta0, form="dual", **kw)
    # The same recursion in other coordinates: each step's residual is c_i + G_i alpha in place of
    # phi_i theta - y_i, equal up to ~eps ||phi_i|| ||theta|| per step, and the steps contract
    # (lr below the stability bound), so the iterates stay within a small multiple of eps of each
    # other: measured <= 5e-15 relative over 3 epochs; 1e-12 leaves room and still fails for any
    # real change of the update (a wrong row, sign or step size moves theta by >= 1e-3).
    scale = float(jnp.max(jnp.linalg.norm(info_p.monitor_trace.reshape(info_p.monitor_trace.shape[0], -1), axis=1)))
    diff = float(jnp.max(jnp.abs(info_p.monitor_trace - info_d.monitor_trace)))
    assert diff <= 1e-12 * scale
    assert rel(theta_d, theta_p) < 1e-12
    np.testing.assert_allclose(info_d.residual_trace, info_p.residual_trace, rtol=1e-10, atol=1e-13)
    assert int(info_d.steps) == int(info_p.steps) and float(info_d.epochs) == float(info_p.epochs)
    # theta is theta0 + Phi^T alpha, alpha zero on the rows that were never trained on
    assert rel(p.theta0 + jnp.tensordot(p.phi, info_d.alpha, axes=(0, 0)), theta_d) < 1e-14
    assert info_p.alpha is None
    if masked:
        assert bool(jnp.all(info_d.alpha[~retain] == 0))


def test_dual_form_with_a_given_gram_the_auto_rule_and_stopping():
    p = problem(11, *SHAPES[1])
    n, m = p.phi.shape
    assert mj.dynamics.uses_dual(n, m) and not mj.dynamics.uses_dual(n, 2 * n)
    kw = dict(lr=1.0, decay=0.2, tol=1e-10, max_epochs=500)
    key = jax.random.key(3)
    auto, info_a = mj.sgd(key, p.phi, p.y, p.theta0, **kw)
    given_gram, info_g = mj.sgd(key, p.phi, p.y, p.theta0, gram=p.phi @ p.phi.T, **kw)
    primal, info_p = mj.sgd(key, p.phi, p.y, p.theta0, form="primal", **kw)
    assert info_a.alpha is not None  # M = 160 > 2 N = 48: auto took the dual form
    # The Gram computed inside the program or passed in: the same matmul, round-off only.
    assert rel(given_gram, auto) < 1e-14 and int(info_g.steps) == int(info_a.steps)
    # Converged to residual 1e-10 both ways (the residual c + G alpha vs Phi theta - y differs by
    # round-off, far below tol, so both stop at the same epoch) and land on the min-norm solution.
    assert int(info_a.steps) == int(info_p.steps) and bool(info_a.converged)
    limit = mj.min_norm_solution(p.phi, p.y, p.theta0)
    assert float(jnp.linalg.norm(auto - limit)) <= sgd_error_bound(info_a.residual, p.phi, jnp.linalg.norm(limit))
    # Under-parameterized, auto stays primal
    q = problem(12, 24, 20)  # N = 24, M = 40 < 2N
    _, info = mj.sgd(key, q.phi, q.y, q.theta0, tol=0.0, max_epochs=2)
    assert info.alpha is None
    # stop() sees theta = theta0 + Phi^T alpha at each check: stop at the first check whose gap
    # to the limit is below 1e-3 of the start's, in both forms at the same check.
    gap = lambda t: jnp.linalg.norm(t - limit) < 1e-3 * jnp.linalg.norm(p.theta0 - limit)
    _, sd = mj.sgd(key, p.phi, p.y, p.theta0, tol=0.0, max_epochs=500, stop=gap, form="dual")
    _, sp = mj.sgd(key, p.phi, p.y, p.theta0, tol=0.0, max_epochs=500, stop=gap, form="primal")
    assert bool(sd.stopped) and float(sd.epochs) == float(sp.epochs) > 1
