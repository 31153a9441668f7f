"""The token table: create, list, revoke, and the lookup by hash that authenticates a request.

Only the SHA-256 of a token is stored (``domain.access.hash_token``); creation and
revocation append their audit entry in their own transaction, and never the secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, insert, select, update

from crucible_model_registry.domain.access import Principal, Role, TokenInfo
from crucible_model_registry.errors import NotFoundError, ValidationError
from crucible_model_registry.store import audit
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.models import now
from crucible_model_registry.store.tables import TOKENS

__all__ = [
    "StoredToken",
    "count_tokens",
    "create_token",
    "find_token",
    "list_tokens",
    "revoke_token",
    "touch_token",
]

T = TOKENS.c

_FIND = select(T.name, T.token_hash, T.role, T.models, T.expires_at, T.last_used_at).where(
    T.token_hash == bindparam("hash")
)
# Only when the stored time is older than the throttle window: racing requests write once.
_TOUCH = (
    update(TOKENS)
    .where(T.name == bindparam("n"))
    .where((T.last_used_at.is_(None)) | (T.last_used_at < bindparam("before")))
    .values(last_used_at=bindparam("at"))
)


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A token found by its hash: its principal, the stored hash, expiry and last use."""

    principal: Principal
    token_hash: str = field(repr=False)
    expires_at: datetime | None
    last_used_at: datetime | None


def create_token(
    db: Database,
    *,
    name: str,
    token_hash: str,
    role: Role,
    models: tuple[str, ...],
    expires_at: datetime | None,
    actor: str,
    request_id: str | None,
) -> TokenInfo:
    """Store a token (its hash) with its audit entry, in one transaction.

    Raises:
        ValidationError: a token of that name exists (field ``name``).
    """
    with db.write() as conn:
        if conn.execute(select(T.name).where(T.name == name)).first() is not None:
            raise ValidationError.single(
                "name", f"a token named {name!r} exists; revoke it first or choose another name"
            )
        at = now()
        conn.execute(
            insert(TOKENS).values(
                name=name,
                token_hash=token_hash,
                role=role.value,
                models=list(models),
                created_at=at,
                created_by=actor,
                expires_at=expires_at,
                last_used_at=None,
            )
        )
        audit.append(
            conn,
            actor=actor,
            action="create_token",
            target=name,
            details={
                "role": role.value,
                "models": list(models),
                "expires_at": None if expires_at is None else expires_at.isoformat(),
            },
            request_id=request_id,
        )
    return TokenInfo(
        name=name,
        role=role,
        models=list(models),
        created_at=at,
        created_by=actor,
        expires_at=expires_at,
        last_used_at=None,
    )


def list_tokens(db: Database) -> list[TokenInfo]:
    """Every token, by name, without secrets or hashes."""
    with db.read() as conn:
        rows = conn.execute(
            select(
                T.name, T.role, T.models, T.created_at, T.created_by, T.expires_at, T.last_used_at
            ).order_by(T.name)
        ).all()
    return [
        TokenInfo(
            name=r.name,
            role=Role(r.role),
            models=list(r.models),
            created_at=r.created_at,
            created_by=r.created_by,
            expires_at=r.expires_at,
            last_used_at=r.last_used_at,
        )
        for r in rows
    ]


def revoke_token(db: Database, name: str, *, actor: str, request_id: str | None) -> None:
    """Delete the token named ``name``, with its audit entry.

    Raises:
        NotFoundError: there is no such token.
    """
    with db.write() as conn:
        gone = conn.execute(delete(TOKENS).where(T.name == name).returning(T.role)).first()
        if gone is None:
            raise NotFoundError("token", name)
        audit.append(
            conn,
            actor=actor,
            action="revoke_token",
            target=name,
            details={"role": gone.role},
            request_id=request_id,
        )


def find_token(db: Database, token_hash: str) -> StoredToken | None:
    """The token stored under ``token_hash``, or None (one indexed read)."""
    with db.read() as conn:
        row = conn.execute(_FIND, {"hash": token_hash}).first()
    if row is None:
        return None
    return StoredToken(
        principal=Principal(row.name, Role(row.role), tuple(row.models)),
        token_hash=row.token_hash,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
    )


def touch_token(db: Database, name: str, *, at: datetime, every: timedelta) -> None:
    """Set the token's last use to ``at`` unless it was set less than ``every`` before."""
    with db.write() as conn:
        conn.execute(_TOUCH, {"n": name, "before": at - every, "at": at})


def count_tokens(db: Database) -> int:
    """How many tokens exist (none: the server explains how to create the first)."""
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(TOKENS)).scalar_one())
