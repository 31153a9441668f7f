"""Who is acting: the actor in the histories and, at the server, the principal and its rights.

A context variable, so each thread and each asyncio task has its own: the server sets the
token's principal per request, a script may set a name for a block. Outside any
``acting_as`` block the actor is ``CMR_ACTOR`` if set, else the operating-system user.
"""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Iterator
from contextvars import ContextVar

from crucible_model_registry.domain.access import Principal
from crucible_model_registry.domain.rules import MAX_ACTOR, check_text, nfc, text_problem
from crucible_model_registry.errors import ConfigurationError

__all__ = [
    "acting_as",
    "as_principal",
    "current_actor",
    "current_principal",
    "current_request_id",
    "default_actor",
    "handling_request",
]

_actor: ContextVar[str | None] = ContextVar("crucible_model_registry_actor", default=None)
_request_id: ContextVar[str | None] = ContextVar("crucible_model_registry_request", default=None)
_principal: ContextVar[Principal | None] = ContextVar(
    "crucible_model_registry_principal", default=None
)


@contextlib.contextmanager
def acting_as(actor: str) -> Iterator[str]:
    """Record ``actor`` as who made the changes inside the block (stage and alias history).

    Nested blocks stack; each thread and asyncio task sees only its own.

    Example::

        with cmr.acting_as("ci-bot"):
            cmr.promote(v, "staging", reason="eval passed")

    Raises:
        ValidationError: ``actor`` is empty, too long, or holds control characters.
    """
    checked = check_text(actor, field="actor", limit=MAX_ACTOR)
    token = _actor.set(checked)
    try:
        yield checked
    finally:
        _actor.reset(token)


def current_actor() -> str:
    """The principal's name in an :func:`as_principal` block (whatever ``acting_as`` says),
    else the actor of the innermost ``acting_as`` block, else :func:`default_actor`."""
    principal = _principal.get()
    if principal is not None:
        return principal.name
    actor = _actor.get()
    return actor if actor is not None else default_actor()


def default_actor() -> str:
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


@contextlib.contextmanager
def handling_request(request_id: str) -> Iterator[str]:
    """Mark the block as handling the server request ``request_id`` (for the audit log)."""
    token = _request_id.set(request_id)
    try:
        yield request_id
    finally:
        _request_id.reset(token)


def current_request_id() -> str | None:
    """The id of the server request being handled, or None outside the server."""
    return _request_id.get()


@contextlib.contextmanager
def as_principal(principal: Principal) -> Iterator[Principal]:
    """Act as an authenticated ``principal`` inside the block: its role and grants apply.

    The server sets the token's principal per request; its name is also the actor. Outside
    any such block there is no principal and access control does not apply (whoever holds
    the database holds every right).
    """
    token = _principal.set(principal)
    try:
        yield principal
    finally:
        _principal.reset(token)


def current_principal() -> Principal | None:
    """The principal of the innermost :func:`as_principal` block, or None."""
    return _principal.get()
