r"""The MUSO authors' linear experiment (Yang et al., arXiv 2410.08557, linear section).

Two-class images with +-1 labels, random Fourier features (D = 2500, sigma = 20, M = 2D), the
first N_r = 300 training points retained and all others forgotten, and for each repetition:

* theta_0 = (ridge solution on D_r) + N(0, I);
* Original: per-sample SGD on D from theta_0; Retrain: the same on D_r (the gold standard);
* MUSO: relabel D_f with Phi_f theta_r and fine-tune from theta_p on D_r + relabeled D_f;
* Am: random +-1 labels for D_f; BT: labels Phi_f w_bd with w_bd ~ N(0, I). Both stop early
  once their forget accuracy is within 3 percent points of Retrain's (the authors' rule).

Reported: test accuracy TA and forget accuracy FA (sign of f, in percent) and
Delta = ||theta_r - theta||^2 / M against the closed-form retrain oracle theta_r (the Retrain
row therefore shows how far SGD retraining itself stops from the exact solution).
Repetitions redraw the features, theta_0 noise and sample orders and run vmapped: one
compiled program per stage, or the whole experiment as one (``one_call=True``).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from muso_jax import _checks
from muso_jax.closed_form import min_norm_solution
from muso_jax.dynamics import sgd, uses_dual
from muso_jax.features import featurize, random_fourier
from muso_jax.unlearn import unlearn_linear

# Row order of the results table and the authors' names for the methods.
ROWS = ("retrain", "original", "muso", "random_labels", "bad_teacher")
NAMES = {"retrain": "Retrain", "original": "Original", "muso": "MUSO", "random_labels": "Am", "bad_teacher": "BT"}


class Config(NamedTuple):
    num_frequencies: int = 2500  # D; M = 2D features
    sigma: float = 20.0  # RFF bandwidth, for raw 0-255 pixels
    n_retain: int = 300  # the first n_retain training rows are kept, the rest forgotten
    reps: int = 5
    lr: float = 1.0  # per-sample step (the authors' factor-2 gradient: their 0.5)
    decay: float = 0.2  # step lr * (t + 1)^-decay, t restarting every epoch (the authors')
    tol: float = 1e-6  # stop at ||Phi theta - y|| <= tol (the authors')
    max_epochs: int = 1500  # (the authors')
    checks_per_epoch: int = 1  # residual / early-stop checks per epoch
    init_ridge: float = 1e-3  # ridge of the theta_0 base solution on D_r
    ridge: float = 1e-8  # epsilon of the MUSO relabel solve (the authors')
    stop_window: float = 3.0  # Am / BT stop once |FA - FA_retrain| <= this, in percent points (the authors' 0.03)
    seed: int = 0


class MethodResult(NamedTuple):
    """One method over the repetitions: arrays with a leading (reps,) axis."""

    ta: np.ndarray
    fa: np.ndarray
    delta: np.ndarray
    epochs: np.ndarray
    converged: np.ndarray
    stopped: np.ndarray
    delta_trace: np.ndarray  # (reps, checks + 1), NaN after the run stopped
    residual_trace: np.ndarray


def sign_accuracy(phi, theta, y):
    r"""Percent of rows where sign(phi theta) equals the +-1 label (percent, as every accuracy
    of the package: docs/api.md).

    .. math::
        100 \cdot \frac{1}{N} \sum_i [\operatorname{sign}(\phi_i^\top \theta) = y_i]

    Parameters
    ----------
    phi : (N, M) array
        Features.
    theta : (M,) array
        Parameters.
    y : (N,) array
        Labels in {+1, -1}.

    Returns
    -------
    jax.Array
        A scalar in [0, 100] (jit-friendly: not a Python float).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from muso_jax.experiments import linear
    >>> acc = linear.sign_accuracy(jnp.eye(3), jnp.array([1.0, -1.0, 2.0]), jnp.array([1.0, 1.0, 1.0]))
    >>> round(float(acc), 3)  # rows 0 and 2 right
    66.667
    """
    hits = jnp.sign(phi @ theta) == y
    return 100.0 * jnp.mean(hits.astype(jnp.result_type(phi, theta)))  # the features' precision, not float32


def _within_window(fa, fa_retrain, window):
    """The authors' early stop of Am and BT: ``|FA - FA_retrain| <= window`` percent points.

    Accuracies are multiples of 100 / N_f, so a gap of exactly the window is common, and the
    subtraction's round-off would decide it (52.2 - 49.2 > 3.0 in float64): the slack of 1e-9
    points, far below 100 / N_f, makes the rule the inclusive one the authors state.
    """
    return jnp.abs(fa - fa_retrain) <= window + 1e-9


def validate(config: Config, n_train: int) -> None:
    """Refuse a :class:`Config` that cannot run on ``n_train`` training rows, naming the field.

    Parameters
    ----------
    config : Config
        The experiment's settings.
    n_train : int
        The number of training rows.

    Raises
    ------
    ValueError
        If ``num_frequencies`` or ``reps`` is not an integer >= 1, ``n_retain`` not in
        [1, n_train), ``sigma``, ``lr``, ``tol`` or ``stop_window`` not positive, or
        ``decay``, ``init_ridge`` or ``ridge`` negative.

    Examples
    --------
    >>> from muso_jax.experiments import linear
    >>> linear.validate(linear.Config(), 400) is None  # the authors' settings, 400 rows
    True
    >>> linear.validate(linear.Config(), 100)
    Traceback (most recent call last):
    ...
    ValueError: argument `n_retain`: expected 1 <= n_retain < 100 (the training rows); got 300
    >>> linear.validate(linear.Config(lr=0.0), 400)
    Traceback (most recent call last):
    ...
    ValueError: argument `lr`: expected a finite number > 0; got 0.0
    """
    _checks.positive_int("num_frequencies", config.num_frequencies)
    _checks.positive("sigma", config.sigma)
    _checks.positive_int("reps", config.reps)
    if not 0 < config.n_retain < n_train:
        raise ValueError(f"argument `n_retain`: expected 1 <= n_retain < {n_train} (the training rows); "
                         f"got {config.n_retain}")
    for name in ("lr", "tol", "stop_window"):
        _checks.positive(name, getattr(config, name))
    for name in ("decay", "init_ridge", "ridge"):
        _checks.nonnegative(name, getattr(config, name))


def run(config: Config, x_train, y_train, x_test, y_test,
        on_stage: Optional[Callable[[str], None]] = None, *, one_call: bool = False,
        keys=None) -> dict[str, MethodResult]:
    r"""Run every method of :data:`ROWS` for ``config.reps`` repetitions; results by method.

    Each stage is one vmapped program over the repetitions; ``on_stage(name)`` is called after
    each of the len(ROWS) + 1 stages finishes. With ``one_call=True`` every stage of every
    repetition runs as ONE compiled program (no progress in between; ``on_stage("all")`` at
    the end). ``keys``: PRNG keys, one per repetition, instead of ``config.seed`` and
    ``config.reps``.

    .. math::
        \Delta = \frac{\|\theta - \theta_r\|^2}{M}, \qquad
        \mathrm{TA}, \mathrm{FA} = 100 \cdot \mathrm{mean}[\operatorname{sign}(\Phi\theta) = y]

    against the closed-form retrain oracle :math:`\theta_r` (MUSO, arXiv 2410.08557, linear
    section).

    Parameters
    ----------
    config : Config
        The experiment's settings (checked by :func:`validate`).
    x_train : (N, d) array_like
        Training inputs; the first ``config.n_retain`` rows are D_r, the rest D_f.
    y_train : (N,) array_like
        Their +-1 labels.
    x_test : (N_t, d) array_like
        Test inputs.
    y_test : (N_t,) array_like
        Their +-1 labels.
    on_stage : callable, optional
        Called with each stage's name once it finished.
    one_call : bool, optional
        Run everything as one compiled program.
    keys : (reps,) PRNG keys, optional
        Instead of ``config.seed`` and ``config.reps``.

    Returns
    -------
    dict of str to MethodResult
        One entry per method of :data:`ROWS`; each field has a leading (reps,) axis.

    Raises
    ------
    ValueError
        As :func:`validate`.

    Examples
    --------
    A tiny version (M = 60 features, 10 training rows, the last 4 forgotten, one repetition):

    >>> import jax, jax.numpy as jnp
    >>> from muso_jax.experiments import linear
    >>> x = jax.random.normal(jax.random.key(0), (14, 3))
    >>> y = jnp.sign(x @ jnp.array([1.0, -1.0, 0.5]))
    >>> cfg = linear.Config(num_frequencies=30, sigma=1.0, n_retain=6, reps=1)
    >>> stages = []
    >>> res = linear.run(cfg, x[:10], y[:10], x[10:], y[10:], on_stage=stages.append, one_call=True)
    >>> stages, sorted(res) == sorted(linear.ROWS), res["muso"].delta.shape
    (['all'], True, (1,))
    >>> bool(res["muso"].delta[0] < 1e-5), bool(res["bad_teacher"].delta[0] > 1e-2)  # exact vs not
    (True, True)
    """
    x_train, x_test = np.asarray(x_train, np.float64), np.asarray(x_test, np.float64)
    y_train, y_test = jnp.asarray(y_train, jnp.float64), jnp.asarray(y_test, jnp.float64)
    validate(config, len(y_train))
    cfg = config
    n_r = cfg.n_retain
    m = 2 * cfg.num_frequencies
    fmap = random_fourier(cfg.num_frequencies, cfg.sigma)
    forget = np.arange(len(y_train)) >= n_r
    y_r, y_f = y_train[:n_r], y_train[n_r:]
    if keys is None:
        keys = jax.random.split(jax.random.key(cfg.seed), cfg.reps)
    stage = on_stage or (lambda name: None)
    sgd_kw = dict(lr=cfg.lr, decay=cfg.decay, tol=cfg.tol, max_epochs=cfg.max_epochs,
                  checks_per_epoch=cfg.checks_per_epoch, trace=True)

    @jax.vmap
    def prepare(key):
        k_feat, k_noise = jax.random.split(key)
        params = fmap.init(k_feat, x_train.shape[1])
        phi, phi_test = featurize(fmap, params, x_train), featurize(fmap, params, x_test)
        base = min_norm_solution(phi[:n_r], y_r, jnp.zeros(m), ridge=cfg.init_ridge)
        theta0 = base + jax.random.normal(k_noise, (m,))
        theta_r = min_norm_solution(phi[:n_r], y_r, theta0)  # the exact retrain oracle
        # One Gram per repetition for every SGD run below (dual form, M > 2N), not one per run.
        gram = phi @ phi.T if uses_dual(*phi.shape) else None
        return phi, phi_test, theta0, theta_r, gram

    def delta(theta, theta_r):
        return jnp.sum((theta - theta_r) ** 2) / m

    def summarize(theta, info, phi, phi_test, theta_r):
        return dict(ta=sign_accuracy(phi_test, theta, y_test), fa=sign_accuracy(phi[n_r:], theta, y_f),
                    delta=delta(theta, theta_r), epochs=info.epochs, converged=info.converged,
                    stopped=info.stopped, delta_trace=info.monitor_trace, residual_trace=info.residual_trace)

    @jax.vmap
    def train(key, phi, phi_test, theta0, theta_r, gram, retain_only):
        retain = jnp.where(retain_only, ~forget, True)
        theta, info = sgd(jax.random.fold_in(key, 1), phi, y_train, theta0, retain=retain,
                          monitor=lambda t: delta(t, theta_r), gram=gram, **sgd_kw)
        return theta, summarize(theta, info, phi, phi_test, theta_r)

    def unlearn(method):
        @jax.vmap
        def go(key, phi, phi_test, theta0, theta_p, theta_r, gram, fa_retrain):
            stop = None
            if method != "muso":  # the authors' early stop for the relabeling baselines
                stop = lambda t: _within_window(sign_accuracy(phi[n_r:], t, y_f), fa_retrain, cfg.stop_window)
            theta, cert = unlearn_linear(
                jax.random.fold_in(key, 2), phi, y_train, theta0, theta_p, forget, method=method,
                ridge=cfg.ridge, stop=stop, monitor=lambda t: delta(t, theta_r), gram=gram, **sgd_kw)
            return summarize(theta, cert.sgd, phi, phi_test, theta_r)
        return go

    def pipeline(keys, stage_call):
        phi, phi_test, theta0, theta_r, gram = stage_call("features and oracle", prepare, keys)
        reps = keys.shape[0]
        results = {}
        _, results["retrain"] = stage_call(NAMES["retrain"], train, keys, phi, phi_test, theta0, theta_r, gram,
                                           jnp.ones(reps, bool))
        theta_p, results["original"] = stage_call(NAMES["original"], train, keys, phi, phi_test, theta0, theta_r,
                                                  gram, jnp.zeros(reps, bool))
        for method in ROWS[2:]:
            results[method] = stage_call(NAMES[method], unlearn(method), keys, phi, phi_test, theta0, theta_p,
                                         theta_r, gram, results["retrain"]["fa"])
        return results

    if one_call:
        results = jax.block_until_ready(jax.jit(lambda k: pipeline(k, lambda name, fn, *a: fn(*a)))(keys))
        stage("all")
    else:
        def stage_call(name, fn, *args):
            # Blocks before the stage is announced, so progress reports real work done.
            out = jax.block_until_ready(jax.jit(fn)(*args))
            stage(name)
            return out

        results = pipeline(keys, stage_call)
    return {k: MethodResult(**jax.tree.map(np.asarray, v)) for k, v in results.items()}
