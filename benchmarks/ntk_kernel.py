"""Empirical NTK of the digits MLP (64-512-512-10, 301,066 parameters) at its initialization:
time and peak memory, chunked against unchunked, each case in its own process (peak resident
memory is per process). The chunked kernel is checked against the unchunked one (or, where
the unchunked one does not fit, against a chunk-1 computation of a corner) before timing.

    .venv/bin/python benchmarks/ntk_kernel.py [--n 1500] [--chunk 64]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

def _peak_gb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: on Linux a child started
    from a big parent inherits the parent's ru_maxrss across fork and exec."""
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith("VmHWM:"))
    return int(line.split()[1]) / 2**20  # kB -> GB


def _one(n: int, output, chunk, dtype: str) -> dict:
    """Runs in a child process: compute, check, time, report peak RSS."""
    import jax

    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    from muso_jax.data import load_images
    from muso_jax.nn import ntk
    from muso_jax.nn.models import make_model
    from muso_jax.nn.state import split

    d = load_images("digits")
    x = jnp.asarray(d.x_train[:n]).astype(dtype)
    net = split(make_model("mlp", d.x_train.shape[1:], 10, seed=0, param_dtype=jnp.dtype(dtype)))
    c = n if chunk is None else chunk
    start = time.perf_counter()
    K = jax.block_until_ready(ntk.kernel(net, x, chunk=c, output=output))
    first = time.perf_counter() - start
    # Check a corner against chunk-1 blocks (independent blocking, same math), then time.
    ref = ntk.kernel(net, x[:4], x[:8], chunk=1, output=output)
    got = K[:4, :8] if output is not None else K[:4, :, :8]
    err = float(np.max(np.abs(np.asarray(got) - np.asarray(ref))) / np.max(np.abs(np.asarray(ref))))
    assert err < (1e-4 if dtype == "float32" else 1e-12), err
    del K
    start = time.perf_counter()
    K = jax.block_until_ready(ntk.kernel(net, x, chunk=c, output=output))
    seconds = time.perf_counter() - start
    peak = _peak_gb()
    return dict(n=n, output="all" if output is None else output, chunk=c, dtype=dtype, seconds=seconds,
                compile_seconds=first - seconds, peak_rss_gb=peak,
                shape=list(K.shape), rel_err_vs_chunk1=err)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--n-full", type=int, default=256, help="N of the multi-output kernel cases (cost ~ (N K)^2 P)")
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path("results/bench"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(_one(**json.loads(args.child))))
        return None
    from benchmarks import _common as c

    plan = [dict(n=args.n, output=0, chunk=args.chunk, dtype="float32"),
            dict(n=args.n, output=0, chunk=None, dtype="float32"),
            dict(n=args.n_full, output=None, chunk=args.chunk // 2, dtype="float32"),
            dict(n=args.n_full, output=None, chunk=None, dtype="float32")]
    rows = []
    for case in plan:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.ntk_kernel", "--child", json.dumps(case)],
                              capture_output=True, text=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not line:
            row = dict(case, failed=(proc.stderr.strip().splitlines() or ["no output"])[-1])
        else:
            row = json.loads(line[0][7:])
        rows.append(row)
        what = f"N={row['n']} output={row.get('output')} chunk={row.get('chunk') or 'all'} {row['dtype']}"
        print(f"  NTK {what}: " + (f"FAILED ({row['failed']})" if "failed" in row else
              f"{row['seconds']:.2f} s (+{row['compile_seconds']:.2f} s compile), peak {row['peak_rss_gb']:.2f} GB, "
              f"|diff| vs chunk 1 {row['rel_err_vs_chunk1']:.1e}"), flush=True)
    return c.save(args.out, "ntk_kernel", dict(rows=rows)), rows


if __name__ == "__main__":
    out = main()
    if out:
        print(out[0])
