"""The cyclic garbage collector in the short-lived ``cmr`` process.

Start-up imports SQLAlchemy, pydantic, pydantic-settings and typer: some 60,000 objects that
live as long as the process. With the collector on, they are walked again at every full
collection while they arrive, and once more by the interpreter's final collections at exit;
together that was a quarter of a ``cmr query`` (0.45 s → 0.34 s median, `bench/cli_startup.py`).
So the console script pauses the collector before its imports, and the CLI resumes it as soon
as the registry is open, freezing what start-up built so later collections skip it.

Only the console script pauses it: code that calls ``cli.run`` in its own process keeps its
collector as it was.
"""

from __future__ import annotations

import gc

__all__ = ["pause", "resume"]

_paused = [False]


def pause() -> None:
    """Switch the collector off for start-up (a no-op if it is already off)."""
    if gc.isenabled():
        gc.disable()
        _paused[0] = True


def resume() -> None:
    """Undo :func:`pause`: freeze what exists now, then switch the collector back on."""
    if _paused[0]:
        _paused[0] = False
        gc.freeze()
        gc.enable()
