"""Pending uploads: an upload claims its remote path before sending any byte.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 06:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cmr_pending_uploads",
        sa.Column("storage_backend", sa.String(length=64), nullable=False),
        sa.Column("storage_path", sa.String(length=2048), nullable=False),
        sa.Column(
            "version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["cmr_model_versions.id"],
            name=op.f("fk_cmr_pending_uploads_version_id_cmr_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "storage_backend", "storage_path", name=op.f("pk_cmr_pending_uploads")
        ),
    )
    with op.batch_alter_table("cmr_pending_uploads", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cmr_pending_uploads_version_id"), ["version_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("cmr_pending_uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cmr_pending_uploads_version_id"))

    op.drop_table("cmr_pending_uploads")
