"""What this machine can do at best: its memory bandwidth and its float64 matmul rate, measured
once per run, and the roofline floor of a kernel from its flops and bytes.

* Bandwidth, STREAM-like: copy ``a = b`` (16 bytes per element: one read, one write) and triad
  ``a = b + s c`` (24 bytes), on float64 arrays several times the last-level cache, in NumPy
  (in place, no allocation in the timed region) and in jitted JAX. The floor is the best of the
  four: the rate at which data that is NOT in cache can be streamed through one process.
  JAX's copy and triad write a fresh output buffer each call, whose first touch costs page
  faults, so they read lower than NumPy's in-place loops; the floor takes the best.
* Peak: ``A @ B`` of two n x n float64 matrices (2 n^3 flops), NumPy and JAX, the best of both.
* ``roofline(flops, bytes)`` = max(flops / peak, bytes / bandwidth): no kernel that must move
  ``bytes`` through memory and do ``flops`` can take less. A working set that fits in cache can
  beat the DRAM floor (a fraction of floor below 1): it is reported as measured, not clipped.

    .venv/bin/python -m benchmarks.floors [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import _common as c  # noqa: E402

STREAM_ELEMENTS = 2**25  # 256 MiB per float64 array: 8x the 32 MiB L3 of the machines we run on
MATMUL_N = 2048
_MEASURED: dict = {}


def _best(fn, repeats: int) -> float:
    jax.block_until_ready(fn())
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def bandwidth(elements: int = STREAM_ELEMENTS, repeats: int = 5) -> dict:
    """GB/s of copy and triad, NumPy and JAX; ``best`` is the floor's bandwidth (bytes/s)."""
    s = 3.0
    b, cc = np.arange(elements, dtype=np.float64), np.ones(elements)
    a = np.empty_like(b)
    np.copyto(a, b)
    assert np.array_equal(a, b)
    np.multiply(cc, s, out=a)
    np.add(a, b, out=a)
    assert a[7] == 7 + s
    out = dict(elements=elements)
    out["numpy_copy_gbs"] = 16 * elements / _best(lambda: np.copyto(a, b), repeats) / 1e9
    # NumPy's triad in place: two passes (a = s c, a += b) move 40 bytes/element; counted as STREAM's
    # 24 it would look slower than it is, so it is timed as the one-pass sum a = b + c (24 bytes).
    out["numpy_add_gbs"] = 24 * elements / _best(lambda: np.add(b, cc, out=a), repeats) / 1e9
    bj, cj = jnp.asarray(b), jnp.asarray(cc)
    copy = jax.jit(lambda x: x + 0.0)  # a fresh output buffer: one read, one write
    triad = jax.jit(lambda x, y: x + s * y)
    assert bool(jnp.array_equal(copy(bj), bj)) and float(triad(bj, cj)[7]) == 7 + s
    out["jax_copy_gbs"] = 16 * elements / _best(lambda: copy(bj), repeats) / 1e9
    out["jax_triad_gbs"] = 24 * elements / _best(lambda: triad(bj, cj), repeats) / 1e9
    out["best_gbs"] = max(v for k, v in out.items() if k.endswith("_gbs"))
    return out


def matmul_peak(n: int = MATMUL_N, repeats: int = 5) -> dict:
    """GFLOP/s of an n x n float64 matmul (2 n^3 flops), NumPy and JAX; ``best_gflops`` is the peak."""
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    Aj, Bj = jnp.asarray(A), jnp.asarray(B)
    mm = jax.jit(jnp.matmul)
    ref = A @ B
    assert np.allclose(np.asarray(mm(Aj, Bj)), ref, rtol=1e-10, atol=1e-9 * np.sqrt(n))
    out = dict(n=n)
    out["numpy_gflops"] = 2 * n**3 / _best(lambda: A @ B, repeats) / 1e9
    out["jax_gflops"] = 2 * n**3 / _best(lambda: mm(Aj, Bj), repeats) / 1e9
    out["best_gflops"] = max(out["numpy_gflops"], out["jax_gflops"])
    return out


def measure(quick: bool = False) -> dict:
    """Both floors, measured on the first call of the process and remembered."""
    if quick not in _MEASURED:
        bw = bandwidth(2**22 if quick else STREAM_ELEMENTS)
        mm = matmul_peak(512 if quick else MATMUL_N)
        _MEASURED[quick] = dict(bandwidth=bw, matmul=mm, bytes_per_second=bw["best_gbs"] * 1e9,
                                flops_per_second=mm["best_gflops"] * 1e9, quick=quick)
    return _MEASURED[quick]


def roofline(flops: float = 0.0, bytes: float = 0.0, floors: dict | None = None) -> float:
    """Seconds below which no kernel doing ``flops`` and moving ``bytes`` can run here."""
    floors = floors or measure()
    return max(flops / floors["flops_per_second"], bytes / floors["bytes_per_second"])


def describe(floors: dict) -> str:
    bw, mm = floors["bandwidth"], floors["matmul"]
    return (f"bandwidth {bw['best_gbs']:.1f} GB/s (copy: NumPy {bw['numpy_copy_gbs']:.1f}, JAX {bw['jax_copy_gbs']:.1f}; "
            f"triad: NumPy {bw['numpy_add_gbs']:.1f}, JAX {bw['jax_triad_gbs']:.1f}), float64 matmul "
            f"{mm['best_gflops']:.1f} GFLOP/s (NumPy {mm['numpy_gflops']:.1f}, JAX {mm['jax_gflops']:.1f}, n = {mm['n']})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small arrays (they fit in cache: not a DRAM floor)")
    ap.add_argument("--out", type=Path, default=Path("results/bench"))
    args = ap.parse_args(argv)
    floors = measure(args.quick)
    print(f"  hardware floors: {describe(floors)}", flush=True)
    return c.save(args.out, "floors", floors), floors


if __name__ == "__main__":
    print(main()[0])
