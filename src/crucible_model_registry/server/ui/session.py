"""Who is looking at a UI page: the session cookie, the viewer's role, and CSRF values.

The login form posts a token; the server sets the cookie ``cmr_session`` to the token
itself, and the server's authentication resolves that cookie exactly as it resolves a
Bearer token. :func:`principal_of_token` is the one place that asks it.

Every form carries a CSRF value, ``HMAC-SHA256(key=token, msg=b"cmr-csrf")`` in hex,
checked on every POST (a mismatch is 403): a page on another site can make a browser post
a form, but cannot read the value, and holds no token to compute it. Stateless, so it
holds across workers. Without authentication (``--no-auth``) there is no token: the key
is then a random value in its own ``SameSite=Strict`` cookie, ``cmr_csrf`` (a double-
submit cookie).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from crucible_model_registry._context import current_actor
from crucible_model_registry.errors import PermissionDeniedError

__all__ = [
    "CSRF_COOKIE",
    "ROLES",
    "SESSION_COOKIE",
    "Role",
    "TokenResolver",
    "Viewer",
    "check_csrf",
    "csrf_value",
    "principal_of_token",
    "set_session_cookie",
    "viewer_of",
]

SESSION_COOKIE = "cmr_session"
CSRF_COOKIE = "cmr_csrf"
ROLES = ("read", "write", "promote", "admin")
Role = Literal["read", "write", "promote", "admin"]
TokenResolver = Callable[[str], "tuple[str, Role] | None"]
"""A token -> its principal's name and role, or None for an unknown, expired or revoked one."""


@dataclasses.dataclass(frozen=True, slots=True)
class Viewer:
    """The person a page is rendered for: name, role, and the CSRF value forms carry."""

    name: str
    role: Role
    csrf: str
    authenticated: bool

    def can(self, role: Role) -> bool:
        """Does the viewer's role include ``role`` (read ⊂ write ⊂ promote ⊂ admin)?"""
        return ROLES.index(self.role) >= ROLES.index(role)

    def __repr__(self) -> str:  # the CSRF value is derived from a token: keep it out of logs
        return f"Viewer(name={self.name!r}, role={self.role!r})"


def csrf_value(key: str) -> str:
    """The CSRF value of a session: HMAC-SHA256 of ``b"cmr-csrf"`` keyed by its token."""
    return hmac.new(key.encode(), b"cmr-csrf", hashlib.sha256).hexdigest()


def principal_of_token(request: Request, token: str) -> tuple[str, Role] | None:
    """The name and role of the token's principal, or None: the seam to server auth.

    The server's token authentication (issue 16, ``server/auth.py``) is not on this
    branch: until it is, the app's ``state.ui_token_resolver`` answers (None: nobody can
    log in, and the login page says why). Point this at ``server/auth.py`` when it lands.
    """
    resolver: TokenResolver | None = getattr(request.app.state, "ui_token_resolver", None)
    return None if resolver is None else resolver(token)


def login_available(request: Request) -> bool:
    """Can a token be checked at all (see :func:`principal_of_token`)?"""
    return getattr(request.app.state, "ui_token_resolver", None) is not None


def viewer_of(request: Request) -> Viewer | None:
    """Who is looking: None when the server needs a login and the session is missing or bad.

    Without authentication the viewer is the server's actor with every role (the registry
    still applies its rules); a fresh CSRF key is left in ``request.state.new_csrf_key``
    for the response to set.
    """
    if not request.app.state.auth:
        key = request.cookies.get(CSRF_COOKIE)
        if not key:
            key = getattr(request.state, "new_csrf_key", None) or secrets.token_hex(32)
            request.state.new_csrf_key = key
        return Viewer(current_actor() or "local", "admin", csrf_value(key), authenticated=False)
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    principal = principal_of_token(request, token)
    if principal is None:
        return None
    name, role = principal
    return Viewer(name, role, csrf_value(token), authenticated=True)


def check_csrf(request: Request, viewer: Viewer, given: object) -> None:
    """Refuse a form whose CSRF value is not the session's.

    Raises:
        PermissionDeniedError: the value is missing or wrong (the form was forged, or the
            session changed since the page was drawn).
    """
    if not isinstance(given, str) or not hmac.compare_digest(given, viewer.csrf):
        raise PermissionDeniedError(
            "the form's CSRF value does not match this session: reload the page and try again"
        )


def set_session_cookie(request: Request, response: Response, name: str, value: str) -> None:
    """Set a session cookie: HttpOnly, SameSite=Strict, Path=/, Secure under https."""
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
