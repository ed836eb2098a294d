r"""The per-example privacy audit of the network table (docs/audit.md): populations of B shadow
models trained and unlearned at once (:mod:`muso_jax.nn.shadows`), attacked by U-LiRA (Hayes et
al., arXiv 2403.01218) and scored by the unlearning challenge's epsilon (Triantafillou et al.,
arXiv 2406.09073), next to the Avg. Gap of the protocol.

One data set D, one forget set D_f (the setup's scenario and seed), B models per population:

- Original_b: model b (initialization and key of seed ``seed + b``) trained on D;
- Retrain_b: the same initialization and key, trained on D_r: the reference population;
- unlearned_b: each method run on Original_b (key ``fold_in(key_b, i)`` as in
  :func:`muso_jax.nn.experiment.run_protocol`);
- Retrain'_b: retrained from the independent seeds ``seed + B + b``: what an attack at chance
  looks like with B models (exact unlearning is a draw of this population).

For each example of D_f the score of a model is :func:`muso_jax.audit.logit_confidence` of its
label. U-LiRA fits, per example, one Gaussian to the scores of the unlearned models and one to
those of the retrained models over the SHADOW half of the B indices (b < B/2), then decides for
every model of the other half, unlearned or retrained, by the likelihood ratio: the ROC curve is
over those (model, example) decisions. The epsilon score compares, per example, the B unlearned
with the B retrained scores. Nothing here prints or writes files.
"""

from __future__ import annotations

import functools
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from muso_jax import audit, metrics, stats
from muso_jax.nn import experiment, shadows
from muso_jax.nn.models import make_model
from muso_jax.nn.state import split
from muso_jax.nn.train import steps_per_epoch

# The population every method is attacked against, and the reference rows of the table.
REFERENCE = "Retrain"
CHANCE = "Retrain (independent seeds)"


def _keys(first: int, b: int):
    return jax.vmap(jax.random.key)(jnp.arange(first, first + b, dtype=jnp.uint32))


def _initializations(setup, shape, k, first: int, b: int):
    dtype = jnp.dtype(setup.dtype)
    return shadows.stack([split(make_model(setup.model, shape, k, seed=s, param_dtype=dtype,
                                           dtype=experiment.PRECISIONS[setup.precision]))
                          for s in range(first, first + b)])


def _accuracy(logits, y):
    """(B,) percent of rows whose argmax is the label."""
    predicted = jnp.argmax(logits, -1)
    return np.asarray(100.0 * jnp.mean(predicted == y[None].astype(predicted.dtype), axis=-1), np.float64)


def run_audit(setup: experiment.Setup, muso_cfg, *, shadows_count: int = 64, others: Optional[dict] = None,
              progress=None) -> dict:
    r"""Train the populations of ``setup`` with ``shadows_count`` models each, run MUSO
    (``muso_cfg``) and the methods ``others`` (name -> config of
    :data:`muso_jax.nn.experiment.METHODS`) on every Original, and audit each population.

    Returns a dict: ``rows`` (method -> Avg. Gap interval over the B models, UA, MIA-efficacy,
    U-LiRA AUC with its interval, accuracy, TPR at 1% and 0.1% FPR, the epsilon forgetting
    quality and challenge score, the seconds of its B unlearnings, whether they ran under vmap),
    ``roc`` (method -> fpr, tpr for a figure), ``epsilons`` (method -> per-example epsilon),
    ``seconds`` (per population), and the sizes.

    Per forget example, with :math:`\phi` the LiRA score :math:`\log p_y - \log(1 - p_y)`
    (Carlini et al. 2022, arXiv 2112.03570) and Gaussians fitted over the shadow half to the
    unlearned and the retrained models' scores, U-LiRA (Hayes et al., arXiv 2403.01218) decides
    by

    .. math::
        \Lambda = \log \mathcal N(\phi; \mu_u, \sigma_u^2) - \log \mathcal N(\phi; \mu_r, \sigma_r^2),

    and the epsilon score (Triantafillou et al., arXiv 2406.09073) takes, from the best
    threshold rules' false positive and negative rates,

    .. math::
        \epsilon = \max\{\log(1 - \delta - \mathrm{FPR}) - \log \mathrm{FNR},\;
                         \log(1 - \delta - \mathrm{FNR}) - \log \mathrm{FPR}\}

    (:mod:`muso_jax.audit`; docs/audit.md).

    Parameters
    ----------
    setup : muso_jax.nn.experiment.Setup
        The data, model, scenario, seed (model b uses ``seed + b``) and training recipe.
    muso_cfg : MusoConfig
        MUSO's configuration.
    shadows_count : int
        B, the models per population, >= 4 (half of them shadows, half targets).
    others : dict, optional
        Method name -> configuration, of :data:`muso_jax.nn.experiment.METHODS`.
    progress : callable, optional
        ``progress(stage, total_batches)`` returning a bar with ``update`` and ``close``.

    Returns
    -------
    dict
        See above.

    Raises
    ------
    ValueError
        On a ``shadows_count`` below 4 or what :func:`muso_jax.nn.experiment.check_setup`
        refuses, before any training.

    Examples
    --------
    >>> from muso_jax.nn import experiment, privacy
    >>> from muso_jax.nn.muso import MusoConfig
    >>> from muso_jax.nn.train import TrainConfig
    >>> setup = experiment.Setup(data="digits", model="mlp", forget=25.0, train_size=40,
    ...                          train=TrainConfig(epochs=1, batch_size=8))
    >>> cfg = MusoConfig(epochs=1, batch_size=8, optimizer="sgd")
    >>> privacy.run_audit(setup, cfg, shadows_count=2)
    Traceback (most recent call last):
        ...
    ValueError: argument `shadows_count`: expected an integer >= 4 (two shadow and two target models per population at least); got 2
    >>> audit = privacy.run_audit(setup, cfg, shadows_count=4)  # the smallest population: 4 models
    >>> sorted(audit["rows"]), audit["shadows"], audit["n_forget"]
    (['MUSO', 'Original', 'Retrain (independent seeds)'], 4, 10)
    >>> row = audit["rows"]["MUSO"]
    >>> 0.0 <= row["auc"] <= 1.0, 0.0 <= row["epsilon_quality"] <= 1.0, row["vmapped"]
    (True, True, True)
    """
    from muso_jax.nn import muso

    if isinstance(shadows_count, bool) or not isinstance(shadows_count, (int, np.integer)) or shadows_count < 4:
        raise ValueError(f"argument `shadows_count`: expected an integer >= 4 (two shadow and two target models "
                         f"per population at least); got {shadows_count!r}")
    progress = progress or (lambda stage, total: experiment._Silent())
    staged = functools.partial(experiment._staged, progress)
    experiment.check_setup(setup)
    d, y_train, y_test, k, mask = experiment.load_split(setup)
    b, cfg = int(shadows_count), setup.train
    x, y = jnp.asarray(d.x_train), jnp.asarray(y_train)
    x_te, y_te = jnp.asarray(d.x_test), jnp.asarray(y_test)
    forget = np.asarray(mask)
    x_f, y_f, x_r, y_r = x[forget], y[forget], x[~forget], y[~forget]
    shape = d.x_train.shape[1:]
    keys, keys_chance = _keys(setup.seed, b), _keys(setup.seed + b, b)
    net0 = _initializations(setup, shape, k, setup.seed, b)
    seconds = {}

    def train_stage(name, keys_, net0_, retain):
        n = len(y) if retain is None else int(retain.sum())
        started = time.perf_counter()
        nets = staged(name, cfg.epochs * steps_per_epoch(n, cfg.batch_size),
                      lambda tick: shadows.train_many(keys_, net0_, x, y, cfg, retain=retain, on_progress=tick))
        seconds[name] = time.perf_counter() - started
        return nets

    populations = {"Original": train_stage("Original", keys, net0, None),
                   REFERENCE: train_stage(REFERENCE, keys, net0, ~forget)}
    populations[CHANCE] = train_stage(CHANCE, keys_chance, _initializations(setup, shape, k, setup.seed + b, b),
                                      ~forget)
    info = {}
    methods = {"MUSO": (muso.unlearn, muso_cfg, 7)}
    methods.update({name: (experiment.METHODS[name], c, 100 + i) for i, (name, c) in enumerate((others or {}).items())})
    for name, (fn, c, salt) in methods.items():
        per_model = c.epochs * steps_per_epoch(len(y), c.batch_size)
        total = per_model * (b if fn in shadows.LOOPED else 1)
        folded = jax.vmap(lambda key, s=salt: jax.random.fold_in(key, s))(keys)
        populations[name], info[name] = staged(name, total, lambda tick: shadows.unlearn_many(
            fn, folded, net0, populations["Original"], x, y, forget, c, on_progress=tick))
        seconds[name] = info[name].seconds

    logits = {name: {part: shadows.predict_many(nets, xs) for part, xs in (("f", x_f), ("r", x_r), ("t", x_te))}
              for name, nets in populations.items()}
    y_fb = jnp.broadcast_to(y_f, (b, len(y_f)))
    scores = {name: np.asarray(audit.logit_confidence(lg["f"], y_fb), np.float64) for name, lg in logits.items()}
    per_model = {}
    for name, lg in logits.items():  # the protocol's metrics of every model (MIA-efficacy seeds as run_protocol)
        per_model[name] = [metrics.protocol_metrics(lg["r"][i], y_r, lg["f"][i], y_f, lg["t"][i], y_te,
                                                    seed=setup.seed + i) for i in range(b)]
    reference = per_model[REFERENCE]
    acc = {name: (_accuracy(lg["r"], y_r), _accuracy(lg["t"], y_te)) for name, lg in logits.items()}
    is_shadow = np.arange(b) < b // 2
    rows, roc, epsilons = {}, {}, {}
    for name in populations:
        if name == REFERENCE:
            continue
        gaps = [metrics.avg_gap(m, r, experiment.GAP_KEYS) for m, r in zip(per_model[name], reference)]
        both = np.concatenate([scores[name], scores[REFERENCE]])  # (2B, N_f): unlearned rows, then retrained
        unlearned = np.zeros(both.shape, bool)
        unlearned[:b] = True
        attack = audit.ulira(both, unlearned, ~unlearned, np.concatenate([is_shadow, is_shadow]))
        eps = audit.per_example_epsilon(scores[name].T, scores[REFERENCE].T)
        quality = audit.forgetting_quality(eps)
        (ra_u, ta_u), (ra_r, ta_r) = acc[name], acc[REFERENCE]
        gap = stats.mean_interval(np.asarray(gaps), 0.95)
        rows[name] = dict(avg_gap=gap.mean, avg_gap_low=gap.low, avg_gap_high=gap.high,
                          UA=float(np.mean([m["UA"] for m in per_model[name]])),
                          MIA_efficacy=float(np.mean([m["MIA_efficacy"] for m in per_model[name]])),
                          auc=float(attack.auc), auc_low=float(attack.auc_low), auc_high=float(attack.auc_high),
                          accuracy=float(attack.accuracy), tpr_at_1pct=float(attack.tpr_at_1pct),
                          tpr_at_01pct=float(attack.tpr_at_01pct), epsilon_quality=float(quality),
                          score=float(audit.challenge_score(quality, float(ra_u.mean()), float(ra_r.mean()),
                                                            float(ta_u.mean()), float(ta_r.mean()))),
                          RA=float(ra_u.mean()), TA=float(ta_u.mean()), seconds=seconds[name],
                          vmapped=info[name].vmapped if name in info else True)
        roc[name] = dict(fpr=np.asarray(attack.roc.fpr).tolist(), tpr=np.asarray(attack.roc.tpr).tolist())
        epsilons[name] = np.asarray(eps).tolist()
    rows = {name: rows[name] for name in ["Original", CHANCE, *methods] if name in rows}
    return dict(rows=rows, roc=roc, epsilons=epsilons, seconds=seconds, shadows=b, n_forget=int(forget.sum()),
                n_retain=int((~forget).sum()), classes=k, description=d.description,
                looped={name: i.reason for name, i in info.items() if not i.vmapped},
                reference=dict(RA=float(acc[REFERENCE][0].mean()), TA=float(acc[REFERENCE][1].mean())))
