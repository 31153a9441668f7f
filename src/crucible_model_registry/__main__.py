"""The ``cmr`` console script, also run by ``python -m crucible_model_registry``.

It lives here, not in ``cli``, so that the collector is paused before typer and the package
load (see ``_gc``).
"""

from __future__ import annotations

import gc
import sys

from crucible_model_registry import _gc

__all__ = ["main"]


def main() -> None:
    """Run ``cmr`` with the process arguments and exit with its code."""
    _gc.pause()
    from crucible_model_registry.cli import run

    code = run()
    # The run is over and its files and connections are closed: hide what is left from the
    # interpreter's final collections (~60 ms at exit). atexit handlers, telemetry exporters'
    # among them, still run.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    main()
