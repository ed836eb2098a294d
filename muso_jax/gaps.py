r"""How far an unlearned model is from the retrained one: the one definition of a relative gap.

.. math::
    \mathrm{gap}_{rel} = \frac{\|u - r\|}{\|p - r\|}

the share of the way from the original model ``p`` to the retrained model ``r`` that the
unlearned model ``u`` still has to go (0: exact unlearning; 1: no progress). It is the
certificate of exact unlearning of MUSO (Yang et al., arXiv 2410.08557) made scale-free
without inflating it by ``||r||``. When ``p == r`` (nothing to unlearn) it is 0 if ``u == r``
as well and ``inf`` otherwise, never NaN.
"""

from __future__ import annotations

import jax.numpy as jnp


def ratio(distance_u, distance_p):
    """``distance_u / distance_p`` with the guard of :func:`relative_gap` at ``distance_p = 0``.

    Parameters
    ----------
    distance_u, distance_p
        Non-negative scalars (or arrays of one shape): the unlearned model's distance to the
        retrained one and the original model's.

    Returns
    -------
    jax.Array
        Their ratio; 0 where both are 0, ``inf`` where only ``distance_p`` is.

    Examples
    --------
    >>> from muso_jax import gaps
    >>> [float(gaps.ratio(u, 2.0)) for u in (0.0, 1.0)]
    [0.0, 0.5]
    >>> float(gaps.ratio(0.0, 0.0)), float(gaps.ratio(1.0, 0.0))
    (0.0, inf)
    """
    distance_u, distance_p = jnp.asarray(distance_u), jnp.asarray(distance_p)
    safe = jnp.where(distance_p > 0, distance_p, 1.0)
    return jnp.where(distance_p > 0, distance_u / safe, jnp.where(distance_u > 0, jnp.inf, 0.0))


def relative_gap(u, r, p):
    r"""``||u - r|| / ||p - r||`` (Frobenius norms), guarded when ``p == r``; see the module.

    Parameters
    ----------
    u, r, p
        The unlearned, retrained and original parameters: arrays of one shape, e.g. (M,) or
        (M, K).

    Returns
    -------
    jax.Array
        A scalar, :math:`\|u - r\| / \|p - r\|`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from muso_jax import gaps
    >>> r, p = jnp.zeros(3), jnp.array([3.0, 4.0, 0.0])
    >>> float(gaps.relative_gap(p, r, p)), float(gaps.relative_gap(r, r, p))
    (1.0, 0.0)
    >>> float(gaps.relative_gap(p / 5, r, p))
    0.2
    """
    return ratio(jnp.linalg.norm(u - r), jnp.linalg.norm(p - r))
