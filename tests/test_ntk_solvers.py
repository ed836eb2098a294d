"""The ways to compute the linearized retrain's outputs f_r(X_f) (muso_jax.nn.ntk_solvers): each
approaches the exact solve as its budget grows, the head-only closed form is the head's kernel,
and bad inputs are refused naming the argument. Float64 (tests/conftest.py), tiny networks.

Tolerances: the exact solve and its approximations at full budget are the same float64 algebra
on kernels whose ridged condition number is at most ~1e6 (relative ridge 1e-6 on a kernel of
rank below N_r): cond * eps ~ 1e-10; 1e-8 leaves a margin and still fails on any wrong term
(a dropped ridge, bias column or landmark moves the outputs by > 1e-3).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from muso_jax.nn import muso_ntk, ntk, ntk_solvers as S
from muso_jax.nn.models import make_model
from muso_jax.nn.state import split

K, N_R, N_F, CHUNK = 3, 12, 5, 8
TOL = 1e-8  # module docstring


def _net(model):
    if model == "mlp":
        return split(make_model("mlp", (4,), K, seed=0, param_dtype=jnp.float64, hidden=(16, 16))), (4,)
    return split(make_model("cnn", (8, 8, 1), K, seed=0, param_dtype=jnp.float64, channels=(2, 3), width=5)), (8, 8, 1)


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def problem(request):
    net, shape = _net(request.param)
    x = jax.random.normal(jax.random.key(1), (N_R + N_F,) + shape)
    y = jax.random.randint(jax.random.key(2), (N_R + N_F,), 0, K)
    return request.param, net, x[:N_R], y[:N_R], x[N_R:]


@pytest.fixture(scope="module")
def mlp():
    net, shape = _net("mlp")
    x = jax.random.normal(jax.random.key(1), (N_R + N_F,) + shape)
    y = jax.random.randint(jax.random.key(2), (N_R + N_F,), 0, K)
    return net, x[:N_R], y[:N_R], x[N_R:]


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


_EXACT = {}


def _exact(name, net, x_r, y_r, x_f, kernel):
    if (name, kernel) not in _EXACT:
        _EXACT[name, kernel] = S.exact(net, x_r, y_r, x_f, kernel=kernel, chunk=CHUNK)
    return _EXACT[name, kernel]


# ------------------------------------------------------------------------------ (a) convergence


@pytest.mark.parametrize("kernel", ["logit", "full"])
def test_nystrom_at_all_landmarks_is_the_exact_solve(problem, kernel):
    """m = N_r: (Theta^2 + eps Theta)^{-1} Theta r = (Theta + eps I)^{-1} r (the matrices commute), the
    exact solve to TOL; with 3 of the 12 points as landmarks it is visibly not (> 1e-3)."""
    name, net, x_r, y_r, x_f = problem
    ref, _ = _exact(name, net, x_r, y_r, x_f, kernel)
    errors = []
    for m in (3, N_R):
        out, cost = S.nystrom(jax.random.key(0), net, x_r, y_r, x_f, m=m, kernel=kernel, chunk=CHUNK)
        errors.append(_rel(out, ref))
        per = K * K if kernel == "full" else 1
        assert cost.solver == "nystrom" and cost.kernel_entries == m * (N_R + N_F) * per + N_R * (K if kernel == "full" else 1)
    assert errors[1] < TOL
    assert errors[0] > 1e-3


def test_cg_error_decreases_with_iterations_to_the_exact_solve(problem):
    """One CG per column of Y_r - f_0(X_r) on the logit kernel (N_r = 12 unknowns each): the error
    of f_r(X_f) falls at every checkpoint (measured: 1e0, 1e-1, 1e-2, 1e-5 ... on these nets) and is
    at round-off after 3 N_r iterations (exact arithmetic: N_r; float64 loses some orthogonality)."""
    name, net, x_r, y_r, x_f = problem
    ref, _ = _exact(name, net, x_r, y_r, x_f, "logit")
    path = S.cg_path(net, x_r, y_r, x_f, iterations=(1, 4, 8, 36), kernel="logit", chunk=CHUNK)
    errors = [_rel(out, ref) for out, _ in path]
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < TOL
    costs = [c for _, c in path]
    assert [c.iterations for c in costs] == [1, 4, 8, 36] or costs[-1].iterations < 36  # may stop at residual 0
    # passes: 1 forward + K vectors x (2 per iteration + 1 for the outputs)
    assert costs[1].passes == 1 + K * (2 * 4 + 1)
    assert costs[-1].residual < TOL


def test_cg_on_the_full_kernel_and_its_tolerance_stop(mlp):
    """The full kernel: one CG on N_r K = 36 unknowns, the exact solve to TOL within 150 iterations;
    with tol = 1e-4 it stops early, at a recursive residual <= 1e-4."""
    net, x_r, y_r, x_f = mlp
    ref, _ = _exact("mlp", net, x_r, y_r, x_f, "full")
    out, cost = S.cg(net, x_r, y_r, x_f, iterations=150, kernel="full", chunk=CHUNK)
    assert _rel(out, ref) < TOL
    early, cost2 = S.cg(net, x_r, y_r, x_f, iterations=150, tol=1e-4, kernel="full", chunk=CHUNK)
    assert cost2.iterations < cost.iterations and cost2.residual <= 1e-4
    assert 1e-12 < _rel(early, ref) < 1e-2


def test_last_layers_with_every_group_is_the_exact_solve(problem):
    """layers = every top-level parameter group: the subset kernel is the whole kernel (1e-12: the
    same products, summed in the same order)."""
    name, net, x_r, y_r, x_f = problem
    groups = tuple(net.params.keys())
    for kernel in ("logit", "full"):
        ref, _ = _exact(name, net, x_r, y_r, x_f, kernel)
        out, cost = S.last_layers(net, x_r, y_r, x_f, layers=groups, kernel=kernel, chunk=CHUNK)
        assert _rel(out, ref) < 1e-12 and cost.solver == "last-layers"


def test_kernel_of_a_parameter_subset_is_the_inner_product_of_its_jacobians():
    """ntk.kernel(layers=("dense", "head")) against explicit Jacobians of those parameters alone
    (1e-12, the round-off bound of tests/test_ntk.py), and ntk.diagonal against its diagonal."""
    net, shape = _net("cnn")
    x = jax.random.normal(jax.random.key(3), (6,) + shape)
    layers = ("dense", "head")
    flat, unravel = ravel_pytree(ntk.subset(net, layers))
    J = jax.jacrev(lambda v: ntk.logits(net, ntk.join(net, unravel(v), layers), x))(flat)  # (N, K, P_S)
    expected = jnp.einsum("iap,jbp->iajb", J, J)
    got = ntk.kernel(net, x, chunk=4, layers=layers)
    assert _rel(np.asarray(got), np.asarray(expected)) < 1e-12
    d = ntk.diagonal(net, x, chunk=4, layers=layers)
    assert _rel(np.asarray(d), np.asarray(jnp.einsum("iap,iap->ia", J, J))) < 1e-12
    assert _rel(np.asarray(ntk.diagonal(net, x, chunk=4, output=1)),
                np.asarray(jnp.diagonal(ntk.kernel(net, x, chunk=4, output=1)))) < 1e-12


# --------------------------------------------------------------------- (b) head-only closed form


@pytest.mark.parametrize("kernel", ["logit", "mean", "full"])
def test_head_closed_form_is_the_general_subset_path(problem, kernel):
    """Theta_head(x, x') = ([z, 1] . [z', 1]) I_K for every kernel choice: the (F + 1)-sized primal
    solve equals the exact solve with the head's kernel (TOL; the head kernel has rank F + 1, 17
    for the MLP and 6 for the CNN, below N_r = 12 for the CNN: ridged condition up to 1e6)."""
    name, net, x_r, y_r, x_f = problem
    closed, cost = S.last_layers(net, x_r, y_r, x_f, kernel=kernel, chunk=CHUNK)
    general, _ = S.exact(net, x_r, y_r, x_f, kernel=kernel, chunk=CHUNK, layers=("head",))
    assert _rel(closed, general) < TOL
    assert cost.kernel_entries == 0 and cost.passes == 1
    if kernel == "logit":
        ref, _ = _exact(name, net, x_r, y_r, x_f, kernel)
        assert _rel(closed, ref) > 1e-3  # the head alone is an approximation of the whole kernel


# -------------------------------------------------------------------------------------- dispatcher


def test_the_config_dispatches_to_each_solver(mlp):
    net, x_r, y_r, x_f = mlp
    ref, _ = _exact("mlp", net, x_r, y_r, x_f, "logit")
    auto = muso_ntk.NtkConfig(chunk=CHUNK)
    assert auto.solver == "auto" and auto.layers == ("head",)
    # "auto" is the exact kernel at this size (N_r <= AUTO_EXACT_MAX) and the head's above it
    assert muso_ntk.resolve_solver(auto, muso_ntk.AUTO_EXACT_MAX) == "exact"
    assert muso_ntk.resolve_solver(auto, muso_ntk.AUTO_EXACT_MAX + 1) == "last-layers"
    out, cost = muso_ntk.linearized_retrain(net, x_r, y_r, x_f, auto)
    assert cost.solver == "exact"
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    base = auto._replace(solver="exact")
    np.testing.assert_allclose(muso_ntk.linearized_retrain_outputs(net, x_r, y_r, x_f, base), ref, rtol=1e-12, atol=1e-12)
    nys = muso_ntk.linearized_retrain_outputs(net, x_r, y_r, x_f, base._replace(solver="nystrom", budget=N_R))
    assert _rel(nys, ref) < TOL
    cg = muso_ntk.linearized_retrain_outputs(net, x_r, y_r, x_f, base._replace(solver="cg", budget=36))
    assert _rel(cg, ref) < TOL
    head = muso_ntk.linearized_retrain_outputs(net, x_r, y_r, x_f, base._replace(solver="last-layers"))
    np.testing.assert_allclose(head, S.last_layers(net, x_r, y_r, x_f, chunk=CHUNK)[0], rtol=1e-12, atol=1e-12)
    out, cost = muso_ntk.linearized_retrain(net, x_r, y_r, x_f, base._replace(solver="cg", budget=4))
    assert cost.solver == "cg" and cost.iterations == 4


def test_cg_of_a_float32_network_runs_its_vectors_in_float64():
    """x64 off, float32 network: CG's products carry float32 round-off, its vectors and sums float64;
    after 3 N_r iterations it agrees with the exact (float32 kernel, float64 solve) to 1e-4
    (float32 eps ~1e-7 times the kernel's condition ~1e2-1e3), and returns float64."""
    with jax.enable_x64(False):
        net = split(make_model("mlp", (4,), K, seed=0, hidden=(16, 16)))
        x = np.asarray(jax.random.normal(jax.random.key(1), (N_R + N_F, 4)), np.float32)
        y = np.asarray(jax.random.randint(jax.random.key(2), (N_R + N_F,), 0, K))
        ref, _ = S.exact(net, x[:N_R], y[:N_R], x[N_R:], ridge=1e-3, chunk=CHUNK)
        out, cost = S.cg(net, x[:N_R], y[:N_R], x[N_R:], iterations=36, ridge=1e-3, chunk=CHUNK)
    assert out.dtype == np.float64
    assert _rel(out, ref) < 1e-4


# ------------------------------------------------------------------------------ (c) bad inputs


@pytest.mark.parametrize("field, value, match", [
    ("solver", "lanczos", r"argument `solver`: expected one of \['auto', 'exact', 'last-layers', 'nystrom', 'cg'\]"),
    ("budget", 0, r"argument `budget`: expected an integer >= 1"),
    ("budget", -3, r"argument `budget`: expected an integer >= 1"),
    ("budget", 2.5, r"argument `budget`: expected an integer >= 1"),
    ("layers", "head", r"argument `layers`: expected a non-empty tuple"),
    ("layers", (), r"argument `layers`: expected a non-empty tuple"),
    ("tol", -1e-3, r"argument `tol`: expected a finite number >= 0"),
    ("landmark_seed", -1, r"argument `landmark_seed`: expected an integer >= 0"),
])
def test_bad_config_fields_are_refused_naming_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        muso_ntk.check_config(muso_ntk.NtkConfig(**{field: value}))


def test_bad_solver_inputs_are_refused_naming_the_argument(mlp):
    net, x_r, y_r, x_f = mlp
    key = jax.random.key(0)
    cases = [
        (lambda: S.nystrom(key, net, x_r, y_r, x_f, m=N_R + 1), r"argument `m`: expected an integer in \[1, N_r = 12\]"),
        (lambda: S.nystrom(key, net, x_r, y_r, x_f, m=0), r"argument `m`"),
        (lambda: S.nystrom("seed", net, x_r, y_r, x_f, m=4), r"argument `key`: expected a JAX random key"),
        (lambda: S.cg(net, x_r, y_r, x_f, iterations=0), r"argument `iterations`: expected an integer >= 1"),
        (lambda: S.cg_path(net, x_r, y_r, x_f, iterations=(3, 0)), r"argument `iterations`"),
        (lambda: S.cg(net, x_r, y_r, x_f, iterations=3, tol=float("nan")), r"argument `tol`"),
        (lambda: S.last_layers(net, x_r, y_r, x_f, layers=("head", "conv")),
         r"argument `layers`: expected parameter groups among \['head', 'layers'\]; got 'conv'"),
        (lambda: S.last_layers(net, x_r, y_r, x_f, layers=("head", "head")), r"argument `layers`: expected distinct"),
        (lambda: S.exact(net, x_r, y_r, x_f, kernel="rbf"), r"argument `kernel`"),
        (lambda: S.exact(net, x_r, y_r, x_f, ridge=-1.0), r"argument `ridge`"),
        (lambda: S.exact(net, x_r, y_r, x_f, logit=K), r"argument `logit`: expected a logit index in \[0, 3\)"),
        (lambda: S.exact(net, x_r, y_r[:-1], x_f), r"argument `y_r`"),
        (lambda: S.cg(net, x_r, y_r, x_f[:, :3], iterations=2), r"argument `x_f`: expected inputs the network accepts"),
        (lambda: ntk.kernel(net, x_r, layers=("dense",)), r"argument `layers`: expected parameter groups among"),
        (lambda: muso_ntk.linearized_retrain_outputs(net, x_r, y_r, x_f, muso_ntk.NtkConfig(solver="nystrom", budget=N_R + 1)),
         r"argument `budget`: expected the number of landmarks m <= N_r = 12"),
        (lambda: muso_ntk.linearized_retrain_outputs(net, x_r, y_r, x_f, muso_ntk.NtkConfig(solver="last-layers",
                                                                                            layers=("dense",))),
         r"argument `layers`: expected parameter groups among"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()
