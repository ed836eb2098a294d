"""Known answers of the seed statistics (muso_jax.stats): intervals computed by hand."""

import math

import numpy as np
import pytest

from muso_jax import stats

# Student-t factors from printed tables (Fisher & Yates), to the table's 3 decimals: the
# tolerance 5e-4 is the table's rounding.
T_TABLE = {(0.95, 1): 12.706, (0.95, 2): 4.303, (0.95, 4): 2.776, (0.99, 4): 4.604, (0.90, 9): 1.833}


@pytest.mark.parametrize("level, dof", sorted(T_TABLE))
def test_t_quantile_matches_the_printed_table(level, dof):
    assert abs(stats.t_quantile(level, dof) - T_TABLE[level, dof]) < 5e-4


def test_mean_interval_by_hand():
    # 1..5: mean 3, s = sqrt(2.5), s/sqrt(5) = sqrt(0.5); t(0.975, 4) = 2.7764451 -> half-width 1.963243
    iv = stats.mean_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert iv.mean == 3.0 and iv.n == 5
    half = 2.7764451051977987 * math.sqrt(0.5)
    # exact arithmetic up to float64 round-off of a handful of operations
    assert abs(iv.low - (3 - half)) < 1e-12 and abs(iv.high - (3 + half)) < 1e-12
    assert abs(iv.half_width - 1.9632432) < 1e-6


def test_paired_difference_by_hand():
    # d = [1, 2, 2]: mean 5/3, s = sqrt(1/3), s/sqrt(3) = 1/3; t(0.975, 2) = 4.3026527 -> 1.4342176
    iv = stats.paired_difference([1.0, 2.0, 3.0], [0.0, 0.0, 1.0])
    assert abs(iv.mean - 5 / 3) < 1e-15
    assert abs(iv.half_width - 4.302652729749464 / 3) < 1e-12
    assert iv.excludes_zero()


def test_pairing_removes_the_shared_seed_variation():
    # B = A + 0.1 exactly on every seed while A varies a lot: unpaired intervals overlap, the
    # paired difference is exactly -0.1 with zero width (significant).
    a = np.array([1.0, 5.0, 9.0, 3.0, 7.0])
    b = a + 0.1
    ia, ib = stats.mean_interval(a), stats.mean_interval(b)
    assert ia.high > ib.low  # overlapping
    d = stats.paired_difference(a, b)
    assert abs(d.mean + 0.1) < 1e-12 and d.half_width < 1e-12 and d.excludes_zero()


def test_ranks_mark_ties():
    per_seed = {
        "best": [1.0, 1.1, 0.9, 1.0, 1.05],
        "tied": [1.02, 1.08, 0.95, 0.97, 1.06],  # differences with best change sign: tie
        "worse": [2.0, 2.2, 1.9, 2.1, 2.0],  # beaten by both
        "worst": [3.0, 3.1, 3.2, 2.9, 3.0],  # beaten by all three
    }
    assert stats.significance_ranks(per_seed) == {"best": 1, "tied": 1, "worse": 3, "worst": 4}


def test_bad_input_is_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="argument `values`.*at least 2"):
        stats.mean_interval([1.0])
    with pytest.raises(ValueError, match="argument `values`.*finite"):
        stats.mean_interval([1.0, float("nan")])
    with pytest.raises(ValueError, match="argument `level`"):
        stats.mean_interval([1.0, 2.0], level=95)
    with pytest.raises(ValueError, match="argument `b`.*one value per seed"):
        stats.paired_difference([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="argument `per_seed`.*same seeds"):
        stats.significance_ranks({"a": [1.0, 2.0], "b": [1.0, 2.0, 3.0]})
