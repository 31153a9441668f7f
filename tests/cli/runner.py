"""Run the real ``cmr`` executable in a subprocess, and the user-error contract it keeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCRIPT = Path(sys.executable).with_name("cmr")
CMR = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "crucible_model_registry"]


@dataclass(frozen=True)
class Result:
    """What one ``cmr`` run did."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


Runner = Callable[..., Result]


def run_cmr(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Result:
    """Run the real ``cmr`` with ``args``; wide output (unless ``env`` sets ``COLUMNS``)."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    full_env.pop("CMR_DEBUG", None)
    done = subprocess.run(
        [*CMR, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def assert_user_error(result: Result) -> None:
    """Exit code 1, one ``error:`` line on stderr, no traceback, nothing on stdout."""
    assert result.code == 1, (result.code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
