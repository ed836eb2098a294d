r"""Statistics over seeds for the unlearning protocol: means with Student-t confidence
intervals, paired differences, and a ranking that marks ties.

With n per-seed values :math:`v_1..v_n` (mean :math:`\bar v`, sample standard deviation
:math:`s` with n - 1 degrees of freedom), the two-sided interval at level 1 - a is

.. math::
    \bar v \pm t_{1 - a/2,\, n-1}\, s / \sqrt{n}

(Student 1908; the textbook interval for a mean of independent draws of a roughly normal
quantity). A *paired* comparison of methods A and B uses the per-seed differences
:math:`d_i = A_i - B_i` on the same seed, split and Original, so the seed-to-seed variation
they share cancels: the interval above applied to the :math:`d_i`. Intervals need n >= 2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats as _scipy_stats


class Interval(NamedTuple):
    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def _values(name: str, values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 2:
        raise ValueError(f"argument `{name}`: expected a 1-D sequence of at least 2 per-seed values (an interval "
                         f"needs n - 1 >= 1 degrees of freedom); got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"argument `{name}`: expected finite values; got {v.tolist()}")
    return v


def _level(level: float) -> float:
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"argument `level`: expected a confidence level in (0, 1), e.g. 0.95; got {level!r}")
    return float(level)


def t_quantile(level: float, dof: int) -> float:
    r"""The two-sided Student-t factor :math:`t_{1 - a/2, dof}` for the level 1 - a.

    .. math::
        P(|T_{\mathrm{dof}}| \le t_{1 - a/2,\,\mathrm{dof}}) = 1 - a

    Parameters
    ----------
    level : float
        The confidence level 1 - a, in (0, 1).
    dof : int
        Degrees of freedom (n - 1 for n values).

    Returns
    -------
    float
        The quantile, > 0.

    Raises
    ------
    ValueError
        If ``level`` is not in (0, 1).

    Examples
    --------
    >>> from muso_jax import stats
    >>> round(stats.t_quantile(0.95, 4), 6)  # five seeds
    2.776445
    >>> round(stats.t_quantile(0.95, 10_000), 2)  # the normal 1.96 in the limit
    1.96
    >>> stats.t_quantile(95, 4)
    Traceback (most recent call last):
    ...
    ValueError: argument `level`: expected a confidence level in (0, 1), e.g. 0.95; got 95
    """
    return float(_scipy_stats.t.ppf(0.5 + _level(level) / 2, dof))


def mean_interval(values, level: float = 0.95) -> Interval:
    r"""Mean and two-sided Student-t interval :math:`\bar v \pm t\, s/\sqrt n` of per-seed values.

    .. math::
        \bar v \pm t_{1 - a/2,\, n-1}\, \frac{s}{\sqrt n}, \qquad
        s^2 = \frac{1}{n - 1} \sum_i (v_i - \bar v)^2

    Parameters
    ----------
    values : (n,) array_like
        Per-seed values, n >= 2, finite.
    level : float, optional
        The confidence level 1 - a, in (0, 1).

    Returns
    -------
    Interval
        ``(mean, low, high, n)``, with ``half_width`` and ``excludes_zero()``.

    Raises
    ------
    ValueError
        If there are fewer than 2 values, a value is not finite or ``level`` is not in (0, 1).

    Examples
    --------
    >>> from muso_jax import stats
    >>> iv = stats.mean_interval([1.0, 2.0, 3.0])  # s = 1, t = 4.302653 at 2 dof
    >>> iv.mean, round(iv.low, 6), round(iv.high, 6), iv.n
    (2.0, -0.484138, 4.484138, 3)
    >>> stats.mean_interval([1.0])
    Traceback (most recent call last):
    ...
    ValueError: argument `values`: expected a 1-D sequence of at least 2 per-seed values ...
    """
    v = _values("values", values)
    n = v.size
    half = t_quantile(level, n - 1) * float(np.std(v, ddof=1)) / math.sqrt(n)
    m = float(np.mean(v))
    return Interval(m, m - half, m + half, n)


def paired_difference(a, b, level: float = 0.95) -> Interval:
    r"""Interval of the mean of :math:`a_i - b_i` over paired seeds (same seed, split, Original).

    .. math::
        \bar d \pm t_{1 - a/2,\, n-1}\, \frac{s_d}{\sqrt n}, \qquad d_i = a_i - b_i

    Parameters
    ----------
    a, b : (n,) array_like
        Per-seed values of two methods on the same n seeds, n >= 2.
    level : float, optional
        The confidence level 1 - a, in (0, 1).

    Returns
    -------
    Interval
        Of the mean difference.

    Raises
    ------
    ValueError
        If ``a`` and ``b`` are not finite sequences of the same length >= 2, or ``level`` is
        not in (0, 1).

    Examples
    --------
    The seeds vary far more than the methods differ; pairing cancels what the seeds share:

    >>> from muso_jax import stats
    >>> a, b = [1.0, 5.0, 9.0], [0.9, 4.8, 8.85]
    >>> stats.mean_interval(a).low < stats.mean_interval(b).high  # unpaired: they overlap
    True
    >>> d = stats.paired_difference(a, b)
    >>> round(d.mean, 6), d.excludes_zero()  # paired: a is larger on every seed
    (0.15, True)
    """
    a, b = _values("a", a), _values("b", b)
    if a.shape != b.shape:
        raise ValueError(f"argument `b`: expected one value per seed of `a` ({a.size}); got {b.size}")
    return mean_interval(a - b, level)


def significance_ranks(per_seed: Mapping[str, Sequence[float]], level: float = 0.95) -> dict[str, int]:
    r"""Rank methods by a smaller-is-better per-seed score, with ties.

    A method's rank is 1 + the number of methods that beat it significantly: whose paired
    difference with it (same seeds) has an interval entirely below 0. Methods that no other
    method beats share rank 1; equal ranks are ties at ``level``.

    .. math::
        \mathrm{rank}(m) = 1 + \#\{o \ne m : \mathrm{high}(\text{paired interval of } o - m) < 0\}

    Parameters
    ----------
    per_seed : mapping of str to (n,) sequence
        Each method's per-seed scores (smaller is better), on the same n >= 2 seeds.
    level : float, optional
        The confidence level of the paired intervals.

    Returns
    -------
    dict of str to int
        Each method's rank, from 1.

    Raises
    ------
    ValueError
        If there is no method, the methods have different numbers of seeds, or a score is
        not finite.

    Examples
    --------
    >>> from muso_jax import stats
    >>> gaps = {"muso": [0.0, 0.1, 0.05], "am": [1.0, 1.3, 1.1], "bt": [1.1, 1.2, 1.2]}
    >>> stats.significance_ranks(gaps)  # am and bt tie behind muso
    {'muso': 1, 'am': 2, 'bt': 2}
    """
    names = list(per_seed)
    if not names:
        raise ValueError("argument `per_seed`: expected at least one method; got none")
    scores = {m: _values(f"per_seed[{m!r}]", per_seed[m]) for m in names}
    sizes = {m: v.size for m, v in scores.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"argument `per_seed`: expected the same seeds for every method; got counts {sizes}")
    return {m: 1 + sum(paired_difference(scores[o], scores[m], level).high < 0 for o in names if o != m)
            for m in names}
