"""Compilation as something a run can measure and keep: JAX's persistent compilation cache,
and a counter of the programs a run compiled and the seconds it spent on them.

The persistent cache stores each compiled executable under a key of its program, shapes, flags
and jaxlib version, so a second run of the same command loads instead of compiling. The counter
listens to ``jax.monitoring``'s events: every backend compilation (a persistent-cache hit
included, at its retrieval cost) and every cache hit.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
from jax import monitoring

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_HIT_EVENT = "/jax/compilation_cache/cache_hits"


def use_persistent_cache(folder: str | os.PathLike) -> None:
    """Keep every compiled program of this process under ``folder`` (created when missing).

    Programs of any compile time are kept (JAX's default keeps only those over one second):
    a run compiles dozens of sub-second programs whose sum is what a second run saves.

    The setting is process-global and JAX reads it once, so the example below runs in a
    child process.

    Parameters
    ----------
    folder : str or os.PathLike
        Where the compiled programs are kept.

    Examples
    --------
    >>> import os, subprocess, sys, tempfile
    >>> program = "; ".join([
    ...     "import sys, jax", "from muso_jax import compilation",
    ...     "compilation.use_persistent_cache(sys.argv[1])",
    ...     "jax.jit(lambda x: 2 * x)(1.0).block_until_ready()"])
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     done = subprocess.run([sys.executable, "-c", program, os.path.join(folder, "jax")],
    ...                           capture_output=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    ...     kept = os.listdir(os.path.join(folder, "jax"))
    >>> done.returncode, len(kept) >= 1
    (0, True)
    """
    os.makedirs(folder, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", os.fspath(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


class Compiles(NamedTuple):
    programs: int  # backend compilations, persistent-cache hits included
    seconds: float  # wall time inside them
    cache_hits: int  # of those, loaded from the persistent cache


class CompileCounter:
    """``with CompileCounter() as c: ...`` then ``c.result()``: the compilations inside the block."""

    def __init__(self):
        self.programs, self.seconds, self.cache_hits = 0, 0.0, 0

    def _duration(self, event, duration, **_):
        if event == _COMPILE_EVENT:
            self.programs += 1
            self.seconds += duration

    def _event(self, event, **_):
        if event == _HIT_EVENT:
            self.cache_hits += 1

    def __enter__(self):
        monitoring.register_event_duration_secs_listener(self._duration)
        monitoring.register_event_listener(self._event)
        return self

    def __exit__(self, *exc):
        monitoring.unregister_event_duration_listener(self._duration)
        monitoring.unregister_event_listener(self._event)
        return False

    def result(self) -> Compiles:
        return Compiles(self.programs, self.seconds, self.cache_hits)
