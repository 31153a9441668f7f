"""Content-addressed artifact bytes (issue 21, item 4): blob reference counts and pins.

* ``cmr_blob_refs``: one row per distinct file (SHA-256) an artifact holds on a backend
  that keeps blobs; a blob with no row here and no pin may be removed.
* ``cmr_blob_pins``: blobs an upload in progress may reuse, held by its claim in
  ``cmr_pending_uploads`` (deleted with it).

Artifacts stored before this revision have no rows: their bytes stay at their own paths,
are read and deleted as before, and are never taken for blobs.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "cmr_blob_refs",
        sa.Column("artifact_id", _ID, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_backend", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("probe", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["cmr_artifacts.id"],
            name=op.f("fk_cmr_blob_refs_artifact_id_cmr_artifacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("artifact_id", "sha256", name=op.f("pk_cmr_blob_refs")),
    )
    with op.batch_alter_table("cmr_blob_refs") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cmr_blob_refs_storage_backend_sha256"),
            ["storage_backend", "sha256"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_cmr_blob_refs_storage_backend_size_bytes_probe"),
            ["storage_backend", "size_bytes", "probe"],
            unique=False,
        )
    op.create_table(
        "cmr_blob_pins",
        sa.Column("storage_backend", sa.String(length=64), nullable=False),
        sa.Column("storage_path", sa.String(length=2048), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["storage_backend", "storage_path"],
            ["cmr_pending_uploads.storage_backend", "cmr_pending_uploads.storage_path"],
            name=op.f("fk_cmr_blob_pins_storage_backend_cmr_pending_uploads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "storage_backend", "storage_path", "sha256", name=op.f("pk_cmr_blob_pins")
        ),
    )
    with op.batch_alter_table("cmr_blob_pins") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cmr_blob_pins_storage_backend_sha256"),
            ["storage_backend", "sha256"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("cmr_blob_pins") as batch_op:
        batch_op.drop_index(batch_op.f("ix_cmr_blob_pins_storage_backend_sha256"))
    op.drop_table("cmr_blob_pins")
    with op.batch_alter_table("cmr_blob_refs") as batch_op:
        batch_op.drop_index(batch_op.f("ix_cmr_blob_refs_storage_backend_size_bytes_probe"))
        batch_op.drop_index(batch_op.f("ix_cmr_blob_refs_storage_backend_sha256"))
    op.drop_table("cmr_blob_refs")
