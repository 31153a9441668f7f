"""Access control, part one (issue 16): the audit log, and who registered each version.

* ``cmr_audit_log``: append-only, one row per write (library and server alike) and per
  denied attempt at the server: time, actor, action, target, details, request id, outcome.
* ``cmr_model_versions.registered_by``: the principal that registered the version, which
  the four-eyes rule (``require_distinct_promoter``) compares with the promoter. Versions
  registered before this revision have none (NULL: not known).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "cmr_audit_log",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=512), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cmr_audit_log")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("cmr_audit_log") as batch_op:
        batch_op.create_index(batch_op.f("ix_cmr_audit_log_at_id"), ["at", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_cmr_audit_log_actor_id"), ["actor", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_cmr_audit_log_action_id"), ["action", "id"], unique=False
        )
    with op.batch_alter_table("cmr_model_versions") as batch_op:
        batch_op.add_column(sa.Column("registered_by", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cmr_model_versions") as batch_op:
        batch_op.drop_column("registered_by")
    with op.batch_alter_table("cmr_audit_log") as batch_op:
        batch_op.drop_index(batch_op.f("ix_cmr_audit_log_action_id"))
        batch_op.drop_index(batch_op.f("ix_cmr_audit_log_actor_id"))
        batch_op.drop_index(batch_op.f("ix_cmr_audit_log_at_id"))
    op.drop_table("cmr_audit_log")
