"""Access control's rules: roles, principals, model-name grants, token values (issue 16).

Pure values and checks, no I/O: the registry asks :meth:`Principal.may` before every
operation, the store keeps tokens (``store/tokens.py``), the server authenticates them
(``server/auth.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from fnmatch import fnmatchcase

from crucible_model_registry.domain.enums import Stage
from crucible_model_registry.domain.rules import MAX_ACTOR, check_text
from crucible_model_registry.errors import ValidationError

__all__ = [
    "DEFAULT_PROTECTED",
    "TOKEN_PREFIX",
    "NewToken",
    "Principal",
    "Role",
    "TokenInfo",
    "check_patterns",
    "check_token_name",
    "contains_token",
    "csrf_token_for",
    "hash_token",
    "looks_like_token",
    "new_token_secret",
    "parse_expires_in",
]

TOKEN_PREFIX = "cmr_"  # noqa: S105 - a prefix, not a secret
"""Every token starts with this, so secret scanners and people recognise one."""

DEFAULT_PROTECTED: tuple[Stage, ...] = (Stage.PRODUCTION,)
"""The stages only ``promote`` may touch when a model's policy does not say otherwise."""

_TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
_PATTERN = re.compile(r"[A-Za-z0-9._/*?-]{1,200}")
_DURATION = re.compile(r"(\d{1,6})([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TOKEN_SHAPE = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_-]{43}")


class Role(StrEnum):
    """What a principal may do; each role includes the ones before it."""

    READ = "read"
    WRITE = "write"
    PROMOTE = "promote"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """0 for read ... 3 for admin."""
        return _RANKS[self]

    def includes(self, other: Role) -> bool:
        """Does this role grant everything ``other`` does?"""
        return _RANKS[self] >= _RANKS[other]


_RANKS = {role: rank for rank, role in enumerate(Role)}


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting, with what role, on which models (a token's name, role and grants).

    Attributes:
        name: recorded as the actor in every history and in the audit log.
        role: the most it may do.
        models: glob patterns (``fnmatch``, case-sensitive) of the model names the role
            applies to; empty means every model.
    """

    name: str
    role: Role
    models: tuple[str, ...] = ()

    @property
    def all_models(self) -> bool:
        """Does the role apply to every model (no patterns)?"""
        return not self.models

    def sees(self, model_name: str) -> bool:
        """Does some grant name ``model_name``?"""
        return not self.models or any(fnmatchcase(model_name, p) for p in self.models)

    def may(self, needed: Role, model_name: str | None) -> bool:
        """May this principal do what needs ``needed`` on ``model_name``?

        ``model_name`` None means the operation spans every model (a whole-registry check,
        garbage collection, import): only a principal granted every model may.
        """
        if not self.role.includes(needed):
            return False
        return self.all_models if model_name is None else self.sees(model_name)


@dataclasses.dataclass(frozen=True, slots=True)
class NewToken:
    """A token just created: the only time its secret is shown.

    Attributes:
        name: the principal's name (the actor in histories and the audit log).
        token: the secret to send as ``Authorization: Bearer <token>``; never in ``repr``.
        role: what it may do.
        models: the model-name patterns it applies to (empty: every model).
        expires_at: when it stops working, or None for never.
    """

    name: str
    token: str = dataclasses.field(repr=False)
    role: Role
    models: list[str]
    expires_at: datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class TokenInfo:
    """What is known about a token, without its secret (``list_tokens``).

    Attributes:
        created_by: the actor who created it.
        last_used_at: the last authenticated request, to within a minute; None if never.
    """

    name: str
    role: Role
    models: list[str]
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    last_used_at: datetime | None


def check_token_name(name: object, *, field: str = "name") -> str:
    """A token's name: a letter or digit, then up to 127 of letters, digits, ``._@-``."""
    if not isinstance(name, str) or not _TOKEN_NAME.fullmatch(name):
        raise ValidationError.single(
            field,
            "must be 1-128 of letters, digits, '.', '_', '@' and '-', "
            "starting with a letter or digit",
        )
    return check_text(name, field=field, limit=MAX_ACTOR)


def check_patterns(models: object, *, field: str = "models") -> tuple[str, ...]:
    """Model-name glob patterns (``*`` and ``?``; ``[...]`` is not accepted), deduplicated.

    Raises:
        ValidationError: not a list of strings, or a pattern with other characters.
    """
    if models is None:
        return ()
    if isinstance(models, str) or not isinstance(models, Iterable):
        raise ValidationError.single(field, "must be a list of model-name patterns")
    out: list[str] = []
    for item in models:
        if not isinstance(item, str) or not _PATTERN.fullmatch(item):
            raise ValidationError.single(
                field,
                f"{item!r} is not a model-name pattern: use model-name characters "
                "with '*' (any run) and '?' (one character)",
            )
        if item not in out:
            out.append(item)
    return tuple(out)


def parse_expires_in(value: object, *, field: str = "expires_in") -> timedelta | None:
    """``90d``, ``12h``, ``30m``, ``45s``, ``2w``, a number of seconds, a timedelta, or None.

    Raises:
        ValidationError: anything else, or a duration that is not positive.
    """
    if value is None:
        return None
    if isinstance(value, timedelta):
        span = value
    elif isinstance(value, int) and not isinstance(value, bool):
        span = timedelta(seconds=value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip())):
        span = timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    else:
        raise ValidationError.single(
            field, "must be a duration such as 90d, 12h, 30m or 2w (or seconds)"
        )
    if span <= timedelta(0):
        raise ValidationError.single(field, "must be positive")
    if span > timedelta(days=3660):
        raise ValidationError.single(field, "may be at most ten years")
    return span


def new_token_secret() -> str:
    """A fresh token: the prefix and 256 random bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def looks_like_token(value: str) -> bool:
    """Is ``value`` shaped like a token of ours?"""
    return _TOKEN_SHAPE.fullmatch(value) is not None


def contains_token(text: str) -> bool:
    """Does ``text`` hold something shaped like a token of ours (a URL, a log line)?"""
    return _TOKEN_SHAPE.search(text) is not None


def hash_token(token: str) -> str:
    """The SHA-256 hex digest stored in place of the token.

    A plain hash suffices: the token holds 256 random bits, so no dictionary or brute
    force applies, and lookups by hash stay one indexed read.
    """
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def csrf_token_for(token: str) -> str:
    """The CSRF token of a UI session authenticated by ``token``: stateless, per token.

    ``HMAC-SHA256(key=token, msg=b"cmr-csrf")`` in hex: the page embeds it, a form posts it
    back, and the server recomputes it from the session cookie; a cross-site form cannot
    know it without the token itself.
    """
    return hmac.new(token.encode("utf-8", "surrogatepass"), b"cmr-csrf", "sha256").hexdigest()
