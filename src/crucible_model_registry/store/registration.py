"""Registration of new versions: dedup, numbering, and the one-statement PostgreSQL path."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, exists, func, insert, select, update
from sqlalchemy.sql.dml import Insert

from crucible_model_registry.domain.audit import Attribution
from crucible_model_registry.domain.enums import Stage
from crucible_model_registry.domain.records import Artifact, ModelVersion
from crucible_model_registry.domain.refs import VersionRef
from crucible_model_registry.domain.specs import NewVersion
from crucible_model_registry.errors import (
    DuplicateConfigError,
    DuplicateVersionError,
    NotFoundError,
    ValidationError,
)
from crucible_model_registry.store import audit
from crucible_model_registry.store._records import version_columns, versions_from_rows
from crucible_model_registry.store._translate import ConstraintViolationError
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.models import get_or_create_model, lock_model, now, resolve_ref
from crucible_model_registry.store.tables import (
    ALIASES,
    ARTIFACTS,
    EDGES,
    METRICS,
    MODELS,
    TRANSITIONS,
    VERSION_TAGS,
    VERSIONS,
)

__all__ = ["register"]

V = VERSIONS.c
M = MODELS.c


_dumps = json.dumps  # what SQLAlchemy's JSON type stores, without the engine in between


# Statements on the hot paths (registration, ref resolution, promotion) are built once, so
# that SQLAlchemy reuses their cache keys and compiled forms instead of rebuilding them on
# every call: that was most of a registration's Python time (bench/register.py).
_EXISTING_VERSION_IDS = select(V.id).where(V.id.in_(bindparam("ids", expanding=True)))
# PostgreSQL: the parents, share-locked until commit, so that none can be deleted between
# this check and the edge inserts (issue 14: a raw foreign-key error or a wrong
# DuplicateVersionError otherwise). A parent deleted meanwhile is not returned once the
# deleting transaction commits.
_LOCK_PARENTS = _EXISTING_VERSION_IDS.with_for_update(read=True)
_NEXT_NUMBER = (
    update(MODELS)
    .where(M.name == bindparam("model_name"))
    .values(version_seq=M.version_seq + 1)
    .returning(M.id, M.version_seq)
)
_VERSION_TAKEN = select(
    exists().where(V.model_id == bindparam("model_id"), V.version == bindparam("version"))
)
_INSERT_VERSION = insert(VERSIONS).returning(V.id)
_INSERT_ARTIFACTS = insert(ARTIFACTS).returning(ARTIFACTS.c.id, sort_by_parameter_order=True)
# RETURNING makes SQLAlchemy send several rows as one multi-row INSERT ("insertmanyvalues"),
# which beats psycopg's pipelined executemany (~0.3 ms against ~0.45 ms for two rows).
_INSERT_METRICS = insert(METRICS).returning(METRICS.c.version_id)
_INSERT_VERSION_TAGS = insert(VERSION_TAGS).returning(VERSION_TAGS.c.version_id)
_INSERT_EDGES = insert(EDGES).returning(EDGES.c.id)
_INSERT_TRANSITIONS = insert(TRANSITIONS).returning(TRANSITIONS.c.id)


def register(db: Database, spec: NewVersion, *, by: Attribution) -> ModelVersion:
    """Record a new version with its metrics, tags, artifacts, parents and first stage.

    The audit entry (action ``register``, by ``by``) is written in the same transaction
    (statement, on PostgreSQL's one-statement path); a duplicate returned instead of
    registered writes none.

    The dedup rule and version uniqueness are database constraints, so concurrent callers
    cannot both win; a violation is diagnosed after the failed transaction has rolled back.

    Raises:
        DuplicateConfigError: the training run exists (unless ``on_duplicate="return"``).
        DuplicateVersionError: the model already has this version string.
        NotFoundError: a parent does not exist.
        ValidationError: the version string is one of the model's aliases.
    """
    try:
        return _insert_version(db, spec, by)
    except ConstraintViolationError as exc:
        existing = _existing_run(db, spec)
        if existing is not None:
            if spec.on_duplicate == "return":
                return existing
            raise DuplicateConfigError(existing) from exc
        _raise_for_missing_parent(db, spec.parents, exc)
        if spec.version is not None and _version_exists(db, spec.model_name, spec.version):
            raise DuplicateVersionError(spec.model_name, spec.version) from exc
        raise


def _raise_for_missing_parent(
    db: Database, parents: Sequence[VersionRef], exc: ConstraintViolationError
) -> None:
    # A parent deleted after the checks breaks an edge's foreign key: say which.
    if not parents:
        return
    try:
        with db.read() as conn:
            _parent_ids(conn, parents)
    except NotFoundError as missing:
        raise missing from exc


def _version_exists(db: Database, model_name: str, version: str) -> bool:
    with db.read() as conn:
        return (
            conn.execute(
                select(V.id)
                .join_from(VERSIONS, MODELS, M.id == V.model_id)
                .where(M.name == model_name, V.version == version)
            ).first()
            is not None
        )


def _existing_run(db: Database, spec: NewVersion) -> ModelVersion | None:
    with db.read() as conn:
        rows = conn.execute(
            version_columns().where(
                V.base_model == spec.base_model,
                V.recipe == spec.recipe,
                V.config_hash == spec.config_hash,
            )
        )
        found = versions_from_rows(conn, rows)
    return found[0] if found else None


def _insert_version(db: Database, spec: NewVersion, by: Attribution) -> ModelVersion:
    if db.pg_native and spec.version is None and all(p.id is not None for p in spec.parents):
        record = _insert_in_one_statement(db, spec, by)
        if record is not None:
            return record
    at = now()
    with db.write() as conn:
        # Parents first: resolving them needs no lock, and "model@latest" means the version
        # before this one.
        parent_ids = _parent_ids(conn, spec.parents)
        version = spec.version
        number = 0
        if version is None:
            model_id, number = _next_version_number(db, conn, spec.model_name, at)
        else:
            model_id = get_or_create_model(db, conn, spec.model_name, at)
            # set_alias checks version strings under this lock too, so an alias and a
            # version string of the same name cannot both be created by racing callers.
            lock_model(db, conn, model_id)
            if (
                conn.execute(
                    select(ALIASES.c.alias).where(
                        ALIASES.c.model_id == model_id,
                        func.lower(ALIASES.c.alias) == version.lower(),
                    )
                ).first()
                is not None
            ):
                raise ValidationError.single(
                    "version", f"{version!r} is an alias of model {spec.model_name!r}"
                )
        if parent_ids and db.lock_clause():
            # Only after the model's lock: delete_version takes the model's lock before the
            # version's, so locking a parent of the same model first could deadlock.
            _lock_parents(conn, parent_ids)
        row = {
            "model_id": model_id,
            "stage": Stage.EXPERIMENT.value,
            "recipe": spec.recipe,
            "base_model": spec.base_model,
            "config_hash": spec.config_hash,
            "training_config": spec.training_config,
            "metrics": spec.metrics,
            "tags": spec.tags,
            "description": spec.description,
            "metadata": spec.metadata,
            "created_at": at,
            "updated_at": at,
            "registered_by": spec.actor,
        }
        if version is None:
            version, version_id = _insert_numbered(db, conn, spec.model_name, number, row)
        else:
            version_id = conn.execute(_INSERT_VERSION, {**row, "version": version}).scalar_one()
        if spec.metrics:
            conn.execute(
                _INSERT_METRICS,
                [
                    {"version_id": version_id, "name": k, "value": v}
                    for k, v in spec.metrics.items()
                ],
            )
        if spec.tags:
            conn.execute(
                _INSERT_VERSION_TAGS, [{"version_id": version_id, "tag": t} for t in spec.tags]
            )
        artifact_ids: list[int] = []
        if spec.artifacts:
            artifact_ids = list(
                conn.execute(
                    _INSERT_ARTIFACTS,
                    [
                        {
                            "version_id": version_id,
                            "type": a.type.value,
                            "storage_backend": a.storage_backend,
                            "storage_path": a.storage_path,
                            "checksum": a.checksum,
                            "size_bytes": a.size_bytes,
                            "manifest": a.manifest,
                            "created_at": at,
                        }
                        for a in spec.artifacts
                    ],
                ).scalars()
            )
        if parent_ids:
            # The child is new, so no edge into it can close a cycle.
            conn.execute(
                _INSERT_EDGES,
                [
                    {
                        "source_version_id": parent_id,
                        "target_version_id": version_id,
                        "relationship": spec.relationship.value,
                        "metadata": {},
                        "created_at": at,
                    }
                    for parent_id in parent_ids
                ],
            )
        conn.execute(
            _INSERT_TRANSITIONS,
            {
                "model_id": model_id,
                "version_id": version_id,
                "from_stage": None,
                "to_stage": Stage.EXPERIMENT.value,
                "reason": "registered",
                "actor": spec.actor,
                "at": at,
            },
        )
        audit.write(
            conn,
            by,
            "register",
            f"{spec.model_name}@{version}",
            _audit_details(spec, version_id, parent_ids, artifact_ids),
            at=at,
        )
    return _new_record(
        spec,
        model_id=model_id,
        version_id=version_id,
        version=version,
        artifact_ids=artifact_ids,
        at=at,
    )


# One auto-numbered registration as one statement of data-modifying CTEs (PostgreSQL), run
# on its own in autocommit mode, so that it costs one round trip: the statement is atomic,
# and its model UPDATE holds the model's row lock (numbering) until the statement commits.
# Every insert reads from `v`, so when the model does not exist, a parent is missing (the
# UPDATE's guard) or the number is taken (ON CONFLICT), nothing at all is written and the
# caller takes the transactional path, which creates the model, raises NotFoundError or
# skips the number. A parent deleted after the guard fails the edge's foreign key (the
# guard cannot lock it: the model's row is locked after it, and delete_version locks in
# the other order); register() then diagnoses the missing parent as NotFoundError. A dedup
# conflict still raises: only (model_id, version) is the arbiter.
_REGISTER_ONE_STATEMENT = """\
WITH m AS (
    UPDATE cmr_models SET version_seq = version_seq + 1
    WHERE name = %(model_name)s
      AND (SELECT count(*) FROM cmr_model_versions WHERE id = ANY(%(parents)s::bigint[]))
          = cardinality(%(parents)s::bigint[])
    RETURNING id, version_seq
), v AS (
    INSERT INTO cmr_model_versions (model_id, version, stage, recipe, base_model, config_hash,
        training_config, metrics, tags, description, metadata, created_at, updated_at,
        registered_by)
    SELECT m.id, m.version_seq::text, %(stage)s, %(recipe)s, %(base_model)s, %(config_hash)s,
        %(training_config)s::json, %(metrics)s::json, %(tags)s::json, %(description)s,
        %(metadata)s::json, %(at)s, %(at)s, %(actor)s
    FROM m
    ON CONFLICT (model_id, version) DO NOTHING
    RETURNING id, model_id
), metric_rows AS (
    INSERT INTO cmr_version_metrics (version_id, name, value)
    SELECT v.id, x.name, x.value
    FROM v, unnest(%(metric_names)s::text[], %(metric_values)s::float8[]) AS x(name, value)
), tag_rows AS (
    INSERT INTO cmr_version_tags (version_id, tag)
    SELECT v.id, x.tag FROM v, unnest(%(tag_list)s::text[]) AS x(tag)
), artifact_rows AS (
    INSERT INTO cmr_artifacts (version_id, type, storage_backend, storage_path, checksum,
        size_bytes, manifest, created_at)
    SELECT v.id, a.type, a.backend, a.path, a.checksum, a.size_bytes, a.manifest::json, %(at)s
    FROM v, unnest(%(a_type)s::text[], %(a_backend)s::text[], %(a_path)s::text[],
        %(a_checksum)s::text[], %(a_size)s::bigint[], %(a_manifest)s::text[])
        WITH ORDINALITY AS a(type, backend, path, checksum, size_bytes, manifest, ord)
    ORDER BY a.ord
    RETURNING id
), edge_rows AS (
    INSERT INTO cmr_lineage_edges (source_version_id, target_version_id, relationship,
        metadata, created_at)
    SELECT p.id, v.id, %(relationship)s, '{}'::json, %(at)s
    FROM v, unnest(%(parents)s::bigint[]) AS p(id)
), history_rows AS (
    INSERT INTO cmr_stage_transitions (model_id, version_id, from_stage, to_stage, reason,
        actor, at)
    SELECT v.model_id, v.id, NULL, %(stage)s, 'registered', %(actor)s, %(at)s FROM v
), audit_rows AS (
    INSERT INTO cmr_audit_log (at, actor, action, target, details, request_id, outcome)
    SELECT %(at)s, %(audit_actor)s, 'register', %(model_name)s || '@' || m.version_seq::text,
        json_build_object('version_id', v.id, 'config_hash', %(config_hash)s::text,
            'parents', %(parents)s::bigint[],
            'artifacts', ARRAY(SELECT id FROM artifact_rows ORDER BY id),
            'lineage_type', %(lineage_type)s::text),
        %(request_id)s, 'ok'
    FROM m, v
)
SELECT m.id, m.version_seq, (SELECT id FROM v), ARRAY(SELECT id FROM artifact_rows ORDER BY id)
FROM m
"""


def _insert_in_one_statement(
    db: Database, spec: NewVersion, by: Attribution
) -> ModelVersion | None:
    """Register in one round trip; None when the transactional path must take over."""
    at = now()
    parent_ids = list(dict.fromkeys(ref.id for ref in spec.parents if ref.id is not None))
    artifacts = spec.artifacts
    params = {
        "model_name": spec.model_name,
        "parents": parent_ids,
        "stage": Stage.EXPERIMENT.value,
        "recipe": spec.recipe,
        "base_model": spec.base_model,
        "config_hash": spec.config_hash,
        "training_config": _dumps(spec.training_config),
        "metrics": _dumps(spec.metrics),
        "tags": _dumps(spec.tags),
        "description": spec.description,
        "metadata": _dumps(spec.metadata),
        "at": at,
        "metric_names": list(spec.metrics),
        "metric_values": [float(v) for v in spec.metrics.values()],
        "tag_list": spec.tags,
        "a_type": [a.type.value for a in artifacts],
        "a_backend": [a.storage_backend for a in artifacts],
        "a_path": [a.storage_path for a in artifacts],
        "a_checksum": [a.checksum for a in artifacts],
        "a_size": [a.size_bytes for a in artifacts],
        # As the JSON column type stores it: None is the JSON null.
        "a_manifest": [_dumps(a.manifest) for a in artifacts],
        "relationship": spec.relationship.value,
        "actor": spec.actor,
        "audit_actor": by.actor,
        "request_id": by.request_id,
        "lineage_type": spec.relationship.value if parent_ids else None,
    }
    with db.one_statement() as conn:
        row = conn.exec_driver_sql(_REGISTER_ONE_STATEMENT, params).first()
    if row is None or row[2] is None:
        return None
    model_id, number, version_id, artifact_ids = row
    return _new_record(
        spec,
        model_id=model_id,
        version_id=version_id,
        version=str(number),
        artifact_ids=artifact_ids,
        at=at,
    )


def _audit_details(
    spec: NewVersion, version_id: int, parent_ids: list[int], artifact_ids: Sequence[int]
) -> dict[str, Any]:
    # The same keys as the one-statement path's json_build_object above.
    return {
        "version_id": version_id,
        "config_hash": spec.config_hash,
        "parents": parent_ids,
        "artifacts": list(artifact_ids),
        "lineage_type": spec.relationship.value if parent_ids else None,
    }


def _new_record(
    spec: NewVersion,
    *,
    model_id: int,
    version_id: int,
    version: str,
    artifact_ids: Sequence[int],
    at: datetime,
) -> ModelVersion:
    # Everything the record holds was just written: build it instead of reading it back.
    return ModelVersion(
        id=version_id,
        model_id=model_id,
        model_name=spec.model_name,
        version=version,
        stage=Stage.EXPERIMENT,
        recipe=spec.recipe,
        base_model=spec.base_model,
        config_hash=spec.config_hash,
        training_config=spec.training_config,
        metrics=spec.metrics,
        tags=spec.tags,
        description=spec.description,
        artifacts=[
            Artifact(
                id=artifact_id,
                model_version_id=version_id,
                type=a.type,
                storage_backend=a.storage_backend,
                storage_path=a.storage_path,
                checksum=a.checksum,
                size_bytes=a.size_bytes,
                created_at=at,
                manifest=a.manifest,
            )
            for artifact_id, a in zip(artifact_ids, spec.artifacts, strict=True)
        ],
        created_at=at,
        updated_at=at,
        metadata=spec.metadata,
        registered_by=spec.actor,
    )


def _parent_ids(conn: Connection, refs: Sequence[VersionRef], *, lock: bool = False) -> list[int]:
    """The ids of the parents, checked to exist (all ids in one query), without repeats.

    Args:
        lock: share-lock them until commit (``FOR SHARE``), so none is deleted meanwhile.
    """
    given = [ref.id for ref in refs if ref.id is not None]
    found = set(conn.execute(_EXISTING_VERSION_IDS, {"ids": given}).scalars()) if given else set()
    ids: list[int] = []
    for ref in refs:
        if ref.id is None:
            ids.append(resolve_ref(conn, ref))
        elif ref.id in found:
            ids.append(ref.id)
        else:
            raise NotFoundError("version", ref.id)
    return list(dict.fromkeys(ids))


def _lock_parents(conn: Connection, parent_ids: list[int]) -> None:
    """Share-lock the parents until commit (PostgreSQL), so that none is deleted meanwhile.

    Raises:
        NotFoundError: a parent was deleted by a transaction that committed since it was
            looked up (the lock waited for it).
    """
    locked = set(conn.execute(_LOCK_PARENTS, {"ids": parent_ids}).scalars())
    for parent_id in parent_ids:
        if parent_id not in locked:
            raise NotFoundError("version", parent_id)


def _next_version_number(
    db: Database, conn: Connection, model_name: str, at: datetime
) -> tuple[int, int]:
    """The model's id and its next version number, creating the model if need be.

    The model row's counter is bumped under its lock (held to commit), so concurrent
    auto-numbered registrations get distinct numbers.
    """
    row = conn.execute(_NEXT_NUMBER, {"model_name": model_name}).first()
    if row is None:
        get_or_create_model(db, conn, model_name, at)
        row = conn.execute(_NEXT_NUMBER, {"model_name": model_name}).one()
    return int(row[0]), int(row[1])


def _insert_numbered(
    db: Database, conn: Connection, model_name: str, number: int, row: dict[str, Any]
) -> tuple[str, int]:
    """Insert an auto-numbered version, skipping numbers explicit versions have taken."""
    insert_or_skip = _insert_unless_number_taken(db.dialect)
    while True:
        version = str(number)
        if insert_or_skip is not None:
            # One statement: the insert does nothing if the number is taken.
            version_id = conn.execute(insert_or_skip, {**row, "version": version}).scalar()
            if version_id is not None:
                return version, int(version_id)
        elif not conn.execute(
            _VERSION_TAKEN, {"model_id": row["model_id"], "version": version}
        ).scalar():
            return version, conn.execute(_INSERT_VERSION, {**row, "version": version}).scalar_one()
        number = int(conn.execute(_NEXT_NUMBER, {"model_name": model_name}).one()[1])


@functools.cache
def _insert_unless_number_taken(dialect: str) -> Insert | None:
    # Only (model_id, version) is the arbiter: a dedup conflict still raises, as it must.
    arbiter = [V.model_id, V.version]
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(VERSIONS).on_conflict_do_nothing(index_elements=arbiter).returning(V.id)
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return (
            sqlite_insert(VERSIONS).on_conflict_do_nothing(index_elements=arbiter).returning(V.id)
        )
    return None
