"""Who is calling: a bearer token (or the UI's session cookie) resolved to a Principal.

The Edge middleware calls :meth:`Authenticator.authenticate` for every request but the
open probes, then runs the route as that principal (``_context.as_principal``), so the
registry's own checks apply to every door: REST, the MLflow routes and the UI alike.

* Tokens are looked up by their SHA-256 (one indexed read), the stored hash compared in
  constant time, and the answer cached for ``cache_seconds`` (default 5): a revoked or
  re-scoped token keeps working for at most that long in each server process.
* ``last_used_at`` is written at most once a minute per token and process.
* Failed authentications are counted per client address, per process; past
  ``max_failures`` in ``failure_window`` seconds the address gets 429 until the window
  slides. Failures are audited (outcome ``denied``) until the limit is reached.
* A token never reaches a log, an error message or the audit log.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING

from crucible_model_registry.backends.sql import SqlBackend
from crucible_model_registry.domain.access import Principal, csrf_token_for, hash_token
from crucible_model_registry.errors import AuthenticationError, ConfigurationError

if TYPE_CHECKING:
    from crucible_model_registry.registry import Registry
    from crucible_model_registry.store.tokens import StoredToken

__all__ = [
    "SESSION_COOKIE",
    "Authenticator",
    "credentials_from_headers",
    "csrf_token_for",
]

SESSION_COOKIE = "cmr_session"
"""The UI's session cookie: it holds the token itself (HttpOnly, SameSite=Strict)."""

FIRST_ADMIN_HINT = (
    "this registry has no API token yet: someone with database access creates the first "
    "with `cmr token create admin --role admin --database-url <the server's database URL>`"
)


@dataclass(frozen=True, slots=True)
class _Cached:
    until: float  # time.monotonic() deadline
    token: StoredToken


def credentials_from_headers(headers: dict[str, str]) -> str | None:
    """The token a request carries: ``Authorization: Bearer <token>``, else the session cookie.

    Raises:
        AuthenticationError: an Authorization header that is not ``Bearer <token>``.
    """
    given = headers.get("authorization")
    if given is not None:
        scheme, _, value = given.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationError(
                "the Authorization header must be 'Bearer <token>' (CMR_TOKEN, --token)"
            )
        return value.strip()
    cookie = headers.get("cookie")
    if cookie:
        try:
            jar = SimpleCookie(cookie)
        except CookieError:
            return None
        morsel = jar.get(SESSION_COOKIE)
        if morsel is not None and morsel.value:
            return morsel.value
    return None


class Authenticator:
    """Resolves tokens to principals for one server process.

    Args:
        registry: the served registry (on a SQL database: the token table).
        cache_seconds: how long a token's lookup is reused (the revocation window).
        touch_every: the least time between two ``last_used_at`` writes of a token.
        max_failures: failed authentications an address may make per ``failure_window``.
        failure_window: seconds over which failures are counted.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        cache_seconds: float = 5.0,
        touch_every: float = 60.0,
        max_failures: int = 20,
        failure_window: float = 60.0,
    ) -> None:
        backend = registry.backend
        if not isinstance(backend, SqlBackend):
            raise ConfigurationError("a server authenticates against a SQL database")
        self._registry = registry
        self._backend = backend
        self.cache_seconds = cache_seconds
        self._touch_every = touch_every
        self.max_failures = max_failures
        self.failure_window = failure_window
        self._cache: dict[str, _Cached] = {}
        self._touched: dict[str, float] = {}
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ tokens

    def cached(self, token: str) -> Principal | None:
        """The principal of a token whose lookup is cached and current, else None.

        Cheap enough for the event loop; a miss goes to :meth:`authenticate`.
        """
        entry = self._cache.get(hash_token(token))
        if entry is None or entry.until < time.monotonic():
            return None
        return self._valid(entry.token, time.monotonic())

    def authenticate(self, token: str) -> Principal:
        """The principal of ``token`` (blocking: may read and write the database).

        Raises:
            AuthenticationError: unknown (or revoked) or expired; the message never
                holds the token.
        """
        digest = hash_token(token)
        now = time.monotonic()
        entry = self._cache.get(digest)
        if entry is None or entry.until < now:
            found = self._backend.find_token(digest)
            if found is None or not hmac.compare_digest(found.token_hash, digest):
                self._cache.pop(digest, None)
                if self._backend.count_tokens() == 0:
                    raise AuthenticationError(FIRST_ADMIN_HINT)
                raise AuthenticationError(
                    "the token is not valid (unknown or revoked): ask an admin for one"
                )
            entry = _Cached(now + self.cache_seconds, found)
            with self._lock:
                if len(self._cache) > 10_000:  # bounded: a flood of tokens cannot grow it
                    self._cache.clear()
                self._cache[digest] = entry
        principal = self._valid(entry.token, now)
        if principal is None:
            raise AuthenticationError(
                f"the token {entry.token.principal.name!r} has expired: ask an admin for a new one"
            )
        return principal

    def _valid(self, token: StoredToken, now: float) -> Principal | None:
        if token.expires_at is not None and token.expires_at <= datetime.now(UTC):
            return None
        return token.principal

    def needs_touch(self, principal: Principal) -> bool:
        """Is it time to record this token's use again (once a minute per process)?"""
        last = self._touched.get(principal.name)
        return last is None or time.monotonic() - last >= self._touch_every

    def touch(self, principal: Principal) -> None:
        """Record the token's use now (blocking; at most once per ``touch_every``)."""
        self._touched[principal.name] = time.monotonic()
        self._backend.touch_token(
            principal.name, at=datetime.now(UTC), every=timedelta(seconds=self._touch_every)
        )

    def missing(self) -> AuthenticationError:
        """The error for a request without credentials (blocking: counts tokens)."""
        if self._backend.count_tokens() == 0:
            return AuthenticationError(FIRST_ADMIN_HINT)
        return AuthenticationError(
            "this server requires a token: send 'Authorization: Bearer <token>' "
            "(CMR_TOKEN or --token for the cmr client)"
        )

    # ------------------------------------------------------------------ abuse

    def retry_after(self, address: str) -> int | None:
        """Seconds an address that failed too often lately must wait, else None."""
        failures = self._failures.get(address)
        if not failures:
            return None
        now = time.monotonic()
        with self._lock:
            while failures and failures[0] <= now - self.failure_window:
                failures.popleft()
            if len(failures) >= self.max_failures:
                return int(failures[0] + self.failure_window - now) + 1
        return None

    def failed(self, address: str) -> None:
        """Count a failed authentication of ``address``."""
        with self._lock:
            if len(self._failures) > 10_000:
                self._failures.clear()
            self._failures.setdefault(address, deque()).append(time.monotonic())

    def audit_failure(self, address: str, reason: str, request_id: str) -> None:
        """Append a denied ``authenticate`` entry (blocking); never the token."""
        self._backend.record_audit(
            actor="anonymous",
            action="authenticate",
            target=address[:512],
            details={"reason": reason[:200]},
            request_id=request_id,
            outcome="denied",
        )
