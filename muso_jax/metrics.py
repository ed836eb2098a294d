r"""The field's unlearning metrics, computed from model outputs (logits), all in percent.

Protocol (docs/theory.md, section 5): a model is scored on the retain set D_r, the forget set D_f
and the test set. Accuracies follow SalUn (Fan et al. 2024, arXiv 2310.12508): TA on the test
set, RA on D_r, FA on D_f and UA = 100 - FA. Membership inference (MIA) comes in two
conventions, kept apart here because papers report them under the same name:

* ``mia_entropy``: MUSO (arXiv 2410.08557) and NatMU code; % of D_f called *member*.
* ``mia_efficacy``: SalUn and l1-sparse (Jia et al. 2023, arXiv 2304.04934) code; % of D_f
  called *non-member*.

Both attacks take D_r as members and the test set as non-members, fit a classifier on one
scalar per row, and score D_f. The attack classifiers come from scikit-learn; everything
else is NumPy/JAX. ``avg_gap`` and ``param_distance`` compare against the Retrain model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import jax
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from muso_jax import _checks

DEFINITIONS: dict[str, str] = {
    "TA": "% of test rows with argmax(logits) == label: test accuracy",
    "RA": "% of D_r rows with argmax(logits) == label: retain accuracy",
    "FA": "% of D_f rows with argmax(logits) == label: forget accuracy",
    "UA": "100 - FA: unlearning accuracy (SalUn convention)",
    "MIA_entropy": (
        "% of D_f predicted member by class-balanced logistic regression on softmax entropy, "
        "fit on D_r (member) vs test (non-member) [MUSO/NatMU code]"
    ),
    "MIA_efficacy": (
        "% of D_f predicted NON-member by an RBF SVC (C=3, gamma='auto') on true-label "
        "confidence, fit on a random D_r subset of test size (member) vs test (non-member) "
        "[SalUn / l1-sparse code]"
    ),
}


def _logits(name: str, logits) -> np.ndarray:
    return np.asarray(_checks.array(name, logits, ndim=(2,), what="(N, K) logit array"))


def _labels(name: str, labels, logits: np.ndarray, logits_name: str) -> np.ndarray:
    """Integer class labels of shape (N,), N matching the logits, each in [0, K)."""
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"argument `{name}`: expected a 1-D integer label array; got {_checks._describe(y)}"
        )
    _checks.same(logits_name, logits.shape[0], name, y.shape[0], "number of rows")
    k = logits.shape[1]
    if y.min() < 0 or y.max() >= k:
        raise ValueError(
            f"argument `{name}`: expected labels in [0, {k}) for K = {k} logits; "
            f"got min {y.min()}, max {y.max()}"
        )
    return y


def _same_width(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    _checks.same(name_a, a.shape[1], name_b, b.shape[1], "number of classes K =")


def _labelled_sets(logit_names, logits, label_names, labels):
    """Check (logits, labels) pairs: finite (N, K) logits with one K, labels in [0, K)."""
    lgs = [_logits(name, z) for name, z in zip(logit_names, logits)]
    for name, lg in zip(logit_names[1:], lgs[1:]):
        _same_width(logit_names[0], lgs[0], name, lg)
    ys = [_labels(name, y, lg, lname) for name, y, lg, lname in zip(label_names, labels, lgs, logit_names)]
    return lgs, ys


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return 100.0 * float(np.mean(np.argmax(logits, axis=1) == labels))


def _entropy(logits: np.ndarray) -> np.ndarray:
    # log_softmax stays finite for finite logits, so p log p is 0 (not NaN) where p underflows.
    log_p = np.asarray(jax.nn.log_softmax(logits, axis=1))
    return -np.sum(np.exp(log_p) * log_p, axis=1)


def _confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    log_p = np.asarray(jax.nn.log_softmax(logits, axis=1))
    return np.exp(np.take_along_axis(log_p, labels[:, None], axis=1)[:, 0])


def _subset(n: int, size: int, seed) -> np.ndarray:
    """Row indices of a uniform random subset of ``min(n, size)`` of ``n`` rows."""
    return np.random.default_rng(seed).choice(n, size=min(n, size), replace=False)


def _member_rate(clf, s_in: np.ndarray, s_out: np.ndarray, s_target: np.ndarray) -> float:
    """Fit ``clf`` on one score per row (1 = member, 0 = non-member); % of targets called member."""
    x = np.concatenate([s_in, s_out])[:, None]
    y = np.concatenate([np.ones(s_in.shape[0]), np.zeros(s_out.shape[0])])
    return 100.0 * float(np.mean(clf.fit(x, y).predict(s_target[:, None])))


def _entropy_attack(lg_r, lg_t, lg_f, subsample: bool, seed) -> float:
    if subsample:
        lg_r = lg_r[_subset(lg_r.shape[0], lg_t.shape[0], seed)]
    clf = LogisticRegression(class_weight="balanced", solver="lbfgs")
    return _member_rate(clf, _entropy(lg_r), _entropy(lg_t), _entropy(lg_f))


def _confidence_attack(lg_r, y_r, lg_t, y_t, lg_f, y_f, seed) -> float:
    members = _subset(lg_r.shape[0], lg_t.shape[0], seed)
    clf = SVC(C=3, gamma="auto", kernel="rbf")
    conf_r = _confidence(lg_r[members], y_r[members])
    return 100.0 - _member_rate(clf, conf_r, _confidence(lg_t, y_t), _confidence(lg_f, y_f))


def accuracy(logits, labels) -> float:
    r"""Percent of rows whose top logit is the label: :math:`100\,\mathrm{mean}_i[\arg\max_k z_{ik} = y_i]`.

    ``logits`` (N, K) finite, ``labels`` (N,) integers in [0, K). Ties go to the lowest class
    index. This is TA / RA / FA depending on the rows passed (SalUn, arXiv 2310.12508).

    Parameters
    ----------
    logits : (N, K) array
        Finite logits.
    labels : (N,) int array
        Labels in [0, K).

    Returns
    -------
    float
        The accuracy in percent, in [0, 100].

    Raises
    ------
    ValueError
        If ``logits`` is not finite (N, K) or ``labels`` not N integers in [0, K).

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax import metrics
    >>> logits = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 2.0, 0.0]])
    >>> metrics.accuracy(logits, np.array([0, 1, 2, 0]))
    75.0
    >>> metrics.accuracy(logits, np.array([0, 1, 2, 3]))
    Traceback (most recent call last):
    ...
    ValueError: argument `labels`: expected labels in [0, 3) for K = 3 logits; got min 0, max 3
    """
    lg = _logits("logits", logits)
    return _accuracy(lg, _labels("labels", labels, lg, "logits"))


def mia_entropy(logits_retain, logits_test, logits_forget, *, subsample: bool = False, seed=0) -> float:
    r"""Entropy MIA: percent of D_f rows a membership attack calls *member* (MUSO / NatMU code).

    Feature: the softmax entropy :math:`H(z) = -\sum_k p_k \log p_k`, :math:`p = \mathrm{softmax}(z)`,
    one scalar per row. Attack: ``LogisticRegression(class_weight="balanced", solver="lbfgs")``
    fit on D_r rows (label 1, member) against test rows (label 0, non-member), then applied to
    D_f. Returns ``100 * mean(predict(H(z_f)) == 1)``; after exact unlearning it should match
    the Retrain model's value, not 0. As in the MUSO (arXiv 2410.08557) code, which reuses
    NatMU's ``get_membership_attack_prob``, the fit uses all of D_r and balances the classes
    by weighting only. ``subsample=True`` instead fits on a uniform random subset of D_r of
    the test-set size (all of D_r if smaller), drawn with ``np.random.default_rng(seed)``;
    ``seed`` is used only then.

    Shapes: (N_r, K), (N_t, K), (N_f, K) finite logits with one K.

    Parameters
    ----------
    logits_retain : (N_r, K) array
        The model's logits on D_r (members).
    logits_test : (N_t, K) array
        On the test set (non-members).
    logits_forget : (N_f, K) array
        On D_f (the rows scored).
    subsample : bool, optional
        Fit on a random D_r subset of the test-set size instead of all of D_r.
    seed : int, optional
        Of that subset.

    Returns
    -------
    float
        Percent of D_f called member, in [0, 100].

    Raises
    ------
    ValueError
        If a logit array is not finite (N, K) or the K differ.

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax import metrics
    >>> rng = np.random.default_rng(0)
    >>> y_r = y_t = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    >>> logits_r = 6 * np.eye(3)[y_r] + 0.3 * rng.normal(size=(8, 3))  # confident on D_r
    >>> logits_t = 0.5 * rng.normal(size=(8, 3))  # unsure on the test set
    >>> logits_f = 0.5 * rng.normal(size=(4, 3))  # D_f looks like test data: forgotten
    >>> y_f = y_r[:4]
    >>> metrics.mia_entropy(logits_r, logits_t, logits_f)
    0.0
    >>> metrics.mia_entropy(logits_r, logits_t, logits_r[:4])  # rows still remembered
    100.0
    """
    lg_r = _logits("logits_retain", logits_retain)
    lg_t = _logits("logits_test", logits_test)
    lg_f = _logits("logits_forget", logits_forget)
    _same_width("logits_retain", lg_r, "logits_test", lg_t)
    _same_width("logits_retain", lg_r, "logits_forget", lg_f)
    return _entropy_attack(lg_r, lg_t, lg_f, subsample, seed)


def mia_efficacy(
    logits_retain, labels_retain, logits_test, labels_test, logits_forget, labels_forget, *, seed=0
) -> float:
    r"""MIA-efficacy: percent of D_f rows a confidence attack calls *non-member* (SalUn / l1-sparse).

    Feature: the confidence :math:`p_{y}(z) = \mathrm{softmax}(z)_y` of the true label, one
    scalar per row. Attack: ``SVC(C=3, gamma="auto", kernel="rbf")`` fit on members, a uniform
    random subset of D_r as large as the test set (all of D_r if smaller), drawn with
    ``np.random.default_rng(seed)``, against all test rows as non-members; then applied to
    D_f. Returns ``100 * mean(predict(p_y(z_f)) == 0)``.

    Source: Fan et al. 2024 (SalUn, arXiv 2310.12508), after Jia et al. 2023 (l1-sparse,
    arXiv 2304.04934); code ``Classification/evaluation/SVC_MIA.py`` (``SVC_fit_predict``, the
    ``"confidence"`` entry) called from ``main_forget.py`` as ``SVC_MIA_forget_efficacy`` with
    ``target_train=None, target_test=forget``. One deliberate difference: that code takes the
    *first* ``len(test)`` rows of D_r in dataset order; here the subset is random and seeded,
    which matches it in distribution when the dataset order carries no information.

    Parameters
    ----------
    logits_retain : (N_r, K) array
        The model's logits on D_r.
    labels_retain : (N_r,) int array
        Their labels, in [0, K).
    logits_test : (N_t, K) array
        On the test set.
    labels_test : (N_t,) int array
        Their labels.
    logits_forget : (N_f, K) array
        On D_f.
    labels_forget : (N_f,) int array
        Their labels.
    seed : int, optional
        Of the member subset.

    Returns
    -------
    float
        Percent of D_f called non-member, in [0, 100].

    Raises
    ------
    ValueError
        If a logit array is not finite (N, K), the K differ, or labels do not match.

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax import metrics
    >>> rng = np.random.default_rng(0)
    >>> y_r = y_t = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    >>> logits_r = 6 * np.eye(3)[y_r] + 0.3 * rng.normal(size=(8, 3))  # confident on D_r
    >>> logits_t = 0.5 * rng.normal(size=(8, 3))  # unsure on the test set
    >>> logits_f = 0.5 * rng.normal(size=(4, 3))  # D_f looks like test data: forgotten
    >>> y_f = y_r[:4]
    >>> metrics.mia_efficacy(logits_r, y_r, logits_t, y_t, logits_f, y_f)
    100.0
    >>> metrics.mia_efficacy(logits_r, y_r, logits_t, y_t, logits_r[:4], y_r[:4])
    0.0
    """
    (lg_r, lg_t, lg_f), (y_r, y_t, y_f) = _labelled_sets(
        ("logits_retain", "logits_test", "logits_forget"), (logits_retain, logits_test, logits_forget),
        ("labels_retain", "labels_test", "labels_forget"), (labels_retain, labels_test, labels_forget))
    return _confidence_attack(lg_r, y_r, lg_t, y_t, lg_f, y_f, seed)


def protocol_metrics(
    logits_train_retain, y_retain, logits_forget, y_forget, logits_test, y_test, *, seed=0
) -> dict[str, float]:
    """All protocol metrics of one model, in percent; keys and definitions as in ``DEFINITIONS``.

    TA, RA, FA and UA = 100 - FA follow SalUn (arXiv 2310.12508); ``MIA_entropy`` is
    :func:`mia_entropy` (MUSO, arXiv 2410.08557; full D_r) and ``MIA_efficacy`` is
    :func:`mia_efficacy` (SalUn / l1-sparse, arXiv 2304.04934; member subset drawn with ``seed``).

    Parameters
    ----------
    logits_train_retain : (N_r, K) array
        Logits on D_r.
    y_retain : (N_r,) int array
        Labels of D_r.
    logits_forget : (N_f, K) array
        Logits on D_f.
    y_forget : (N_f,) int array
        Labels of D_f.
    logits_test : (N_t, K) array
        Logits on the test set.
    y_test : (N_t,) int array
        Labels of the test set.
    seed : int, optional
        Of :func:`mia_efficacy`'s member subset.

    Returns
    -------
    dict of str to float
        ``TA``, ``RA``, ``FA``, ``UA``, ``MIA_entropy`` and ``MIA_efficacy``, in percent.

    Raises
    ------
    ValueError
        If a logit array is not finite (N, K), the K differ, or labels do not match.

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax import metrics
    >>> rng = np.random.default_rng(0)
    >>> y_r = y_t = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    >>> logits_r = 6 * np.eye(3)[y_r] + 0.3 * rng.normal(size=(8, 3))  # confident on D_r
    >>> logits_t = 0.5 * rng.normal(size=(8, 3))  # unsure on the test set
    >>> logits_f = 0.5 * rng.normal(size=(4, 3))  # D_f looks like test data: forgotten
    >>> y_f = y_r[:4]
    >>> metrics.protocol_metrics(logits_r, y_r, logits_f, y_f, logits_t, y_t)
    {'TA': 62.5, 'RA': 100.0, 'FA': 75.0, 'UA': 25.0, 'MIA_entropy': 0.0, 'MIA_efficacy': 100.0}
    """
    (lg_r, lg_f, lg_t), (y_r, y_f, y_t) = _labelled_sets(
        ("logits_train_retain", "logits_forget", "logits_test"), (logits_train_retain, logits_forget, logits_test),
        ("y_retain", "y_forget", "y_test"), (y_retain, y_forget, y_test))
    fa = _accuracy(lg_f, y_f)
    return {
        "TA": _accuracy(lg_t, y_t),
        "RA": _accuracy(lg_r, y_r),
        "FA": fa,
        "UA": 100.0 - fa,
        "MIA_entropy": _entropy_attack(lg_r, lg_t, lg_f, False, seed),
        "MIA_efficacy": _confidence_attack(lg_r, y_r, lg_t, y_t, lg_f, y_f, seed),
    }


def _value(name: str, metrics: Mapping, key) -> float:
    value = float(metrics[key])
    if not math.isfinite(value):
        raise ValueError(f"argument `{name}`: expected a finite value for {key!r}; got {value!r}")
    return value


def avg_gap(metrics: Mapping, reference: Mapping, keys: Iterable) -> float:
    r"""Avg. Gap: :math:`\frac{1}{|S|}\sum_{s \in S} |m_s - r_s|` over the metric names ``keys``.

    ``reference`` is the Retrain model's metrics; smaller is better. The MUSO script
    (arXiv 2410.08557) uses S = (TA, FA, MIA); SalUn (arXiv 2310.12508) uses (UA, RA, TA, MIA).

    Parameters
    ----------
    metrics : mapping of str to float
        The unlearned model's metrics.
    reference : mapping of str to float
        The Retrain model's.
    keys : iterable of str
        The metric names S, each in both mappings with a finite value.

    Returns
    -------
    float
        The mean absolute gap, in the metrics' unit.

    Raises
    ------
    ValueError
        If ``keys`` is a string or empty, a key is missing, or a value is not finite.

    Examples
    --------
    >>> from muso_jax import metrics
    >>> unlearned = {"TA": 90.0, "FA": 80.0, "MIA_entropy": 20.0}
    >>> retrain = {"TA": 91.0, "FA": 77.0, "MIA_entropy": 22.0}
    >>> metrics.avg_gap(unlearned, retrain, ["TA", "FA", "MIA_entropy"])  # (1 + 3 + 2) / 3
    2.0
    >>> metrics.avg_gap(unlearned, retrain, ["UA"])
    Traceback (most recent call last):
    ...
    ValueError: argument `metrics`: expected the keys ['UA']; missing ['UA']
    """
    if isinstance(keys, str):
        raise ValueError(f"argument `keys`: expected an iterable of metric names; got the string {keys!r}")
    keys = list(keys)
    if not keys:
        raise ValueError("argument `keys`: expected at least one metric name; got none")
    for name, table in (("metrics", metrics), ("reference", reference)):
        missing = [k for k in keys if k not in table]
        if missing:
            raise ValueError(f"argument `{name}`: expected the keys {keys}; missing {missing}")
    gaps = [abs(_value("metrics", metrics, k) - _value("reference", reference, k)) for k in keys]
    return sum(gaps) / len(gaps)


def _leaves(name: str, tree) -> list[np.ndarray]:
    leaves = [np.asarray(x, dtype=np.float64) for x in jax.tree.leaves(tree)]
    bad = sum(int(np.sum(~np.isfinite(x))) for x in leaves)
    if bad:
        raise ValueError(f"argument `{name}`: expected finite leaves; got {bad} NaN/inf entries")
    return leaves


def param_distance(params, reference) -> dict[str, float]:
    r"""Distance from ``params`` (e.g. theta_u) to ``reference`` (e.g. theta_r) over a pytree.

    With :math:`a, b` the leaves of both trees flattened and concatenated (M scalars):
    ``{"l2": ||a - b||, "relative": ||a - b|| / ||b||, "per_param": ||a - b||^2 / M}``, the
    absolute, relative and per-parameter distances of docs/theory.md, section 5 (the last is
    MUSO's Delta, arXiv 2410.08557). Computed in float64 on the host. The trees must have
    equal structure and leaf shapes, at least one scalar, and ``reference`` must be nonzero.

    .. math::
        \mathrm{l2} = \|a - b\|, \qquad \mathrm{relative} = \frac{\|a - b\|}{\|b\|}, \qquad
        \mathrm{per\_param} = \frac{\|a - b\|^2}{M}

    Parameters
    ----------
    params : pytree of arrays
        E.g. the unlearned parameters.
    reference : pytree of arrays
        E.g. the retrained ones; same structure and leaf shapes, not all zero.

    Returns
    -------
    dict of str to float
        ``l2``, ``relative`` and ``per_param``.

    Raises
    ------
    ValueError
        If the structures or leaf shapes differ, a leaf is not finite, the trees are empty or
        ``reference`` is zero.

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax import metrics
    >>> theta_u = {"w": np.array([1.0, 2.0]), "b": np.array([0.0])}
    >>> theta_r = {"w": np.array([1.0, 0.0]), "b": np.array([0.0])}
    >>> {k: round(v, 6) for k, v in metrics.param_distance(theta_u, theta_r).items()}
    {'l2': 2.0, 'relative': 2.0, 'per_param': 1.333333}
    """
    struct_a, struct_b = jax.tree.structure(params), jax.tree.structure(reference)
    if struct_a != struct_b:
        raise ValueError(
            f"argument `reference`: expected the pytree structure of `params`, {struct_a}; got {struct_b}"
        )
    a, b = _leaves("params", params), _leaves("reference", reference)
    shapes_a, shapes_b = [x.shape for x in a], [x.shape for x in b]
    if shapes_a != shapes_b:
        raise ValueError(f"argument `reference`: expected leaf shapes {shapes_a}; got {shapes_b}")
    size = sum(x.size for x in a)
    if size == 0:
        raise ValueError("argument `params`: expected at least one scalar; got an empty pytree")
    sq = sum(float(np.sum((x - y) ** 2)) for x, y in zip(a, b))
    ref = math.sqrt(sum(float(np.sum(y**2)) for y in b))
    if ref == 0.0:
        raise ValueError(
            "argument `reference`: expected a nonzero pytree (the relative distance divides by "
            "its norm); got all zeros"
        )
    return {"l2": math.sqrt(sq), "relative": math.sqrt(sq) / ref, "per_param": sq / size}
