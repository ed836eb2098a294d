"""Forget sets of the unlearning protocol (docs/theory.md, section 5) as boolean masks over rows.

* ``"random"``: class-balanced random forgetting of ``percent``% of the training set (1% and
  10% in the field), i.e. ``round(percent / 100 * n_c)`` rows of every class ``c``.
* ``"class"``: full-class forgetting, every row of one class.
* ``"subclass"``: every row of one fine class inside its super-class (e.g. CIFAR-20 from
  CIFAR-100: rocket, sea, cattle); the model is trained on the coarse labels.

Each function returns a (N,) boolean NumPy mask, ``True`` on D_f, that is neither empty nor
all ``True`` (D_r must keep a row). The forget set fixes the shapes of D_r and D_f, so it is
built on the host, not traced.
"""

from __future__ import annotations

import numpy as np

from muso_jax import _checks

SCENARIOS = ("random", "class", "subclass")


def forget_random(y, percent: float, *, seed: int, num_classes: int) -> np.ndarray:
    r"""Class-balanced random forget mask: for each class ``c`` in ``0..num_classes-1`` (in
    order), ``round(percent / 100 * n_c)`` of its ``n_c`` rows drawn without replacement by
    ``np.random.default_rng(seed)``. Returns a (N,) bool mask.

    .. math::
        |D_f \cap \{i : y_i = c\}| = \mathrm{round}(\mathrm{percent} / 100 \cdot n_c)
        \quad \text{for every class } c

    Parameters
    ----------
    y : (N,) int array_like
        Labels in [0, num_classes).
    percent : float
        In (0, 100).
    seed : int
        >= 0, of the draw.
    num_classes : int
        >= 1.

    Returns
    -------
    numpy.ndarray
        (N,) bool, True on D_f.

    Raises
    ------
    ValueError
        For bad labels, ``percent``, ``seed`` or ``num_classes``, and when the mask would be
        empty or total.

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax.data import scenarios
    >>> y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    >>> mask = scenarios.forget_random(y, 50, seed=0, num_classes=3)
    >>> mask.shape, np.bincount(y[mask], minlength=3).tolist()  # half of each class, rounded
    ((10,), [2, 2, 1])
    >>> scenarios.forget_random(y, 1, seed=0, num_classes=3)  # 1% of 2-4 rows rounds to none
    Traceback (most recent call last):
    ...
    ValueError: argument `percent`: expected a non-empty forget set; got 1, which selects no rows
    """
    num_classes = _checks.positive_int("num_classes", num_classes)
    y = _labels("y", y, num_classes)
    if isinstance(percent, bool) or not isinstance(percent, (int, float, np.integer, np.floating)) \
            or not 0.0 < percent < 100.0:
        raise ValueError(f"argument `percent`: expected a number in (0, 100); got {percent!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"argument `seed`: expected an integer >= 0; got {seed!r}")
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(y), dtype=bool)
    for c in range(num_classes):
        rows = np.flatnonzero(y == c)
        mask[rng.choice(rows, size=round(percent / 100.0 * len(rows)), replace=False)] = True
    return _proper("percent", percent, mask)


def forget_class(y, cls: int, *, num_classes: int) -> np.ndarray:
    """Full-class forget mask ``y == cls``. Returns a (N,) bool mask.

    Parameters
    ----------
    y : (N,) int array_like
        Labels in [0, num_classes).
    cls : int
        A class present in ``y``, not the only one.
    num_classes : int
        >= 1.

    Returns
    -------
    numpy.ndarray
        (N,) bool, True on D_f.

    Raises
    ------
    ValueError
        For bad labels, a ``cls`` absent from ``y``, or a mask that would be total.

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax.data import scenarios
    >>> y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    >>> scenarios.forget_class(y, 2, num_classes=3).astype(int).tolist()
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    >>> scenarios.forget_class(y, 5, num_classes=6)
    Traceback (most recent call last):
    ...
    ValueError: argument `cls`: expected a class present in the labels, one of [0, 1, 2]; got 5
    """
    num_classes = _checks.positive_int("num_classes", num_classes)
    y = _labels("y", y, num_classes)
    _present("cls", cls, y)
    return _proper("cls", cls, y == cls)


def forget_subclass(y, coarse, fine: int) -> np.ndarray:
    """Sub-class forget mask ``y == fine`` for fine labels ``y`` and super-class labels
    ``coarse`` (one per row). The fine class must lie inside one super-class, and that
    super-class must keep rows of another fine class, else this is class forgetting on the
    coarse task. Returns a (N,) bool mask.

    Parameters
    ----------
    y : (N,) int array_like
        Fine labels >= 0.
    coarse : (N,) int array_like
        Super-class labels >= 0, one per row.
    fine : int
        The fine class to forget, present in ``y``.

    Returns
    -------
    numpy.ndarray
        (N,) bool, True on D_f.

    Raises
    ------
    ValueError
        If ``coarse`` is None or does not match ``y``, ``fine`` is absent, spans several
        super-classes or is the only fine class of its super-class.

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax.data import scenarios
    >>> fine = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    >>> coarse = np.array([0, 0, 0, 0, 1, 1, 1, 1])  # super-classes {0, 1} and {2, 3}
    >>> scenarios.forget_subclass(fine, coarse, 1).astype(int).tolist()
    [0, 0, 1, 1, 0, 0, 0, 0]
    >>> scenarios.forget_subclass(fine, np.array([0, 0, 1, 1, 2, 2, 2, 2]), 1)
    Traceback (most recent call last):
    ...
    ValueError: argument `fine`: expected a fine class that shares its super-class 1 with another; got 1, the only one
    """
    if coarse is None:
        raise ValueError("argument `coarse`: the sub-class scenario needs super-class labels; got None "
                         "(this dataset has none)")
    y = _labels("y", y, None)
    coarse = _labels("coarse", coarse, None)
    _checks.same("y", len(y), "coarse", len(coarse), "length")
    _present("fine", fine, y)
    mask = y == fine
    supers = np.unique(coarse[mask])
    if len(supers) != 1:
        raise ValueError(f"argument `coarse`: expected fine class {fine} inside one super-class; "
                         f"got super-classes {supers.tolist()}")
    if np.all(mask[coarse == supers[0]]):
        raise ValueError(f"argument `fine`: expected a fine class that shares its super-class "
                         f"{supers[0]} with another; got {fine}, the only one")
    return _proper("fine", fine, mask)


def forget_mask(scenario: str, y, *, num_classes: int, coarse=None, percent: float | None = None,
                cls: int | None = None, seed: int = 0) -> np.ndarray:
    """Forget mask of ``scenario`` (one of ``SCENARIOS``): ``"random"`` uses ``percent`` and
    ``seed``, ``"class"`` uses ``cls``, ``"subclass"`` uses ``coarse`` and ``cls`` as the fine
    class. Returns a (N,) bool mask.

    Parameters
    ----------
    scenario : {"random", "class", "subclass"}
        One of :data:`SCENARIOS`.
    y : (N,) int array_like
        Labels in [0, num_classes) (fine labels for ``"subclass"``).
    num_classes : int
        >= 1.
    coarse : (N,) int array_like, optional
        Super-class labels, for ``"subclass"``.
    percent : float, optional
        For ``"random"``.
    cls : int, optional
        For ``"class"`` and ``"subclass"``.
    seed : int, optional
        For ``"random"``.

    Returns
    -------
    numpy.ndarray
        (N,) bool, True on D_f.

    Raises
    ------
    ValueError
        For an unknown scenario, a missing argument it needs, and the refusals of
        :func:`forget_random`, :func:`forget_class` and :func:`forget_subclass`.

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax.data import scenarios
    >>> y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    >>> scenarios.forget_mask("class", y, num_classes=3, cls=0).astype(int).tolist()
    [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    >>> bool((scenarios.forget_mask("random", y, num_classes=3, percent=50, seed=0)
    ...       == scenarios.forget_random(y, 50, seed=0, num_classes=3)).all())
    True
    >>> scenarios.forget_mask("class", y, num_classes=3)
    Traceback (most recent call last):
    ...
    ValueError: argument `cls`: scenario 'class' needs a class to forget; got None
    """
    _checks.choice("scenario", scenario, SCENARIOS)
    if scenario == "random":
        if percent is None:
            raise ValueError("argument `percent`: scenario 'random' needs a percentage; got None")
        return forget_random(y, percent, seed=seed, num_classes=num_classes)
    if cls is None:
        raise ValueError(f"argument `cls`: scenario {scenario!r} needs a class to forget; got None")
    if scenario == "class":
        return forget_class(y, cls, num_classes=num_classes)
    _labels("y", y, _checks.positive_int("num_classes", num_classes))
    return forget_subclass(y, coarse, cls)


def _labels(name: str, y, num_classes: int | None) -> np.ndarray:
    """``y`` as a non-empty 1-D integer NumPy array with labels in [0, num_classes)
    (``None``: any label >= 0)."""
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"argument `{name}`: expected a non-empty 1-D integer label array; "
                         f"got shape {y.shape}, dtype {y.dtype}")
    top = np.inf if num_classes is None else num_classes
    if y.min() < 0 or y.max() >= top:
        span = "labels >= 0" if num_classes is None else f"labels in [0, {num_classes})"
        raise ValueError(f"argument `{name}`: expected {span}; got min {y.min()}, max {y.max()}")
    return y


def _present(name: str, label, y: np.ndarray) -> None:
    """Raise unless ``label`` is an integer that occurs in ``y``, listing those that do."""
    present = np.unique(y).tolist()
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label not in present:
        raise ValueError(f"argument `{name}`: expected a class present in the labels, one of {present}; "
                         f"got {label!r}")


def _proper(name: str, value, mask: np.ndarray) -> np.ndarray:
    """``mask`` itself, once it is known to forget at least one row and keep at least one."""
    if not mask.any():
        raise ValueError(f"argument `{name}`: expected a non-empty forget set; got {value!r}, which "
                         f"selects no rows")
    if mask.all():
        raise ValueError(f"argument `{name}`: expected a forget set that leaves a retained row; got "
                         f"{value!r}, which selects all {len(mask)} rows")
    return mask
