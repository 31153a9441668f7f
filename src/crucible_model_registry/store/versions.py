"""Existing versions: reads by ref or config hash, stage history, metrics, tags, deletion."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from crucible_model_registry.domain.audit import Attribution
from crucible_model_registry.domain.enums import Stage
from crucible_model_registry.domain.records import Model, ModelVersion, StageTransition
from crucible_model_registry.domain.refs import VersionRef
from crucible_model_registry.domain.specs import merge_patch
from crucible_model_registry.errors import NotFoundError, ValidationError
from crucible_model_registry.store import audit
from crucible_model_registry.store._records import (
    load_versions,
    model_from_row,
    version_columns,
    versions_from_rows,
)
from crucible_model_registry.store.artifacts import live_claim_problem
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.governance import record_alias_changes
from crucible_model_registry.store.models import KEEP, lock_model, model_id_of, now, resolve_ref
from crucible_model_registry.store.tables import (
    ALIAS_CHANGES,
    ALIASES,
    ARTIFACTS,
    BLOB_REFS,
    EDGES,
    METRICS,
    MODEL_TAGS,
    MODELS,
    PENDING_UPLOADS,
    POLICIES,
    POLICY_CHANGES,
    TRANSITIONS,
    VERSION_TAGS,
    VERSIONS,
)

__all__ = [
    "add_tags",
    "delete_model",
    "delete_version",
    "find_by_config_hash",
    "get_version",
    "remove_tags",
    "stage_history",
    "update_metrics",
    "update_version",
]

VTAGS = VERSION_TAGS
V = VERSIONS.c


# --------------------------------------------------------------------------- reads


def get_version(db: Database, ref: VersionRef) -> ModelVersion:
    with db.read() as conn:
        version_id = resolve_ref(conn, ref)
        return load_versions(conn, [version_id])[0]


def find_by_config_hash(db: Database, config_hash: str) -> ModelVersion | None:
    with db.read() as conn:
        rows = conn.execute(
            version_columns().where(V.config_hash == config_hash).order_by(V.id).limit(1)
        )
        found = versions_from_rows(conn, rows)
    return found[0] if found else None


# --------------------------------------------------------------------------- stages


def stage_history(db: Database, ref: VersionRef) -> list[StageTransition]:
    t = TRANSITIONS.c
    with db.read() as conn:
        version_id = resolve_ref(conn, ref)
        rows = conn.execute(select(TRANSITIONS).where(t.version_id == version_id).order_by(t.id))
        return [
            StageTransition(
                version_id=r.version_id,
                from_stage=Stage(r.from_stage) if r.from_stage else None,
                to_stage=Stage(r.to_stage),
                reason=r.reason,
                actor=r.actor,
                at=r.at,
            )
            for r in rows
        ]


def _lock_version(db: Database, conn: Connection, version_id: int) -> Any:
    query = select(V.id, V.model_id, V.stage, V.metrics, V.tags).where(V.id == version_id)
    if not db.is_sqlite:
        query = query.with_for_update()
    return conn.execute(query).one()


def update_metrics(
    db: Database, ref: VersionRef, metrics: dict[str, float], *, by: Attribution
) -> ModelVersion:
    """Merge metrics into a version (later values win), under the version's row lock."""
    at = now()
    with db.write() as conn:
        version_id = resolve_ref(conn, ref)
        row = _lock_version(db, conn, version_id)
        merged = {**row.metrics, **metrics}
        if metrics:
            conn.execute(
                delete(METRICS).where(
                    and_(METRICS.c.version_id == version_id, METRICS.c.name.in_(list(metrics)))
                )
            )
            conn.execute(
                insert(METRICS),
                [{"version_id": version_id, "name": k, "value": v} for k, v in metrics.items()],
            )
        conn.execute(
            update(VERSIONS).where(V.id == version_id).values(metrics=merged, updated_at=at)
        )
        record = load_versions(conn, [version_id])[0]
        old = {k: row.metrics[k] for k in metrics if k in row.metrics}
        audit.write(conn, by, "update_metrics", record.ref, {"metrics": metrics, "old": old}, at=at)
        return record


def update_version(
    db: Database,
    ref: VersionRef,
    *,
    description: str | object | None = KEEP,
    metadata: dict[str, Any] | None = None,
    metadata_patch: dict[str, Any] | None = None,
    by: Attribution,
) -> ModelVersion:
    """Change a version's description or metadata (replaced, or merge-patched under the
    version's row lock, so that concurrent patches of different keys both land), audited
    with each changed field's old and new value."""
    at = now()
    with db.write() as conn:
        version_id = resolve_ref(conn, ref)
        _lock_version(db, conn, version_id)
        old = (
            conn.execute(select(V.description, V.metadata).where(V.id == version_id)).one()._mapping
        )
        values: dict[str, Any] = {"updated_at": at}
        if description is not KEEP:
            values["description"] = description
        if metadata is not None:
            values["metadata"] = metadata
        if metadata_patch is not None:
            values["metadata"] = merge_patch(old["metadata"] or {}, metadata_patch)
        conn.execute(update(VERSIONS).where(V.id == version_id).values(values))
        record = load_versions(conn, [version_id])[0]
        changed = {k: {"old": old[k], "new": v} for k, v in values.items() if k != "updated_at"}
        audit.write(conn, by, "update_version", record.ref, changed, at=at)
        return record


def add_tags(db: Database, ref: VersionRef, tags: list[str], *, by: Attribution) -> ModelVersion:
    """Add the tags the version lacks; the audit entry lists them (none added: no entry)."""
    at = now()
    with db.write() as conn:
        version_id = resolve_ref(conn, ref)
        row = _lock_version(db, conn, version_id)
        new = [t for t in tags if t not in row.tags]
        if new:
            conn.execute(insert(VTAGS), [{"version_id": version_id, "tag": t} for t in new])
            conn.execute(
                update(VERSIONS)
                .where(V.id == version_id)
                .values(tags=[*row.tags, *new], updated_at=at)
            )
        record = load_versions(conn, [version_id])[0]
        if new:
            audit.write(conn, by, "add_tags", record.ref, {"tags": new}, at=at)
        return record


def remove_tags(db: Database, ref: VersionRef, tags: list[str], *, by: Attribution) -> ModelVersion:
    """Remove the tags the version has; the audit entry lists them (none removed: no entry)."""
    at = now()
    with db.write() as conn:
        version_id = resolve_ref(conn, ref)
        row = _lock_version(db, conn, version_id)
        gone = [t for t in tags if t in row.tags]
        if gone:
            conn.execute(
                delete(VTAGS).where(VTAGS.c.version_id == version_id, VTAGS.c.tag.in_(gone))
            )
            conn.execute(
                update(VERSIONS)
                .where(V.id == version_id)
                .values(tags=[t for t in row.tags if t not in gone], updated_at=at)
            )
        record = load_versions(conn, [version_id])[0]
        if gone:
            audit.write(conn, by, "remove_tags", record.ref, {"tags": gone}, at=at)
        return record


# --------------------------------------------------------------------------- delete


def delete_version(db: Database, ref: VersionRef, *, force: bool, by: Attribution) -> ModelVersion:
    """Delete a version's records; its stage history stays, as the audit trail.

    An upload (or artifact deletion) under way to the version is never interrupted: its
    live claim refuses the deletion, even with ``force``, rather than waiting for bytes of
    unbounded size while holding the model's lock; a claim whose lease ran out is removed.

    Returns:
        The deleted version as it was, so the caller can remove its artifact bytes.

    Raises:
        ValidationError: it is in production or has descendants and ``force`` is False,
            or an upload to it is under way.
    """
    at = now()
    with db.write() as conn:
        version_id = resolve_ref(conn, ref)
        record = load_versions(conn, [version_id])[0]
        lock_model(db, conn, record.model_id)
        # The version's row lock comes before the claims are read: a claim being inserted
        # holds a key-share lock on the row (its foreign key) until it commits, so this
        # waits for it and then sees it; a later claim waits for this delete and fails.
        if (
            db.lock_clause()
            and conn.execute(select(V.id).where(V.id == version_id).with_for_update()).first()
            is None
        ):
            raise NotFoundError("version", version_id, "it was deleted meanwhile")
        busy = live_claim_problem(conn, version_id=version_id)
        if busy is not None:
            raise ValidationError.single("version", f"refusing to delete {record.ref}: {busy}")
        if not force:
            problems = []
            if record.stage is Stage.PRODUCTION:
                problems.append("it is in production (promote it elsewhere first)")
            children = conn.execute(
                select(func.count()).where(EDGES.c.source_version_id == version_id)
            ).scalar_one()
            if children:
                problems.append(f"{children} version(s) descend from it")
            if problems:
                raise ValidationError.single(
                    "version",
                    f"refusing to delete {record.ref}: {' and '.join(problems)}; "
                    "pass force=True to delete it anyway",
                )
        aliases = (
            conn.execute(select(ALIASES.c.alias).where(ALIASES.c.version_id == version_id))
            .scalars()
            .all()
        )
        record_alias_changes(
            conn,
            record.model_id,
            aliases,
            version_id=None,
            reason=f"version {record.version} deleted",
            actor=by.actor,
            at=at,
        )
        # Children of ON DELETE CASCADE tables go with it; SQLite enforces this only with
        # PRAGMA foreign_keys, which engine.py turns on, but explicit deletes keep any
        # host-supplied engine correct too.
        conn.execute(
            delete(BLOB_REFS).where(
                BLOB_REFS.c.artifact_id.in_(
                    select(ARTIFACTS.c.id).where(ARTIFACTS.c.version_id == version_id)
                )
            )
        )
        for table in (METRICS, VTAGS, ARTIFACTS, PENDING_UPLOADS, ALIASES):
            conn.execute(delete(table).where(table.c.version_id == version_id))
        conn.execute(
            delete(EDGES).where(
                (EDGES.c.source_version_id == version_id)
                | (EDGES.c.target_version_id == version_id)
            )
        )
        conn.execute(delete(VERSIONS).where(V.id == version_id))
        details = {
            "version_id": version_id,
            "stage": record.stage.value,
            "force": force,
            "artifacts": [a.id for a in record.artifacts],
            "aliases": sorted(aliases),
        }
        audit.write(conn, by, "delete_version", record.ref, details, at=at)
    return replace(record)


def delete_model(db: Database, name: str, *, force: bool, by: Attribution) -> Model:
    """Delete a model with every version, alias, policy and history of it.

    Refused, even with ``force``, while an upload to one of its versions is under way.
    Without ``force`` also while a version is in production, or a version of another model
    descends from one of its versions (the lineage of that model would lose its parent).
    The audit log keeps its entries; artifact bytes stay where they are.

    Returns:
        The model as it was.

    Raises:
        NotFoundError: there is no such model.
        ValidationError: one of the conditions above (nothing is deleted).
    """
    with db.write() as conn:
        model_id = model_id_of(conn, name)
        if model_id is None:
            raise NotFoundError("model", name, "list models with `cmr models`")
        lock_model(db, conn, model_id)
        model = model_from_row(conn.execute(select(MODELS).where(MODELS.c.id == model_id)).one())
        rows = conn.execute(select(V.id, V.version, V.stage).where(V.model_id == model_id)).all()
        ids = [r.id for r in rows]
        for version_id in ids:
            busy = live_claim_problem(conn, version_id=version_id)
            if busy is not None:
                raise ValidationError.single("model", f"refusing to delete {name!r}: {busy}")
        if not force and ids:
            problems = []
            live = sorted(r.version for r in rows if r.stage == Stage.PRODUCTION.value)
            if live:
                problems.append(f"version(s) {', '.join(live)} are in production")
            outside = conn.execute(
                select(func.count())
                .select_from(EDGES.join(VERSIONS, EDGES.c.target_version_id == V.id))
                .where(EDGES.c.source_version_id.in_(ids), V.model_id != model_id)
            ).scalar_one()
            if outside:
                problems.append(f"{outside} version(s) of other models descend from it")
            if problems:
                raise ValidationError.single(
                    "model",
                    f"refusing to delete {name!r}: {' and '.join(problems)}; "
                    "pass force=True to delete it anyway",
                )
        # Explicit deletes, as in delete_version: a host-supplied engine may not enforce
        # ON DELETE CASCADE.
        if ids:
            for table in (METRICS, VTAGS, ARTIFACTS, PENDING_UPLOADS, ALIASES):
                conn.execute(delete(table).where(table.c.version_id.in_(ids)))
            conn.execute(
                delete(EDGES).where(
                    EDGES.c.source_version_id.in_(ids) | EDGES.c.target_version_id.in_(ids)
                )
            )
            conn.execute(delete(VERSIONS).where(V.model_id == model_id))
        for table in (MODEL_TAGS, POLICIES, POLICY_CHANGES, TRANSITIONS, ALIAS_CHANGES, ALIASES):
            conn.execute(delete(table).where(table.c.model_id == model_id))
        conn.execute(delete(MODELS).where(MODELS.c.id == model_id))
        details = {"force": force, "versions": sorted(r.version for r in rows)}
        audit.write(conn, by, "delete_model", name, details, at=now())
    return model
