"""Who is looking at a UI page: the session cookie, the viewer's role, and CSRF values.

The login form posts a token; the server checks it with the app's ``Authenticator``
(``server/auth.py``) and sets the cookie ``cmr_session`` to the token itself. From then
on the Edge middleware resolves that cookie exactly as it resolves a Bearer token, and
each page runs as that principal, so the registry's permissions apply to every click.

Every form carries a CSRF value, ``HMAC-SHA256(key=token, msg=b"cmr-csrf")`` in hex
(``domain.access.csrf_token_for``), checked on every POST (a mismatch is 403): a page on
another site can make a browser post a form, but cannot read the value, and holds no
token to compute it. Stateless, so it holds across workers. Without authentication
(``--no-auth``) there is no token: the key is then a random value in its own
``SameSite=Strict`` cookie, ``cmr_csrf`` (a double-submit cookie).
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from crucible_model_registry._context import current_actor, current_principal
from crucible_model_registry.domain.access import Principal, Role, csrf_token_for
from crucible_model_registry.errors import (
    AuthenticationError,
    PermissionDeniedError,
    RegistryError,
)
from crucible_model_registry.server.auth import SESSION_COOKIE, credentials_from_headers

__all__ = [
    "CSRF_COOKIE",
    "SESSION_COOKIE",
    "RefusedFormError",
    "Viewer",
    "check_csrf",
    "csrf_value",
    "principal_of_token",
    "set_session_cookie",
    "viewer_of",
]

CSRF_COOKIE = "cmr_csrf"


class RefusedFormError(PermissionDeniedError):
    """A form the UI refuses before any registry call (403): forged, or from another site."""

    def __init__(self, message: str) -> None:
        RegistryError.__init__(self, message)
        self.permission = "form"
        self.model = None


@dataclasses.dataclass(frozen=True, slots=True)
class Viewer:
    """The person a page is rendered for: name, role, and the CSRF value forms carry."""

    name: str
    role: Role
    csrf: str
    authenticated: bool

    def can(self, role: str) -> bool:
        """Does the viewer's role include ``role`` (read < write < promote < admin)?

        Only which buttons to draw: the registry decides, per model, what a click may do.
        """
        return Role(self.role).includes(Role(role))

    def __repr__(self) -> str:  # the CSRF value is derived from a token: keep it out of logs
        return f"Viewer(name={self.name!r}, role={Role(self.role).value!r})"


def csrf_value(key: str) -> str:
    """The CSRF value of a session: HMAC-SHA256 of ``b"cmr-csrf"`` keyed by its token."""
    return csrf_token_for(key)


def principal_of_token(request: Request, token: str) -> Principal:
    """The principal of ``token``, checked by the app's authenticator (blocking).

    A failure counts against the client's address (rate limit) and is audited, as a
    failed Bearer token is at the Edge.

    Raises:
        AuthenticationError: unknown, revoked or expired (the message never holds it), or
            the address failed too often lately.
    """
    auth = request.app.state.authenticator
    address = request.client.host if request.client else "unknown"
    wait = auth.retry_after(address)
    if wait is not None:
        raise AuthenticationError(
            f"too many failed authentications from this address; retry in {wait} s"
        )
    try:
        principal: Principal = auth.authenticate(token)
    except AuthenticationError as exc:
        auth.failed(address)
        auth.audit_failure(address, str(exc), request.headers.get("x-request-id", ""))
        raise
    return principal


def viewer_of(request: Request) -> Viewer | None:
    """Who is looking: None when the server needs a login and the request has no principal.

    With authentication the Edge middleware has resolved the session cookie (or a Bearer
    token) to the principal this request runs as. Without it the viewer is the server's
    actor with every role (the registry still applies its rules); a fresh CSRF key is
    left in ``request.state.new_csrf_key`` for the response to set.
    """
    if not request.app.state.auth:
        key = request.cookies.get(CSRF_COOKIE)
        if not key:
            key = getattr(request.state, "new_csrf_key", None) or secrets.token_hex(32)
            request.state.new_csrf_key = key
        name = current_actor() or "local"
        return Viewer(name, Role.ADMIN, csrf_value(key), authenticated=False)
    principal = current_principal()
    try:
        token = credentials_from_headers({k.lower(): v for k, v in request.headers.items()})
    except AuthenticationError:
        return None
    if principal is None or token is None:
        return None
    return Viewer(principal.name, Role(principal.role), csrf_value(token), authenticated=True)


def check_csrf(request: Request, viewer: Viewer, given: object) -> None:
    """Refuse a form whose CSRF value is not the session's.

    Raises:
        RefusedFormError: the value is missing or wrong (the form was forged, or the
            session changed since the page was drawn).
    """
    if not isinstance(given, str) or not hmac.compare_digest(given, viewer.csrf):
        raise RefusedFormError(
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
