"""Test-wide settings: float64, strict rank and dtype promotion, four CPU devices, hypothesis profiles.

Profiles: "default" is deterministic and small (CI); "fuzz" (HYPOTHESIS_PROFILE=fuzz) draws
many more random examples.
"""

import functools
import os

import jax
import pytest
import optax
from flax import nnx
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
# Mixing two non-weak dtypes (float32 with float64, int with float arrays) raises instead of
# promoting silently; Python scalars stay weakly typed and still combine with any array.
jax.config.update("jax_numpy_dtype_promotion", "strict")
# Four CPU devices for the row-sharding tests (tests/test_sharding.py), in this process: the
# option only takes effect before the CPU backend starts, and this file is imported before any
# test module creates an array. Everything else runs on the default device, device 0.
jax.config.update("jax_num_cpu_devices", 4)


def _standard_promotion(fn):
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.numpy_dtype_promotion("standard"):
            return fn(*args, **kwargs)

    return wrapped


def _optax_under_standard_promotion(factory):
    """``factory`` whose transformation (or schedule) runs under standard dtype promotion."""

    @functools.wraps(factory)
    def make(*args, **kwargs):
        out = factory(*args, **kwargs)
        if isinstance(out, optax.GradientTransformation):
            return out._replace(init=_standard_promotion(out.init), update=_standard_promotion(out.update))
        return _standard_promotion(out)

    return make


# optax 0.2.8 fails under strict promotion, and we cannot change it: adam's and adamw's bias
# correction raises a Python float to the int32 step count, and the cosine and piecewise-constant
# schedules compare the int32 count with a float (jnp.minimum, jnp.sign). Only these optax
# functions, the ones muso_jax.nn.train.make_optimizer uses that fail, run under standard
# promotion; the library code around them (the loss, the step, the models) stays strict.
for _name in ("adam", "adamw", "cosine_decay_schedule", "piecewise_constant_schedule"):
    setattr(optax, _name, _optax_under_standard_promotion(getattr(optax, _name)))
# flax 0.12.8's nnx.BatchNorm keeps its running mean and variance in float32 whatever
# `param_dtype` (normalization.py creates them with jnp.float32) and promotes them with the
# inputs and its float64 scale and bias: a float32/float64 mix inside flax that strict promotion
# refuses. Only BatchNorm's call runs under standard promotion.
nnx.BatchNorm.__call__ = _standard_promotion(nnx.BatchNorm.__call__)

settings.register_profile(
    "default", max_examples=8, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("fuzz", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _no_persistent_compilation_cache(monkeypatch):
    """JAX's persistent compilation cache is process-global and set once: a CLI test run in this
    process must not point it into the repository's results/. tests/test_compilation.py checks
    the cache itself, in subprocesses."""
    from muso_jax import compilation

    monkeypatch.setattr(compilation, "use_persistent_cache", lambda folder: None)
