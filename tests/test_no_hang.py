"""The library never deadlocks on a small CPU pool (docs/deadlock.md).

A subprocess runs the library's vmapped solves (the linear experiment as one program, the
proofs, batched retrains, a user's vmap of the closed form, the projector, deletions) over and
over, beside a CPU-bound process; a watchdog calls it hung when it is alive but burns no CPU
for STALL_S seconds. Before the fix (commit 64bac76) this probe hung in 4 of 4 runs with and
4 of 4 without the CPU hog, within its first 16 iterations.
"""

from pathlib import Path

from _hang import cpu_hog, probe_command, run_watched

STALL_S = 8.0  # a deadlock burns no CPU at all; compiling or computing never idles this long
BUDGET_S = 15.0  # seconds of repeated solves after the one-time work (the whole test: about a minute)


def test_vmapped_library_paths_never_hang_beside_a_cpu_hog():
    with cpu_hog():
        out = run_watched(probe_command("library", 10_000, BUDGET_S), stall_s=STALL_S, limit_s=300.0)
    assert not out.hung, f"hung after: {out.output[-400:]}\n{out.stack[-4000:]}"
    assert out.returncode == 0, out.output[-2000:]
    iterations = sum(line.startswith("iteration") for line in out.output.splitlines())
    # Beside the hog an iteration takes ~13 s (thread-pool contention), ~1 s without it; the
    # first compiles, every later one repeats every path (the probe runs at least two). Before the fix 8 of 8 runs hung,
    # 4 of them before their second iteration ended.
    assert "proofs done" in out.output and iterations >= 2, out.output[-2000:]


def test_the_watchdog_sees_a_stall():
    """The watchdog can fail: a process that sleeps without exiting is reported hung."""
    import sys

    out = run_watched([sys.executable, "-c", "import time; time.sleep(30)"], stall_s=1.0, limit_s=20.0)
    assert out.hung and out.wall_s < 10.0
    assert Path(__file__).with_name("_hang_probe.py").exists()
