"""Stage changes: the promotion transaction, with archiving of the incumbents."""

from __future__ import annotations

from sqlalchemy import select

from crucible_model_registry.domain.enums import Stage
from crucible_model_registry.domain.records import ModelVersion
from crucible_model_registry.domain.refs import VersionRef
from crucible_model_registry.errors import PromotionDeniedError
from crucible_model_registry.store._records import load_versions
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.governance import load_policy, unmet_conditions
from crucible_model_registry.store.tables import MODELS, VERSIONS
from crucible_model_registry.store.versions import lock_model, now, record_transition, resolve_ref

__all__ = ["PromotionResult", "promote"]

V = VERSIONS.c


class PromotionResult:
    """What a promotion did: the version now, where it came from, whom it archived."""

    __slots__ = ("archived_ids", "changed", "from_stage", "version")

    def __init__(
        self, version: ModelVersion, from_stage: Stage, archived_ids: list[int], *, changed: bool
    ) -> None:
        self.version = version
        self.from_stage = from_stage
        self.archived_ids = archived_ids
        self.changed = changed


def promote(
    db: Database,
    ref: VersionRef,
    target: Stage,
    *,
    reason: str | None,
    actor: str | None,
    archive_existing: bool,
) -> PromotionResult:
    """Move a version to ``target`` in one transaction, recording every change.

    Writers of one model are serialised on the model's row lock, so of N concurrent
    promotions with ``archive_existing`` (or into a stage the model's policy makes
    exclusive) the last to commit is the only one left in the stage. The policy is checked
    in this transaction; promoting to the current stage changes nothing and records
    nothing, policy or not.

    Raises:
        PromotionDeniedError: the model's policy forbids the change (nothing is written).
    """
    with db.write() as conn:
        version_id = resolve_ref(conn, ref)
        model_id = conn.execute(select(V.model_id).where(V.id == version_id)).scalar_one()
        lock_model(db, conn, model_id)
        # Stamp the change only under the lock, so that a model's history is in commit order
        # and answers as of a past time see promotions in the order they happened.
        at = now()
        # Read the stage only under the lock: a concurrent promotion may have just changed it.
        # The version's row lock also holds off update_metrics until commit, so the gate
        # below judges the metrics the version has when its stage changes.
        query = (
            select(V.stage, V.version, MODELS.c.name)
            .join_from(VERSIONS, MODELS, MODELS.c.id == V.model_id)
            .where(V.id == version_id)
        )
        if db.lock_clause():
            query = query.with_for_update(of=VERSIONS)
        row = conn.execute(query).one()
        current = Stage(row.stage)
        if current is target:
            return PromotionResult(load_versions(conn, [version_id])[0], current, [], changed=False)
        policy = load_policy(conn, model_id)
        if policy is not None:
            unmet = unmet_conditions(conn, policy, version_id, current, target)
            if unmet:
                raise PromotionDeniedError(f"{row.name}@{row.version}", target.value, unmet)
        exclusive = policy is not None and target in policy.exclusive
        archived: list[int] = []
        if (archive_existing or exclusive) and target is not Stage.ARCHIVED:
            archived = list(
                conn.execute(
                    select(V.id).where(
                        V.model_id == model_id, V.stage == target.value, V.id != version_id
                    )
                ).scalars()
            )
            record_transition(
                conn,
                model_id=model_id,
                version_ids=archived,
                from_stage=target.value,
                to_stage=Stage.ARCHIVED.value,
                reason=f"archived: version {version_id} promoted to {target.value}",
                actor=actor,
                at=at,
            )
        record_transition(
            conn,
            model_id=model_id,
            version_ids=[version_id],
            from_stage=current.value,
            to_stage=target.value,
            reason=reason,
            actor=actor,
            at=at,
        )
        return PromotionResult(
            load_versions(conn, [version_id])[0], current, archived, changed=True
        )
