"""Who is acting, for the audit trail: ``CMR_ACTOR``, else the operating-system user."""

from __future__ import annotations

import getpass
import os

from crucible_model_registry.domain.rules import MAX_ACTOR, nfc, text_problem
from crucible_model_registry.errors import ConfigurationError

__all__ = ["current_actor"]


def current_actor() -> str:
    """``CMR_ACTOR`` if set, else the operating-system user (read at each call).

    Raises:
        ConfigurationError: ``CMR_ACTOR`` is longer than 255 characters or holds control
            characters or bytes that are not UTF-8 (which no database could store).
    """
    actor = os.environ.get("CMR_ACTOR")
    if actor:
        problem = text_problem(actor)
        if problem is None and len(nfc(actor)) > MAX_ACTOR:
            problem = f"is {len(actor)} characters long; the limit is {MAX_ACTOR}"
        if problem:
            raise ConfigurationError(f"CMR_ACTOR {problem}")
        return nfc(actor)
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
