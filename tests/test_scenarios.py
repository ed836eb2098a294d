"""Forget-set construction: class-balanced random, full-class and sub-class masks."""

import numpy as np
import pytest

from muso_jax.data import SCENARIOS, forget_class, forget_mask, forget_random, forget_subclass

# Unequal class sizes, so class balance is visible: class c has 10 * (c + 1) + 3 rows.
Y = np.random.default_rng(0).permutation(np.repeat(np.arange(4), [13, 23, 33, 43]))
# Super-classes: {0, 1} -> 0, {2, 3} -> 1.
COARSE = Y // 2


@pytest.mark.parametrize("percent", [2, 10, 35.5])  # 2%: classes 0, 1 lose 0 rows, 2, 3 lose 1
def test_random_forgetting_is_class_balanced(percent):
    mask = forget_random(Y, percent, seed=1, num_classes=4)
    assert mask.dtype == bool and mask.shape == Y.shape
    for c, n_c in enumerate(np.bincount(Y)):
        assert mask[Y == c].sum() == round(percent / 100 * n_c)


def test_random_forgetting_is_determined_by_the_seed():
    a, b, c = (forget_random(Y, 20, seed=s, num_classes=4) for s in (5, 5, 6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(forget_mask("random", Y, num_classes=4, percent=20, seed=5), a)


def test_class_and_subclass_masks():
    np.testing.assert_array_equal(forget_class(Y, 2, num_classes=4), Y == 2)
    np.testing.assert_array_equal(forget_subclass(Y, COARSE, 3), Y == 3)
    np.testing.assert_array_equal(forget_mask("class", Y, num_classes=4, cls=1), Y == 1)
    np.testing.assert_array_equal(forget_mask("subclass", Y, num_classes=4, coarse=COARSE, cls=0), Y == 0)
    assert SCENARIOS == ("random", "class", "subclass")


def test_bad_percent_seed_and_labels():
    for bad in (0, 100, -1, 150, float("nan"), True, "10"):
        with pytest.raises(ValueError, match="`percent`.*\\(0, 100\\)"):
            forget_random(Y, bad, seed=0, num_classes=4)
    with pytest.raises(ValueError, match="`percent`.*no rows"):
        forget_random(Y, 1, seed=0, num_classes=4)  # round(1% of <= 43 rows) = 0 everywhere
    with pytest.raises(ValueError, match="`seed`"):
        forget_random(Y, 10, seed=-3, num_classes=4)
    with pytest.raises(ValueError, match="`y`.*labels in \\[0, 3\\)"):
        forget_random(Y, 10, seed=0, num_classes=3)
    with pytest.raises(ValueError, match="`y`.*integer"):
        forget_class(Y.astype(float), 1, num_classes=4)
    with pytest.raises(ValueError, match="`num_classes`"):
        forget_class(Y, 1, num_classes=0)


def test_missing_class_and_degenerate_forget_sets():
    with pytest.raises(ValueError, match="`cls`.*\\[0, 1, 2, 3\\].*7"):
        forget_class(Y, 7, num_classes=10)
    with pytest.raises(ValueError, match="`cls`.*all 5 rows"):
        forget_class(np.full(5, 2), 2, num_classes=3)
    with pytest.raises(ValueError, match="`fine`.*\\[0, 1, 2, 3\\].*9"):
        forget_subclass(Y, COARSE, 9)


def test_subclass_needs_a_proper_superclass():
    with pytest.raises(ValueError, match="`coarse`.*None"):
        forget_subclass(Y, None, 1)
    with pytest.raises(ValueError, match="`coarse`.*length"):
        forget_subclass(Y, COARSE[:-1], 1)
    with pytest.raises(ValueError, match="`coarse`.*one super-class"):
        forget_subclass(Y, np.arange(len(Y)) % 2, 1)
    with pytest.raises(ValueError, match="`fine`.*only one"):
        forget_subclass(Y, np.where(Y == 3, 1, 0), 3)


def test_dispatch_errors():
    with pytest.raises(ValueError, match="`scenario`.*'class'.*'full'"):
        forget_mask("full", Y, num_classes=4)
    with pytest.raises(ValueError, match="`percent`.*None"):
        forget_mask("random", Y, num_classes=4)
    with pytest.raises(ValueError, match="`cls`.*None"):
        forget_mask("class", Y, num_classes=4)
    with pytest.raises(ValueError, match="`coarse`.*None"):
        forget_mask("subclass", Y, num_classes=4, cls=1)
