"""Access control, part two (issue 16): API tokens.

* ``cmr_tokens``: one row per token, named after its principal. The secret itself is never
  stored: ``token_hash`` is its SHA-256 (hex), unique, and the server looks tokens up by
  it. ``models`` holds the model-name glob patterns the role applies to (empty: all);
  ``last_used_at`` is refreshed at most once a minute per token. Revoking deletes the row
  (the audit log keeps who created and revoked it).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cmr_tokens",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_cmr_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_cmr_tokens_token_hash")),
    )


def downgrade() -> None:
    op.drop_table("cmr_tokens")
