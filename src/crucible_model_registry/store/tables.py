"""The registry's tables: every name carries the ``cmr_`` prefix so they can share a database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ALIASES",
    "ALIAS_CHANGES",
    "ARTIFACTS",
    "EDGES",
    "METRICS",
    "MODELS",
    "MODEL_TAGS",
    "POLICIES",
    "PREFIX",
    "TRANSITIONS",
    "VERSIONS",
    "VERSION_TAGS",
    "VERSION_TABLE",
    "AliasChangeRow",
    "AliasRow",
    "ArtifactRow",
    "Base",
    "LineageEdgeRow",
    "ModelRow",
    "ModelTagRow",
    "ModelVersionRow",
    "PromotionPolicyRow",
    "StageTransitionRow",
    "UTCDateTime",
    "VersionMetricRow",
    "VersionTagRow",
    "metadata",
]

PREFIX = "cmr_"
VERSION_TABLE = "cmr_alembic_version"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every dialect.

    SQLite keeps no offset, so values are stored as naive UTC and given back their tzinfo
    on the way out; comparisons stay correct because every stored value is UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# BIGINT on PostgreSQL, INTEGER on SQLite so that it stays the rowid alias (autoincrement).
IdType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class ModelRow(Base):
    __tablename__ = "cmr_models"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    # The last auto-assigned version number; bumped under the model row's lock.
    version_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ModelVersionRow(Base):
    __tablename__ = "cmr_model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        # One training run, one version: the dedup rule is a constraint, so it holds under races.
        UniqueConstraint("base_model", "recipe", "config_hash"),
        Index(None, "model_id", "stage", "id"),
        Index(None, "config_hash"),
        Index(None, "stage", "recipe", "id"),
        Index(None, "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("cmr_models.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16))
    recipe: Mapped[str] = mapped_column(String(255))
    base_model: Mapped[str] = mapped_column(String(512))
    config_hash: Mapped[str] = mapped_column(String(64))
    training_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Metrics and tags are kept twice: here to load a version in one row, and in their own
    # tables (below) so that filters use indexes. Every write updates both in one transaction.
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    tags: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class VersionMetricRow(Base):
    __tablename__ = "cmr_version_metrics"
    __table_args__ = (Index(None, "name", "value", "version_id"),)

    version_id: Mapped[int] = mapped_column(
        ForeignKey("cmr_model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[float] = mapped_column(Double)


class VersionTagRow(Base):
    __tablename__ = "cmr_version_tags"
    __table_args__ = (Index(None, "tag", "version_id"),)

    version_id: Mapped[int] = mapped_column(
        ForeignKey("cmr_model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)


class ModelTagRow(Base):
    __tablename__ = "cmr_model_tags"
    __table_args__ = (Index(None, "tag", "model_id"),)

    model_id: Mapped[int] = mapped_column(
        ForeignKey("cmr_models.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)


class ArtifactRow(Base):
    __tablename__ = "cmr_artifacts"
    __table_args__ = (Index(None, "version_id", "id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("cmr_model_versions.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    storage_backend: Mapped[str] = mapped_column(String(64))
    storage_path: Mapped[str] = mapped_column(String(2048))
    checksum: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    manifest: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]


class LineageEdgeRow(Base):
    __tablename__ = "cmr_lineage_edges"
    __table_args__ = (
        UniqueConstraint("source_version_id", "target_version_id"),
        Index(None, "target_version_id", "source_version_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    source_version_id: Mapped[int] = mapped_column(
        ForeignKey("cmr_model_versions.id", ondelete="CASCADE")
    )
    target_version_id: Mapped[int] = mapped_column(
        ForeignKey("cmr_model_versions.id", ondelete="CASCADE")
    )
    relationship: Mapped[str] = mapped_column(String(32))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    created_at: Mapped[datetime]


class StageTransitionRow(Base):
    """Append-only: rows outlive their version so the audit trail survives deletions."""

    __tablename__ = "cmr_stage_transitions"
    __table_args__ = (
        Index(None, "version_id", "id"),
        Index(None, "model_id", "at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("cmr_models.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(IdType)
    from_stage: Mapped[str | None] = mapped_column(String(16))
    to_stage: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(255))
    at: Mapped[datetime]


class AliasRow(Base):
    __tablename__ = "cmr_aliases"
    __table_args__ = (Index(None, "version_id"),)

    model_id: Mapped[int] = mapped_column(
        ForeignKey("cmr_models.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("cmr_model_versions.id", ondelete="CASCADE"))
    updated_at: Mapped[datetime]


class AliasChangeRow(Base):
    """Append-only history of alias moves; ``version_id`` None records a deletion."""

    __tablename__ = "cmr_alias_changes"
    __table_args__ = (Index(None, "model_id", "alias", "at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("cmr_models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int | None] = mapped_column(IdType)
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(255))
    at: Mapped[datetime]


class PromotionPolicyRow(Base):
    __tablename__ = "cmr_promotion_policies"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("cmr_models.id", ondelete="CASCADE"), primary_key=True
    )
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime]


# Core Table objects for the statements the store builds (typed as Table, not FromClause).
MODELS = cast(Table, ModelRow.__table__)
VERSIONS = cast(Table, ModelVersionRow.__table__)
METRICS = cast(Table, VersionMetricRow.__table__)
VERSION_TAGS = cast(Table, VersionTagRow.__table__)
MODEL_TAGS = cast(Table, ModelTagRow.__table__)
ARTIFACTS = cast(Table, ArtifactRow.__table__)
EDGES = cast(Table, LineageEdgeRow.__table__)
TRANSITIONS = cast(Table, StageTransitionRow.__table__)
ALIASES = cast(Table, AliasRow.__table__)
ALIAS_CHANGES = cast(Table, AliasChangeRow.__table__)
POLICIES = cast(Table, PromotionPolicyRow.__table__)
