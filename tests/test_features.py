"""Random-feature maps: shapes, norms, Monte-Carlo kernels against the analytic kernels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import muso_jax as mj


def _pairs(key, n=10, d=3, scale=1.0):
    kx, kx2 = jax.random.split(key)
    return scale * jax.random.normal(kx, (n, d)), scale * jax.random.normal(kx2, (n, d))


def _mc_within_clt(fmap, params, x, x2):
    """Monte-Carlo kernel phi(x).phi(x2) within 6 standard errors of the analytic kernel.

    phi(x).phi(x2) is a mean over features of i.i.d. terms; its standard error is the sample
    std of the per-feature terms over sqrt(#terms). 6 standard errors over 10 pairs fails by
    chance with probability below 1e-7.
    """
    phi, phi2 = mj.featurize(fmap, params, x), mj.featurize(fmap, params, x2)
    m = phi.shape[1]
    terms = m * phi * phi2  # each column's contribution, scaled so that the mean is the kernel
    mc = jnp.sum(phi * phi2, axis=1)
    se = jnp.std(terms, axis=1) / jnp.sqrt(m)
    exact = jax.vmap(fmap.kernel)(x, x2)
    np.testing.assert_array_less(np.abs(mc - exact), 6 * se + 1e-12)  # 1e-12: a floor where se is 0
    return mc, exact


def test_rff_shape_and_unit_norm():
    fmap = mj.random_fourier(50, sigma=2.0)
    params = fmap.init(jax.random.key(0), 3)
    phi = fmap.apply(params, jnp.arange(3.0))
    assert phi.shape == (100,) == (fmap.num_features,)
    # cos^2 + sin^2 = 1 for each frequency, times 1/D: exact up to round-off.
    np.testing.assert_allclose(jnp.linalg.norm(phi), 1.0, rtol=1e-14)
    assert params.W.shape == (3, 50)


def test_rff_frequencies_have_variance_one_over_sigma_squared():
    fmap = mj.random_fourier(20000, sigma=4.0)
    W = fmap.init(jax.random.key(1), 5).W
    # The sample variance of 1e5 N(0, 1/16) draws has relative std sqrt(2/1e5) = 0.45%: 3% is
    # ~7 standard deviations (measured 0.007%).
    np.testing.assert_allclose(jnp.var(W), 1 / 16, rtol=0.03)


@pytest.mark.parametrize("sigma", [0.7, 2.0])
def test_rff_monte_carlo_matches_gaussian_kernel(sigma):
    fmap = mj.random_fourier(20000, sigma=sigma)
    x, x2 = _pairs(jax.random.key(2))
    mc, exact = _mc_within_clt(fmap, fmap.init(jax.random.key(3), 3), x, x2)
    # The analytic kernel is this formula: a few ulp of exp (measured 1e-16 absolute).
    np.testing.assert_allclose(exact, jnp.exp(-jnp.sum((x - x2) ** 2, 1) / (2 * sigma**2)), rtol=1e-14)


@pytest.mark.parametrize("bias_std", [0.0, 1.0])
def test_relu_monte_carlo_matches_arccos_kernel(bias_std):
    fmap = mj.random_relu(40000, weight_std=0.8, bias_std=bias_std)
    x, x2 = _pairs(jax.random.key(4))
    _mc_within_clt(fmap, fmap.init(jax.random.key(5), 3), x, x2)


def test_relu_kernel_on_the_diagonal_is_half_the_squared_norm():
    fmap = mj.random_relu(10, weight_std=1.5, bias_std=0.5)
    x = jnp.array([1.0, -2.0, 0.5])
    # angle 0: k(x, x) = ||u||^2 / 2 with u = (1.5 x, 0.5); exact up to a few ulp of the arccos
    # kernel's cos/arccos of 1 (measured 9e-16 absolute on a value ~4).
    np.testing.assert_allclose(fmap.kernel(x, x), (1.5**2 * x @ x + 0.25) / 2, rtol=1e-14)
    # x = 0 without bias: relu(0) = 0, so the kernel is exactly 0 (no 0/0 from the angle).
    assert float(mj.random_relu(10, bias_std=0.0).kernel(jnp.zeros(3), x)) == 0.0


def test_kernel_matrix_matches_pairwise_kernel():
    fmap = mj.random_fourier(5, sigma=1.3)
    x, x2 = _pairs(jax.random.key(6), n=4)
    K = mj.kernel_matrix(fmap, x, x2[:3])
    assert K.shape == (4, 3)
    np.testing.assert_allclose(K[2, 1], fmap.kernel(x[2], x2[1]), rtol=1e-15)  # the same formula, vmapped: ~1 ulp


@pytest.mark.parametrize("make", [lambda: mj.random_fourier(16, 1.0), lambda: mj.random_relu(16)])
def test_apply_jit_equals_eager_and_vmap_equals_loop(make):
    fmap = make()
    params = fmap.init(jax.random.key(7), 3)
    x, _ = _pairs(jax.random.key(8), n=5)
    loop = jnp.stack([fmap.apply(params, xi) for xi in x])
    # The same cos/sin (or relu) of the same products, jitted or batched: a few ulp (measured 0);
    # the kernel's arccos of a batched cosine 1e-13.
    np.testing.assert_allclose(jax.jit(fmap.apply)(params, x[0]), loop[0], rtol=1e-14)
    np.testing.assert_allclose(mj.featurize(fmap, params, x), loop, rtol=1e-14)
    k_loop = jnp.stack([fmap.kernel(a, b) for a, b in zip(x, x[::-1])])
    np.testing.assert_allclose(jax.vmap(jax.jit(fmap.kernel))(x, x[::-1]), k_loop, rtol=1e-13)


def test_init_is_replayed_by_the_key():
    fmap = mj.random_relu(8)
    a, b = fmap.init(jax.random.key(9), 2), fmap.init(jax.random.key(9), 2)
    assert jnp.array_equal(a.W, b.W) and jnp.array_equal(a.b, b.b)


@pytest.mark.parametrize(
    "call, arg",
    [
        (lambda: mj.random_fourier(0, 1.0), "num_frequencies"),
        (lambda: mj.random_fourier(4, -1.0), "sigma"),
        (lambda: mj.random_fourier(4, float("nan")), "sigma"),
        (lambda: mj.random_relu(3, bias_std=-1.0), "bias_std"),
        (lambda: mj.random_relu(2.5), "num_features"),
        (lambda: mj.random_fourier(4, 1.0).init(jax.random.key(0), 0), "in_dim"),
    ],
)
def test_bad_hyperparameters_name_the_argument(call, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        call()


def test_featurize_and_kernel_matrix_check_their_arguments():
    fmap = mj.random_fourier(8, 1.0)
    params = fmap.init(jax.random.key(0), 3)
    x = jnp.ones((4, 3))
    with pytest.raises(ValueError, match=r"argument `x`: expected inputs of dimension d = 3"):
        mj.featurize(fmap, params, jnp.ones((4, 5)))
    with pytest.raises(ValueError, match=r"argument `x`: expected finite values"):
        mj.featurize(fmap, params, x.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match=r"argument `feature_map`: expected a FeatureMap"):
        mj.featurize(params, params, x)
    with pytest.raises(ValueError, match=r"argument `params`: expected the parameters drawn by"):
        mj.featurize(fmap, mj.random_fourier(5, 1.0).init(jax.random.key(0), 3), x)
    # The other kind of map's parameters, with a W of an accepted width: refused by type and
    # shapes (they used to give 2M features, or an AttributeError the other way round).
    relu = mj.random_relu(16)
    relu_params = relu.init(jax.random.key(0), 3)  # W (3, 16): the width of RFF's 8 frequencies x 2
    with pytest.raises(ValueError, match=r"argument `params`: expected .*RFFParams.*got ReLUParams"):
        mj.featurize(fmap, relu_params, x)
    with pytest.raises(ValueError, match=r"argument `params`: expected .*ReLUParams.*got RFFParams"):
        mj.featurize(mj.random_relu(8), params, x)
    with pytest.raises(ValueError, match=r"argument `x2`: expected inputs of dimension d = 3"):
        mj.kernel_matrix(fmap, x, jnp.ones((2, 4)))
    with pytest.raises(ValueError, match=r"argument `x`: expected a \(N, d\) batch of inputs"):
        mj.kernel_matrix(fmap, jnp.ones(3), x)
