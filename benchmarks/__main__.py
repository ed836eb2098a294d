"""Run every benchmark and print the ratios against the aims of issues 6 and 16, and each linear
case as a fraction of this machine's hardware floor (benchmarks/floors.py, measured first).

    .venv/bin/python -m benchmarks [--quick] [--out results/bench]

Writes one JSON (and PNG where a figure helps) per case plus summary.json into --out. The
PyTorch comparison of network training (benchmarks/nn_engine.py) runs too and says so
when torch is not installed (it is not a dependency). The GPU benchmark (benchmarks/gpu.py) runs
last in its own process: at its full size on an accelerator, at its tiny size on a CPU (there
its timings mean nothing; it checks the script runs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import _common as c
from benchmarks import deletion, floors, ntk_kernel, per_sample_sgd, precision, vmap_seeds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (about a minute), for a smoke test")
    ap.add_argument("--out", type=Path, default=Path("results/bench"))
    args = ap.parse_args(argv)
    out = ["--out", str(args.out)]
    start = time.perf_counter()
    print(f"device: {c.device()}")
    print("[0/8] hardware floors: memory bandwidth (STREAM-like copy and triad) and float64 matmul peak")
    _, hw = floors.main(out + (["--quick"] if args.quick else []))
    quick_floors = ["--quick-floors"] if args.quick else []
    print("[1/8] per-sample SGD, JAX vs NumPy (aim >= 20x), primal vs dual form (aim >= M/2N at M >= 4N), "
          "each against its bandwidth floor (aim: primal within 1.5x)")
    _, sgd_rows = per_sample_sgd.main(out + quick_floors + (["--n", "250", "--widths", "64", "1024"] if args.quick else []))
    print("[2/8] exact deletion of k rows: cached vs scratch vs SGD (aim >= 100x vs SGD)")
    _, del_rows = deletion.main(out + quick_floors + (["--sizes", "250", "500", "--ks", "1", "10"] if args.quick else []))
    print("      the same at Gram condition ~800 (sigma = 2), where SGD needs thousands of epochs")
    _, del2_rows = deletion.main(out + quick_floors + ["--sigma", "2", "--name", "deletion_sigma2", "--ks", "10", "--sizes"]
                                 + (["250"] if args.quick else ["500", "1000"]))
    print("[3/8] 16 seeds or forget sets in one call (sgd_many, vmap) vs a loop of the jitted single call "
          "(aim >= 4x), each against its floor")
    _, vmap_rows = vmap_seeds.main(out + quick_floors + (["--seeds", "4"] if args.quick else []))
    print("[4/8] float32 vs float64")
    _, prec_rows = precision.main(out + (["--n", "300"] if args.quick else []))
    print("[5/8] network training: the scan engine vs the previous engine vs PyTorch (images/s)")
    # Its own process: the network benchmark runs in float32, the linear ones above set x64.
    quick = ["--n", "1024", "--reps", "1", "--batch", "64"] if args.quick else []
    subprocess.run([sys.executable, "-m", "benchmarks.nn_engine"] + out + quick, check=True)
    print("[6/8] empirical NTK of the digits MLP: chunked vs unchunked, time and peak memory")
    ntk_kernel.main(out + (["--n", "200", "--n-full", "64"] if args.quick else []))
    print("[7/8] ResNet-18 on one accelerator: float32 and bf16 images/s, MUSO vs retrain (tiny on a CPU)")
    gpu_json = args.out / "gpu.json"
    subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--out", str(gpu_json)] + (["--tiny"] if args.quick else []),
                   check=True)
    print("[8/8] shadow networks for the privacy audit: vmap of B models vs a loop of the same models")
    shadows_args = ["--models", "4", "--epochs", "1", "--fmnist-size", "500"] if args.quick else []
    subprocess.run([sys.executable, "-m", "benchmarks.shadows"] + out + shadows_args, check=True)
    shadow_rows = json.loads((args.out / "shadows.json").read_text())["rows"]
    gpu = json.loads(gpu_json.read_text())
    best = lambda rows, key: max(r[key] for r in rows if key in r)
    worst = lambda rows, key: min(r[key] for r in rows if key in r)
    big = [r for r in del_rows if r["n"] >= 1000] or del_rows
    summary = dict(
        seconds=time.perf_counter() - start,
        bandwidth_gbs=hw["bandwidth"]["best_gbs"], matmul_gflops=hw["matmul"]["best_gflops"],
        primal_sgd_over_floor={r["m"]: r["jax_over_floor"] for r in sgd_rows},
        dual_sgd_over_floor={r["m"]: r["dual_over_floor"] for r in sgd_rows},
        primal_over_dual={r["m"]: r["ratio_primal_over_dual"] for r in sgd_rows},
        dual_aim_met_at_m_ge_4n=[r["dual_aim_met"] for r in sgd_rows if r["dual_aim_met"] is not None],
        deletion_cached_over_hw_floor_range_n_ge_1000=(worst(big, "cached_over_hw_floor"),
                                                       best(big, "cached_over_hw_floor")),
        deletion_scratch_over_hw_floor_range=(worst(del_rows, "scratch_over_hw_floor"),
                                              best(del_rows, "scratch_over_hw_floor")),
        deletion_fit_over_hw_floor_range=(worst(del_rows, "fit_over_hw_floor"), best(del_rows, "fit_over_hw_floor")),
        per_sample_sgd_best_ratio=best(sgd_rows, "ratio_numpy_over_jax"),
        per_sample_sgd_ratio_at_widest=sgd_rows[-1]["ratio_numpy_over_jax"],
        deletion_best_ratio_vs_sgd=best(del_rows, "ratio_sgd_over_cached"),
        deletion_ratio_vs_sgd_at_condition_800=best(del2_rows, "ratio_sgd_over_cached"),
        deletion_best_ratio_vs_scratch=best(del_rows, "ratio_scratch_over_cached"),
        deletion_worst_cached_over_floor=best(del_rows, "ratio_cached_over_floor"),
        vmap_ratios={r["case"]: r["ratio_loop_over_vmap"] for r in vmap_rows},
        vmap_over_floor={r["case"]: r["vmap_over_floor"] for r in vmap_rows},
        float32_gaps={k: prec_rows[1][f"{k}_gap"] for k in ("oracle", "deletion", "sgd")},
        gpu_tiny=gpu["tiny"], gpu_images_per_second_float32=gpu["precisions"][0]["steady_images_per_second"],
        gpu_muso_over_retrain=gpu["muso_vs_retrain"]["ratio_muso_over_retrain"],
        shadow_vmap_ratios={r["case"]: r["ratio_loop_over_vmap"] for r in shadow_rows},
    )
    c.save(args.out, "summary", summary)
    print(f"summary ({summary['seconds']:.0f} s): " + ", ".join(
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items() if k != "seconds"))
    return summary


if __name__ == "__main__":
    main()
