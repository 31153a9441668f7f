"""The registry's tables: every name carries the ``cmr_`` prefix so they can share a database.

They are SQLAlchemy Core tables, not ORM classes: the store builds Core statements only, and
not importing ``sqlalchemy.orm`` saves about 0.1 s on every command-line call.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

__all__ = [
    "ALIASES",
    "ALIAS_CHANGES",
    "ARTIFACTS",
    "AUDIT_LOG",
    "BLOB_PINS",
    "BLOB_REFS",
    "EDGES",
    "METRICS",
    "MODELS",
    "MODEL_TAGS",
    "PENDING_UPLOADS",
    "POLICIES",
    "POLICY_CHANGES",
    "PREFIX",
    "TOKENS",
    "TRANSITIONS",
    "VERSIONS",
    "VERSION_TABLE",
    "VERSION_TAGS",
    "UTCDateTime",
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
        zone = value.tzinfo
        if zone is UTC:  # PostgreSQL sessions of the registry's engines (engine.py)
            return value
        if zone is None:
            return value.replace(tzinfo=UTC)
        # psycopg gives the session's zone, a ZoneInfo; astimezone() through it costs ~1 us,
        # a tenth of a thousand-version read (issue 21). A zone that is UTC by name is
        # relabelled, which is the same instant.
        if getattr(zone, "key", None) in _UTC_ZONE_NAMES:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# IANA names of zones that are UTC at every instant (PostgreSQL reports one as TimeZone).
_UTC_ZONE_NAMES = frozenset(
    ["UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"]
)


# BIGINT on PostgreSQL, INTEGER on SQLite so that it stays the rowid alias (autoincrement).
IdType = BigInteger().with_variant(Integer(), "sqlite")


def _id() -> Column[int]:
    return Column("id", IdType, primary_key=True, autoincrement=True)


def _fk(name: str, target: str, *, primary_key: bool = False) -> Column[int]:
    return Column(
        name,
        IdType,
        ForeignKey(target, ondelete="CASCADE"),
        primary_key=primary_key,
        nullable=False,
    )


def _when(name: str) -> Column[datetime]:
    return Column(name, UTCDateTime(), nullable=False)


# Ids are never reused (issue 14): history rows, aliases and retried calls name versions and
# artifacts by id, so a new row must not take a deleted one's. PostgreSQL's sequences never
# go back; SQLite's rowid does unless the table says AUTOINCREMENT (sqlite_autoincrement,
# on every table with an id; migration 0003 rebuilt the older ones).


MODELS = Table(
    "cmr_models",
    metadata,
    _id(),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text),
    Column("tags", JSON, nullable=False),
    Column("metadata", JSON, nullable=False),
    # The last auto-assigned version number; bumped under the model row's lock.
    Column("version_seq", Integer, nullable=False),
    _when("created_at"),
    _when("updated_at"),
    sqlite_autoincrement=True,
)

VERSIONS = Table(
    "cmr_model_versions",
    metadata,
    _id(),
    _fk("model_id", "cmr_models.id"),
    Column("version", String(64), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("recipe", String(255), nullable=False),
    Column("base_model", String(512), nullable=False),
    Column("config_hash", String(64), nullable=False),
    Column("training_config", JSON, nullable=False),
    # Metrics and tags are kept twice: here to load a version in one row, and in their own
    # tables (below) so that filters use indexes. Every write updates both in one transaction.
    Column("metrics", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("description", Text),
    _when("created_at"),
    _when("updated_at"),
    # The principal that registered it (four-eyes, issue 16); NULL before migration 0004.
    Column("registered_by", String(255)),
    # What another registry knows of the version (an MLflow client's tags, source, run id);
    # NULL (rows from before migration 0005, raw inserts) reads as {}. No server default:
    # PostgreSQL cannot compare JSON defaults, which the schema-drift test needs.
    Column("metadata", JSON),
    UniqueConstraint("model_id", "version"),
    # One training run, one version: the dedup rule is a constraint, so it holds under races.
    UniqueConstraint("base_model", "recipe", "config_hash"),
    Index(None, "model_id", "stage", "id"),
    Index(None, "config_hash"),
    Index(None, "stage", "recipe", "id"),
    Index(None, "created_at", "id"),
    sqlite_autoincrement=True,
)

METRICS = Table(
    "cmr_version_metrics",
    metadata,
    _fk("version_id", "cmr_model_versions.id", primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("value", Double, nullable=False),
    Index(None, "name", "value", "version_id"),
)

VERSION_TAGS = Table(
    "cmr_version_tags",
    metadata,
    _fk("version_id", "cmr_model_versions.id", primary_key=True),
    Column("tag", String(100), primary_key=True),
    Index(None, "tag", "version_id"),
)

MODEL_TAGS = Table(
    "cmr_model_tags",
    metadata,
    _fk("model_id", "cmr_models.id", primary_key=True),
    Column("tag", String(100), primary_key=True),
    Index(None, "tag", "model_id"),
)

ARTIFACTS = Table(
    "cmr_artifacts",
    metadata,
    _id(),
    _fk("version_id", "cmr_model_versions.id"),
    Column("type", String(32), nullable=False),
    Column("storage_backend", String(64), nullable=False),
    Column("storage_path", String(2048), nullable=False),
    Column("checksum", String(64)),
    Column("size_bytes", BigInteger),
    Column("manifest", JSON),
    _when("created_at"),
    Index(None, "version_id", "id"),
    sqlite_autoincrement=True,
)

# One row while an upload is under way: it claims the remote path before any byte is sent,
# so two uploads racing for one path cannot both write it (see store.artifacts).
PENDING_UPLOADS = Table(
    "cmr_pending_uploads",
    metadata,
    Column("storage_backend", String(64), primary_key=True),
    Column("storage_path", String(2048), primary_key=True),
    _fk("version_id", "cmr_model_versions.id"),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    _when("started_at"),
    # The owner's secret: only the process holding it may give the claim back or renew it.
    Column("token", String(64), nullable=False),
    # The owner renews this lease while it uploads; a claim past it may be taken over.
    _when("expires_at"),
    Index(None, "version_id"),
)

# Content-addressed bytes (issue 21, migration 0007). A blob is a file's bytes kept once per
# storage backend under their SHA-256 (storage.base.StoresBlobs); these rows are its
# reference count. One row per distinct file an artifact holds (a file artifact: one; a
# folder: one per distinct file), gone with the artifact (and so with its version).
BLOB_REFS = Table(
    "cmr_blob_refs",
    metadata,
    _fk("artifact_id", "cmr_artifacts.id", primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("storage_backend", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    # storage._streaming.probe_file: which uploads are worth hashing before they send.
    Column("probe", String(64), nullable=False),
    Index(None, "storage_backend", "sha256"),
    Index(None, "storage_backend", "size_bytes", "probe"),
)

# A blob an upload in progress may reuse or has just made: pinned by the upload's claim, so
# neither artifact deletion nor gc removes it before the artifact is recorded (which turns
# the pin into a reference in the same transaction). Gone with the claim, whether it is
# given back, taken over after its lease, or consumed by the record.
BLOB_PINS = Table(
    "cmr_blob_pins",
    metadata,
    Column("storage_backend", String(64), primary_key=True),
    Column("storage_path", String(2048), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    ForeignKeyConstraint(
        ["storage_backend", "storage_path"],
        ["cmr_pending_uploads.storage_backend", "cmr_pending_uploads.storage_path"],
        ondelete="CASCADE",
    ),
    Index(None, "storage_backend", "sha256"),
)

EDGES = Table(
    "cmr_lineage_edges",
    metadata,
    _id(),
    _fk("source_version_id", "cmr_model_versions.id"),
    _fk("target_version_id", "cmr_model_versions.id"),
    Column("relationship", String(32), nullable=False),
    Column("metadata", JSON, nullable=False),
    _when("created_at"),
    UniqueConstraint("source_version_id", "target_version_id"),
    Index(None, "target_version_id", "source_version_id"),
    sqlite_autoincrement=True,
)

# Append-only: rows outlive their version so the audit trail survives deletions.
TRANSITIONS = Table(
    "cmr_stage_transitions",
    metadata,
    _id(),
    _fk("model_id", "cmr_models.id"),
    Column("version_id", IdType, nullable=False),
    Column("from_stage", String(16)),
    Column("to_stage", String(16), nullable=False),
    Column("reason", Text),
    Column("actor", String(255)),
    _when("at"),
    Index(None, "version_id", "id"),
    Index(None, "model_id", "at"),
    sqlite_autoincrement=True,
)

ALIASES = Table(
    "cmr_aliases",
    metadata,
    _fk("model_id", "cmr_models.id", primary_key=True),
    Column("alias", String(64), primary_key=True),
    _fk("version_id", "cmr_model_versions.id"),
    _when("updated_at"),
    Index(None, "version_id"),
)

# Append-only history of alias moves; version_id NULL records a deletion.
ALIAS_CHANGES = Table(
    "cmr_alias_changes",
    metadata,
    _id(),
    _fk("model_id", "cmr_models.id"),
    Column("alias", String(64), nullable=False),
    Column("version_id", IdType),
    Column("reason", Text),
    Column("actor", String(255)),
    _when("at"),
    Index(None, "model_id", "alias", "at"),
    sqlite_autoincrement=True,
)

POLICIES = Table(
    "cmr_promotion_policies",
    metadata,
    _fk("model_id", "cmr_models.id", primary_key=True),
    Column("policy", JSON, nullable=False),
    _when("updated_at"),
)

# Append-only: every change of a model's policy, the old and the new one (None: no policy).
POLICY_CHANGES = Table(
    "cmr_policy_changes",
    metadata,
    _id(),
    _fk("model_id", "cmr_models.id"),
    Column("old_policy", JSON),
    Column("new_policy", JSON),
    Column("actor", String(255)),
    _when("at"),
    Index(None, "model_id", "id"),
    sqlite_autoincrement=True,
)

# Append-only: every write (library and server) and every denied attempt at the server.
AUDIT_LOG = Table(
    "cmr_audit_log",
    metadata,
    _id(),
    _when("at"),
    Column("actor", String(255), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(512), nullable=False),
    Column("details", JSON, nullable=False),
    Column("request_id", String(64)),
    Column("outcome", String(16), nullable=False),  # "ok" or "denied"
    Index(None, "at", "id"),
    Index(None, "actor", "id"),
    Index(None, "action", "id"),
    sqlite_autoincrement=True,
)


TOKENS = Table(
    "cmr_tokens",
    metadata,
    Column("name", String(128), primary_key=True),
    # SHA-256 hex of the secret: the secret itself is never stored.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("models", JSON, nullable=False),  # glob patterns; [] = every model
    _when("created_at"),
    Column("created_by", String(255)),
    Column("expires_at", UTCDateTime()),
    Column("last_used_at", UTCDateTime()),
)
