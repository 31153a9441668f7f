"""Model rows (lookup, creation, lock, reads, update), ref resolution and the write clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from crucible_model_registry.domain.audit import Attribution
from crucible_model_registry.domain.enums import Stage
from crucible_model_registry.domain.records import Model
from crucible_model_registry.domain.refs import VersionRef
from crucible_model_registry.domain.rules import is_reserved_ref_word
from crucible_model_registry.domain.specs import merge_patch
from crucible_model_registry.errors import DuplicateModelError, NotFoundError
from crucible_model_registry.store import audit
from crucible_model_registry.store._records import model_from_row
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.tables import ALIASES, MODEL_TAGS, MODELS, VERSIONS

__all__ = [
    "KEEP",
    "create_model",
    "get_model",
    "get_or_create_model",
    "list_models",
    "lock_model",
    "model_id_of",
    "now",
    "rename_model",
    "resolve_ref",
    "update_model",
]

MTAGS = MODEL_TAGS
V = VERSIONS.c
M = MODELS.c


KEEP: Any = object()  # update_model: "leave this field as it is"


def now() -> datetime:
    """The time stamped on a write; one value per transaction."""
    return datetime.now(UTC)


# --------------------------------------------------------------------------- models


# Built once, so that SQLAlchemy reuses their compiled forms (see registration.py).
_MODEL_ID = select(M.id).where(M.name == bindparam("name"))
_VERSION_ID = select(V.id).where(V.id == bindparam("id"))
_LOCK_MODEL = select(M.id).where(M.id == bindparam("id")).with_for_update()


def model_id_of(conn: Connection, name: str) -> int | None:
    """The id of the model called ``name``, or None."""
    return conn.execute(_MODEL_ID, {"name": name}).scalar()


def get_or_create_model(db: Database, conn: Connection, name: str, at: datetime) -> int:
    """The model's id, creating its row first if need be (racing creators both succeed)."""
    model_id = model_id_of(conn, name)
    if model_id is not None:
        return model_id
    values: dict[str, Any] = {
        "name": name,
        "description": None,
        "tags": [],
        "metadata": {},
        "version_seq": 0,
        "created_at": at,
        "updated_at": at,
    }
    # Two first registrations of one model race here: ON CONFLICT lets both proceed.
    if db.is_postgres:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(MODELS).values(values).on_conflict_do_nothing())
    elif db.is_sqlite:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(MODELS).values(values).on_conflict_do_nothing())
    else:
        with conn.begin_nested() as savepoint:
            try:
                conn.execute(insert(MODELS).values(values))
            except IntegrityError:
                savepoint.rollback()
    model_id = model_id_of(conn, name)
    assert model_id is not None
    return model_id


def lock_model(db: Database, conn: Connection, model_id: int) -> None:
    """Serialise writers of one model (numbering, promotion) on its row until commit."""
    if db.is_sqlite:
        return  # BEGIN IMMEDIATE already holds the database's single write lock.
    conn.execute(_LOCK_MODEL, {"id": model_id})


def get_model(db: Database, name: str) -> Model:
    with db.read() as conn:
        row = conn.execute(select(MODELS).where(M.name == name)).first()
    if row is None:
        raise NotFoundError("model", name, "list models with `cmr models`")
    return model_from_row(row)


def list_models(db: Database) -> list[Model]:
    with db.read() as conn:
        return [model_from_row(r) for r in conn.execute(select(MODELS).order_by(M.name))]


def create_model(
    db: Database,
    name: str,
    *,
    description: str | None = None,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    by: Attribution,
) -> Model:
    """A new model without versions, audited.

    Raises:
        DuplicateModelError: a model of that name exists (also when a racing call made it).
    """
    at = now()
    values: dict[str, Any] = {
        "name": name,
        "description": description,
        "tags": tags or [],
        "metadata": metadata or {},
        "version_seq": 0,
        "created_at": at,
        "updated_at": at,
    }
    with db.write() as conn:
        if model_id_of(conn, name) is not None:
            raise DuplicateModelError(name)
        try:
            # A savepoint, so that a racing creator's unique violation is ours to report.
            with conn.begin_nested():
                model_id = conn.execute(insert(MODELS).values(values).returning(M.id)).scalar_one()
        except IntegrityError as exc:
            raise DuplicateModelError(name) from exc
        if tags:
            conn.execute(insert(MTAGS), [{"model_id": model_id, "tag": t} for t in tags])
        row = conn.execute(select(MODELS).where(M.id == model_id)).one()
        audit.write(
            conn,
            by,
            "create_model",
            name,
            {"description": description, "tags": tags or [], "metadata": metadata or {}},
            at=at,
        )
    return model_from_row(row)


def rename_model(db: Database, old: str, new: str, *, by: Attribution) -> Model:
    """Give a model another name; its versions, aliases, histories and policy go with it.

    Audited under the old name (details: ``old``, ``new``); renaming to the same name
    changes and records nothing.

    Raises:
        NotFoundError: there is no model called ``old``.
        DuplicateModelError: a model called ``new`` exists already.
    """
    at = now()
    with db.write() as conn:
        model_id = model_id_of(conn, old)
        if model_id is None:
            raise NotFoundError("model", old, "list models with `cmr models`")
        lock_model(db, conn, model_id)
        if new != old:
            if model_id_of(conn, new) is not None:
                raise DuplicateModelError(new)
            try:
                with conn.begin_nested():
                    conn.execute(
                        update(MODELS).where(M.id == model_id).values(name=new, updated_at=at)
                    )
            except IntegrityError as exc:
                raise DuplicateModelError(new) from exc
            audit.write(conn, by, "rename_model", old, {"old": old, "new": new}, at=at)
        row = conn.execute(select(MODELS).where(M.id == model_id)).one()
    return model_from_row(row)


def update_model(
    db: Database,
    name: str,
    *,
    description: str | object | None = KEEP,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    metadata_patch: dict[str, Any] | None = None,
    by: Attribution,
) -> Model:
    """Change a model's description, tags or metadata (only what is given), audited.

    ``metadata_patch`` is a JSON merge patch applied under the model's row lock.
    """
    at = now()
    with db.write() as conn:
        model_id = model_id_of(conn, name)
        if model_id is None:
            raise NotFoundError("model", name)
        values: dict[str, Any] = {"updated_at": at}
        if description is not KEEP:
            values["description"] = description
        if metadata is not None:
            values["metadata"] = metadata
        if metadata_patch is not None:
            lock_model(db, conn, model_id)
            current = conn.execute(select(M.metadata).where(M.id == model_id)).scalar()
            values["metadata"] = merge_patch(current or {}, metadata_patch)
        if tags is not None:
            values["tags"] = tags
            conn.execute(delete(MTAGS).where(MTAGS.c.model_id == model_id))
            if tags:
                conn.execute(insert(MTAGS), [{"model_id": model_id, "tag": t} for t in tags])
        old = conn.execute(select(MODELS).where(M.id == model_id)).one()
        conn.execute(update(MODELS).where(M.id == model_id).values(values))
        row = conn.execute(select(MODELS).where(M.id == model_id)).one()
        changed = {k: {"old": old._mapping[k], "new": v} for k, v in values.items()}
        del changed["updated_at"]
        audit.write(conn, by, "update_model", name, changed, at=at)
    return model_from_row(row)


# --------------------------------------------------------------------------- refs


def resolve_ref(conn: Connection, ref: VersionRef) -> int:
    """The version id a reference names now: id, latest, stage, alias, else version string.

    Raises:
        NotFoundError: if the model or the version does not exist.
    """
    if ref.id is not None:
        if conn.execute(_VERSION_ID, {"id": ref.id}).scalar() is None:
            raise NotFoundError("version", ref.id)
        return ref.id
    assert ref.model_name is not None
    assert ref.selector is not None
    model_id = model_id_of(conn, ref.model_name)
    if model_id is None:
        raise NotFoundError("model", ref.model_name, "list models with `cmr models`")
    selector = ref.selector
    word = selector.lower()
    query = None
    if word == "latest":
        query = select(func.max(V.id)).where(V.model_id == model_id)
    elif is_reserved_ref_word(word):
        stage = Stage.EXPERIMENT if word == "development" else Stage(word)
        query = select(func.max(V.id)).where(V.model_id == model_id, V.stage == stage.value)
    else:
        version_id = conn.execute(
            select(ALIASES.c.version_id).where(
                ALIASES.c.model_id == model_id, ALIASES.c.alias == selector
            )
        ).scalar()
        if version_id is not None:
            return int(version_id)
        query = select(V.id).where(V.model_id == model_id, V.version == selector)
    version_id = conn.execute(query).scalar()
    if version_id is None:
        raise NotFoundError("version", str(ref))
    return int(version_id)
