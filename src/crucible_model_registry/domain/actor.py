"""Who is acting, for the audit trail: ``CMR_ACTOR``, else the operating-system user."""

from __future__ import annotations

import getpass
import os

__all__ = ["current_actor"]


def current_actor() -> str:
    """``CMR_ACTOR`` if set, else the operating-system user (read at each call)."""
    actor = os.environ.get("CMR_ACTOR")
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
