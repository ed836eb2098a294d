"""One unlearning experiment on a network: Original, Retrain (same p_0, D_r only) and MUSO on
the same split, with the protocol metrics (docs/theory.md, section 5). Pure orchestration: the caller
passes progress callbacks and, to keep trained networks on disk, a cache (``muso_jax.io.cache.
NetworkCache``); nothing here prints or writes files."""

from __future__ import annotations

import functools
import os
import time
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from muso_jax import metrics, stats
from muso_jax.data import forget_mask, load_images, training_subset
from muso_jax.nn import baselines, muso, muso_ntk
from muso_jax.nn.models import MODELS, head_matrix, make_model
from muso_jax.nn.state import predict, split
from muso_jax.nn.train import TrainConfig, steps_per_epoch, train

# Every method besides head-only MUSO, by name: the field's baselines and NTK-guided MUSO.
METHODS = {**baselines.METHODS, "muso-ntk": muso_ntk.unlearn}
DEFAULTS = {**baselines.DEFAULTS, "muso-ntk": muso_ntk.NtkConfig()}

# Compute dtypes: None computes in the parameters' dtype.
PRECISIONS = {"float32": None, "bf16": jnp.bfloat16}

# Avg. Gap over the SalUn set of metrics (UA, RA, TA, MIA-efficacy).
GAP_KEYS = ("UA", "RA", "TA", "MIA_efficacy")


class Setup(NamedTuple):
    data: str = "digits"
    path: Optional[str] = None
    model: str = "mlp"
    scenario: str = "random"
    forget: float = 10.0  # percent (random scenario)
    cls: int = 3  # class (class scenario) or fine class (subclass scenario)
    seed: int = 0
    train: TrainConfig = TrainConfig()
    dtype: str = "float32"  # parameter dtype of the networks
    precision: str = "float32"  # compute dtype: "bf16" computes in bfloat16 (parameters stay float32)
    scale: str = "auto"  # pixel scaling of user files (data.load_images)
    train_size: Optional[int] = None  # a stratified subset of the training images (data.training_subset)


# The held-out images split into validation and test halves by this fixed seed, the same for every
# experiment seed: a setting selected on the validation half is never scored on it.
VALIDATION_SEED = 20240117

# The MUSO family (the paper's method and its NTK-relabel variant) vs the field's baselines.
MUSO_FAMILY = ("MUSO", "muso-ntk")


class _Silent:
    def update(self, n=1):
        pass

    def close(self):
        pass


def _staged(progress, name, total, fn):
    """``fn(tick)`` under the bar ``progress(name, total)``, closed whatever happens."""
    bar = progress(name, total)
    try:
        return fn(bar.update)
    finally:
        bar.close()


def grid(cfg, *, epochs: bool = True):
    """The small search of ``--tune``: learning rate x {0.1, 1, 10}, and with ``epochs`` the
    epochs x {1/2, 1, 2} (without it the epochs are the fixed budget).

    Parameters
    ----------
    cfg : NamedTuple
        A method's configuration with ``lr`` and ``epochs``.
    epochs : bool
        Search the epochs too (halved epochs are at least 1; duplicates dropped).

    Returns
    -------
    list
        The candidate configurations: 9 (or 3 without ``epochs``; fewer epoch counts when
        ``cfg.epochs`` is 1).

    Examples
    --------
    >>> from muso_jax.nn.experiment import grid
    >>> from muso_jax.nn.muso import MusoConfig
    >>> candidates = grid(MusoConfig(epochs=2, lr=1e-3))
    >>> len(candidates), sorted({c.epochs for c in candidates}), sorted({round(c.lr, 6) for c in candidates})
    (9, [1, 2, 4], [0.0001, 0.001, 0.01])
    >>> len(grid(MusoConfig(epochs=2, lr=1e-3), epochs=False))
    3
    """
    counts = sorted({max(1, cfg.epochs // 2), cfg.epochs, 2 * cfg.epochs}) if epochs else [cfg.epochs]
    return [cfg._replace(lr=cfg.lr * f, epochs=e) for f in (0.1, 1.0, 10.0) for e in counts]


def _plain(record):
    """A NamedTuple (nested ones included) as a dict, for the JSON of a run."""
    if hasattr(record, "_asdict"):
        return {k: _plain(v) for k, v in record._asdict().items()}
    return record


def validation_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``(validation, test)`` of ``n`` held-out images: a fixed random half each.

    Drawn with :data:`VALIDATION_SEED`, the same for every experiment seed; ``n // 2`` rows
    validate, the rest test.

    Parameters
    ----------
    n : int
        The held-out images.

    Returns
    -------
    tuple
        ``(validation, test)``: sorted, disjoint int arrays covering ``range(n)``.

    Examples
    --------
    >>> from muso_jax.nn.experiment import validation_split
    >>> val, test = validation_split(11)
    >>> len(val), len(test), set(val) & set(test), sorted({*val, *test}) == list(range(11))
    (5, 6, set(), True)
    """
    order = np.random.default_rng(VALIDATION_SEED).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


class Trial(NamedTuple):
    """One split of one seed, ready for unlearning: the data, the forget mask, the initialization
    ``net0``, the Original ``net_p`` and the retrained ``net_r`` (:func:`prepare`)."""

    setup: Setup
    x_train: jax.Array
    y_train: jax.Array  # the labels trained on (super-classes in the subclass scenario)
    forget: np.ndarray  # (N,) boolean: D_f
    x_test: jax.Array  # the reported held-out images (the test half when there is a validation half)
    y_test: jax.Array
    x_val: Optional[jax.Array]  # the validation half, or None
    y_val: Optional[jax.Array]
    net0: object
    net_p: object
    net_r: object
    retrain_seconds: float
    classes: int
    description: str


def _stamp(path) -> tuple:
    """When the file or folder ``path`` (or the files directly in it) last changed: part of the
    key of :func:`_images`, so a data file replaced within one process is read again."""
    if path is None or not os.path.exists(path):
        return ()
    if os.path.isdir(path):
        return tuple(sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in os.scandir(path) if e.is_file()))
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=1)
def _cached_images(data, path, stamp, seed, scale, train_size):
    d = load_images(data, path=path, seed=seed, scale=scale)
    return d if train_size is None else training_subset(d, train_size)


def _images(data, path, seed, scale, train_size):
    """The images of one setup, loaded once per process for a run of several seeds or scenarios
    (the arrays are shared: nothing here writes into them), and again when the file changed."""
    return _cached_images(data, path, _stamp(path), seed, scale, train_size)


def load_split(setup: Setup):
    """``(images, training labels, test labels, classes, forget mask)`` of ``setup``, with every
    argument checked (no training): the data-level half of :func:`prepare`.

    In the subclass scenario the labels are the super-classes and the mask one fine class.

    Parameters
    ----------
    setup : Setup
        The data set, model, scenario (``forget`` percent or ``cls``), seed, training recipe,
        dtypes and training-subset size.

    Returns
    -------
    tuple
        ``(data, y_train, y_test, classes, forget)``: the :class:`muso_jax.data.ImageData`,
        the (N,) training labels trained on, the test labels, K, and the (N,) bool D_f mask.

    Raises
    ------
    ValueError
        On a bad field of ``setup`` (model, dtype, precision, data, scenario, class, percent).

    Examples
    --------
    >>> from muso_jax.nn import experiment
    >>> from muso_jax.nn.train import TrainConfig
    >>> setup = experiment.Setup(data="digits", model="mlp", forget=25.0, train_size=40,
    ...                          train=TrainConfig(epochs=1, batch_size=8))
    >>> data, y_train, y_test, classes, forget = experiment.load_split(setup)
    >>> data.x_train.shape, classes, int(forget.sum())  # 25% of each class's 4 rows
    ((40, 8, 8, 1), 10, 10)
    >>> experiment.load_split(setup._replace(model="vgg"))
    Traceback (most recent call last):
        ...
    ValueError: argument `model`: expected one of ['mlp', 'cnn', 'resnet18', 'resnet18-narrow']; got 'vgg'
    """
    if setup.model not in MODELS:
        raise ValueError(f"argument `model`: expected one of {list(MODELS)}; got {setup.model!r}")
    if setup.dtype not in ("float32", "float64"):
        raise ValueError(f"argument `dtype`: expected 'float32' or 'float64'; got {setup.dtype!r}")
    if setup.precision not in PRECISIONS:
        raise ValueError(f"argument `precision`: expected one of {list(PRECISIONS)}; got {setup.precision!r}")
    d = _images(setup.data, None if setup.path is None else str(setup.path), setup.seed, setup.scale,
                setup.train_size)
    y_train, y_test, k = d.y_train, d.y_test, d.num_classes
    if setup.scenario == "subclass":  # train on super-classes, forget one fine class
        if d.coarse_train is None:
            raise ValueError(f"argument `scenario`: 'subclass' needs super-class labels; {setup.data!r} has none")
        mask = forget_mask("subclass", d.y_train, num_classes=k, coarse=d.coarse_train, cls=setup.cls)
        y_train, y_test, k = d.coarse_train, d.coarse_test, int(d.coarse_train.max()) + 1
    else:
        mask = forget_mask(setup.scenario, d.y_train, num_classes=k, percent=setup.forget, cls=setup.cls,
                           seed=setup.seed)
    return d, y_train, y_test, k, mask


def check_setup(setup: Setup) -> None:
    """Refuse a bad ``setup`` (model, dtype, precision, data, scenario, class or percent) the way
    :func:`prepare` would, without training anything: a run of many seeds and scenarios calls it
    for each before the first training starts.

    Parameters
    ----------
    setup : Setup
        The data set, model, scenario (``forget`` percent or ``cls``), seed, training recipe,
        dtypes and training-subset size.

    Returns
    -------
    None

    Raises
    ------
    ValueError
        As :func:`load_split`.

    Examples
    --------
    >>> from muso_jax.nn import experiment
    >>> from muso_jax.nn.train import TrainConfig
    >>> setup = experiment.Setup(data="digits", model="mlp", forget=25.0, train_size=40,
    ...                          train=TrainConfig(epochs=1, batch_size=8))
    >>> experiment.check_setup(setup) is None
    True
    >>> experiment.check_setup(setup._replace(dtype="float16"))
    Traceback (most recent call last):
        ...
    ValueError: argument `dtype`: expected 'float32' or 'float64'; got 'float16'
    """
    load_split(setup)


def prepare(setup: Setup, *, cache=None, progress=None, validation: bool = False) -> Trial:
    """Load the data of ``setup``, draw its forget set, train (or load from ``cache``) Original and
    Retrain from the same initialization with the same recipe. ``validation``: split the held-out
    images by :func:`validation_split` (reported metrics on the test half). ``cache`` and
    ``progress`` as in :func:`run_protocol`.

    Original: ``setup.train`` from p_0 on all of D; Retrain: the same p_0, key and recipe on
    D_r, the reference of exact unlearning (MUSO, arXiv 2410.08557).

    Parameters
    ----------
    setup : Setup
        The data set, model, scenario (``forget`` percent or ``cls``), seed, training recipe,
        dtypes and training-subset size.
    cache : optional
        An object with ``trained(...)`` (:func:`run_protocol`); None trains here.
    progress : callable, optional
        ``progress(stage, total_batches)`` returning a bar with ``update`` and ``close``.
    validation : bool
        Split the held-out images into validation and test halves.

    Returns
    -------
    Trial
        The data, D_f, p_0, Original, Retrain, Retrain's seconds, K and a description.

    Raises
    ------
    ValueError
        As :func:`load_split`, or what training refuses.

    Examples
    --------
    >>> from muso_jax.nn import experiment
    >>> from muso_jax.nn.train import TrainConfig
    >>> setup = experiment.Setup(data="digits", model="mlp", forget=25.0, train_size=40,
    ...                          train=TrainConfig(epochs=1, batch_size=8))
    >>> trial = experiment.prepare(setup, validation=True)
    >>> trial.x_train.shape, int(trial.forget.sum()), trial.classes
    ((40, 8, 8, 1), 10, 10)
    >>> len(trial.y_val) + len(trial.y_test) == len(experiment.load_split(setup)[2])  # the held-out halves
    True
    """
    progress = progress or (lambda stage, total: _Silent())
    d, y_train, y_test, k, mask = load_split(setup)
    x_tr, x_te = jnp.asarray(d.x_train), jnp.asarray(d.x_test)
    y_tr, y_te = jnp.asarray(y_train), jnp.asarray(y_test)
    net0 = split(make_model(setup.model, d.x_train.shape[1:], k, seed=setup.seed, param_dtype=jnp.dtype(setup.dtype),
                            dtype=PRECISIONS[setup.precision]))
    # What a cache entry is, for a reader of it; the cache keys it by the arrays themselves.
    base = dict(data=setup.data, model=setup.model, seed=setup.seed, dtype=setup.dtype, precision=setup.precision,
                classes=k)
    key = jax.random.key(setup.seed)
    bs = setup.train.batch_size

    staged = functools.partial(_staged, progress)

    def fit(description, retain, tick):
        """(net, seconds) of the training from net0 on the rows ``retain``, from the cache when given."""
        if cache is not None:
            return cache.trained(key, net0, x_tr, y_tr, setup.train, description=dict(base, **description),
                                 retain=retain, on_progress=tick)
        started = time.perf_counter()
        net = jax.block_until_ready(train(key, net0, x_tr, y_tr, setup.train, retain=retain, on_progress=tick))
        return net, time.perf_counter() - started

    net_p, _ = staged("original", setup.train.epochs * steps_per_epoch(len(y_tr), bs),
                      lambda tick: fit(dict(role="original"), None, tick))
    net_r, retrain_seconds = staged("retrain", setup.train.epochs * steps_per_epoch(int((~mask).sum()), bs),
                                    lambda tick: fit(dict(role="retrain", scenario=setup.scenario), ~mask, tick))
    x_val = y_val = None
    if validation:  # select on half of the held-out images, report on the other half (never the same rows)
        val, test = validation_split(len(y_te))
        x_val, y_val, x_te, y_te = x_te[val], y_te[val], x_te[test], y_te[test]
    return Trial(setup, x_tr, y_tr, np.asarray(mask), x_te, y_te, x_val, y_val, net0, net_p, net_r, retrain_seconds,
                 k, d.description)


def measure(trial: Trial, net, *, on: str = "test") -> dict:
    """The protocol metrics of ``net`` on ``trial``'s D_r, D_f and its ``on`` images ("test" or
    "validation"), :func:`muso_jax.metrics.protocol_metrics`.

    TA, RA, FA: accuracy (percent) on the ``on`` images, D_r, D_f; UA = 100 - FA; MIA_entropy
    and MIA_efficacy, the two membership-inference conventions (docs/theory.md, section 5;
    SalUn's names, Fan et al. 2024, arXiv 2310.12508).

    Parameters
    ----------
    trial : Trial
        :func:`prepare`'s.
    net : Net
        The network measured.
    on : str
        ``"test"`` or ``"validation"`` (a trial prepared with ``validation=True``).

    Returns
    -------
    dict
        Metric name -> percent.

    Raises
    ------
    ValueError
        On another ``on``, or ``"validation"`` for a trial without a validation half.

    Examples
    --------
    >>> from muso_jax.nn import experiment
    >>> from muso_jax.nn.train import TrainConfig
    >>> setup = experiment.Setup(data="digits", model="mlp", forget=25.0, train_size=40,
    ...                          train=TrainConfig(epochs=1, batch_size=8))
    >>> trial = experiment.prepare(setup)
    >>> metrics = experiment.measure(trial, trial.net_p)
    >>> sorted(metrics)
    ['FA', 'MIA_efficacy', 'MIA_entropy', 'RA', 'TA', 'UA']
    >>> metrics["UA"] == 100 - metrics["FA"]
    True
    >>> experiment.measure(trial, trial.net_p, on="validation")
    Traceback (most recent call last):
        ...
    ValueError: argument `on`: expected 'test' (the trial has no validation half); got 'validation'
    """
    if on not in ("test", "validation") or (on == "validation" and trial.x_val is None):
        allowed = "'test' or 'validation'" if trial.x_val is not None else "'test' (the trial has no validation half)"
        raise ValueError(f"argument `on`: expected {allowed}; got {on!r}")
    x_eval, y_eval = (trial.x_test, trial.y_test) if on == "test" else (trial.x_val, trial.y_val)
    mask, y_tr = trial.forget, trial.y_train
    logits = predict(net, trial.x_train)
    return metrics.protocol_metrics(logits[~mask], y_tr[~mask], logits[mask], y_tr[mask], predict(net, x_eval),
                                    y_eval, seed=trial.setup.seed)


def run_protocol(setup: Setup, muso_cfg: muso.MusoConfig, *, cache=None, progress=None, others: Optional[dict] = None,
                 tune: bool = False, validation: Optional[bool] = None, tune_epochs: bool = True):
    r"""Train or load Original and Retrain, run MUSO (and the baselines in ``others``, a dict
    name -> config of :data:`METHODS`) on the same split and the
    same original network, measure. Returns a dict of results.

    ``validation`` (default: ``tune``): hold out the :func:`validation_split` half of the test
    images; every reported metric then uses the other half only. ``tune``: for MUSO and every
    baseline, run the :func:`grid` (``tune_epochs``: over epochs too) and keep the setting with
    the smallest Avg. Gap to Retrain on the validation half (the test half is never used for
    selection). The result's ``chosen`` holds every method's configuration as a dict; pass them
    back (``muso_cfg`` and ``others``) with ``validation=True`` to reuse a selection on other seeds.

    ``cache``: an object whose ``trained(key, net0, x, y, train_cfg, *, description, retain, on_progress)``
    returns ``(net, seconds)`` (``muso_jax.io.cache.NetworkCache``), for Original and Retrain;
    ``None`` trains both here. ``progress(stage, total_batches)`` returns a bar with ``update()``
    and ``close()`` (e.g. ``tqdm``); a stage whose network comes from the cache closes its bar
    without updates.

    Each method's row has ``RTE_s`` (its wall clock), ``compile_s`` (the part of it spent
    compiling programs this process had not compiled yet) and ``RTE_pct``: 100 (RTE_s - compile_s)
    / Retrain's training seconds.

    .. math::
        \mathrm{Avg.\ Gap} = \frac{1}{|M|} \sum_{m \in M} |m(\text{method}) - m(\text{Retrain})|,
        \qquad M = \{\mathrm{UA}, \mathrm{RA}, \mathrm{TA}, \mathrm{MIA\text{-}efficacy}\}

    (the SalUn set of metrics, Fan et al. 2024, arXiv 2310.12508; docs/theory.md, section 5).

    Parameters
    ----------
    setup : Setup
        The data set, model, scenario (``forget`` percent or ``cls``), seed, training recipe,
        dtypes and training-subset size.
    muso_cfg : MusoConfig
        MUSO's configuration.
    cache, progress : optional
        See above.
    others : dict, optional
        Method name (a key of :data:`METHODS`) -> its configuration.
    tune : bool
        Select each method's setting on the validation half by :func:`grid`.
    validation : bool, optional
        Hold out the validation half (default: ``tune``).
    tune_epochs : bool
        Search the epochs too.

    Returns
    -------
    dict
        ``rows`` (method -> metrics, distances to Retrain, Avg. Gap, RTE), the sizes, the
        chosen configurations, MUSO's info and the metrics' definitions.

    Raises
    ------
    ValueError
        On ``tune`` without ``validation``, or what :func:`prepare` refuses.

    Examples
    --------
    >>> from muso_jax.nn import experiment
    >>> from muso_jax.nn.train import TrainConfig
    >>> setup = experiment.Setup(data="digits", model="mlp", forget=25.0, train_size=40,
    ...                          train=TrainConfig(epochs=1, batch_size=8))
    >>> from muso_jax.nn.muso import MusoConfig
    >>> result = experiment.run_protocol(setup, MusoConfig(epochs=1, batch_size=8, optimizer="sgd"))
    >>> sorted(result["rows"]), result["n_forget"], result["n_retain"]
    (['MUSO', 'Original', 'Retrain'], 10, 30)
    >>> result["rows"]["Retrain"]["avg_gap"], result["rows"]["MUSO"]["RTE_s"] >= 0
    (0.0, True)
    >>> experiment.run_protocol(setup, MusoConfig(), tune=True, validation=False)
    Traceback (most recent call last):
        ...
    ValueError: argument `validation`: expected True with tune=True (selection needs the validation half); got False
    """
    from muso_jax import compilation

    validation = tune if validation is None else validation
    if tune and not validation:
        raise ValueError("argument `validation`: expected True with tune=True (selection needs the validation "
                         "half); got False")
    trial = prepare(setup, cache=cache, progress=progress, validation=validation)
    progress = progress or (lambda stage, total: _Silent())
    net0, net_p, net_r, mask, x_tr, y_tr = trial.net0, trial.net_p, trial.net_r, trial.forget, trial.x_train, \
        trial.y_train
    retrain_seconds, key = trial.retrain_seconds, jax.random.key(setup.seed)

    staged = functools.partial(_staged, progress)

    reference_val = measure(trial, net_r, on="validation") if tune else None
    unlearn_args = (net0, net_p, x_tr, y_tr, mask)

    def run_method(name, i, cfg, call):
        """Run one method (with its candidate grid and validation selection when tuning):
        ``(gap, net, info, config, compile seconds of the kept run, validation gaps)``."""
        candidates = grid(cfg, epochs=tune_epochs) if tune else [cfg]
        best, gaps = None, []
        for j, candidate in enumerate(candidates):
            total = candidate.epochs * steps_per_epoch(len(y_tr), candidate.batch_size)
            label = name if len(candidates) == 1 else f"{name} {j + 1}/{len(candidates)}"
            with compilation.CompileCounter() as counter:
                net, extra = staged(label, total, lambda tick: call(jax.random.fold_in(key, i), *unlearn_args,
                                                                    candidate, on_progress=tick))
            gap = metrics.avg_gap(measure(trial, net, on="validation"), reference_val, GAP_KEYS) if tune else 0.0
            gaps.append(dict(lr=candidate.lr, epochs=candidate.epochs, avg_gap=gap))
            if best is None or gap < best[0]:
                best = (gap, net, extra, candidate, counter.result().seconds)
        return (*best, gaps)

    _, net_u, info, muso_cfg, muso_compile, muso_gaps = run_method("muso", 7, muso_cfg, muso.unlearn)
    nets = {"Original": net_p, "Retrain": net_r, "MUSO": net_u}
    seconds = {"Retrain": (retrain_seconds, 0.0), "MUSO": (info.seconds, muso_compile)}
    chosen = {"MUSO": muso_cfg._asdict()}
    searched = {"MUSO": muso_gaps} if tune else {}
    infos = {"MUSO": _plain(info)}
    for i, (name, cfg) in enumerate((others or {}).items()):
        _, nets[name], method_info, cfg, compile_s, gaps = run_method(name, 100 + i, cfg, METHODS[name])
        seconds[name] = (method_info.seconds, compile_s)
        chosen[name] = cfg._asdict()
        infos[name] = _plain(method_info)
        if tune:
            searched[name] = gaps
    rows = {}
    for name, net in nets.items():
        m = measure(trial, net)
        dist = metrics.param_distance(net.params, net_r.params)
        head = metrics.param_distance(head_matrix(net.params["head"]), head_matrix(net_r.params["head"]))
        rows[name] = dict(m, dist_to_retrain=dist["l2"], dist_to_retrain_rel=dist["relative"],
                          head_dist_to_retrain=head["l2"])
    for name in rows:
        rows[name]["avg_gap"] = metrics.avg_gap(rows[name], rows["Retrain"], GAP_KEYS)
    for name, (wall, compile_s) in seconds.items():
        rows[name].update(RTE_s=wall, compile_s=compile_s, RTE_pct=100.0 * (wall - compile_s) / retrain_seconds)
    return dict(rows=rows, n_forget=int(mask.sum()), n_retain=int((~mask).sum()), classes=trial.classes, tuned=tune,
                chosen=chosen, searched=searched, infos=infos, n_test=int(len(trial.y_test)),
                n_validation=0 if trial.y_val is None else int(len(trial.y_val)), retrain_seconds=retrain_seconds,
                muso=dict(info._asdict(), config=muso_cfg._asdict()), description=trial.description,
                definitions=dict(metrics.DEFINITIONS, avg_gap=f"mean |metric - Retrain's| over {list(GAP_KEYS)}",
                                 RTE_s="wall clock of the unlearning alone (for Retrain: the retraining)",
                                 compile_s="of RTE_s, seconds compiling programs new to this process",
                                 RTE_pct="100 (RTE_s - compile_s) / Retrain's training seconds",
                                 dist_to_retrain="||params - params_retrain|| over the whole network",
                                 head_dist_to_retrain="the same over the last layer [kernel; bias]"))


def summarize(runs: list, keys, level: float = 0.95) -> dict:
    r"""Per method and metric over the seeds of ``runs`` (results of :func:`run_protocol` on one
    scenario): mean, sample std, and the Student-t interval at ``level`` (``low``/``high``
    None with one seed).

    .. math::
        \bar v \pm t_{(1 + \mathrm{level})/2,\, n - 1}\, \frac{s}{\sqrt n}

    over the n seeds, s the sample standard deviation (docs/theory.md, section 5).

    Parameters
    ----------
    runs : list of dict
        Results of :func:`run_protocol` (their ``rows``).
    keys : sequence of str
        The metrics summarized.
    level : float
        The interval's confidence level.

    Returns
    -------
    dict
        Method -> metric -> ``mean``, ``std``, ``n``, ``low``, ``high``.

    Examples
    --------
    >>> from muso_jax.nn.experiment import summarize
    >>> runs = [dict(rows={"Retrain": dict(avg_gap=0.0), "MUSO": dict(avg_gap=g)}) for g in (1.0, 2.0, 1.5)]
    >>> row = summarize(runs, ["avg_gap"])["MUSO"]["avg_gap"]
    >>> row["mean"], row["std"], row["n"], round(row["low"], 2), round(row["high"], 2)
    (1.5, 0.5, 3, 0.26, 2.74)
    """
    out = {}
    for m in runs[0]["rows"]:
        out[m] = {}
        for k in keys:
            v = np.array([r["rows"][m].get(k, np.nan) for r in runs], np.float64)
            row = dict(mean=float(np.mean(v)), std=float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, n=len(v),
                       low=None, high=None)
            if len(v) > 1 and np.all(np.isfinite(v)):
                iv = stats.mean_interval(v, level)
                row.update(low=iv.low, high=iv.high)
            out[m][k] = row
    return out


def compare_to_best(runs: list, metric: str = "avg_gap", level: float = 0.95) -> dict:
    r"""The paired comparison of every method with the best MUSO-family method on ``metric``
    (smaller is better).

    ``best``: the method of :data:`MUSO_FAMILY` present with the smallest mean ``metric``. For each
    method (Retrain, the reference, excluded) the per-seed differences ``method - best`` on the
    same seed, split and Original, their mean and interval at ``level`` (None with one seed),
    and the significance rank of :func:`muso_jax.stats.significance_ranks` (equal ranks: ties).

    .. math::
        d_i = \mathrm{Gap}_i(\text{method}) - \mathrm{Gap}_i(\text{best}), \qquad
        \bar d \pm t_{(1 + \mathrm{level})/2,\, n - 1}\, \frac{s_d}{\sqrt n}

    (docs/theory.md, section 5: a method's rank is 1 + the number of methods whose paired
    difference with it lies entirely below zero).

    Parameters
    ----------
    runs : list of dict
        Results of :func:`run_protocol` on one scenario, one per seed.
    metric : str
        Smaller is better.
    level : float
        The intervals' confidence level.

    Returns
    -------
    dict
        ``best``, ``metric`` and ``methods``: method -> ``mean``, ``low``, ``high``, ``rank``.

    Examples
    --------
    >>> from muso_jax.nn.experiment import compare_to_best
    >>> runs = [dict(rows={"Retrain": dict(avg_gap=0.0), "Original": dict(avg_gap=o), "MUSO": dict(avg_gap=m)})
    ...         for o, m in ((5.0, 1.0), (6.0, 2.0), (4.0, 1.5))]
    >>> out = compare_to_best(runs)
    >>> out["best"], out["methods"]["Original"]["mean"], out["methods"]["Original"]["rank"], out["methods"]["MUSO"]["rank"]
    ('MUSO', 3.5, 2, 1)
    """
    methods = [m for m in runs[0]["rows"] if m != "Retrain"]
    per_seed = {m: [r["rows"][m][metric] for r in runs] for m in methods}
    family = [m for m in MUSO_FAMILY if m in per_seed]
    best = min(family, key=lambda m: np.mean(per_seed[m]))
    ranks = stats.significance_ranks(per_seed, level) if len(runs) > 1 else {m: None for m in methods}
    out = dict(best=best, metric=metric, methods={})
    for m in methods:
        diff = np.subtract(per_seed[m], per_seed[best])
        row = dict(mean=float(np.mean(diff)), low=None, high=None, rank=ranks[m])
        if len(runs) > 1:
            iv = stats.paired_difference(per_seed[m], per_seed[best], level)
            row.update(low=iv.low, high=iv.high)
        out["methods"][m] = row
    return out
