"""What every benchmark shares: a timer that separates compile time, the problem generator,
the device line, and the result files. Timings are best-of-repeats wall clock after
``block_until_ready``; every answer is checked before it is timed (by the caller)."""

from __future__ import annotations

import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

import muso_jax as mj
from muso_jax.io import figures, reports

IN_DIM = 16


def device() -> str:
    d = jax.devices()[0]
    cpu = platform.processor() or platform.machine()
    return f"{d.platform} {getattr(d, 'device_kind', '')} ({cpu}, {len(jax.devices())} device(s))".replace("  ", " ")


def first_and_best(fn, repeats: int = 3):
    """(seconds of the first call incl. compilation, best of ``repeats`` later calls, output)."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    first = time.perf_counter() - start
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return first, best, out


def once(fn):
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return time.perf_counter() - start, out


def rff_problem(n: int, m: int, seed: int = 0, dtype=jnp.float64, sigma: float = 1.0):
    """RFF features of N(0, I_16) inputs. sigma = 1 against inputs ~4.5 apart makes the kernel
    between distinct points ~exp(-10): a well-conditioned Gram (condition ~10 at M = 4N), so
    SGD converges in tens of epochs and the timings measure cost, not conditioning."""
    kx, kw, kt = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(kx, (n, IN_DIM), dtype)
    fmap = mj.random_fourier(m // 2, sigma, dtype=dtype)
    phi = jax.jit(mj.featurize, static_argnums=0)(fmap, fmap.init(kw, IN_DIM), x)
    y = jnp.where(x[:, 0] > 0, 1.0, -1.0).astype(dtype)
    return phi, y, jax.random.normal(kt, (m,), dtype)


def rel(a, b) -> float:
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def loglog_slope(xs, ys) -> float:
    return float(np.polyfit(np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float)), 1)[0])


def save(out, name: str, payload: dict, fig=None):
    payload = dict(payload, device=device(), date=time.strftime("%Y-%m-%d"))
    paths = [reports.write_json(out / f"{name}.json", payload)]
    if fig is not None:
        paths.append(figures.save_figure(fig, out / f"{name}.png"))
    return paths


def figure(ncols: int = 1, width: float = 5.5, height: float = 4.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]
