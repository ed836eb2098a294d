"""One of two processes (jax.distributed, two CPU devices each) running muso_jax.sharding's
ungathered programs on a Phi whose rows are split between the processes, for
tests/test_sharding.py. Usage: ``python _two_process_sharding.py PROCESS_ID PORT``. Prints one
line ``RESULT {json}``: where this process's rows landed and the relative differences to the
one-device results (computed by each process on its first local device, from the full data).
"""

import json
import sys

import jax

N, M, N_R = 64, 512, 48  # N and N_R - N split over 4 devices; M = 8 N


def rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def main(pid: int, port: int) -> dict:
    jax.config.update("jax_num_cpu_devices", 2)
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2, process_id=pid)
    jax.config.update("jax_enable_x64", True)
    mesh = sh.row_mesh()  # the 4 devices of both processes

    rng = np.random.default_rng(0)  # every process draws the same full data; each passes its rows
    phi = rng.standard_normal((N, M)) / np.sqrt(M)
    y = np.sign(rng.standard_normal(N))
    theta0 = rng.standard_normal(M)

    def rows(a, lo, hi):  # this process's half of rows lo:hi, as a global row-sharded array
        h = (hi - lo) // 2
        return sh.from_local_rows(a[lo + pid * h: lo + (pid + 1) * h], mesh)

    phi_s, y_s, theta0_s = rows(phi, 0, N), rows(y, 0, N), sh.replicate(theta0, mesh)
    key = jax.random.key(1)
    sgd_kw = dict(lr=1.0, max_epochs=10, tol=0.0)
    with jax.default_device(jax.local_devices()[0]):
        ref = dict(
            min_norm=mj.min_norm_solution(phi, y, theta0),
            labels=mj.muso_labels(phi[:N_R], y[:N_R], phi[N_R:], theta0),
            sgd=mj.sgd(key, phi, y, theta0, form="primal", **sgd_kw)[0],
        )
    gather = lambda x: multihost_utils.process_allgather(x, tiled=True)  # noqa: E731 - row-sharded outputs
    theta_s, info = sh.sharded_sgd(key, phi_s, y_s, theta0_s, mesh, **sgd_kw)
    return {
        "devices": jax.device_count(),
        "local_devices": jax.local_device_count(),
        "phi_fully_addressable": bool(phi_s.is_fully_addressable),
        "rows": sorted(s.index[0].start or 0 for s in phi_s.addressable_shards),
        "rel": {
            "gram": rel(gather(sh.gram(phi_s, mesh)), phi @ phi.T),
            "min_norm": rel(sh.sharded_min_norm_solution(phi_s, y_s, theta0_s, mesh), ref["min_norm"]),
            "labels": rel(gather(sh.sharded_muso_labels(rows(phi, 0, N_R), rows(y, 0, N_R), rows(phi, N_R, N),
                                                        theta0_s, mesh)), ref["labels"]),
            "sgd": rel(theta_s, ref["sgd"]),  # replicated: readable on every process
        },
        "sgd_steps": int(info.steps),
    }


if __name__ == "__main__":
    import jax.numpy as jnp  # noqa: F401 - after the device count is set
    import numpy as np
    from jax.experimental import multihost_utils

    import muso_jax as mj
    from muso_jax import sharding as sh

    print("RESULT " + json.dumps(main(int(sys.argv[1]), int(sys.argv[2]))), flush=True)
