"""Run one verification module from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path


def run_one(main) -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", choices=["quick", "default", "full"], default="default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("results/verify"))
    args = ap.parse_args()
    r = main(jax.random.key(args.seed), args.out, size=args.size)
    print(f"{r.name}: {'PASS' if r.passed else 'FAIL'}: {r.summary} (files in {args.out})")
    raise SystemExit(0 if r.passed else 1)
