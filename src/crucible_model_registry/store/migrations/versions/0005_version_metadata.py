"""Versions get a ``metadata`` JSON object, as models and lineage edges have (issue 17).

What other registries know about a version and we have no field for lives there, readable
through our API: an MLflow import keeps each version's MLflow tags (key -> value, exactly),
``source``, ``run_id``, status and user under ``metadata["mlflow"]``. Existing versions
keep NULL there, which reads as ``{}``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 17:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cmr_model_versions", sa.Column("metadata", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cmr_model_versions") as batch_op:
        batch_op.drop_column("metadata")
