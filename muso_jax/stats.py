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
    """The two-sided Student-t factor :math:`t_{1 - a/2, dof}` for the level 1 - a."""
    return float(_scipy_stats.t.ppf(0.5 + _level(level) / 2, dof))


def mean_interval(values, level: float = 0.95) -> Interval:
    r"""Mean and two-sided Student-t interval :math:`\bar v \pm t\, s/\sqrt n` of per-seed values."""
    v = _values("values", values)
    n = v.size
    half = t_quantile(level, n - 1) * float(np.std(v, ddof=1)) / math.sqrt(n)
    m = float(np.mean(v))
    return Interval(m, m - half, m + half, n)


def paired_difference(a, b, level: float = 0.95) -> Interval:
    r"""Interval of the mean of :math:`a_i - b_i` over paired seeds (same seed, split, Original)."""
    a, b = _values("a", a), _values("b", b)
    if a.shape != b.shape:
        raise ValueError(f"argument `b`: expected one value per seed of `a` ({a.size}); got {b.size}")
    return mean_interval(a - b, level)


def significance_ranks(per_seed: Mapping[str, Sequence[float]], level: float = 0.95) -> dict[str, int]:
    """Rank methods by a smaller-is-better per-seed score, with ties.

    A method's rank is 1 + the number of methods that beat it significantly: whose paired
    difference with it (same seeds) has an interval entirely below 0. Methods that no other
    method beats share rank 1; equal ranks are ties at ``level``.
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
