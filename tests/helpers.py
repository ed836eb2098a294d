"""Small shared helpers for the tests: well-conditioned random problems and error measures."""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import muso_jax as mj

# Shapes come from short lists so that jit compiles a bounded number of programs.
SHAPES = ((12, 40), (24, 80))  # (N, D): M = 2D features, well over-parameterized
IN_DIM = 4
SIGMA = 0.5  # small against the spread of N(0, I) inputs: Gram condition about 3


class Problem(NamedTuple):
    x: jax.Array
    phi: jax.Array
    y: jax.Array
    theta0: jax.Array


@functools.lru_cache(maxsize=256)
def problem(seed: int, n: int, d: int, k: int = 0) -> Problem:
    """RFF problem with N = n rows, M = 2d features; targets +-1 (k = 0) or one-hot of k classes."""
    kx, kw, kt, ky = jax.random.split(jax.random.key(seed), 4)
    x = jax.random.normal(kx, (n, IN_DIM))
    fmap = mj.random_fourier(d, SIGMA)
    phi = jax.jit(mj.featurize, static_argnums=0)(fmap, fmap.init(kw, IN_DIM), x)
    if k == 0:
        y = jnp.where(x[:, 0] > 0, 1.0, -1.0)
        theta0 = jax.random.normal(kt, (2 * d,))
    else:
        y = jax.nn.one_hot(jax.random.randint(ky, (n,), 0, k), k, dtype=phi.dtype)
        theta0 = jax.random.normal(kt, (2 * d, k))
    return Problem(x, phi, y, theta0)


def rel(a, b) -> float:
    """||a - b|| / ||b||."""
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def smallest_singular_value(phi) -> float:
    return float(np.linalg.svd(np.asarray(phi), compute_uv=False)[-1])


def sgd_error_bound(residual, phi, scale=1.0) -> float:
    """Bound on ||theta - theta_inf|| for an iterate with theta - theta_inf in row(Phi).

    ||Phi e|| >= s_min ||e|| for e in the row space, so ||e|| <= residual / s_min; the second
    term allows float64 round-off accumulated over the run, relative 1e-11 of the parameters: the
    longest runs take ~5e5 updates of ~eps relative round-off each, ~sqrt(5e5) eps ~ 2e-13 if
    they accumulate like a random walk (the contraction of later steps damps the early ones).
    """
    return float(residual) / smallest_singular_value(phi) + 1e-11 * float(scale)
