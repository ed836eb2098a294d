"""Row-sharded vs one-device results over four CPU devices, for tests/test_sharding.py.

:func:`checks` returns the device count, the shardings seen on the inputs and outputs, and the
max relative differences sharded vs unsharded; the tests call it in-process (tests/conftest.py
gives the test process four CPU devices). Run as a script it prints one line ``RESULT {json}``;
``--timing`` adds wall times of min_norm_solution at N=2000, M=8000 on one device vs row-sharded
over all devices. As a script it asks for the four devices itself (``jax_num_cpu_devices``), and
needs ``JAX_ENABLE_X64=1``.
"""

import json
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import muso_jax as mj
from muso_jax import sharding as sh

N, IN_DIM, D, SIGMA = 64, 4, 128, 0.5  # M = 2D = 256 > N; sigma as in tests/helpers.py
N_FORGET = 16  # D_r and D_f both divisible by 4 rows


def rel(a, b) -> float:
    """Max over the entries of |a - b|, relative to max |b| (one number per comparison)."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def spec(x) -> str:
    return str(x.sharding.spec)


def problem(n, in_dim, d, sigma, seed=0):
    kx, kw, kt = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(kx, (n, in_dim))
    fmap = mj.random_fourier(d, sigma)
    phi = mj.featurize(fmap, fmap.init(kw, in_dim), x)
    y = jnp.where(x[:, 0] > 0, 1.0, -1.0)
    theta0 = jax.random.normal(kt, (2 * d,))
    return phi, y, theta0


def checks(mesh):
    phi, y, theta0 = problem(N, IN_DIM, D, SIGMA)
    Y = jnp.stack([y, -y, jnp.roll(y, 1)], axis=1)  # (N, K) targets
    Theta0 = jnp.stack([theta0, 0.5 * theta0, -theta0], axis=1)
    forget = np.zeros(N, bool)
    forget[np.random.default_rng(0).choice(N, N_FORGET, replace=False)] = True
    retain = ~forget
    phi_r, y_r, phi_f = phi[retain], y[retain], phi[forget]

    phi_s, y_s = sh.shard_rows(phi, mesh, name="phi"), sh.shard_rows(y, mesh, name="y")
    theta0_s = sh.replicate(theta0, mesh)
    Y_s, Theta0_s = sh.shard_rows(Y, mesh, name="Y"), sh.replicate(Theta0, mesh)
    retain_s = sh.shard_rows(jnp.asarray(retain), mesh, name="where")
    phi_r_s, y_r_s, phi_f_s = (sh.shard_rows(a, mesh) for a in (phi_r, y_r, phi_f))

    out = {
        "devices": mesh.size,
        "mesh": str(mesh),
        "inputs": {
            "phi_spec": spec(phi_s),
            "phi_shards": len(phi_s.addressable_shards),
            "phi_shard_shapes": sorted({tuple(s.data.shape) for s in phi_s.addressable_shards}),
            "phi_shard_rows": sorted(s.index[0].start or 0 for s in phi_s.addressable_shards),
            "phi_shard_devices": len({s.device for s in phi_s.addressable_shards}),
            "y_spec": spec(y_s),
            "theta0_spec": spec(theta0_s),
            "theta0_shards": len(theta0_s.addressable_shards),
        },
        "rel": {},
        "out_spec": {},
    }
    R, S = out["rel"], out["out_spec"]

    def compare(name, f, plain_args, sharded_args, **kw):
        a, b = f(*sharded_args, **kw), f(*plain_args, **kw)
        if isinstance(a, tuple):  # sgd: (theta, info)
            a, b = a[0], b[0]
        R[name], S[name] = rel(a, b), spec(a)
        return a, b

    G_ref = phi @ phi.T
    G_map = sh.gram(phi_s, mesh)
    G_xla = jax.jit(lambda p: p @ p.T)(phi_s)
    R["gram_shard_map"], S["gram_shard_map"] = rel(G_map, G_ref), spec(G_map)
    R["gram_xla"], S["gram_xla"] = rel(G_xla, G_ref), spec(G_xla)

    compare("min_norm", mj.min_norm_solution, (phi, y, theta0), (phi_s, y_s, theta0_s))
    compare("min_norm_multi_output", mj.min_norm_solution, (phi, Y, Theta0), (phi_s, Y_s, Theta0_s))
    compare("min_norm_ridge", mj.min_norm_solution, (phi, y, theta0), (phi_s, y_s, theta0_s), ridge=1e-3)
    R["min_norm_where"] = rel(
        mj.min_norm_solution(phi_s, y_s, theta0_s, retain=retain_s), mj.min_norm_solution(phi, y, theta0, retain=retain)
    )
    compare("muso_labels", mj.muso_labels, (phi_r, y_r, phi_f, theta0), (phi_r_s, y_r_s, phi_f_s, theta0_s))
    compare("projector", mj.projector, (phi_r,), (phi_r_s,))

    key = jax.random.key(1)
    lr_full = float(1.0 / jnp.linalg.eigvalsh(phi @ phi.T)[-1])  # inside the stable range (0, 2/s_max^2)
    # tol=0 and a fixed epoch count: both runs take exactly the same number of steps.
    sgd_cases = {
        "sgd_per_sample": dict(batch_size=1, lr=1.0, max_epochs=20),  # Kaczmarz step: ||phi_i|| = 1
        "sgd_minibatch": dict(batch_size=8, lr=0.1, max_epochs=40),
        "sgd_full_batch": dict(batch_size=None, lr=lr_full, max_epochs=200),
    }
    for name, kw in sgd_cases.items():
        compare(name, lambda *args, **k: mj.sgd(key, *args, **k), (phi, y, theta0), (phi_s, y_s, theta0_s),
                tol=0.0, **kw)

    # muso_jax.sharding's own programs: Phi never gathered (ring Gram, psum back-projection).
    R["sh_min_norm"] = rel(sh.sharded_min_norm_solution(phi_s, y_s, theta0_s, mesh), mj.min_norm_solution(phi, y, theta0))
    R["sh_min_norm_multi_output"] = rel(sh.sharded_min_norm_solution(phi_s, Y_s, Theta0_s, mesh),
                                        mj.min_norm_solution(phi, Y, Theta0))
    R["sh_min_norm_ridge"] = rel(sh.sharded_min_norm_solution(phi_s, y_s, theta0_s, mesh, ridge=1e-3),
                                 mj.min_norm_solution(phi, y, theta0, ridge=1e-3))
    R["sh_min_norm_retain"] = rel(sh.sharded_min_norm_solution(phi_s, y_s, theta0_s, mesh, retain=retain_s),
                                  mj.min_norm_solution(phi, y, theta0, retain=retain))
    labels = sh.sharded_muso_labels(phi_r_s, y_r_s, phi_f_s, theta0_s, mesh)
    R["sh_muso_labels"], S["sh_muso_labels"] = rel(labels, mj.muso_labels(phi_r, y_r, phi_f, theta0)), spec(labels)
    theta_sh = sh.sharded_min_norm_solution(phi_s, y_s, theta0_s, mesh)
    S["sh_min_norm"] = spec(theta_sh)
    for name, kw in sgd_cases.items():
        # the one-device reference in the primal form: the sharded dual run must give its iterates
        theta_sh, info_sh = sh.sharded_sgd(key, phi_s, y_s, theta0_s, mesh, tol=0.0, **kw)
        theta_one, info_one = mj.sgd(key, phi, y, theta0, tol=0.0, form="primal", **kw)
        R["sh_" + name], S["sh_" + name] = rel(theta_sh, theta_one), spec(theta_sh)
        out.setdefault("sh_sgd_steps", {})[name] = [int(info_sh.steps), int(info_one.steps)]

    # Row count not divisible by 4: the error, and the pad-with-zeros + retain= route it suggests.
    n_odd = N - 2
    try:
        sh.shard_rows(phi[:n_odd], mesh, name="phi")
        out["indivisible_error"] = None
    except ValueError as err:
        out["indivisible_error"] = str(err)
    pad = (-n_odd) % mesh.size
    phi_pad = jnp.concatenate([phi[:n_odd], jnp.zeros((pad, phi.shape[1]))])
    y_pad = jnp.concatenate([y[:n_odd], jnp.zeros(pad)])
    mask = jnp.arange(n_odd + pad) < n_odd
    R["min_norm_padded_where"] = rel(
        mj.min_norm_solution(sh.shard_rows(phi_pad, mesh), sh.shard_rows(y_pad, mesh), theta0_s,
                             retain=sh.shard_rows(mask, mesh)),
        mj.min_norm_solution(phi[:n_odd], y[:n_odd], theta0),
    )

    local = sh.from_local_rows(np.asarray(phi), mesh, name="phi")
    out["from_local_rows"] = {"spec": spec(local), "shape": list(local.shape),
                              "equal": bool(np.array_equal(np.asarray(local), np.asarray(phi)))}
    return out


def timing(mesh, repeats=3):
    n, in_dim, d, sigma = 2000, 16, 4000, 4.0  # M = 8000
    phi, y, theta0 = problem(n, in_dim, d, sigma, seed=2)
    cases = {"one_device": (phi, y, theta0),
             "sharded": (sh.shard_rows(phi, mesh), sh.shard_rows(y, mesh), sh.replicate(theta0, mesh))}
    res = {"N": n, "M": 2 * d, "full_row_rank": bool(mj.full_row_rank(phi)), "devices": jax.device_count()}
    thetas = {}
    for name, args in cases.items():
        t0 = time.perf_counter()
        thetas[name] = mj.min_norm_solution(*args).block_until_ready()
        first = time.perf_counter() - t0
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            mj.min_norm_solution(*args).block_until_ready()
            runs.append(time.perf_counter() - t0)
        res[name] = {"first_call_s": round(first, 3), "median_s": round(statistics.median(runs), 3)}
    res["rel"] = rel(thetas["sharded"], thetas["one_device"])
    return res


def main():
    jax.config.update("jax_num_cpu_devices", 4)  # before the CPU backend starts
    if not jax.config.jax_enable_x64:
        raise SystemExit("set JAX_ENABLE_X64=1")
    if jax.device_count() != 4:
        raise SystemExit(f"expected 4 devices (JAX_PLATFORMS=cpu on an accelerator host); got {jax.device_count()}")
    mesh = sh.row_mesh()
    out = checks(mesh)
    if "--timing" in sys.argv:
        out["timing"] = timing(mesh)
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
