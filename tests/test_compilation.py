"""The persistent compilation cache the CLI sets under results/, and the compile counter."""

import re
import subprocess
import sys

import jax
import jax.numpy as jnp

from muso_jax import compilation


def test_compile_counter_counts_backend_compilations():
    a, b = jnp.ones(7), jnp.ones(9)  # their own (broadcast) programs compile outside the count
    f = jax.jit(lambda v: jnp.sin(v) * 3.0)
    with compilation.CompileCounter() as counter:
        f(a)
        f(a)  # the same shapes: no new program
        f(b)
    got = counter.result()
    assert got.programs == 2 and got.seconds > 0 and got.cache_hits == 0
    with compilation.CompileCounter() as after:  # listeners removed on exit, a new counter starts at 0
        f(b)
    assert after.result().programs == 0 and counter.result() == got


def _unlearn(tmp_path, run):
    """``muso unlearn`` on digits for one epoch in a fresh process (a fresh network cache per run,
    so both runs compile the same programs); returns (programs, cache hits) from its stderr."""
    out = subprocess.run(
        [sys.executable, "-m", "muso_jax.cli", "unlearn", "--epochs", "1", "--muso-epochs", "1",
         "--cache", str(tmp_path / f"nets{run}"), "--compile-cache", str(tmp_path / "xla"),
         "--json", str(tmp_path / f"u{run}.json")],
        capture_output=True, text=True, timeout=600, check=True)
    found = re.search(r"compiled (\d+) programs in [\d.]+ s \((\d+) loaded from", out.stderr)
    assert found, out.stderr
    return int(found[1]), int(found[2])


def test_a_second_run_loads_its_programs_from_the_persistent_cache(tmp_path):
    programs, hits = _unlearn(tmp_path, 1)
    # A few programs recur within one run under another jit (same computation): those already hit.
    assert programs > 5 and hits < programs / 10 and any((tmp_path / "xla").iterdir())
    again, hits = _unlearn(tmp_path, 2)
    assert again == programs and hits == programs  # every program loaded, none compiled
