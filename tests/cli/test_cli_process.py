"""What the ``cmr`` process does with the garbage collector, and what ``cli.run`` leaves alone.

The console script pauses the collector for start-up and resumes it once the registry is open
(``_gc``); a program that calls ``cli.run`` itself keeps its collector as it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _python(code: str, home: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    env["CMR_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr.split()


def test_pause_then_resume_switches_the_collector_back_on_with_startup_frozen(tmp_path: Path):
    code = (
        "import gc, sys; from crucible_model_registry import _gc; _gc.pause(); "
        "paused = gc.isenabled(); _gc.resume(); "
        "print(paused, gc.isenabled(), gc.get_freeze_count() > 0, file=sys.stderr)"
    )
    assert _python(code, tmp_path) == ["False", "True", "True"]


def test_a_collector_switched_off_by_the_host_stays_off(tmp_path: Path):
    code = (
        "import gc, sys; from crucible_model_registry import _gc; gc.disable(); "
        "_gc.pause(); _gc.resume(); print(gc.isenabled(), file=sys.stderr)"
    )
    assert _python(code, tmp_path) == ["False"]


def test_the_console_script_runs_with_the_collector_on_once_the_registry_is_open(tmp_path: Path):
    # atexit runs after main() has returned its exit code: the collector must be back on.
    code = (
        "import atexit, gc, sys; "
        "atexit.register(lambda: print(gc.isenabled(), file=sys.stderr)); "
        "from crucible_model_registry.__main__ import main; "
        "sys.argv = ['cmr', 'query', '--json']; main()"
    )
    assert _python(code, tmp_path) == ["True"]


def test_cli_run_in_a_host_process_leaves_its_collector_alone(tmp_path: Path):
    code = (
        "import gc, sys; from crucible_model_registry.cli import run; "
        "on = run(['query', '--json']), gc.isenabled(), gc.get_freeze_count(); "
        "gc.disable(); off = run(['query', '--json']), gc.isenabled(); "
        "print(*on, *off, file=sys.stderr)"
    )
    assert _python(code, tmp_path) == ["0", "True", "0", "0", "False"]
