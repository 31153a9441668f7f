"""Governance in SQL: aliases and their history, answers as of a past time, promotion policies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from crucible_model_registry.domain.audit import Attribution
from crucible_model_registry.domain.enums import Stage
from crucible_model_registry.domain.policy import (
    PolicyChange,
    PolicyCondition,
    PromotionPolicy,
    allowed_sources_condition,
)
from crucible_model_registry.domain.query_conditions import MetricCondition, describe
from crucible_model_registry.domain.query_spec import QuerySpec
from crucible_model_registry.domain.records import AliasChange, ModelVersion
from crucible_model_registry.domain.refs import VersionRef
from crucible_model_registry.domain.rules import is_reserved_ref_word
from crucible_model_registry.errors import NotFoundError, ValidationError
from crucible_model_registry.store import audit
from crucible_model_registry.store._records import load_versions
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.models import lock_model, now, resolve_ref
from crucible_model_registry.store.queries import judge_conjuncts
from crucible_model_registry.store.tables import (
    ALIAS_CHANGES,
    ALIASES,
    MODELS,
    POLICIES,
    POLICY_CHANGES,
    TRANSITIONS,
    VERSIONS,
)

__all__ = [
    "alias_history",
    "delete_alias",
    "get_policy",
    "get_version_at",
    "load_policy",
    "policy_history",
    "promotion_conditions",
    "record_alias_changes",
    "resolve_ref_at",
    "set_alias",
    "set_policy",
    "unmet_conditions",
]

V = VERSIONS.c
A = ALIASES.c
AC = ALIAS_CHANGES.c
T = TRANSITIONS.c

_MODELS_HINT = "list models with `cmr models`"


def _require_model(conn: Connection, name: str) -> int:
    model_id = conn.execute(select(MODELS.c.id).where(MODELS.c.name == name)).scalar()
    if model_id is None:
        raise NotFoundError("model", name, _MODELS_HINT)
    return int(model_id)


# --------------------------------------------------------------------------- aliases


def set_alias(
    db: Database, ref: VersionRef, alias: str, *, reason: str | None, by: Attribution
) -> ModelVersion:
    """Point ``alias`` of the version's model at the version, recording the move.

    Alias writes of one model are serialised on the model's row lock (as promotions and
    explicit-version registrations are), so the check against version strings holds under
    concurrency. Setting an alias to the version it already names records nothing.

    Raises:
        NotFoundError: the version does not exist.
        ValidationError: the model has a version whose version string is ``alias``.
    """
    with db.write() as conn:
        version_id = resolve_ref(conn, ref)
        model_id = conn.execute(select(V.model_id).where(V.id == version_id)).scalar_one()
        lock_model(db, conn, model_id)
        # Stamp the change only under the lock, so a model's history is in commit order.
        at = now()
        clash = conn.execute(
            select(V.version).where(V.model_id == model_id, func.lower(V.version) == alias.lower())
        ).scalar()
        if clash is not None:
            raise ValidationError.single(
                "alias", f"{alias!r} is a version string of this model ({clash!r}); pick another"
            )
        held = conn.execute(
            select(A.version_id).where(A.model_id == model_id, A.alias == alias)
        ).scalar()
        if held != version_id:
            if held is None:
                conn.execute(
                    insert(ALIASES).values(
                        model_id=model_id, alias=alias, version_id=version_id, updated_at=at
                    )
                )
            else:
                conn.execute(
                    update(ALIASES)
                    .where(A.model_id == model_id, A.alias == alias)
                    .values(version_id=version_id, updated_at=at)
                )
            record_alias_changes(
                conn, model_id, [alias], version_id=version_id, reason=reason, actor=by.actor, at=at
            )
        record = load_versions(conn, [version_id])[0]
        if held != version_id:
            details = {
                "alias": alias,
                "old_version_id": held,
                "new_version_id": version_id,
                "reason": reason,
            }
            audit.write(conn, by, "set_alias", f"{record.model_name}@{alias}", details, at=at)
        return record


def delete_alias(
    db: Database, model_name: str, alias: str, *, reason: str | None, by: Attribution
) -> None:
    """Remove an alias, recording the deletion in the alias history.

    Raises:
        NotFoundError: the model, or the alias, does not exist.
    """
    with db.write() as conn:
        model_id = _require_model(conn, model_name)
        lock_model(db, conn, model_id)
        at = now()
        held = conn.execute(
            select(A.version_id).where(A.model_id == model_id, A.alias == alias)
        ).scalar()
        gone = conn.execute(delete(ALIASES).where(A.model_id == model_id, A.alias == alias))
        if gone.rowcount == 0:
            raise NotFoundError(
                "alias", f"{model_name}@{alias}", "see the aliases with alias_history()"
            )
        record_alias_changes(
            conn, model_id, [alias], version_id=None, reason=reason, actor=by.actor, at=at
        )
        details = {"alias": alias, "old_version_id": held, "new_version_id": None, "reason": reason}
        audit.write(conn, by, "delete_alias", f"{model_name}@{alias}", details, at=at)


def record_alias_changes(
    conn: Connection,
    model_id: int,
    aliases: Sequence[str],
    *,
    version_id: int | None,
    reason: str | None,
    actor: str | None,
    at: datetime,
) -> None:
    """Append one history row per alias: now pointing at ``version_id`` (None: deleted)."""
    if not aliases:
        return
    conn.execute(
        insert(ALIAS_CHANGES),
        [
            {
                "model_id": model_id,
                "alias": alias,
                "version_id": version_id,
                "reason": reason,
                "actor": actor,
                "at": at,
            }
            for alias in aliases
        ],
    )


def alias_history(db: Database, model_name: str) -> list[AliasChange]:
    """Every alias move and deletion of a model, oldest first.

    Raises:
        NotFoundError: the model does not exist.
    """
    with db.read() as conn:
        model_id = _require_model(conn, model_name)
        rows = conn.execute(select(ALIAS_CHANGES).where(AC.model_id == model_id).order_by(AC.id))
        return [
            AliasChange(
                alias=r.alias, version_id=r.version_id, reason=r.reason, actor=r.actor, at=r.at
            )
            for r in rows
        ]


# --------------------------------------------------------------------------- time travel


def resolve_ref_at(conn: Connection, ref: VersionRef, at: datetime) -> int:
    """The id of the version that held ``model@stage``, ``model@latest`` or an alias at ``at``.

    Answered from the append-only histories; a change recorded at exactly ``at`` counts.
    For a stage it is the most recently registered version in that stage then, among the
    versions that still exist; for ``latest``, the most recently registered one by then.
    Any other selector is looked up in the alias history, even if a version string equal
    to a deleted alias has been registered since.

    Raises:
        ValidationError: ``ref`` is an id or a version string, which name one version
            whatever the time.
        NotFoundError: the model does not exist, nothing held the ref at ``at``, or the
            version that did has been deleted since.
    """
    if ref.id is not None or ref.model_name is None or ref.selector is None:
        raise ValidationError.single("ref", _NOT_TIMED)
    model_id = _require_model(conn, ref.model_name)
    word = ref.selector.lower()
    label = f"{ref} at {at.isoformat()}"
    if word == "latest":
        found = conn.execute(
            select(func.max(T.version_id))
            .join_from(TRANSITIONS, VERSIONS, V.id == T.version_id)
            .where(T.model_id == model_id, T.from_stage.is_(None), T.at <= at)
        ).scalar()
    elif is_reserved_ref_word(word):
        stage = Stage.EXPERIMENT if word == "development" else Stage(word)
        found = _stage_holder_at(conn, model_id, stage, at)
    else:
        found = _alias_holder_at(conn, model_id, ref, at)
    if found is None:
        raise NotFoundError("version", label, "nothing held this ref at that time")
    exists = conn.execute(select(V.id).where(V.id == found)).scalar()
    if exists is None:
        raise NotFoundError("version", label, f"version id {found} held it then; it is deleted")
    return int(found)


_NOT_TIMED = (
    "at= needs a 'model@<stage>', 'model@<alias>' or 'model@latest' ref; "
    "an id or a version string names one version whatever the time (drop at=)"
)


def _stage_holder_at(conn: Connection, model_id: int, stage: Stage, at: datetime) -> int | None:
    # Each version's stage at `at` is the target of its last transition recorded by then;
    # ids break ties, as a promotion's transitions share one time stamp.
    last = select(func.max(T.id)).where(T.model_id == model_id, T.at <= at).group_by(T.version_id)
    held: int | None = conn.execute(
        select(func.max(T.version_id))
        .join_from(TRANSITIONS, VERSIONS, V.id == T.version_id)
        .where(T.id.in_(last), T.to_stage == stage.value)
    ).scalar()
    return held


def _alias_holder_at(conn: Connection, model_id: int, ref: VersionRef, at: datetime) -> int | None:
    alias = ref.selector
    ever = conn.execute(
        select(AC.id).where(AC.model_id == model_id, AC.alias == alias).limit(1)
    ).scalar()
    if ever is None:
        is_version = conn.execute(
            select(V.id).where(V.model_id == model_id, V.version == alias)
        ).scalar()
        if is_version is not None:
            raise ValidationError.single("ref", _NOT_TIMED)
        raise NotFoundError("alias", str(ref), "this model never had such an alias")
    held: int | None = conn.execute(
        select(AC.version_id)
        .where(AC.model_id == model_id, AC.alias == alias, AC.at <= at)
        .order_by(AC.id.desc())
        .limit(1)
    ).scalar()
    return held


def get_version_at(db: Database, ref: VersionRef, at: datetime) -> ModelVersion:
    """The version that held ``ref`` at ``at``, as it is now (see :func:`resolve_ref_at`)."""
    with db.read() as conn:
        return load_versions(conn, [resolve_ref_at(conn, ref, at)])[0]


# --------------------------------------------------------------------------- policies


def load_policy(conn: Connection, model_id: int) -> PromotionPolicy | None:
    """The model's stored policy, read in the caller's transaction."""
    stored = conn.execute(select(POLICIES.c.policy).where(POLICIES.c.model_id == model_id)).scalar()
    return None if stored is None else PromotionPolicy.from_dict(stored)


def get_policy(db: Database, model_name: str) -> PromotionPolicy | None:
    """The model's promotion policy, or None when it has none.

    Raises:
        NotFoundError: the model does not exist.
    """
    with db.read() as conn:
        return load_policy(conn, _require_model(conn, model_name))


def set_policy(
    db: Database, model_name: str, policy: PromotionPolicy | None, *, by: Attribution
) -> None:
    """Store (or, with None, remove) a model's policy, under the model's row lock.

    The lock orders the change with promotions: each promotion sees the policy as it was
    before or after, never half of it. A change appends the old and the new policy to the
    model's policy history and to an audit entry (``set_promotion_policy``); setting the
    policy it has records nothing.

    Raises:
        NotFoundError: the model does not exist.
    """
    with db.write() as conn:
        model_id = _require_model(conn, model_name)
        lock_model(db, conn, model_id)
        at = now()
        old = conn.execute(
            select(POLICIES.c.policy).where(POLICIES.c.model_id == model_id)
        ).scalar()
        new = None if policy is None else policy.to_dict()
        if old == new:
            return
        conn.execute(delete(POLICIES).where(POLICIES.c.model_id == model_id))
        if new is not None:
            conn.execute(insert(POLICIES).values(model_id=model_id, policy=new, updated_at=at))
        conn.execute(
            insert(POLICY_CHANGES).values(
                model_id=model_id, old_policy=old, new_policy=new, actor=by.actor, at=at
            )
        )
        details = {"old": old, "new": new}
        audit.write(conn, by, "set_promotion_policy", model_name, details, at=at)


def policy_history(db: Database, model_name: str) -> list[PolicyChange]:
    """Every change of a model's promotion policy, oldest first.

    Raises:
        NotFoundError: the model does not exist.
    """
    pc = POLICY_CHANGES.c
    with db.read() as conn:
        model_id = _require_model(conn, model_name)
        rows = conn.execute(
            select(POLICY_CHANGES).where(pc.model_id == model_id).order_by(pc.id)
        ).all()

    def read(stored: Any) -> PromotionPolicy | None:
        return None if stored is None else PromotionPolicy.from_dict(stored)

    return [
        PolicyChange(old=read(r.old_policy), new=read(r.new_policy), actor=r.actor, at=r.at)
        for r in rows
    ]


def unmet_conditions(
    conn: Connection, policy: PromotionPolicy, version_id: int, current: Stage, target: Stage
) -> list[str]:
    """Every condition of ``policy`` that moving the version to ``target`` fails, as sentences.

    Run inside the promotion's transaction, after the version's row is locked, so that the
    gate judges the metrics, tags and stage the version has when its stage changes.
    """
    judged = promotion_conditions(conn, policy, version_id, current, target)
    return [c.text for c in judged if not c.met]


def promotion_conditions(
    conn: Connection, policy: PromotionPolicy, version_id: int, current: Stage, target: Stage
) -> list[PolicyCondition]:
    """Every condition of ``policy`` on moving the version to ``target``, met or not.

    The one judgement behind both a promotion's denial and ``Registry.check_promotion``.
    """
    judged = []
    allowed = allowed_sources_condition(policy, current, target)
    if allowed is not None:
        judged.append(allowed)
    gate = policy.gates.get(target)
    if gate is not None:
        judged.extend(_gate_conditions(conn, policy, gate, version_id, target))
    return judged


def _gate_conditions(
    conn: Connection, policy: PromotionPolicy, gate: QuerySpec, version_id: int, target: Stage
) -> list[PolicyCondition]:
    # A gate judges the version: its model's tags count only if the policy says so.
    model_tags = policy.gate_tags == "version_or_model"
    judged = judge_conjuncts(conn, gate, version_id, model_tags=model_tags)
    if not judged:
        return []
    # Say why a metric condition holds or fails: the metric is missing, or what its value is.
    metrics: dict[str, float] = conn.execute(
        select(V.metrics).where(V.id == version_id)
    ).scalar_one()
    leaves = {describe(c): c for c in gate.conjuncts() if isinstance(c, MetricCondition)}
    out = []
    for text, met in judged:
        leaf = leaves.get(text)
        why = ""
        if leaf is not None:
            actual = metrics.get(leaf.name)
            why = " (the version lacks this metric)" if actual is None else f" (it is {actual!r})"
        out.append(PolicyCondition(f"{target.value} gate: {text}{why}", met=met))
    return out
