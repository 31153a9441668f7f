"""Stage changes: the promotion transaction, with archiving of the incumbents."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, case, insert, or_, select, update

from crucible_model_registry.domain.audit import Attribution
from crucible_model_registry.domain.enums import Stage
from crucible_model_registry.domain.policy import (
    PolicyCondition,
    PromotionCheck,
    PromotionPolicy,
    distinct_promoter_condition,
    distinct_promoter_unmet,
)
from crucible_model_registry.domain.records import PromotionResult
from crucible_model_registry.domain.refs import VersionRef
from crucible_model_registry.errors import NotFoundError, PromotionDeniedError
from crucible_model_registry.store import audit
from crucible_model_registry.store._records import (
    artifact_columns,
    version_columns,
    version_with_artifacts,
)
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.governance import promotion_conditions, unmet_conditions
from crucible_model_registry.store.models import now, resolve_ref
from crucible_model_registry.store.tables import ARTIFACTS, MODELS, POLICIES, TRANSITIONS, VERSIONS

__all__ = ["PromotionResult", "check_promotion", "promote"]

V = VERSIONS.c

# Built once, so that SQLAlchemy reuses their compiled forms (bench/register.py).
_MODEL_OF_VERSION = select(V.model_id).where(V.id == bindparam("id"))
# PostgreSQL: the same, taking the model's row lock (SQLite's BEGIN IMMEDIATE is the lock).
_LOCK_MODEL_OF_VERSION = (
    select(MODELS.c.id)
    .join_from(VERSIONS, MODELS, MODELS.c.id == V.model_id)
    .where(V.id == bindparam("id"))
    .with_for_update(of=MODELS)
)
# The version as a record's rows (one per artifact), with its model's policy.
_VERSION_AND_POLICY = (
    version_columns()
    .add_columns(POLICIES.c.policy, *artifact_columns())
    .outerjoin(POLICIES, POLICIES.c.model_id == V.model_id)
    .outerjoin(ARTIFACTS, ARTIFACTS.c.version_id == V.id)
    .where(V.id == bindparam("id"))
    .order_by(ARTIFACTS.c.id)
)
_LOCK_VERSION_AND_POLICY = _VERSION_AND_POLICY.with_for_update(of=VERSIONS)
_MOVE = (
    update(VERSIONS)
    .where(V.id == bindparam("vid"))
    .values(stage=bindparam("to_stage"), updated_at=bindparam("at"))
)
# The version moves in and the model's other versions in the stage move to archived.
_MOVE_AND_ARCHIVE = (
    update(VERSIONS)
    .where(
        or_(
            V.id == bindparam("vid"),
            and_(V.model_id == bindparam("mid"), V.stage == bindparam("to_stage")),
        )
    )
    .values(
        stage=case((V.id == bindparam("vid"), bindparam("to_stage")), else_=Stage.ARCHIVED.value),
        updated_at=bindparam("at"),
    )
    .returning(V.id)
)
# RETURNING makes the history rows one multi-row INSERT (see store/registration.py).
_INSERT_TRANSITIONS = insert(TRANSITIONS).returning(TRANSITIONS.c.id)
# PostgreSQL: the stage change and its history rows in one round trip, the archived ones'
# rows first (as above); the result is the archived ids.
_MOVE_AND_RECORD = """\
WITH moved AS (
    UPDATE cmr_model_versions
    SET stage = CASE WHEN id = %(vid)s THEN %(to_stage)s::text ELSE 'archived' END,
        updated_at = %(at)s
    WHERE {which}
    RETURNING id
), history AS (
    INSERT INTO cmr_stage_transitions (model_id, version_id, from_stage, to_stage, reason,
        actor, at)
    SELECT %(mid)s, id,
        CASE WHEN id = %(vid)s THEN %(from_stage)s::text ELSE %(to_stage)s::text END,
        CASE WHEN id = %(vid)s THEN %(to_stage)s::text ELSE 'archived' END,
        CASE WHEN id = %(vid)s THEN %(reason)s::text ELSE %(archived_why)s::text END,
        %(actor)s::text, %(at)s
    FROM moved
    ORDER BY id = %(vid)s, id
), audit_row AS (
    INSERT INTO cmr_audit_log (at, actor, action, target, details, request_id, outcome)
    VALUES (%(at)s, %(by)s::text, 'promote', %(ref)s::text,
        json_build_object('version_id', %(vid)s::bigint, 'from_stage', %(from_stage)s::text,
            'to_stage', %(to_stage)s::text, 'reason', %(reason)s::text,
            'archived', ARRAY(SELECT id FROM moved WHERE id <> %(vid)s ORDER BY id)),
        %(request_id)s::text, 'ok')
)
SELECT id FROM moved WHERE id <> %(vid)s ORDER BY id
"""
_PG_MOVE = _MOVE_AND_RECORD.format(which="id = %(vid)s")
# The stage to archive is written into the SQL: its statistics then steer the prepared
# statement's generic plan to an index (a parameter's guessed 1/3 of the rows makes it
# scan the whole table, which grows with the model's versions).
_PG_MOVE_AND_ARCHIVE = {
    stage: _MOVE_AND_RECORD.format(
        which=f"id = %(vid)s OR (model_id = %(mid)s AND stage = '{stage.value}')"
    )
    for stage in Stage
}


def promote(
    db: Database,
    ref: VersionRef,
    target: Stage,
    *,
    reason: str | None,
    by: Attribution,
    archive_existing: bool,
) -> PromotionResult:
    """Move a version to ``target`` in one transaction, recording every change.

    Writers of one model are serialised on the model's row lock, so of N concurrent
    promotions with ``archive_existing`` (or into a stage the model's policy makes
    exclusive) the last to commit is the only one left in the stage. The policy is checked
    in this transaction; promoting to the current stage changes nothing and records
    nothing, policy or not. A change appends one audit entry (``promote``: from and to
    stage, reason, the archived versions' ids) in the same transaction.

    Raises:
        PromotionDeniedError: the model's policy forbids the change (nothing is written).
    """
    with db.write() as conn:
        version_id = ref.id if ref.id is not None else resolve_ref(conn, ref)
        # The model's row lock serialises this model's writers (promotions, aliases, policy).
        lock = _LOCK_MODEL_OF_VERSION if db.lock_clause() else _MODEL_OF_VERSION
        model_id = conn.execute(lock, {"id": version_id}).scalar()
        if model_id is None:
            raise NotFoundError("version", str(ref) if ref.id is None else ref.id)
        # Stamp the change only under the lock, so that a model's history is in commit order
        # and answers as of a past time see promotions in the order they happened.
        at = now()
        # Read the stage and the policy only under the lock: a concurrent promotion may have
        # just changed them. The version's row lock also holds off update_metrics until
        # commit, so the gate below judges the metrics the version has when its stage changes.
        query = _LOCK_VERSION_AND_POLICY if db.lock_clause() else _VERSION_AND_POLICY
        rows = conn.execute(query, {"id": version_id}).all()
        if not rows:  # deleted while this call waited for the model's lock
            raise NotFoundError("version", version_id)
        row = rows[0]
        current = Stage(row.stage)
        if current is target:
            return PromotionResult(version_with_artifacts(rows), current, [], changed=False)
        policy = None if row.policy is None else PromotionPolicy.from_dict(row.policy)
        exclusive = policy is not None and target in policy.exclusive
        archive = (archive_existing or exclusive) and target is not Stage.ARCHIVED
        if policy is not None:
            unmet = unmet_conditions(conn, policy, version_id, current, target)
            if archive and not exclusive:
                # archive_existing moves the incumbents too, so their moves answer to the
                # policy as well (issue 14). An exclusive stage's swap is the policy's own
                # rule and need not pass `allowed` (API.md).
                unmet.extend(_incumbents_unmet(conn, policy, model_id, version_id, target))
            # Four eyes: decided here, under the locks, with the registrant as stored.
            unmet.extend(
                distinct_promoter_unmet(
                    policy, target, registered_by=row.registered_by, promoter=by.actor
                )
            )
            if unmet:
                raise PromotionDeniedError(f"{row.model_name}@{row.version}", target.value, unmet)
        archived = _move(
            db,
            conn,
            model_id=model_id,
            version_id=version_id,
            current=current,
            target=target,
            archive=archive,
            reason=reason,
            by=by,
            ref=f"{row.model_name}@{row.version}",
            at=at,
        )
        record = replace(version_with_artifacts(rows), stage=target, updated_at=at)
        return PromotionResult(record, current, archived, changed=True)


def check_promotion(
    db: Database, ref: VersionRef, target: Stage, *, actor: str | None, archive_existing: bool
) -> PromotionCheck:
    """What :func:`promote` would judge now, every condition with its outcome; writes nothing.

    The same functions as the promotion's own check, read without its locks, so a
    concurrent change may make the real promotion answer differently.

    Raises:
        NotFoundError: no such version.
    """
    with db.read() as conn:
        version_id = ref.id if ref.id is not None else resolve_ref(conn, ref)
        rows = conn.execute(_VERSION_AND_POLICY, {"id": version_id}).all()
        if not rows:
            raise NotFoundError("version", str(ref) if ref.id is None else ref.id)
        row = rows[0]
        current = Stage(row.stage)
        policy = None if row.policy is None else PromotionPolicy.from_dict(row.policy)
        exclusive = policy is not None and target in policy.exclusive
        archive = (archive_existing or exclusive) and target is not Stage.ARCHIVED
        conditions: list[PolicyCondition] = []
        if policy is not None and current is not target:
            conditions = promotion_conditions(conn, policy, version_id, current, target)
            if archive and not exclusive:
                unmet = _incumbents_unmet(conn, policy, row.model_id, version_id, target)
                conditions.extend(PolicyCondition(text, met=False) for text in unmet)
            four_eyes = distinct_promoter_condition(
                policy, target, registered_by=row.registered_by, promoter=actor
            )
            if four_eyes is not None:
                conditions.append(four_eyes)
        return PromotionCheck(
            version_ref=f"{row.model_name}@{row.version}",
            from_stage=current,
            target=target,
            conditions=conditions,
            archives_incumbent=archive and current is not target,
        )


def _incumbents_unmet(
    conn: Connection, policy: PromotionPolicy, model_id: int, version_id: int, target: Stage
) -> list[str]:
    """Every condition that archiving the model's other versions in ``target`` fails."""
    incumbents = conn.execute(
        select(V.id, V.version)
        .where(V.model_id == model_id, V.stage == target.value, V.id != version_id)
        .order_by(V.id)
    ).all()
    unmet = []
    for incumbent_id, version in incumbents:
        for condition in unmet_conditions(conn, policy, incumbent_id, target, Stage.ARCHIVED):
            unmet.append(f"archive_existing: incumbent version {version!r}: {condition}")
    return unmet


def _move(
    db: Database,
    conn: Connection,
    *,
    model_id: int,
    version_id: int,
    current: Stage,
    target: Stage,
    archive: bool,
    reason: str | None,
    by: Attribution,
    ref: str,
    at: datetime,
) -> list[int]:
    """Set the stages, append the history rows and the audit entry; the archived ids."""
    archived_why = f"archived: version {version_id} promoted to {target.value}"
    if db.pg_native:
        params = {
            "vid": version_id,
            "mid": model_id,
            "from_stage": current.value,
            "to_stage": target.value,
            "reason": reason,
            "archived_why": archived_why,
            "actor": by.actor,
            "at": at,
            "by": by.actor,
            "ref": ref,
            "request_id": by.request_id,
        }
        sql = _PG_MOVE_AND_ARCHIVE[target] if archive else _PG_MOVE
        return [int(vid) for vid in conn.exec_driver_sql(sql, params).scalars()]
    params = {"vid": version_id, "mid": model_id, "to_stage": target.value, "at": at}
    archived: list[int] = []
    if archive:
        moved = conn.execute(_MOVE_AND_ARCHIVE, params).scalars()
        archived = sorted(int(vid) for vid in moved if vid != version_id)
    else:
        conn.execute(_MOVE, params)
    row_of = {"model_id": model_id, "actor": by.actor, "at": at}
    history = [
        {
            **row_of,
            "version_id": vid,
            "from_stage": target.value,
            "to_stage": Stage.ARCHIVED.value,
            "reason": archived_why,
        }
        for vid in archived
    ]
    history.append(
        {
            **row_of,
            "version_id": version_id,
            "from_stage": current.value,
            "to_stage": target.value,
            "reason": reason,
        }
    )
    conn.execute(_INSERT_TRANSITIONS, history)
    details = {
        "version_id": version_id,
        "from_stage": current.value,
        "to_stage": target.value,
        "reason": reason,
        "archived": archived,
    }
    audit.write(conn, by, "promote", ref, details, at=at)
    return archived
