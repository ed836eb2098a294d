r"""Per-example privacy audit of unlearning: U-LiRA and the unlearning challenge's epsilon score
(docs/audit.md). Pure functions of score arrays (NumPy, float64); the models behind the scores
come from :mod:`muso_jax.nn.privacy` (networks) or :mod:`proofs_numeric.privacy_audit` (linear).

The question is the same for both: given a model and an example x of the forget set, was the
model trained on x and then unlearned it, or retrained without x? Exact unlearning makes the two
populations of models equal in distribution, so every attack is at chance.

- Score (Carlini et al. 2022, arXiv 2112.03570, LiRA): the logit-scaled confidence of the true
  label, :math:`\phi = \log p_y - \log(1 - p_y)`, close to Gaussian over training randomness.
- U-LiRA (Hayes et al. 2024, arXiv 2403.01218, Sec. 4): per example, one Gaussian fitted to the
  scores of shadow models that unlearned x, one to shadow models that never saw x; a target
  model's score is classified by the log likelihood ratio.
- Epsilon score (Triantafillou et al. 2024, arXiv 2406.09073, Sec. 3 and App. of the NeurIPS
  2023 unlearning challenge): per example, the best single- and double-threshold rules on the
  two score samples give false positive/negative rates, hence an (epsilon, delta) lower bound;
  epsilons are bucketed and averaged into a forgetting quality in [0, 1].
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.stats import rankdata

# The challenge's buckets (organizers' metric note, Sec. 4): width 0.5 on [0, 6.5), 13 of them.
BUCKET = 0.5
BINS = 13
# Perfect separation (both rates 0, epsilon = inf) is reported as the top of that range, so that
# means over examples stay finite; it lands in the last bin either way.
EPSILON_CAP = BUCKET * BINS


def logit_confidence(logits, y):
    r"""The LiRA score :math:`\log p_y - \log(1 - p_y)` of softmax(``logits``) at label ``y``.

    ``logits``: (..., K); ``y``: (...) integer labels. Computed as
    :math:`z_y - \log\sum_{k \ne y} e^{z_k}` (no probability is formed, so confident models do
    not round to infinity).

    .. math::
        \phi = \log \frac{p_y}{1 - p_y} = z_y - \log \sum_{k \ne y} e^{z_k},
        \qquad p = \mathrm{softmax}(z)

    (Carlini et al. 2022, arXiv 2112.03570, LiRA.)

    Parameters
    ----------
    logits : (..., K) array_like
        Logits, K >= 2 classes.
    y : (...) int array_like
        Labels in [0, K), of the logits' leading shape.

    Returns
    -------
    numpy.ndarray
        The scores, float64, of shape (...).

    Raises
    ------
    ValueError
        If the logits have fewer than 2 classes or the labels do not match them.

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax import audit
    >>> logits = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 0.0]])
    >>> audit.logit_confidence(logits, np.array([0, 0, 1])).tolist()
    [2.0, -3.0, -1.0]
    >>> round(float(audit.logit_confidence(np.array([40.0, 0.0, 0.0]), np.array(0))), 6)  # p_y = 1 in float64
    39.306853
    """
    z = np.asarray(logits, np.float64)
    y = np.asarray(y)
    if z.ndim < 1 or z.shape[-1] < 2:
        raise ValueError(f"argument `logits`: expected (..., K) logits with K >= 2 classes; got shape {z.shape}")
    if y.shape != z.shape[:-1] or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"argument `y`: expected integer labels of shape {z.shape[:-1]} (the logits' leading "
                         f"axes); got {y.dtype} of shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= z.shape[-1]):
        raise ValueError(f"argument `y`: expected labels in [0, {z.shape[-1]}); got {y.min()} to {y.max()}")
    own = np.take_along_axis(z, y[..., None], -1)[..., 0]
    others = np.where(np.arange(z.shape[-1]) == y[..., None], -np.inf, z)
    top = others.max(-1, keepdims=True)
    return own - (top[..., 0] + np.log(np.exp(others - top).sum(-1)))


class Roc(NamedTuple):
    fpr: np.ndarray  # (T,) increasing, from 0 to 1
    tpr: np.ndarray
    thresholds: np.ndarray  # decide "positive" when the statistic >= threshold (+inf: never)
    auc: float


def _check_statistic(statistic, positive):
    s = np.asarray(statistic, np.float64).ravel()
    p = np.asarray(positive).ravel()
    if p.dtype != bool or p.shape != s.shape:
        raise ValueError(f"argument `positive`: expected booleans, one per statistic ({s.size}); got {p.dtype} "
                         f"of size {p.size}")
    if not (p.any() and (~p).any()):
        raise ValueError("argument `positive`: expected both positives and negatives; got one class only")
    if not np.all(np.isfinite(s)):
        raise ValueError("argument `statistic`: expected finite values; got NaN or inf")
    return s, p


def auc(statistic, positive) -> float:
    r"""P(s+ > s-) + P(s+ = s-) / 2 over positive/negative pairs (Mann-Whitney, ties halved).

    .. math::
        \mathrm{AUC} = \frac{1}{n_+ n_-} \sum_{i \in +} \sum_{j \in -}
            \big([s_i > s_j] + \tfrac12 [s_i = s_j]\big)

    Parameters
    ----------
    statistic : (n,) array_like
        Finite scores; larger means more likely positive.
    positive : (n,) bool array_like
        The true classes; both must occur.

    Returns
    -------
    float
        The area under the ROC curve, in [0, 1]; 0.5 is chance.

    Raises
    ------
    ValueError
        If ``positive`` is not one boolean per statistic with both classes, or a statistic
        is not finite.

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax import audit
    >>> statistic = np.array([0.1, 0.4, 0.35, 0.8])
    >>> positive = np.array([False, False, True, True])
    >>> audit.auc(statistic, positive)  # 3 of the 4 pairs ordered correctly
    0.75
    >>> audit.auc(np.zeros(4), positive)  # all tied: chance
    0.5
    """
    s, p = _check_statistic(statistic, positive)
    ranks = rankdata(s)  # average ranks: ties count one half
    n_pos, n_neg = p.sum(), (~p).sum()
    return float((ranks[p].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc(statistic, positive) -> Roc:
    r"""The ROC curve of the rule "positive iff statistic >= t" over every distinct t (larger
    statistic = more likely positive), and its area :func:`auc`.

    .. math::
        \mathrm{TPR}(t) = \frac{\#\{i \in + : s_i \ge t\}}{n_+}, \qquad
        \mathrm{FPR}(t) = \frac{\#\{i \in - : s_i \ge t\}}{n_-}

    Parameters
    ----------
    statistic : (n,) array_like
        Finite scores.
    positive : (n,) bool array_like
        The true classes; both must occur.

    Returns
    -------
    Roc
        ``fpr``, ``tpr`` and ``thresholds`` of shape (T,) (T - 1 distinct values; the first
        threshold, +inf, decides nothing positive) and ``auc``.

    Raises
    ------
    ValueError
        As :func:`auc`.

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax import audit
    >>> statistic = np.array([0.1, 0.4, 0.35, 0.8])
    >>> positive = np.array([False, False, True, True])
    >>> curve = audit.roc(statistic, positive)
    >>> curve.fpr.tolist(), curve.tpr.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    >>> curve.thresholds.tolist(), curve.auc
    ([inf, 0.8, 0.4, 0.35, 0.1], 0.75)
    """
    s, p = _check_statistic(statistic, positive)
    order = np.argsort(-s, kind="stable")
    s, p = s[order], p[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # the last row of each tied group
    tp, fp = np.cumsum(p)[last], np.cumsum(~p)[last]
    tpr = np.r_[0.0, tp / p.sum()]
    fpr = np.r_[0.0, fp / (~p).sum()]
    return Roc(fpr, tpr, np.r_[np.inf, s[last]], auc(s, p))


def tpr_at_fpr(curve: Roc, fpr: float) -> float:
    r"""The largest true positive rate of ``curve`` at a false positive rate <= ``fpr``.

    .. math::
        \max \{\mathrm{TPR}(t) : \mathrm{FPR}(t) \le \mathrm{fpr}\}

    Parameters
    ----------
    curve : Roc
        From :func:`roc`.
    fpr : float
        The false positive rate allowed, in [0, 1].

    Returns
    -------
    float
        In [0, 1].

    Raises
    ------
    ValueError
        If ``fpr`` is not in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax import audit
    >>> statistic = np.array([0.1, 0.4, 0.35, 0.8])
    >>> positive = np.array([False, False, True, True])
    >>> curve = audit.roc(statistic, positive)
    >>> audit.tpr_at_fpr(curve, 0.0), audit.tpr_at_fpr(curve, 0.5)
    (0.5, 1.0)
    >>> audit.tpr_at_fpr(curve, 1.5)
    Traceback (most recent call last):
    ...
    ValueError: argument `fpr`: expected a rate in [0, 1]; got 1.5
    """
    if not 0 <= fpr <= 1:
        raise ValueError(f"argument `fpr`: expected a rate in [0, 1]; got {fpr!r}")
    return float(curve.tpr[curve.fpr <= fpr].max())


def gaussian_log_lr(target, in_scores, out_scores, *, min_std: float = 1e-3):
    r"""Per example, :math:`\log N(s; \mu_{in}, \sigma_{in}) - \log N(s; \mu_{out}, \sigma_{out})`.

    ``in_scores`` (a, n), ``out_scores`` (b, n): the shadow samples (axis 0 = models), their mean
    and standard deviation (ddof 1) per example, the deviations floored at ``min_std`` (a sample
    of equal scores would otherwise give a zero variance); ``target`` (..., n) scores to classify.

    .. math::
        \Lambda(s) = \log\frac{\sigma_{out}}{\sigma_{in}}
            - \frac{(s - \mu_{in})^2}{2\sigma_{in}^2} + \frac{(s - \mu_{out})^2}{2\sigma_{out}^2}

    (U-LiRA's test, Hayes et al. 2024, arXiv 2403.01218.)

    Parameters
    ----------
    target : (..., n) array_like
        Scores to classify, one per example along the last axis.
    in_scores : (a, n) array_like
        Shadow scores of models that saw (and unlearned) each example, a >= 2.
    out_scores : (b, n) array_like
        Shadow scores of models that never saw it, b >= 2.
    min_std : float, optional
        Floor of the fitted standard deviations.

    Returns
    -------
    numpy.ndarray
        :math:`\Lambda`, of the shape of ``target``; > 0 leans "in".

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax import audit
    >>> in_scores = np.array([[0.9, -0.1], [1.1, 0.1], [1.0, 0.0]])  # means (1, 0), sd 0.1
    >>> out_scores = np.array([[-1.0, -1.1], [-0.9, -0.9], [-1.1, -1.0]])  # means (-1, -1), sd 0.1
    >>> [round(v, 6) for v in audit.gaussian_log_lr(np.array([1.0, -1.0]), in_scores, out_scores).tolist()]
    [200.0, -50.0]
    """
    t = np.asarray(target, np.float64)
    return _gaussian_lr(t, *_fit(in_scores, min_std), *_fit(out_scores, min_std))


def _fit(scores, min_std):
    s = np.asarray(scores, np.float64)
    return s.mean(0), np.maximum(s.std(0, ddof=1), min_std)


def _gaussian_lr(t, mu_in, sd_in, mu_out, sd_out):
    log_n = lambda mu, sd: -0.5 * ((t - mu) / sd) ** 2 - np.log(sd)  # the 1/sqrt(2 pi) cancels
    return log_n(mu_in, sd_in) - log_n(mu_out, sd_out)


class ULira(NamedTuple):
    statistic: np.ndarray  # the log likelihood ratio of every attacked (target model, example) pair
    positive: np.ndarray  # True: the target model unlearned the example
    roc: Roc
    auc: float
    auc_low: float  # 95% percentile bootstrap over target models and examples
    auc_high: float
    accuracy: float  # of the best threshold
    tpr_at_1pct: float
    tpr_at_01pct: float


def ulira(scores, unlearned, out, shadow, *, min_std: float = 1e-3, bootstrap: int = 200, seed: int = 0) -> ULira:
    r"""U-LiRA (Hayes et al., arXiv 2403.01218): per-example Gaussian likelihood-ratio attack.

    ``scores`` (B, n): example i's score under model b. ``unlearned`` (B, n): model b was trained
    on x_i and unlearned it; ``out`` (B, n): x_i was never in model b's training set (the two
    disjoint). ``shadow`` (B,): the models whose scores fit example i's two Gaussians; every
    other model is a target, and each target pair that is unlearned or out is one decision
    (positive = unlearned). The AUC's 95% interval is a percentile bootstrap (``bootstrap``
    draws of ``seed``) that resamples target models and examples together, since decisions
    share both; the shadow fits stay fixed.

    .. math::
        \Lambda_{bi} = \log N(s_{bi}; \mu^{u}_i, \sigma^{u}_i) - \log N(s_{bi}; \mu^{o}_i, \sigma^{o}_i)

    with :math:`(\mu^u_i, \sigma^u_i)` fitted on the shadow models that unlearned x_i and
    :math:`(\mu^o_i, \sigma^o_i)` on those that never saw it; the decisions are ranked by
    :math:`\Lambda` for the ROC. After exact unlearning the two populations are equal in
    distribution and the AUC is 0.5 up to sampling noise.

    Parameters
    ----------
    scores : (B, n) array_like
        Example i's score under model b, finite.
    unlearned : (B, n) bool array_like
        Model b was trained on x_i and unlearned it.
    out : (B, n) bool array_like
        x_i was never in model b's training set (disjoint from ``unlearned``).
    shadow : (B,) bool array_like
        The shadow models; the others are targets.
    min_std : float, optional
        Floor of the fitted standard deviations.
    bootstrap : int, optional
        Bootstrap draws of the AUC interval.
    seed : int, optional
        Of the bootstrap.

    Returns
    -------
    ULira
        The attacked pairs' statistics and classes, the ROC, the AUC with its 95% interval,
        the best threshold's accuracy and the TPR at 1% and 0.1% FPR.

    Raises
    ------
    ValueError
        If a mask does not match ``scores``, ``unlearned`` and ``out`` overlap, a score is not
        finite, an example has fewer than 2 shadow models on a side, or no target model is on
        one side.

    Examples
    --------
    Eight models, four examples; models 0, 2, 4, 6 unlearned every example, the others never
    saw them; models 0-5 are shadows, 6 and 7 the targets (8 decisions).

    >>> import numpy as np
    >>> from muso_jax import audit
    >>> unlearned = np.zeros((8, 4), bool)
    >>> unlearned[0::2] = True
    >>> shadow = np.arange(8) < 6
    >>> noise = np.random.default_rng(0).normal(size=(8, 4))
    >>> leaky = audit.ulira(noise + 4.0 * unlearned, unlearned, ~unlearned, shadow)  # inexact
    >>> leaky.statistic.shape, leaky.auc, leaky.accuracy
    ((8,), 1.0, 1.0)
    >>> exact = audit.ulira(noise, unlearned, ~unlearned, shadow)  # one distribution
    >>> bool(exact.auc_low <= 0.5 <= exact.auc_high)
    True
    """
    s = np.asarray(scores, np.float64)
    u, o, sh = np.asarray(unlearned), np.asarray(out), np.asarray(shadow)
    if s.ndim != 2:
        raise ValueError(f"argument `scores`: expected a (models, examples) array; got shape {s.shape}")
    for name, m in (("unlearned", u), ("out", o)):
        if m.shape != s.shape or m.dtype != bool:
            raise ValueError(f"argument `{name}`: expected booleans of the shape of `scores` {s.shape}; got "
                             f"{m.dtype} of shape {m.shape}")
    if sh.shape != (s.shape[0],) or sh.dtype != bool:
        raise ValueError(f"argument `shadow`: expected ({s.shape[0]},) booleans, one per model; got {sh.dtype} of "
                         f"shape {sh.shape}")
    if (u & o).any():
        raise ValueError("argument `out`: expected no pair both unlearned and out; got an overlap")
    if not np.all(np.isfinite(s)):
        raise ValueError("argument `scores`: expected finite scores; got NaN or inf")
    fits = []
    for name, m in (("unlearned", u), ("out", o)):
        k = (m & sh[:, None]).sum(0)
        if k.min() < 2:
            raise ValueError(f"argument `{name}`: expected at least 2 shadow models per example on each side; got "
                             f"{k.min()} for example {int(k.argmin())}")
        w = m & sh[:, None]
        mu = (s * w).sum(0) / k
        var = (((s - mu) ** 2) * w).sum(0) / (k - 1)
        fits.append((mu, np.maximum(np.sqrt(var), min_std)))
    stat = _gaussian_lr(s, *fits[0], *fits[1])
    attacked = ~sh[:, None] & (u | o)
    if not (attacked & u).any() or not (attacked & o).any():
        raise ValueError("argument `shadow`: expected target (non-shadow) models on both sides; got none")
    curve = roc(stat[attacked], u[attacked])
    n_pos, n_neg = (attacked & u).sum(), (attacked & o).sum()
    accuracy = float(np.max((curve.tpr * n_pos + (1 - curve.fpr) * n_neg) / (n_pos + n_neg)))
    # Decisions share a target model (its start moves all its scores) and an example (its two
    # Gaussians): resample both, target models and examples independently (a two-way,
    # "pigeonhole" bootstrap, Owen 2007, Ann. Appl. Stat. 1(2)), which errs on the wide side.
    rng = np.random.default_rng(seed)
    targets = np.flatnonzero(~sh)
    draws = []
    for _ in range(bootstrap):
        rows = targets[rng.integers(0, targets.size, targets.size)]
        cols = rng.integers(0, s.shape[1], s.shape[1])
        a, lab = attacked[np.ix_(rows, cols)], u[np.ix_(rows, cols)]
        if (a & lab).any() and (a & ~lab).any():
            draws.append(auc(stat[np.ix_(rows, cols)][a], lab[a]))
    low, high = np.percentile(draws, [2.5, 97.5]) if draws else (np.nan, np.nan)
    return ULira(stat[attacked], u[attacked], curve, curve.auc, float(low), float(high), accuracy,
                 tpr_at_fpr(curve, 0.01), tpr_at_fpr(curve, 0.001))


def epsilon_from_rates(fpr, fnr, *, delta: float = 1e-5):
    r"""The epsilon of an (epsilon, delta) guarantee that a rule with rates ``fpr``, ``fnr`` refutes:

    .. math:: \epsilon = \max\{\log(1 - \delta - \mathrm{FPR}) - \log \mathrm{FNR},\;
              \log(1 - \delta - \mathrm{FNR}) - \log \mathrm{FPR}\}

    (Kairouz et al. 2015's hypothesis-testing view of DP; the challenge organizers' metric note,
    Eq. (1) and Algorithm 1). As there, a rule with exactly one zero rate is discarded (NaN: with
    a few hundred models such a rule is read as an artifact of the sample), both rates zero give
    +inf (perfect separation), and a term whose ``1 - delta - rate`` is not positive is ignored.

    Parameters
    ----------
    fpr, fnr : array_like
        False positive and false negative rates in [0, 1], of one shape.
    delta : float, optional
        The delta of the guarantee.

    Returns
    -------
    numpy.ndarray
        Epsilon, of their shape: NaN for a discarded rule, +inf for perfect separation.

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax import audit
    >>> fpr, fnr = np.array([0.1, 0.0, 0.0]), np.array([0.2, 0.0, 0.5])
    >>> audit.epsilon_from_rates(fpr, fnr, delta=0.0).round(6).tolist()  # log(0.8 / 0.1), inf, nan
    [2.079442, inf, nan]
    """
    fpr, fnr = np.asarray(fpr, np.float64), np.asarray(fnr, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(1 - delta - fpr) - np.log(fnr)
        b = np.log(1 - delta - fnr) - np.log(fpr)
        eps = np.fmax(a, b)  # NaN only when both are
    eps = np.where((fpr == 0) ^ (fnr == 0), np.nan, eps)
    return np.where((fpr == 0) & (fnr == 0), np.inf, eps)


def per_example_epsilon(unlearned_scores, retrained_scores, *, delta: float = 1e-5, cap: float = EPSILON_CAP):
    r"""Per example, the largest :func:`epsilon_from_rates` over every single-threshold rule
    ("unlearned iff s > t", and "iff s <= t") and every double-threshold rule ("iff t1 < s <= t2",
    and its complement) on the two samples, at least 0, at most ``cap`` (an infinite epsilon,
    perfect separation, is reported as ``cap``: the top of the challenge's range [0, 6.5)).
    The strongest rule is kept, as in the organizers' Algorithm 1; the rates are the empirical
    ones (no confidence bound), as the challenge scored its leaderboard.

    ``unlearned_scores`` (n, a), ``retrained_scores`` (n, b): example i's scores under a unlearned
    and b retrained models (positive = unlearned).

    .. math::
        \epsilon_i = \min\Big(\mathrm{cap},\ \max\big(0,\ \max_{\text{rules}}
            \epsilon(\mathrm{FPR}, \mathrm{FNR})\big)\Big)

    with :math:`\epsilon(\cdot)` of :func:`epsilon_from_rates` (Triantafillou et al. 2024,
    arXiv 2406.09073, the NeurIPS 2023 unlearning challenge).

    Parameters
    ----------
    unlearned_scores : (n, a) array_like
        Finite scores of each example under a unlearned models.
    retrained_scores : (n, b) array_like
        Under b retrained models.
    delta : float, optional
        In [0, 1).
    cap : float, optional
        The value reported for an infinite epsilon.

    Returns
    -------
    numpy.ndarray
        (n,) epsilons in [0, cap].

    Raises
    ------
    ValueError
        If the shapes do not match, a score is not finite or ``delta`` is not in [0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax import audit
    >>> unlearned = np.array([[0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0]])
    >>> retrained = np.array([[0.0, 1.0, 2.0, 3.0], [10.0, 11.0, 12.0, 13.0]])
    >>> audit.per_example_epsilon(unlearned, retrained).tolist()  # same samples; separated
    [0.0, 6.5]
    >>> audit.per_example_epsilon(unlearned, retrained[:1])
    Traceback (most recent call last):
    ...
    ValueError: argument `retrained_scores`: expected (n, b) samples for the n examples of `unlearned_scores` (2, 4); got shape (1, 4)
    """
    u = np.asarray(unlearned_scores, np.float64)
    r = np.asarray(retrained_scores, np.float64)
    if u.ndim != 2 or r.ndim != 2 or u.shape[0] != r.shape[0]:
        raise ValueError(f"argument `retrained_scores`: expected (n, b) samples for the n examples of "
                         f"`unlearned_scores` {u.shape}; got shape {r.shape}")
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(r))):
        raise ValueError("argument `unlearned_scores`: expected finite scores; got NaN or inf")
    if not 0 <= delta < 1:
        raise ValueError(f"argument `delta`: expected a number in [0, 1); got {delta!r}")
    out = np.empty(u.shape[0])
    for i in range(u.shape[0]):
        t = np.r_[-np.inf, np.unique(np.r_[u[i], r[i]])]
        cu = np.searchsorted(np.sort(u[i]), t, side="right") / u.shape[1]  # share <= t
        cr = np.searchsorted(np.sort(r[i]), t, side="right") / r.shape[1]
        lo, hi = np.triu_indices(t.size, 1)  # every interval (t_lo, t_hi]; t_lo = -inf or t_hi = max: one threshold
        tpr, fpr = cu[hi] - cu[lo], cr[hi] - cr[lo]
        eps = np.concatenate([epsilon_from_rates(fpr, 1 - tpr, delta=delta),
                              epsilon_from_rates(1 - fpr, tpr, delta=delta)])  # inside, outside
        out[i] = np.nanmax(np.r_[0.0, eps])
    return np.minimum(out, cap)


def epsilon_points(epsilons, *, bucket: float = BUCKET, bins: int = BINS):
    r"""The challenge's points per example, :math:`H(\epsilon) = 2 / 2^{k(\epsilon)}` with
    :math:`k = \min(\lfloor \epsilon / \text{bucket} \rfloor + 1,\ \text{bins})` the bucket
    index: 1 below ``bucket``, halving with each bucket, the last bucket open above
    (Triantafillou et al. 2024, arXiv 2406.09073; organizers' metric note, Sec. 4: width 0.5,
    13 buckets on [0, 6.5)). An infinite epsilon (perfect separation) falls in the last bucket.

    Parameters
    ----------
    epsilons : (n,) array_like
        Per-example epsilons >= 0 (inf allowed, NaN not).
    bucket : float, optional
        Bucket width > 0.
    bins : int, optional
        Number of buckets >= 1.

    Returns
    -------
    numpy.ndarray
        (n,) points in (0, 1].

    Raises
    ------
    ValueError
        If ``epsilons`` is empty, not 1-D, or holds NaN or negative values, or ``bins`` /
        ``bucket`` are not valid.

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax import audit
    >>> audit.epsilon_points(np.array([0.0, 0.6, 6.5, np.inf])).tolist()  # buckets 1, 2, 13, 13
    [1.0, 0.5, 0.000244140625, 0.000244140625]
    """
    e = np.asarray(epsilons, np.float64)
    if e.ndim != 1 or e.size == 0 or np.any(np.isnan(e)) or np.any(e < 0):
        raise ValueError(f"argument `epsilons`: expected a non-empty 1-D array of values >= 0; got shape {e.shape}"
                         f"{' with NaN or negative values' if e.size and (np.any(np.isnan(e)) or np.any(e < 0)) else ''}")
    if not (isinstance(bins, int) and bins >= 1) or not bucket > 0:
        raise ValueError(f"argument `bins`/`bucket`: expected an integer >= 1 and a width > 0; got {bins!r}, {bucket!r}")
    k = np.minimum(np.floor(np.minimum(e, bucket * bins) / bucket) + 1, bins)
    return 2.0 / 2.0 ** k


def forgetting_quality(epsilons, *, bucket: float = BUCKET, bins: int = BINS) -> float:
    r"""The challenge's forgetting quality :math:`F = \frac1n \sum_i H(\epsilon_i)`, the mean of
    :func:`epsilon_points`: 1 when every example is in the first bucket.

    Parameters
    ----------
    epsilons : (n,) array_like
        Per-example epsilons >= 0.
    bucket : float, optional
        Bucket width > 0.
    bins : int, optional
        Number of buckets >= 1.

    Returns
    -------
    float
        F, in (0, 1].

    Raises
    ------
    ValueError
        As :func:`epsilon_points`.

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax import audit
    >>> audit.forgetting_quality(np.array([0.0, 0.0, 0.6, 0.6]))  # (1 + 1 + 0.5 + 0.5) / 4
    0.75
    """
    return float(np.mean(epsilon_points(epsilons, bucket=bucket, bins=bins)))


def challenge_score(quality, ra_unlearned, ra_retrained, ta_unlearned, ta_retrained) -> float:
    r"""The challenge's final score :math:`F \cdot \frac{RA_U}{RA_R} \cdot \frac{TA_U}{TA_R}`: the
    forgetting quality times the retain and test accuracy of the unlearned models relative to
    the retrained ones (mean accuracies, any unit).

    Parameters
    ----------
    quality : float
        F, from :func:`forgetting_quality`.
    ra_unlearned, ra_retrained : float
        Mean retain accuracies of the unlearned and retrained models (the latter > 0).
    ta_unlearned, ta_retrained : float
        Mean test accuracies (the latter > 0).

    Returns
    -------
    float
        The score.

    Raises
    ------
    ValueError
        If a retrained accuracy is not positive.

    Examples
    --------
    >>> from muso_jax import audit
    >>> round(audit.challenge_score(0.75, 99.0, 100.0, 90.0, 100.0), 6)  # 0.75 * 0.99 * 0.9
    0.66825
    >>> audit.challenge_score(0.75, 99.0, 0.0, 90.0, 100.0)
    Traceback (most recent call last):
    ...
    ValueError: argument `ra_retrained`: expected an accuracy > 0; got 0.0
    """
    for name, v in (("ra_retrained", ra_retrained), ("ta_retrained", ta_retrained)):
        if not v > 0:
            raise ValueError(f"argument `{name}`: expected an accuracy > 0; got {v!r}")
    return float(quality * (ra_unlearned / ra_retrained) * (ta_unlearned / ta_retrained))
