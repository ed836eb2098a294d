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
    """``distance_u / distance_p`` with the guard of :func:`relative_gap` at ``distance_p = 0``."""
    distance_u, distance_p = jnp.asarray(distance_u), jnp.asarray(distance_p)
    safe = jnp.where(distance_p > 0, distance_p, 1.0)
    return jnp.where(distance_p > 0, distance_u / safe, jnp.where(distance_u > 0, jnp.inf, 0.0))


def relative_gap(u, r, p):
    """``||u - r|| / ||p - r||`` (Frobenius norms), guarded when ``p == r``; see the module."""
    return ratio(jnp.linalg.norm(u - r), jnp.linalg.norm(p - r))
