"""muso-ntk at Fashion-MNIST scale: quality (Avg. Gap to Retrain) against cost for each way
around the full N_r x N_r kernel (muso_jax.nn.ntk_solvers), on one seed.

    .venv/bin/python -m benchmarks.ntk_scale [--train-size 10000] [--scenarios random:10 class:6]
        [--nystrom 32 128] [--cg 5 20] [--out results/ntk_scale]

Original and Retrain come from the network cache (`--cache`, the one `muso compare` uses, so
a compare run of the same recipe shares them). Every variant fine-tunes the same Original for
`--unlearn-epochs` epochs (Adam, muso-ntk's defaults otherwise) after its relabel; its cost is
reported as wall seconds, the part spent compiling, the relabel alone, and the percentage of
retraining's time (compile excluded). Head-only MUSO and the Original are the reference lines.
Metrics are on the test half of the held-out images (experiment.validation_split), as in
`muso compare --tune`.
The exact kernel is out of reach at this size (N_r^2 = 8.1e7 entries of ~4e5 products each);
tests/test_ntk_solvers.py shows each approximation converging to it on small problems.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

from benchmarks import _common as c


def variants(args):
    """(label, solver, fields) of every muso-ntk variant measured."""
    out = [("last-layers head", "last-layers", dict(layers=("head",)))]
    out += [(f"nystrom m={m}", "nystrom", dict(budget=m)) for m in args.nystrom]
    out += [(f"cg {i} it", "cg", dict(budget=i, kernel=args.cg_kernel)) for i in args.cg]
    return out


def main(argv=None):
    from muso_jax import compilation, metrics
    from muso_jax.cli import _scenarios
    from muso_jax.io import figures, files, reports
    from muso_jax.io.cache import NetworkCache
    from muso_jax.nn import experiment, muso, muso_ntk
    from muso_jax.nn.train import TrainConfig

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--path", default=None)
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--train-size", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=10, help="epochs of Original and Retrain")
    ap.add_argument("--unlearn-epochs", type=int, default=1)
    ap.add_argument("--scenarios", nargs="+", default=["random:10", "class:6"])
    ap.add_argument("--nystrom", type=int, nargs="*", default=[32, 128])
    ap.add_argument("--cg", type=int, nargs="*", default=[5, 20])
    ap.add_argument("--cg-kernel", default="full", choices=["logit", "mean", "full"],
                    help="CG's kernel (default full: one system, 2 passes over D_r per iteration; logit: K systems)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path("results/cache"))
    ap.add_argument("--out", type=Path, default=Path("results/ntk_scale"))
    args = ap.parse_args(argv)
    args.scenario, args.forget, args.cls = "random", 10.0, 3  # what _scenarios falls back to
    scenarios = _scenarios(args)
    for flag, values in (("--nystrom", args.nystrom), ("--cg", args.cg)):
        if any(v < 1 for v in values):
            ap.error(f"argument {flag}: expected budgets >= 1; got {values}")
    files.check_writable(args.out, name="out", folder=True)  # before any training
    cache = NetworkCache(args.cache)
    print(f"device: {c.device()}", file=sys.stderr)
    results = []
    for name, percent, cls in scenarios:
        label = f"random {percent:g}%" if name == "random" else f"{name} {cls}"
        setup = experiment.Setup(data=args.data, path=args.path, model=args.model, scenario=name, forget=percent,
                                 cls=cls, seed=args.seed, train=TrainConfig(epochs=args.epochs),
                                 train_size=args.train_size)
        # the test half of muso compare --tune: the numbers compare with its table
        trial = experiment.prepare(setup, cache=cache, validation=True)
        reference = experiment.measure(trial, trial.net_r)
        key = jax.random.key(args.seed)
        unlearn_args = (trial.net0, trial.net_p, trial.x_train, trial.y_train, trial.forget)

        def row(method, net, seconds, compile_s, relabel_s=np.nan, cost=None):
            m = experiment.measure(trial, net)
            gap = metrics.avg_gap(m, reference, experiment.GAP_KEYS)
            out = dict(scenario=label, method=method, avg_gap=gap, UA=m["UA"], RA=m["RA"], TA=m["TA"],
                       MIA_efficacy=m["MIA_efficacy"], seconds=seconds, compile_s=compile_s, relabel_s=relabel_s,
                       RTE_pct=100.0 * (seconds - compile_s) / trial.retrain_seconds)
            if cost is not None:
                out.update(kernel_entries=cost.kernel_entries, passes=cost.passes, iterations=cost.iterations,
                           residual=cost.residual)
            print(f"{label:12} {method:24} Avg. Gap {gap:6.2f}  RTE {out['RTE_pct']:7.1f}% of retraining "
                  f"({seconds:6.1f} s, {compile_s:4.1f} s compiling)", flush=True)
            return out

        rows = [row("Original", trial.net_p, 0.0, 0.0)]
        muso_cfg = (muso.MusoConfig() if name == "random" else muso.CLASS_DEFAULTS)._replace(epochs=args.unlearn_epochs)
        with compilation.CompileCounter() as counter:
            net, info = muso.unlearn(jax.random.fold_in(key, 7), *unlearn_args, muso_cfg)
        rows.append(row("MUSO (head-only)", net, info.seconds, counter.result().seconds))
        for method, solver, fields in variants(args):
            cfg = muso_ntk.NtkConfig(epochs=args.unlearn_epochs, solver=solver, **fields)
            with compilation.CompileCounter() as counter:
                start = time.perf_counter()
                net, info = muso_ntk.unlearn(jax.random.fold_in(key, 100), *unlearn_args, cfg)
                wall = time.perf_counter() - start
            rows.append(row(method, net, wall, counter.result().seconds, info.relabel_seconds, info.cost))
        results.append(dict(scenario=label, retrain_seconds=trial.retrain_seconds, n_retain=int((~trial.forget).sum()),
                            n_forget=int(trial.forget.sum()), rows=rows))

    meta = dict(device=c.device(), args={k: str(v) for k, v in vars(args).items()}, description=trial.description)
    reports.write_json(args.out / "ntk_scale.json", dict(meta, scenarios=results))
    keys = ["scenario", "method", "avg_gap", "UA", "RA", "TA", "MIA_efficacy", "seconds", "compile_s", "relabel_s",
            "RTE_pct", "kernel_entries", "passes", "iterations", "residual"]
    reports.write_csv(args.out / "ntk_scale.csv", keys, [[r.get(k, "") for k in keys] for s in results for r in s["rows"]])
    figures.save_figure(_figure(results, args), args.out / "ntk_scale.png")
    print(f"wrote {args.out / 'ntk_scale.json'}, ntk_scale.csv and ntk_scale.png")


def _figure(results, args):
    from matplotlib.ticker import NullFormatter

    from muso_jax.io import figures

    fig, axes = figures.pyplot().subplots(1, len(results), figsize=(6.2 * len(results), 4.6), squeeze=False)
    for ax, res in zip(axes[0], results):
        rows = {r["method"]: r for r in res["rows"]}
        for family, marker in (("last-layers", "s"), ("nystrom", "o"), ("cg", "^")):
            pts = [r for m, r in rows.items() if m.startswith(family)]
            if not pts:
                continue
            xs, ys = [max(r["RTE_pct"], 1e-2) for r in pts], [r["avg_gap"] for r in pts]
            ax.plot(xs, ys, marker=marker, label=family)
            for r, x, y in zip(pts, xs, ys):
                ax.annotate(r["method"].replace(family, "").strip(), (x, y), textcoords="offset points",
                            xytext=(4, 4), fontsize=7)
        for name, style in (("Original", ":"), ("MUSO (head-only)", "--")):
            ax.axhline(rows[name]["avg_gap"], color="gray", linestyle=style, linewidth=1, label=name)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set(xlabel="RTE (% of retraining's time, compile excluded; log)", ylabel="Avg. Gap to Retrain",
               title=f"{res['scenario']} (N_r = {res['n_retain']})")
        ax.legend(fontsize=8)
    fig.suptitle(f"muso-ntk at scale: {args.data} ({args.train_size} training images), {args.model}, seed {args.seed}, "
                 f"{args.unlearn_epochs} fine-tuning epoch(s)", fontsize=10)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
