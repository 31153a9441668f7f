"""Integrity (issue 14): ids never reused, leased upload claims, the policy history.

* SQLite: the tables whose ids are referenced are rebuilt with ``AUTOINCREMENT`` (copy and
  swap through Alembic's batch mode, keeping their rows, indexes and foreign keys), so a
  deleted row's id is never given to a new one. ``schema.migrate`` turns SQLite's foreign
  keys off around the rebuild (dropping the old table would otherwise cascade) and checks
  them before committing. PostgreSQL's sequences never reuse ids: nothing to do there.
* ``cmr_pending_uploads`` gains the owner's token and a lease expiry.
* ``cmr_policy_changes`` keeps every policy change, seeded with the policies in force.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 14:30:00
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Referenced ids (versions first: the ones history rows, aliases and artifacts name).
_REBUILT = (
    "cmr_models",
    "cmr_model_versions",
    "cmr_artifacts",
    "cmr_lineage_edges",
    "cmr_stage_transitions",
    "cmr_alias_changes",
)
# A claim taken before this revision has no lease: it keeps the 24 hours it had then.
_OLD_STALE_AFTER = timedelta(hours=24)


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    _lease_the_claims(bind)
    _create_policy_history(bind)
    if sqlite:
        for name in _REBUILT:
            with op.batch_alter_table(
                name, recreate="always", table_kwargs={"sqlite_autoincrement": True}
            ):
                pass
        _remember_deleted_version_ids(bind)


def _lease_the_claims(bind: sa.Connection) -> None:
    with op.batch_alter_table("cmr_pending_uploads") as batch_op:
        batch_op.add_column(sa.Column("token", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    claims = sa.table(
        "cmr_pending_uploads",
        sa.column("storage_backend", sa.String),
        sa.column("storage_path", sa.String),
        sa.column("started_at", sa.DateTime(timezone=True)),
        sa.column("token", sa.String),
        sa.column("expires_at", sa.DateTime(timezone=True)),
    )
    rows = bind.execute(
        sa.select(claims.c.storage_backend, claims.c.storage_path, claims.c.started_at)
    ).all()
    for backend, path, started_at in rows:
        bind.execute(
            claims.update()
            .where(claims.c.storage_backend == backend, claims.c.storage_path == path)
            .values(token=secrets.token_hex(16), expires_at=started_at + _OLD_STALE_AFTER)
        )
    with op.batch_alter_table("cmr_pending_uploads") as batch_op:
        batch_op.alter_column("token", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column(
            "expires_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )


def _create_policy_history(bind: sa.Connection) -> None:
    op.create_table(
        "cmr_policy_changes",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model_id", _ID, nullable=False),
        sa.Column("old_policy", sa.JSON(), nullable=True),
        sa.Column("new_policy", sa.JSON(), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["cmr_models.id"],
            name=op.f("fk_cmr_policy_changes_model_id_cmr_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cmr_policy_changes")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("cmr_policy_changes") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cmr_policy_changes_model_id_id"), ["model_id", "id"], unique=False
        )
    # The policies in force become the first entries, so their history starts somewhere.
    bind.execute(
        sa.text(
            "INSERT INTO cmr_policy_changes (model_id, old_policy, new_policy, actor, at) "
            "SELECT model_id, NULL, policy, NULL, updated_at FROM cmr_promotion_policies "
            "ORDER BY model_id"
        )
    )


def _remember_deleted_version_ids(bind: sa.Connection) -> None:
    # Copying the rows seeds AUTOINCREMENT with the largest id still present; a deleted
    # version with a larger id is still named by its stage history and alias history.
    named = bind.execute(
        sa.text(
            "SELECT max(id) FROM (SELECT max(id) AS id FROM cmr_model_versions "
            "UNION ALL SELECT max(version_id) FROM cmr_stage_transitions "
            "UNION ALL SELECT max(version_id) FROM cmr_alias_changes)"
        )
    ).scalar()
    if named is None:
        return
    bind.execute(
        sa.text("DELETE FROM sqlite_sequence WHERE name = 'cmr_model_versions'"),
    )
    bind.execute(
        sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('cmr_model_versions', :seq)"),
        {"seq": int(named)},
    )


def downgrade() -> None:
    with op.batch_alter_table("cmr_policy_changes") as batch_op:
        batch_op.drop_index(batch_op.f("ix_cmr_policy_changes_model_id_id"))
    op.drop_table("cmr_policy_changes")
    with op.batch_alter_table("cmr_pending_uploads") as batch_op:
        batch_op.drop_column("expires_at")
        batch_op.drop_column("token")
    # AUTOINCREMENT stays on SQLite: it changes no behaviour 0002 relies on.
