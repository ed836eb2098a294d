"""Empirical NTK and the linearized network against explicit flattened Jacobians (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st
from jax.flatten_util import ravel_pytree

from muso_jax.nn import ntk
from muso_jax.nn.models import make_model
from muso_jax.nn.state import forward, split

K = 3
seeds = st.sampled_from([0, 1, 2, 5])
chunks = st.sampled_from([1, 3, 32])

# The kernel and the reference are both sums of P products of float64 Jacobian entries, in a
# different order (per-example JVPs of Jacobian rows vs one einsum): round-off of a few units
# of 1e-16 times the largest entry; 1e-12 relative leaves a wide margin and still fails on any
# wrong index, sign or missing parameter.
TIGHT = 1e-12


def _net(seed=0, model="mlp", dtype=jnp.float64):
    if model == "mlp":
        return split(make_model("mlp", (4,), K, seed=seed, param_dtype=dtype, hidden=(8, 8)))
    return split(make_model("cnn", (8, 8, 1), K, seed=seed, param_dtype=dtype, channels=(2, 3), width=5))


def _inputs(seed, n, shape=(4,)):
    return jax.random.normal(jax.random.key(seed), (n,) + shape)


@jax.jit
def _explicit_jacobian(net, x):
    """(N, K, P) by jacrev of the flattened parameters: an independent reference."""
    flat, unravel = ravel_pytree(net.params)
    return jax.jacrev(lambda v: forward(net.graphdef, unravel(v), net.rest, x, train=False)[0])(flat)


def _rel_max(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


@given(seeds, chunks)
def test_kernel_is_the_inner_product_of_explicit_jacobians(seed, chunk):
    net = _net(seed)
    x1, x2 = _inputs(seed, 7), _inputs(seed + 100, 5)
    J1, J2 = _explicit_jacobian(net, x1), _explicit_jacobian(net, x2)
    assert _rel_max(ntk.kernel(net, x1, x2, chunk=chunk), jnp.einsum("iap,jbp->iajb", J1, J2)) < TIGHT
    assert _rel_max(ntk.kernel(net, x1, chunk=chunk), jnp.einsum("iap,jbp->iajb", J1, J1)) < TIGHT


def test_kernel_of_a_convolutional_network():
    net = _net(0, "cnn")
    x = _inputs(0, 4, (8, 8, 1))
    J = _explicit_jacobian(net, x)
    assert _rel_max(ntk.kernel(net, x, chunk=3), jnp.einsum("iap,jbp->iajb", J, J)) < TIGHT


def test_chunk_size_does_not_change_the_kernel():
    net = _net(1)
    x1, x2 = _inputs(1, 10), _inputs(2, 6)
    whole = ntk.kernel(net, x1, x2, chunk=10)
    for chunk in (1, 4):
        # Same products per entry, summed in blocks of another shape: float64 round-off only.
        np.testing.assert_allclose(ntk.kernel(net, x1, x2, chunk=chunk), whole, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(ntk.kernel(net, x1, chunk=chunk), ntk.kernel(net, x1, chunk=10),
                                   rtol=1e-13, atol=1e-13)


def test_one_logit_is_the_diagonal_block_of_the_full_kernel():
    net = _net(2)
    x1, x2 = _inputs(3, 6), _inputs(4, 5)
    full, gram = ntk.kernel(net, x1, x2, chunk=4), ntk.kernel(net, x1, chunk=4)
    for a in range(K):
        single = ntk.kernel(net, x1, x2, chunk=4, output=a)
        assert single.shape == (6, 5)
        # Identical pushforwards, one logit read off: equal up to round-off (1e-13).
        np.testing.assert_allclose(single, full[:, a, :, a], rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(ntk.kernel(net, x1, chunk=4, output=a), gram[:, a, :, a], rtol=1e-13, atol=1e-13)


def test_gram_is_exactly_symmetric_and_positive_semidefinite():
    net = _net(3)
    x = _inputs(5, 9)
    gram = ntk.kernel(net, x, chunk=4).reshape(9 * K, 9 * K)
    assert bool(jnp.all(gram == gram.T))  # lower blocks are copies of the upper ones
    eig = jnp.linalg.eigvalsh(gram)
    # 27 rows << P = 139 parameters: positive definite; allow round-off of 1e-12 of the top.
    assert float(eig[0]) > -1e-12 * float(eig[-1])
    one = ntk.kernel(net, x, chunk=4, output=1)
    assert bool(jnp.all(one == one.T)) and float(jnp.linalg.eigvalsh(one)[0]) > -1e-12 * float(jnp.max(one))


def test_dtype_follows_the_parameters():
    x = _inputs(0, 3)
    assert ntk.kernel(_net(0, dtype=jnp.float32), x).dtype == jnp.float32
    assert ntk.kernel(_net(0), x.astype(jnp.float32)).dtype == jnp.float64


def test_kernel_jit_equals_eager_and_vmap_equals_loop():
    net = _net(4)
    xs = jnp.stack([_inputs(s, 5) for s in range(3)])
    eager = [ntk.kernel(net, x, chunk=2) for x in xs]
    # Same program, traced once more: round-off only.
    np.testing.assert_allclose(jax.jit(lambda x: ntk.kernel(net, x, chunk=2))(xs[0]), eager[0], rtol=1e-13, atol=1e-13)
    mapped = jax.vmap(lambda x: ntk.kernel(net, x, chunk=2))(xs)
    for i in range(3):
        np.testing.assert_allclose(mapped[i], eager[i], rtol=1e-13, atol=1e-13)


def test_linearized_network_pullback_and_gradient_step_match_the_explicit_jacobian():
    net = _net(5)
    x, y = _inputs(6, 6), _inputs(7, 6, (K,))
    J = _explicit_jacobian(net, x)
    flat0, unravel = ravel_pytree(net.params)
    dp = 0.1 * jax.random.normal(jax.random.key(8), flat0.shape)
    p = unravel(flat0 + dp)
    f0 = forward(net.graphdef, net.params, net.rest, x, train=False)[0]
    f_lin = f0 + jnp.einsum("iap,p->ia", J, dp)
    assert _rel_max(ntk.linearized_apply(net, p, x), f_lin) < TIGHT
    assert _rel_max(ntk.linearized_apply(net, net.params, x), f0) < TIGHT  # exact at p0
    v = _inputs(9, 6, (K,))
    assert _rel_max(ravel_pytree(ntk.pullback(net, x, v))[0], jnp.einsum("iap,ia->p", J, v)) < TIGHT
    lr = 0.05
    stepped, residual = ntk.gradient_step(net, p, x, y, lr)
    expected = flat0 + dp - lr * jnp.einsum("iap,ia->p", J, f_lin - y)
    assert _rel_max(ravel_pytree(stepped)[0], expected) < TIGHT
    assert _rel_max(residual, f_lin - y) < TIGHT
    # jit and vmap (over batches of inputs) of the step: round-off only.
    jitted = jax.jit(lambda q: ntk.gradient_step(net, q, x, y, lr))(p)[0]
    np.testing.assert_allclose(ravel_pytree(jitted)[0], ravel_pytree(stepped)[0], rtol=1e-13, atol=1e-13)
    xs = jnp.stack([x, 2 * x])
    mapped = jax.vmap(lambda xb: ntk.linearized_apply(net, p, xb))(xs)
    for i in range(2):
        np.testing.assert_allclose(mapped[i], ntk.linearized_apply(net, p, xs[i]), rtol=1e-13, atol=1e-13)


def test_linearization_error_is_second_order():
    """f(p0 + t v) - f_lin(p0 + t v) = O(t^2): halving t quarters the error (ratio in [3, 5]).

    Steps small enough (1e-3 of O(1) pre-activations) that no ReLU changes side, so the error is
    the smooth remainder of a product of layers: quadratic, plus a cubic term of relative size t.
    """
    net = _net(6)
    x = _inputs(10, 8)
    flat0, unravel = ravel_pytree(net.params)
    v = jax.random.normal(jax.random.key(11), flat0.shape)
    err = []
    for t in (1e-3, 5e-4):
        p = unravel(flat0 + t * v)
        err.append(float(jnp.linalg.norm(forward(net.graphdef, p, net.rest, x, train=False)[0]
                                         - ntk.linearized_apply(net, p, x))))
    assert 3.0 < err[0] / err[1] < 5.0


def test_bad_inputs_raise_naming_the_argument():
    net = _net(0)
    x = _inputs(0, 4)
    with pytest.raises(ValueError, match="`x1`.*network accepts"):
        ntk.kernel(net, _inputs(0, 4, (5,)))
    with pytest.raises(ValueError, match="`x1`"):
        ntk.kernel(net, jnp.ones(4))
    with pytest.raises(ValueError, match="`x2`"):
        ntk.kernel(net, x, jnp.ones((3, 5)))
    with pytest.raises(ValueError, match="`chunk`"):
        ntk.kernel(net, x, chunk=0)
    with pytest.raises(ValueError, match="`output`.*\\[0, 3\\)"):
        ntk.kernel(net, x, output=3)
    with pytest.raises(ValueError, match="`x1`.*finite"):
        ntk.kernel(net, x.at[0, 0].set(jnp.inf))


@pytest.mark.parametrize("case, match", [
    ("apply_params", r"argument `params`: expected the leaf .* of shape .* like `net0.params`"),
    ("apply_tree", r"argument `params`: expected a parameter pytree with the structure of `net0.params`"),
    ("apply_x", r"argument `x`: expected inputs the network accepts; got shape \(4, 5\)"),
    ("pullback_x", r"argument `x`: expected inputs the network accepts"),
    ("pullback", r"argument `cotangent`: expected shape \(4, 3\) \(one row of K logits per input\); got shape \(4, 2\)"),
    ("step_y", r"argument `y`: expected shape \(4, 3\)"),
    ("step_params", r"argument `params`: expected the leaf"),
    ("step_lr", r"argument `lr`: expected a finite number > 0"),
])
def test_linearization_helpers_refuse_mismatched_shapes_naming_the_argument(case, match):
    net = _net(0)
    x = _inputs(0, 4)
    cut = jax.tree.map(lambda a: a[..., :1], net.params)
    calls = dict(
        apply_params=lambda: ntk.linearized_apply(net, cut, x),
        apply_tree=lambda: ntk.linearized_apply(net, [jnp.ones(3)], x),
        apply_x=lambda: ntk.linearized_apply(net, net.params, _inputs(0, 4, (5,))),
        pullback_x=lambda: ntk.pullback(net, _inputs(0, 4, (5,)), jnp.ones((4, K))),
        pullback=lambda: ntk.pullback(net, x, jnp.ones((4, 2))),
        step_y=lambda: ntk.gradient_step(net, net.params, x, jnp.ones((3, K)), 0.1),
        step_params=lambda: ntk.gradient_step(net, cut, x, jnp.ones((4, K)), 0.1),
        step_lr=lambda: ntk.gradient_step(net, net.params, x, jnp.ones((4, K)), -0.1),
    )
    with pytest.raises(ValueError, match=match):
        calls[case]()
