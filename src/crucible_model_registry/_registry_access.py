"""The token methods of ``Registry``: create, list and revoke API tokens (issue 16)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from crucible_model_registry._context import current_actor, current_request_id
from crucible_model_registry._registry_base import RegistryBase
from crucible_model_registry.domain.access import (
    NewToken,
    Role,
    TokenInfo,
    check_patterns,
    check_token_name,
    parse_expires_in,
)
from crucible_model_registry.domain.enums import parse_enum

__all__ = ["AccessMethods"]


class AccessMethods(RegistryBase):
    """API tokens (API.md §12); part of ``Registry``. Every method needs the admin role."""

    def create_token(
        self,
        name: str,
        *,
        role: Role | str,
        models: Iterable[str] | None = None,
        expires_in: timedelta | str | int | None = None,
    ) -> NewToken:
        """Create an API token; its secret is in the result and nowhere else, ever.

        The token's name is its principal: the actor recorded in every history and in the
        audit log for what is done with it. Nobody gets rights implicitly: the token has
        ``role`` on the models matching ``models`` and nothing more.

        Args:
            name: 1-128 of letters, digits, ``._@-``.
            role: ``read``, ``write``, ``promote`` or ``admin`` (each includes the ones
                before it).
            models: glob patterns (``*``, ``?``) of the model names the role applies to;
                None or empty: every model.
            expires_in: a timedelta, seconds, or ``"90d"``/``"12h"``/``"30m"``/``"2w"``;
                None: it never expires.

        Raises:
            ValidationError: a bad name, role, pattern or duration, or the name is taken.
            PermissionDeniedError: the acting principal is not an admin of every model.
        """
        name = check_token_name(name)
        checked_role = parse_enum(Role, role, field="role")
        patterns = check_patterns(models)
        span = parse_expires_in(expires_in)
        self._authorize(Role.ADMIN, None, action="create_token", target=name)
        return self._backend.create_token(
            name,
            role=checked_role,
            models=patterns,
            expires_in=span,
            actor=current_actor(),
            request_id=current_request_id(),
        )

    def list_tokens(self) -> list[TokenInfo]:
        """Every token, by name: role, models, creation, expiry, last use; never a secret.

        Raises:
            PermissionDeniedError: the acting principal is not an admin of every model.
        """
        self._authorize(Role.ADMIN, None, action="list_tokens")
        return self._backend.list_tokens()

    def revoke_token(self, name: str) -> None:
        """Delete a token: requests with it fail from now on (at a server, within its
        authentication cache window of a few seconds).

        Raises:
            NotFoundError: there is no token of that name.
            PermissionDeniedError: the acting principal is not an admin of every model.
        """
        name = check_token_name(name)
        self._authorize(Role.ADMIN, None, action="revoke_token", target=name)
        self._backend.revoke_token(name, actor=current_actor(), request_id=current_request_id())
