"""Ids are never reused (issue 14, finding 1), and migration 0003 keeps a 0002 database's rows.

SQLite used to hand a deleted version's id (the largest rowid) to the next version, so its
stage history, the answers of ``at=`` and a retried ``delete_artifact`` attached to the
wrong version. PostgreSQL's sequences never reused ids; the tests run on both.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crucible_model_registry import NotFoundError, Registry, Stage
from crucible_model_registry.storage.local import LocalStorage
from crucible_model_registry.store import schema

MODEL = "ids-never-reused"


def _register(registry: Registry, run: int) -> int:
    return registry.register(
        model_name=MODEL, recipe="sft", base_model="base", training_config={"run": run}
    ).id


def _tick() -> datetime:
    # History times have microseconds; leave a gap so that "at" falls between changes.
    time.sleep(0.01)
    at = datetime.now(UTC)
    time.sleep(0.01)
    return at


def test_a_deleted_versions_id_and_history_never_pass_to_a_new_version(registry: Registry):
    _register(registry, 1)
    v2 = _register(registry, 2)
    registry.promote(v2, "production", reason="v2 shipped")
    registry.set_alias(v2, "champion")
    while_shipped = _tick()
    registry.promote(v2, "archived")
    registry.delete_version(v2)

    v3 = _register(registry, 3)

    assert v3 > v2
    assert [(h.to_stage, h.reason) for h in registry.stage_history(v3)] == [
        (Stage.EXPERIMENT, "registered")
    ]
    with pytest.raises(NotFoundError):
        registry.get_version(f"{MODEL}@production", at=while_shipped)
    with pytest.raises(NotFoundError):
        registry.get_version(f"{MODEL}@champion", at=while_shipped)


def test_a_retried_delete_artifact_never_deletes_a_newer_artifact(
    registry: Registry, tmp_path: Path
):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"first")
    v1 = _register(registry, 1)
    first = registry.upload_artifact(v1, "checkpoint", weights)
    registry.delete_artifact(first.id)
    registry.delete_version(v1)
    v2 = _register(registry, 2)
    weights.write_bytes(b"second")
    second = registry.upload_artifact(v2, "checkpoint", weights)

    with pytest.raises(NotFoundError) as caught:
        registry.delete_artifact(first.id)  # the caller retries after a lost reply

    assert caught.value.kind == "artifact"
    assert second.id != first.id
    assert registry.verify_artifact(second.id)
    assert [a.id for a in registry.get_version(v2).artifacts] == [second.id]


# --------------------------------------------------------------------------- migration 0003


def _migrated_from_0002(url: str, tmp_path: Path) -> tuple[Registry, dict[str, int]]:
    registry = Registry.from_url(url, storage=LocalStorage(tmp_path / "artifacts"))
    schema.migrate(registry.engine, "0002")
    # Written with the 0002 schema's own SQL: the 0003 store would not run against it.
    ids = _fill_at_0002_by_sql(url)
    schema.migrate(registry.engine)
    return registry, ids


def _fill_at_0002_by_sql(url: str) -> dict[str, int]:
    engine = create_engine(url)
    now = "2026-11-30 12:00:00"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO cmr_models (id, name, description, tags, metadata, version_seq, "
                "created_at, updated_at) VALUES (1, :m, NULL, '[]', '{}', 3, :t, :t)"
            ),
            {"m": MODEL, "t": now},
        )
        for vid, stage in ((1, "experiment"), (2, "production"), (3, "archived")):
            conn.execute(
                text(
                    "INSERT INTO cmr_model_versions (id, model_id, version, stage, recipe, "
                    "base_model, config_hash, training_config, metrics, tags, description, "
                    "created_at, updated_at) VALUES (:id, 1, :v, :s, 'sft', 'base', :h, '{}', "
                    ":metrics, :tags, NULL, :t, :t)"
                ),
                {
                    "id": vid,
                    "v": str(vid),
                    "s": stage,
                    "h": f"{vid:064x}",
                    "metrics": '{"accuracy": 0.9}' if vid == 2 else "{}",
                    "tags": '["candidate"]' if vid == 2 else "[]",
                    "t": now,
                },
            )
            conn.execute(
                text(
                    "INSERT INTO cmr_stage_transitions (model_id, version_id, from_stage, "
                    "to_stage, reason, actor, at) VALUES (1, :id, NULL, 'experiment', "
                    "'registered', 'tester', :t)"
                ),
                {"id": vid, "t": now},
            )
        conn.execute(
            text(
                "INSERT INTO cmr_stage_transitions (model_id, version_id, from_stage, to_stage, "
                "reason, actor, at) VALUES (1, 2, 'experiment', 'production', 'shipped', "
                "'tester', :t), (1, 3, 'experiment', 'archived', NULL, 'tester', :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO cmr_version_metrics (version_id, name, value) "
                "VALUES (2, 'accuracy', 0.9)"
            )
        )
        conn.execute(text("INSERT INTO cmr_version_tags (version_id, tag) VALUES (2, 'candidate')"))
        conn.execute(
            text(
                "INSERT INTO cmr_lineage_edges (source_version_id, target_version_id, "
                "relationship, metadata, created_at) VALUES (1, 2, 'fine_tuned_from', '{}', :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO cmr_aliases (model_id, alias, version_id, updated_at) "
                "VALUES (1, 'champion', 2, :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO cmr_alias_changes (model_id, alias, version_id, reason, actor, at) "
                "VALUES (1, 'champion', 2, NULL, 'tester', :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO cmr_artifacts (version_id, type, storage_backend, storage_path, "
                "checksum, size_bytes, manifest, created_at) "
                "VALUES (2, 'checkpoint', 'local', 'm/2/checkpoint/w.bin', NULL, 5, NULL, :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO cmr_promotion_policies (model_id, policy, updated_at) VALUES "
                '(1, \'{"allowed": {}, "gates": {}, "exclusive": ["production"]}\', :t)'
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO cmr_pending_uploads (storage_backend, storage_path, version_id, "
                "host, pid, started_at) VALUES ('local', 'm/1/checkpoint/x.bin', 1, 'h', 1, :t)"
            ),
            {"t": now},
        )
        # Version 3 is deleted, as delete_version does: its history rows stay.
        for table in ("cmr_artifacts", "cmr_version_metrics", "cmr_version_tags"):
            conn.execute(text(f"DELETE FROM {table} WHERE version_id = 3"))
        conn.execute(text("DELETE FROM cmr_model_versions WHERE id = 3"))
        if conn.dialect.name == "postgresql":
            # The ids were given by hand: move the sequences past them, as inserts would.
            for table, last in (("cmr_models", 1), ("cmr_model_versions", 3)):
                conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {last})")
                )
    engine.dispose()
    return {"v1": 1, "v2": 2, "v3": 3}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def blank_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no registry schema at all: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    server = str(request.getfixturevalue("postgres_server"))
    name = f"cmr_blank_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_migration_0003_keeps_a_0002_databases_rows_and_never_reuses_ids(
    blank_db_url: str, tmp_path: Path
):
    registry, ids = _migrated_from_0002(blank_db_url, tmp_path)
    try:
        assert schema.current_revision(registry.engine) == schema.HEAD_REVISION
        v2 = registry.get_version(ids["v2"])
        assert (v2.stage, v2.metrics, v2.tags) == (
            Stage.PRODUCTION,
            {"accuracy": 0.9},
            ["candidate"],
        )
        assert [a.storage_path for a in v2.artifacts] == ["m/2/checkpoint/w.bin"]
        assert registry.get_version(f"{MODEL}@champion").id == ids["v2"]
        assert [p.id for p in registry.get_ancestors(ids["v2"], 1)] == [ids["v1"]]
        assert [h.reason for h in registry.stage_history(ids["v2"])] == ["registered", "shipped"]
        assert registry.get_promotion_policy(MODEL).exclusive == (Stage.PRODUCTION,)
        assert [c.new for c in registry.policy_history(MODEL)] == [
            registry.get_promotion_policy(MODEL)
        ]
        # The deleted version 3 still has history rows: the next version must not be 3.
        new = _register(registry, 4)
        assert new > ids["v3"]
        assert [h.reason for h in registry.stage_history(new)] == ["registered"]
        report = registry.check()
        assert report.ok, report.violations
        # Foreign keys still cascade after the rebuild (SQLite: they were off meanwhile).
        registry.delete_version(ids["v1"], force=True)
        assert registry.get_ancestors(ids["v2"], 1) == []
    finally:
        registry.close()


def test_migration_0003_rebuilds_sqlite_tables_with_autoincrement(tmp_path: Path):
    path = tmp_path / "old.db"
    registry = Registry.from_url(f"sqlite:///{path}")
    schema.migrate(registry.engine, "0002")
    schema.migrate(registry.engine)
    registry.close()
    with sqlite3.connect(path) as conn:
        ddl = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
        violations = conn.execute("PRAGMA foreign_key_check").fetchall()
    for table in (
        "cmr_models",
        "cmr_model_versions",
        "cmr_artifacts",
        "cmr_lineage_edges",
        "cmr_stage_transitions",
        "cmr_alias_changes",
        "cmr_policy_changes",
    ):
        assert "AUTOINCREMENT" in ddl[table], table
    assert "ON DELETE CASCADE" in ddl["cmr_artifacts"]
    assert violations == []
