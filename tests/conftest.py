"""Test-wide settings: float64, strict rank promotion, hypothesis profiles.

Profiles: "default" is deterministic and small (CI); "fuzz" (HYPOTHESIS_PROFILE=fuzz) draws
many more random examples.
"""

import os

import jax
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

settings.register_profile(
    "default", max_examples=8, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("fuzz", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
