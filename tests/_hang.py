"""A watchdog for hangs: run a command in a subprocess and call it hung when it is alive but
uses no CPU for ``stall_s`` seconds (a deadlock sleeps on futexes; compiling and computing
burn CPU). Also a CPU hog to run beside it, since a busy machine makes the race more likely.

Used by tests/test_no_hang.py and runnable by hand to measure hang rates:

    python tests/_hang.py --runs 8 --scenario pattern [--hog]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

PROBE = Path(__file__).with_name("_hang_probe.py")
TICKS = os.sysconf("SC_CLK_TCK")


class Outcome(NamedTuple):
    hung: bool
    returncode: int | None
    wall_s: float
    cpu_s: float
    output: str
    stack: str  # native stacks of the hung process (gdb), when gdb exists


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def native_stacks(pid: int) -> str:
    gdb = shutil.which("gdb")
    if gdb is None:
        return "(gdb not installed: no native stacks)"
    out = subprocess.run([gdb, "-p", str(pid), "-batch", "-ex", "thread apply all bt 12"],
                         capture_output=True, text=True, timeout=60)
    return out.stdout[-20000:]


def run_watched(cmd, *, stall_s: float, limit_s: float, env=None) -> Outcome:
    """Run ``cmd``; stop it when it ends, stalls (no CPU for stall_s) or runs past limit_s."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    last_cpu, last_change, hung, stack = 0.0, start, False, ""
    try:
        while proc.poll() is None:
            time.sleep(0.2)
            now = time.monotonic()
            try:
                cpu = cpu_seconds(proc.pid)
            except (FileNotFoundError, ProcessLookupError):
                break
            if cpu > last_cpu + 0.02:
                last_cpu, last_change = cpu, now
            elif now - last_change > stall_s:
                hung = True
                stack = native_stacks(proc.pid)
                break
            if now - start > limit_s:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate()[0]
    return Outcome(hung, proc.returncode if not hung else None, time.monotonic() - start, last_cpu, output, stack)


@contextlib.contextmanager
def cpu_hog():
    """A busy loop in another process for as long as the block runs."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield hog
    finally:
        hog.kill()
        hog.wait()


def probe_command(scenario: str, iterations: int, seconds: float = float("inf")) -> list[str]:
    return [sys.executable, str(PROBE), scenario, str(iterations), str(seconds)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="library", help="a scenario of tests/_hang_probe.py")
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--stall", type=float, default=10.0, help="seconds without CPU progress = hung")
    p.add_argument("--limit", type=float, default=600.0)
    p.add_argument("--hog", action="store_true", help="run a CPU-bound process beside it")
    args = p.parse_args(argv)
    hangs = 0
    for i in range(args.runs):
        with cpu_hog() if args.hog else contextlib.nullcontext():
            out = run_watched(probe_command(args.scenario, args.iterations), stall_s=args.stall, limit_s=args.limit)
        hangs += out.hung
        last = out.output.strip().splitlines()[-1:] or [""]
        print(f"run {i + 1}: {'HUNG' if out.hung else 'ok'} rc={out.returncode} wall {out.wall_s:.1f} s "
              f"cpu {out.cpu_s:.1f} s last: {last[0][:100]}", flush=True)
        if out.hung and i == 0:
            sig = [ln for ln in out.stack.splitlines() if "lapack" in ln or "ParallelBatchMap" in ln or "BlockingCounter" in ln]
            print("\n".join(sig[:12]))
    print(f"{hangs} of {args.runs} runs hung (scenario {args.scenario}, hog={'yes' if args.hog else 'no'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
