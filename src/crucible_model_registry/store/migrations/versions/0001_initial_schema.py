"""Initial schema: models, versions, metrics, tags, artifacts, lineage, history, aliases, policies.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 03:42:48.663563
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "cmr_models",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("version_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cmr_models")),
        sa.UniqueConstraint("name", name=op.f("uq_cmr_models_name")),
    )
    op.create_table(
        "cmr_alias_changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("model_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column(
            "version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["cmr_models.id"],
            name=op.f("fk_cmr_alias_changes_model_id_cmr_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cmr_alias_changes")),
    )
    with op.batch_alter_table("cmr_alias_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cmr_alias_changes_model_id_alias_at"),
            ["model_id", "alias", "at"],
            unique=False,
        )

    op.create_table(
        "cmr_model_tags",
        sa.Column("model_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["cmr_models.id"],
            name=op.f("fk_cmr_model_tags_model_id_cmr_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "tag", name=op.f("pk_cmr_model_tags")),
    )
    with op.batch_alter_table("cmr_model_tags", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cmr_model_tags_tag_model_id"), ["tag", "model_id"], unique=False
        )

    op.create_table(
        "cmr_model_versions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("model_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("recipe", sa.String(length=255), nullable=False),
        sa.Column("base_model", sa.String(length=512), nullable=False),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.Column("training_config", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["cmr_models.id"],
            name=op.f("fk_cmr_model_versions_model_id_cmr_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cmr_model_versions")),
        sa.UniqueConstraint(
            "base_model",
            "recipe",
            "config_hash",
            name=op.f("uq_cmr_model_versions_base_model_recipe_config_hash"),
        ),
        sa.UniqueConstraint(
            "model_id", "version", name=op.f("uq_cmr_model_versions_model_id_version")
        ),
    )
    with op.batch_alter_table("cmr_model_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cmr_model_versions_config_hash"), ["config_hash"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_cmr_model_versions_created_at_id"), ["created_at", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_cmr_model_versions_model_id_stage_id"),
            ["model_id", "stage", "id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_cmr_model_versions_stage_recipe_id"),
            ["stage", "recipe", "id"],
            unique=False,
        )

    op.create_table(
        "cmr_promotion_policies",
        sa.Column("model_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["cmr_models.id"],
            name=op.f("fk_cmr_promotion_policies_model_id_cmr_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_cmr_promotion_policies")),
    )
    op.create_table(
        "cmr_stage_transitions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("model_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("from_stage", sa.String(length=16), nullable=True),
        sa.Column("to_stage", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["cmr_models.id"],
            name=op.f("fk_cmr_stage_transitions_model_id_cmr_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cmr_stage_transitions")),
    )
    with op.batch_alter_table("cmr_stage_transitions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cmr_stage_transitions_model_id_at"), ["model_id", "at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_cmr_stage_transitions_version_id_id"), ["version_id", "id"], unique=False
        )

    op.create_table(
        "cmr_aliases",
        sa.Column("model_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column(
            "version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["cmr_models.id"],
            name=op.f("fk_cmr_aliases_model_id_cmr_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["cmr_model_versions.id"],
            name=op.f("fk_cmr_aliases_version_id_cmr_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "alias", name=op.f("pk_cmr_aliases")),
    )
    with op.batch_alter_table("cmr_aliases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cmr_aliases_version_id"), ["version_id"], unique=False)

    op.create_table(
        "cmr_artifacts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("storage_backend", sa.String(length=64), nullable=False),
        sa.Column("storage_path", sa.String(length=2048), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("manifest", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["cmr_model_versions.id"],
            name=op.f("fk_cmr_artifacts_version_id_cmr_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cmr_artifacts")),
    )
    with op.batch_alter_table("cmr_artifacts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cmr_artifacts_version_id_id"), ["version_id", "id"], unique=False
        )

    op.create_table(
        "cmr_lineage_edges",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "source_version_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "target_version_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("relationship", sa.String(length=32), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_version_id"],
            ["cmr_model_versions.id"],
            name=op.f("fk_cmr_lineage_edges_source_version_id_cmr_model_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_version_id"],
            ["cmr_model_versions.id"],
            name=op.f("fk_cmr_lineage_edges_target_version_id_cmr_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cmr_lineage_edges")),
        sa.UniqueConstraint(
            "source_version_id",
            "target_version_id",
            name=op.f("uq_cmr_lineage_edges_source_version_id_target_version_id"),
        ),
    )
    with op.batch_alter_table("cmr_lineage_edges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cmr_lineage_edges_target_version_id_source_version_id"),
            ["target_version_id", "source_version_id"],
            unique=False,
        )

    op.create_table(
        "cmr_version_metrics",
        sa.Column(
            "version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["cmr_model_versions.id"],
            name=op.f("fk_cmr_version_metrics_version_id_cmr_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version_id", "name", name=op.f("pk_cmr_version_metrics")),
    )
    with op.batch_alter_table("cmr_version_metrics", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cmr_version_metrics_name_value_version_id"),
            ["name", "value", "version_id"],
            unique=False,
        )

    op.create_table(
        "cmr_version_tags",
        sa.Column(
            "version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["cmr_model_versions.id"],
            name=op.f("fk_cmr_version_tags_version_id_cmr_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version_id", "tag", name=op.f("pk_cmr_version_tags")),
    )
    with op.batch_alter_table("cmr_version_tags", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cmr_version_tags_tag_version_id"), ["tag", "version_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("cmr_version_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cmr_version_tags_tag_version_id"))

    op.drop_table("cmr_version_tags")
    with op.batch_alter_table("cmr_version_metrics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cmr_version_metrics_name_value_version_id"))

    op.drop_table("cmr_version_metrics")
    with op.batch_alter_table("cmr_lineage_edges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cmr_lineage_edges_target_version_id_source_version_id"))

    op.drop_table("cmr_lineage_edges")
    with op.batch_alter_table("cmr_artifacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cmr_artifacts_version_id_id"))

    op.drop_table("cmr_artifacts")
    with op.batch_alter_table("cmr_aliases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cmr_aliases_version_id"))

    op.drop_table("cmr_aliases")
    with op.batch_alter_table("cmr_stage_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cmr_stage_transitions_version_id_id"))
        batch_op.drop_index(batch_op.f("ix_cmr_stage_transitions_model_id_at"))

    op.drop_table("cmr_stage_transitions")
    op.drop_table("cmr_promotion_policies")
    with op.batch_alter_table("cmr_model_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cmr_model_versions_stage_recipe_id"))
        batch_op.drop_index(batch_op.f("ix_cmr_model_versions_model_id_stage_id"))
        batch_op.drop_index(batch_op.f("ix_cmr_model_versions_created_at_id"))
        batch_op.drop_index(batch_op.f("ix_cmr_model_versions_config_hash"))

    op.drop_table("cmr_model_versions")
    with op.batch_alter_table("cmr_model_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cmr_model_tags_tag_model_id"))

    op.drop_table("cmr_model_tags")
    with op.batch_alter_table("cmr_alias_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cmr_alias_changes_model_id_alias_at"))

    op.drop_table("cmr_alias_changes")
    op.drop_table("cmr_models")
