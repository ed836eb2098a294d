"""The network path on one accelerator: CIFAR ResNet-18 epochs in float32 and bfloat16 compute,
and MUSO's wall time against retraining on the same problem (issue 12, part 5).

Ready to run on a GPU machine (one card; sized to finish inside 8 minutes at the full size:
about ten ResNet-18 epochs over 50,000 images and three compilations), from the repository root:

    pip install -e .[cuda] && python -m benchmarks.gpu --out $OUT/gpu.json

``.[cuda]`` adds the CUDA 12 wheels pinned to this jax (jax-cuda12-plugin[with-cuda] and
jax-cuda12-pjrt 0.10.2, the CUDA libraries included); it needs Python 3.11 and a package index.
The device machine lent to this project's sessions has neither (Python 3.12, no network; its
image holds jax 0.11.2 with the CUDA 13 plugin, flax, optax and numpy, and the CUDA wheels are
far over what a call can carry), so there run it uninstalled on the image's packages, which the
JSON records (jax, flax and optax versions):

    set -o pipefail
    python3 -c "import jax, flax, optax; print(jax.__version__, flax.__version__, optax.__version__, jax.devices())"
    PYTHONUNBUFFERED=1 PYTHONPATH=. python3 -m benchmarks.gpu --out $OUT/gpu.json 2>&1 | tee $OUT/gpu.log

(give it a limit of about 560 s). Importing this script needs only jax, flax, optax
and numpy. Other sizes:

    python -m benchmarks.gpu [--n 50000] [--epochs 2] [--batch 256] [--width 64] [--lr 0.05]
                             [--out results/bench/gpu.json] [--tiny]

The problem: N synthetic CIFAR-shaped images (32x32x3 float32, 10 classes). Labels come from a
fixed key; an image is its class's colour (a per-channel mean, constant over the image, so the
random crop and flip of the CIFAR recipe keep the signal) plus unit Gaussian noise per pixel.
The recipe: SGD momentum 0.9, lr 0.05 cosine, weight decay 5e-4, on-device crop and flip.

Measured, per compute precision (bfloat16: float32 parameters, ``make_model(..., dtype=bf16)``;
``--skip-bf16`` leaves it out, as the CPU smoke test does):

- seconds and images/s of every epoch; the first epoch is compile + run, so the compile time is
  reported apart (first epoch minus the median later epoch, floored at 0, and the backend
  compile seconds JAX's monitoring events measured); images/s is the later epochs' median;
- the peak device memory (``memory_stats()['peak_bytes_in_use']``; None where the backend has
  no memory statistics, e.g. the CPU). JAX cannot reset the peak: it is the process's running
  maximum after each phase, and bfloat16 runs first so its peak is its own;
- the answer, checked before any number is reported (an AssertionError otherwise, and no
  JSON; a bfloat16 failure is recorded instead, see below): every epoch's loss is finite and
  the training accuracy beats chance (10%) clearly: at least ``MIN_ACCURACY`` = 50% at the
  full size, chance plus four standard errors on a tiny run. The accuracy checked is the
  network's on its N training rows under batch statistics (training-mode BatchNorm, batches of
  the training batch size), the network the optimizer trained; the evaluation-mode accuracy
  (BatchNorm's running averages, ``predict``) is reported beside it. They differ after short
  runs: flax's BatchNorm keeps running averages with momentum 0.99, so after a few hundred
  steps they still carry the initial statistics and the drift of the weights (measured on the
  CPU, width 4, 200 steps of batch 64: 99% under batch statistics, 33% in evaluation mode, the
  same on augmented images).

Then, in float32: MUSO (``muso.unlearn``, the default MusoConfig: Adam lr 3e-5, 2 epochs, batch
128) on 10% random forgetting, against retraining from p_0 on the retained 90% with the recipe
above (``train(..., retain=~forget)``). Both timings are warm: retraining reuses the program the
original training compiled, and MUSO runs once for one epoch first (compiling its programs;
that cold call is reported too). The ratio MUSO / retrain is the number to read.

A bfloat16 run that fails (an error, or its check) is recorded in the JSON with its message and
the float32 and MUSO numbers are still written; the exit status is then 1.

``--tiny`` (and automatically on a CPU unless ``--n`` is given): N = 128, width 4, 6 epochs of
batch 8 at lr 0.02, for the CPU smoke test (tests/test_benchmark_gpu.py); every flag given
overrides it. Its timings mean nothing; it checks that the script and its checks run.
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import _common as c
from muso_jax.compilation import CompileCounter
from muso_jax.io import reports
from muso_jax.nn import muso
from muso_jax.nn.models import make_model
from muso_jax.nn.state import forward, predict, split
from muso_jax.nn.train import TrainConfig, train

NUM_CLASSES = 10
IMAGE = (32, 32, 3)
MIN_ACCURACY = 0.5  # at the full size; chance is 0.1
FORGET_SHARE = 0.1
FULL = dict(n=50_000, width=64, epochs=2, batch=256, lr=0.05)
TINY = dict(n=128, width=4, epochs=6, batch=8, lr=0.02)  # ~100 small steps: enough to learn the colours
SEED = 0
SIGNAL = 1.0  # scale of the class colours
NOISE = 1.0  # standard deviation of the pixel noise


def problem(n: int, seed: int = SEED):
    """``(x, y)``: n float32 CIFAR-shaped images and int32 labels, made on the device.

    Class k's images are ``colour_k + noise``: ``colour_k`` a (3,) Gaussian draw broadcast over
    the 32x32 pixels, noise N(0, 1) per pixel. Averaged over the 1,024 pixels the colour stands
    out (noise 1/32 per channel), so a network that learns anything beats chance clearly.
    """
    k_colour, k_label, k_noise = jax.random.split(jax.random.key(seed), 3)

    @jax.jit
    def make():
        colours = SIGNAL * jax.random.normal(k_colour, (NUM_CLASSES, 1, 1, IMAGE[-1]), jnp.float32)
        y = jax.random.randint(k_label, (n,), 0, NUM_CLASSES, jnp.int32)
        return colours[y] + NOISE * jax.random.normal(k_noise, (n, *IMAGE), jnp.float32), y

    return make()


def memory():
    """``(peak_bytes_in_use, bytes_in_use)`` of device 0, or ``(None, None)`` without statistics."""
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 - a backend without memory statistics
        stats = None
    stats = stats or {}
    return stats.get("peak_bytes_in_use"), stats.get("bytes_in_use")


def accuracy_eval_mode(net, x, y) -> float:
    """Accuracy with BatchNorm's running averages (``predict``, evaluation mode)."""
    return float(jnp.mean((jnp.argmax(predict(net, x), axis=1).astype(y.dtype) == y).astype(jnp.float32)))


@functools.lru_cache(maxsize=4)
def _batch_stats_logits(graphdef):
    return jax.jit(lambda p, r, xb, mask: forward(graphdef, p, r, xb, train=True, mask=mask)[0])


def accuracy_batch_stats(net, x, y, batch_size: int) -> float:
    """Accuracy under batch statistics (training-mode BatchNorm, updates discarded), over
    consecutive batches of ``batch_size`` rows, the short last one padded and masked out of the
    statistics (one compiled shape)."""
    fn = _batch_stats_logits(net.graphdef)
    n, correct = x.shape[0], 0
    for i in range(0, n, batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        k = xb.shape[0]
        mask = jnp.arange(batch_size) < k
        xb = jnp.concatenate([xb, jnp.zeros((batch_size - k, *xb.shape[1:]), xb.dtype)])
        pred = jnp.argmax(fn(net.params, net.rest, xb, mask), axis=1)[:k].astype(yb.dtype)
        correct += int(jnp.sum(pred == yb))
    return correct / n


def accuracies(net, x, y, batch_size: int) -> dict:
    return dict(batch_stats=accuracy_batch_stats(net, x, y, batch_size), eval_mode=accuracy_eval_mode(net, x, y))


def min_accuracy(n: int, tiny: bool) -> float:
    """The accuracy that beats chance clearly: ``MIN_ACCURACY`` at the full size; on a tiny run,
    chance plus four standard errors of a chance-level classifier on n rows (a few dozen steps
    cannot be asked for more, see ``TINY``)."""
    chance = 1.0 / NUM_CLASSES
    return chance + 4.0 * float(np.sqrt(chance * (1.0 - chance) / n)) if tiny else MIN_ACCURACY


def _check(what: str, acc: float, losses, threshold: float) -> None:
    if not np.all(np.isfinite(losses)):
        raise AssertionError(f"{what}: a loss is not finite: {list(losses)}")
    if not acc >= threshold:
        raise AssertionError(f"{what}: training accuracy {acc:.3f} does not beat chance ({1 / NUM_CLASSES:.2f}) "
                             f"clearly (expected at least {threshold:.3f})")


def timed_train(key, net0, x, y, cfg: TrainConfig, *, retain=None):
    """``(net, epochs, compiles, seconds)``: ``train`` with the wall time of every epoch (the
    callback runs after the epoch's loss reached the host, so the epoch has finished)."""
    marks, losses = [], []

    def on_epoch(epoch, net, opt_state, loss):
        marks.append(time.perf_counter())
        losses.append(loss)

    with CompileCounter() as counter:
        start = time.perf_counter()
        net = train(key, net0, x, y, cfg, retain=retain, on_epoch=on_epoch)
        jax.block_until_ready(net.params)
        seconds = time.perf_counter() - start
    edges = [start] + marks
    epochs = [dict(epoch=e, seconds=b - a, loss=l) for e, (a, b, l) in enumerate(zip(edges[:-1], edges[1:], losses))]
    return net, epochs, counter.result(), seconds


def precision_case(name: str, dtype, x, y, width: int, cfg: TrainConfig, threshold: float) -> dict:
    """Train ResNet-18 from p_0 in one compute precision; the row of the table."""
    kwargs = dict(width=width)
    if dtype is not None:
        kwargs["dtype"] = dtype
    net0 = split(make_model("resnet18", IMAGE, NUM_CLASSES, seed=SEED, **kwargs))
    net, epochs, compiles, seconds = timed_train(jax.random.key(SEED + 1), net0, x, y, cfg)
    n = x.shape[0]
    for e in epochs:
        e["images_per_second"] = n / e["seconds"]
    acc = accuracies(net, x, y, cfg.batch_size)
    losses = [e["loss"] for e in epochs]
    _check(f"ResNet-18 {name}", acc["batch_stats"], losses, threshold)
    later = [e["seconds"] for e in epochs[1:]]
    steady = float(np.median(later)) if later else None
    peak, in_use = memory()
    row = dict(
        precision=name, available=True, epochs=epochs, train_seconds=seconds,
        first_epoch_seconds=epochs[0]["seconds"],
        steady_epoch_seconds=steady,
        # Only one epoch: no steady state; the first epoch's rate (compile included) is a lower bound.
        steady_images_per_second=n / steady if steady else n / epochs[0]["seconds"],
        compile_seconds=max(0.0, epochs[0]["seconds"] - steady) if steady else None,
        backend_compile_seconds=compiles.seconds, programs_compiled=compiles.programs,
        train_accuracy=acc["batch_stats"], train_accuracy_eval_mode=acc["eval_mode"],
        accuracy_check_passed=True, losses_finite=True,
        peak_bytes_in_use=peak, bytes_in_use=in_use,
    )
    row["_net"] = (net0, net)
    return row


def muso_vs_retrain(net0, net_p, x, y, cfg: TrainConfig, tiny: bool) -> dict:
    """MUSO (default MusoConfig) against retraining on D_r, 10% random forgetting, both warm."""
    n = x.shape[0]
    k_forget, k_muso, k_retrain = jax.random.split(jax.random.key(SEED + 2), 3)
    forget = np.zeros(n, bool)
    forget[np.asarray(jax.random.permutation(k_forget, n))[:max(1, int(round(FORGET_SHARE * n)))]] = True
    mcfg = muso.MusoConfig()
    retain = ~forget
    x_r, y_r = x[retain], y[retain]
    threshold = min_accuracy(len(y_r), tiny)  # both are checked on D_r

    start = time.perf_counter()
    _, cold = muso.unlearn(k_muso, net0, net_p, x, y, forget, mcfg._replace(epochs=1))  # compiles MUSO's programs
    cold_wall = time.perf_counter() - start
    with CompileCounter() as muso_compiles:
        net_u, info = muso.unlearn(k_muso, net0, net_p, x, y, forget, mcfg)
    acc_u = accuracies(net_u, x_r, y_r, cfg.batch_size)
    _check("MUSO", acc_u["batch_stats"], info.losses, threshold)

    net_r, epochs, retrain_compiles, retrain_seconds = timed_train(k_retrain, net0, x, y, cfg, retain=retain)
    acc_r = accuracies(net_r, x_r, y_r, cfg.batch_size)
    _check("Retrain", acc_r["batch_stats"], [e["loss"] for e in epochs], threshold)
    peak, in_use = memory()
    return dict(
        forget_rows=int(forget.sum()), retain_rows=int(retain.sum()), muso_config=mcfg._asdict(),
        retrain_config=cfg._asdict(),
        muso_seconds=info.seconds, muso_programs_compiled=muso_compiles.result().programs,
        muso_cold_one_epoch_seconds=cold.seconds, muso_cold_one_epoch_wall_seconds=cold_wall,
        muso_losses=list(info.losses), muso_changed_at_start=info.changed_at_start,
        muso_changed_at_end=info.changed_at_end, muso_retain_accuracy=acc_u["batch_stats"],
        muso_retain_accuracy_eval_mode=acc_u["eval_mode"],
        retrain_seconds=retrain_seconds, retrain_programs_compiled=retrain_compiles.programs,
        retrain_epochs=epochs, retrain_retain_accuracy=acc_r["batch_stats"],
        retrain_retain_accuracy_eval_mode=acc_r["eval_mode"],
        ratio_muso_over_retrain=info.seconds / retrain_seconds,
        min_accuracy=threshold, accuracy_check_passed=True, losses_finite=True,
        peak_bytes_in_use=peak, bytes_in_use=in_use,
    )


def _gb(b):
    return "n/a" if b is None else f"{b / 2**30:.2f}"


def table(payload) -> str:
    head = (f"{'precision':<10} {'compile s':>9} {'epoch s':>8} {'images/s':>10} {'peak GiB':>8} "
            f"{'train acc':>9} {'(eval mode)':>11}")
    lines = [head, "-" * len(head)]
    for r in payload["precisions"]:
        if not r["available"] or "error" in r:
            lines.append(f"{r['precision']:<10} {r.get('reason') or 'FAILED: ' + r['error']}")
            continue
        compile_s = "n/a" if r["compile_seconds"] is None else f"{r['compile_seconds']:.1f}"
        epoch_s = r["steady_epoch_seconds"] or r["first_epoch_seconds"]
        lines.append(f"{r['precision']:<10} {compile_s:>9} {epoch_s:>8.2f} {r['steady_images_per_second']:>10.0f} "
                     f"{_gb(r['peak_bytes_in_use']):>8} {r['train_accuracy']:>9.3f} "
                     f"{r['train_accuracy_eval_mode']:>11.3f}")
    m = payload["muso_vs_retrain"]
    lines.append(f"MUSO {m['muso_seconds']:.2f} s (cold, 1 epoch with compile: "
                 f"{m['muso_cold_one_epoch_seconds']:.2f} s) "
                 f"vs retrain {m['retrain_seconds']:.2f} s on {m['retain_rows']} rows: "
                 f"MUSO / retrain = {m['ratio_muso_over_retrain']:.2f}")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=None, help=f"images (default {FULL['n']}; {TINY['n']} tiny)")
    ap.add_argument("--epochs", type=int, default=None, help=f"training epochs (default {FULL['epochs']})")
    ap.add_argument("--batch", type=int, default=None,
                    help=f"batch size (default {FULL['batch']}; {TINY['batch']} tiny)")
    ap.add_argument("--width", type=int, default=None,
                    help=f"ResNet-18 width (default {FULL['width']}; {TINY['width']} tiny)")
    ap.add_argument("--lr", type=float, default=None, help=f"SGD learning rate (default {FULL['lr']}; {TINY['lr']} tiny)")
    ap.add_argument("--out", type=Path, default=Path("results/bench/gpu.json"))
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (automatic on a CPU unless --n is given)")
    ap.add_argument("--skip-bf16", action="store_true",
                    help="float32 only (the CPU smoke test: bfloat16 compiles slowly and runs emulated there)")
    args = ap.parse_args(argv)
    dev = jax.devices()[0]
    tiny = args.tiny or (dev.platform == "cpu" and args.n is None)
    for field, value in (TINY if tiny else FULL).items():
        if getattr(args, field) is None:
            setattr(args, field, value)
    threshold = min_accuracy(args.n, tiny)
    wall = time.perf_counter()
    print(f"device: {c.device()}; ResNet-18 width {args.width}, N = {args.n}, {args.epochs} epochs of batch "
          f"{args.batch}{' (tiny)' if tiny else ''}", flush=True)
    x, y = jax.block_until_ready(problem(args.n))
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch, lr=args.lr, optimizer="sgd", momentum=0.9,
                      weight_decay=5e-4, schedule="cosine", augment=True)
    rows, failures = {}, []
    for name, dtype in (("bfloat16", jnp.bfloat16), ("float32", None)):  # bf16 first: its memory peak is its own
        if name == "bfloat16" and args.skip_bf16:
            rows[name] = dict(precision=name, available=False, reason="skipped (--skip-bf16)")
            continue
        try:
            rows[name] = precision_case(name, dtype, x, y, args.width, cfg, threshold)
        except Exception as err:  # noqa: BLE001 - keep the float32 and MUSO numbers of a device run
            if name == "float32":
                raise
            failures.append(f"{name}: {type(err).__name__}: {err}")
            rows[name] = dict(precision=name, available=True, accuracy_check_passed=False, error=failures[-1])
        print(f"  {name}: done ({time.perf_counter() - wall:.0f} s)", flush=True)
    net0, net_p = rows["float32"].pop("_net")
    rows["bfloat16"].pop("_net", None)
    comparison = muso_vs_retrain(net0, net_p, x, y, cfg, tiny)
    print(f"  MUSO and retraining: done ({time.perf_counter() - wall:.0f} s)", flush=True)
    f32, bf16 = rows["float32"], rows["bfloat16"]
    payload = dict(
        benchmark="gpu", tiny=tiny, platform=dev.platform, device_kind=dev.device_kind,
        platform_version=getattr(dev.client, "platform_version", None), devices=len(jax.devices()),
        jax_version=jax.__version__, flax_version=flax.__version__, optax_version=optax.__version__,
        model="resnet18", width=args.width, n=args.n, image_shape=list(IMAGE),
        num_classes=NUM_CLASSES, train_config=cfg._asdict(), min_accuracy=threshold,
        phase_order=["bfloat16", "float32", "muso_vs_retrain"],
        precisions=[f32, bf16],
        speedup_bfloat16_over_float32=(bf16["steady_images_per_second"] / f32["steady_images_per_second"]
                                       if "steady_images_per_second" in bf16 else None),
        muso_vs_retrain=comparison,
        accuracy_check_passed=not failures, failures=failures,
        device=c.device(), date=time.strftime("%Y-%m-%d"),
    )
    payload["seconds"] = time.perf_counter() - wall
    print(table(payload))
    print(f"total {payload['seconds']:.0f} s; wrote {reports.write_json(args.out, payload)}")
    if failures:
        print("FAILED: " + "; ".join(failures))
        raise SystemExit(1)
    return payload


if __name__ == "__main__":
    main()
