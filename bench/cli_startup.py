"""How fast ``cmr`` starts: ``cmr --help`` and ``cmr query --json`` on an empty registry.

Each command runs 10 times (after one warm-up run) as a fresh process against a temporary
``CMR_HOME`` whose embedded registry was created by ``cmr init``; the table shows the median,
min and max wall time, and the median CPU time (user + system: what the wall time would be
on an idle machine, give or take disk waits). Target (issue 7): a median under 0.4 s for both.
The first row, ``import sqlalchemy`` alone, shows how fast this machine is right now: a
``cmr query`` needs SQLAlchemy, pydantic and typer, so it cannot start faster than that.

The children run without ``PYTHONDONTWRITEBYTECODE`` so that the warm-up run leaves byte-code
caches behind, as any installed copy has them (an editable install writes them on first use);
with the variable set, every run would compile the package's sources again.

    .venv/bin/python bench/cli_startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.4
SCRIPT = Path(sys.executable).with_name("cmr")
CMR = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "crucible_model_registry"]


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of ``args``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(args: list[str], env: dict[str, str], runs: int) -> list[tuple[float, float]]:
    timed(args, env)  # warm-up: byte-code caches and the page cache
    return [timed(args, env) for _ in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs

    with tempfile.TemporaryDirectory(prefix="cmr-bench-") as home:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CMR_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        env["CMR_HOME"] = home
        first_query, _ = timed([*CMR, "query", "--json"], env)  # creates and migrates it
        cases = [
            # The floor on this machine: the database layer alone, before any of our code.
            ("python -c 'import sqlalchemy' (reference)",
             [sys.executable, "-c", "import sqlalchemy"], None),
            ("python -c 'import crucible_model_registry'",
             [sys.executable, "-c", "import crucible_model_registry"], None),
            ("cmr --help", [*CMR, "--help"], TARGET_S),
            ("cmr query --json (empty registry)", [*CMR, "query", "--json"], TARGET_S),
        ]  # fmt: skip
        rows = []
        for label, args, target in cases:
            samples = measure(args, env, runs)
            walls = [wall for wall, _ in samples]
            cpu = statistics.median(c for _, c in samples)
            rows.append((label, statistics.median(walls), min(walls), max(walls), cpu, target))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cmr start-up, {runs} runs each, {os.cpu_count()} CPUs, load average {load:.2f}")
    print(f"{'command':<44} {'median':>8} {'min':>8} {'max':>8} {'cpu p50':>8}  target")
    for label, median, low, high, cpu, target in rows:
        verdict = ""
        if target is not None:
            verdict = f"< {target:.1f} s " + ("ok" if median < target else "MISSED")
        print(f"{label:<44} {median:>7.3f}s {low:>7.3f}s {high:>7.3f}s {cpu:>7.3f}s  {verdict}")
    print(f"{'first cmr query --json, migration included':<44} {first_query:>7.3f}s")


if __name__ == "__main__":
    main()
