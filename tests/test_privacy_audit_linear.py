"""The linear privacy audit (proofs_numeric/privacy_audit.py): its populations are what they claim."""

import jax
import numpy as np
import pytest

from proofs_numeric import _common as c
from proofs_numeric import privacy_audit as pa

N, M, B = 15, 60, 4
FORGET = np.arange(N) >= N - 3


@pytest.fixture(scope="module")
def problem():
    phi, y, _ = c.rff_problem(jax.random.key(0), N, M, k=pa.K)
    return phi, y


@pytest.fixture(scope="module")
def pops(problem):
    return jax.tree.map(np.asarray, pa.shadow_models(jax.random.key(1), *problem, FORGET, B))


def test_vmapped_populations_equal_a_loop_of_single_models(problem, pops):
    keys = jax.random.split(jax.random.key(1), B)
    for b in range(B):
        one = pa.one_model(keys[b], *problem, FORGET)
        for name, theta in one.items():
            # The same solves on the same matrices; only the batching of the matmuls differs, so
            # the two agree to round-off of O(1) parameters: 1e-12 absolute is ~1e4 ulps.
            np.testing.assert_allclose(pops[name][b], np.asarray(theta), rtol=0, atol=1e-12, err_msg=name)


def test_muso_lands_on_retrain_and_ft_stays_on_the_original(problem, pops):
    scale = np.linalg.norm(pops["original"] - pops["retrain"], axis=(1, 2))
    gap = lambda a, b: np.linalg.norm(pops[a] - pops[b], axis=(1, 2)) / scale
    # Exact algebra (relabeling theorem) in float64 solves of a well-conditioned Gram: 1e-9 relative.
    assert gap("muso", "retrain").max() < 1e-9
    # D_r's residual at an interpolating theta_p is zero: FT does not move (same 1e-9 reason).
    assert gap("ft", "original").max() < 1e-9
    # The baselines and the independent retrain are O(1) away from Retrain_b.
    for name in ("rl", "bad_teacher", "retrain_indep"):
        assert gap(name, "retrain").min() > 1e-2, name


def test_each_model_fits_its_targets(problem, pops):
    phi, y = map(np.asarray, problem)
    wrong = np.argmax(np.einsum("fm,bmk->bfk", phi[FORGET], pops["rl"]), -1)
    assert np.all(wrong != np.argmax(y[FORGET], -1))  # RL's labels are wrong, never the true class
    # Interpolation of D_r by every fit: float64 solves, residual 1e-9 absolute on O(1) targets.
    for name in ("original", "retrain", "retrain_indep", "muso", "rl", "ft"):
        np.testing.assert_allclose(np.einsum("nm,bmk->bnk", phi[~FORGET], pops[name]),
                                   np.broadcast_to(y[~FORGET], (B, N - 3, pa.K)), rtol=0, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("kwargs, arg", [
    (dict(b=0), "b"),
    (dict(forget=np.zeros(N, bool)), "forget"),
    (dict(phi=np.zeros((N, N - 1))), "phi"),
])
def test_bad_arguments_are_refused_by_name(problem, kwargs, arg):
    phi, y = problem
    call = dict(phi=phi, y=y, forget=FORGET, b=B) | kwargs
    with pytest.raises(ValueError, match=f"argument `{arg}`"):
        pa.shadow_models(jax.random.key(0), **call)
