"""``registry.check()``: each invariant, broken on purpose by raw SQL, is reported.

Foreign keys would refuse most of these corruptions, so they are switched off for the
corrupting statement only (SQLite: a plain connection, where they are off by default;
PostgreSQL: ``session_replication_role = replica``), as a bug or a hand-written statement
on a database without enforced keys would.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from crucible_model_registry import Registry
from crucible_model_registry.domain.integrity import INVARIANTS, IntegrityReport

MODEL = "checked"
MISSING = 999_999


@pytest.fixture
def versions(registry: Registry, tmp_path: Path) -> dict[str, int]:
    """A parent and a child with metrics, tags, an alias and an artifact: a sound database."""
    parent = registry.register(
        model_name=MODEL, recipe="sft", base_model="b", training_config={"n": 1}
    )
    child = registry.register(
        model_name=MODEL,
        recipe="sft",
        base_model="b",
        training_config={"n": 2},
        metrics={"accuracy": 0.9, "loss": 0.25},
        tags=["candidate"],
        parents=[parent],
    )
    registry.promote(child, "staging", reason="eval passed")
    registry.set_alias(child, "champion")
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    registry.upload_artifact(child, "checkpoint", weights)
    return {"parent": parent.id, "child": child.id}


def corrupt(db_url: str, sql: str, **params: object) -> None:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(str(url.database))
        try:
            conn.execute(sql, params)
            conn.commit()
        finally:
            conn.close()
        return
    engine = create_engine(db_url, poolclass=NullPool)
    with engine.begin() as c:
        c.execute(text("SET LOCAL session_replication_role = replica"))
        c.execute(text(sql), params)
    engine.dispose()


def only(report: IntegrityReport, invariant: str) -> list[str]:
    assert {v.invariant for v in report.violations} == {invariant}, report.violations
    return [v.subject for v in report.violations]


def test_a_sound_database_passes(registry: Registry, versions: dict[str, int]):
    report = registry.check()
    assert report.ok
    assert report.violations == ()


def test_a_stage_that_is_not_the_last_history_row(
    registry: Registry, db_url: str, versions: dict[str, int]
):
    corrupt(
        db_url,
        "UPDATE cmr_model_versions SET stage = 'production' WHERE id = :id",
        id=versions["child"],
    )
    [subject] = only(registry.check(), "stage_history")
    assert f"version {versions['child']} " in subject


def test_metrics_json_that_differs_from_the_metrics_table(
    registry: Registry, db_url: str, versions: dict[str, int]
):
    corrupt(
        db_url,
        "UPDATE cmr_version_metrics SET value = 0.1 WHERE version_id = :id AND name = 'loss'",
        id=versions["child"],
    )
    [subject] = only(registry.check(), "metrics")
    assert f"version {versions['child']} " in subject


def test_tags_json_that_differs_from_the_tags_table(
    registry: Registry, db_url: str, versions: dict[str, int]
):
    corrupt(db_url, "DELETE FROM cmr_version_tags WHERE version_id = :id", id=versions["child"])
    [subject] = only(registry.check(), "tags")
    assert f"version {versions['child']} " in subject


def test_an_edge_from_a_missing_version(registry: Registry, db_url: str, versions: dict[str, int]):
    corrupt(db_url, "UPDATE cmr_lineage_edges SET source_version_id = :missing", missing=MISSING)
    [subject] = only(registry.check(), "orphan_edge")
    assert f"{MISSING} -> {versions['child']}" in subject


def test_an_alias_of_a_missing_version(registry: Registry, db_url: str, versions: dict[str, int]):
    corrupt(db_url, "UPDATE cmr_aliases SET version_id = :missing", missing=MISSING)
    [subject] = only(registry.check(), "orphan_alias")
    assert "'champion'" in subject


def test_an_alias_of_another_models_version(
    registry: Registry, db_url: str, versions: dict[str, int]
):
    other = registry.register(model_name="other", recipe="r", base_model="b", training_config={})
    corrupt(db_url, "UPDATE cmr_aliases SET version_id = :id", id=other.id)
    [subject] = only(registry.check(), "orphan_alias")
    assert "'champion'" in subject


def test_an_upload_claim_of_a_missing_version(
    registry: Registry, db_url: str, versions: dict[str, int]
):
    soon = (datetime.now(UTC) + timedelta(minutes=1)).replace(tzinfo=None)
    corrupt(
        db_url,
        "INSERT INTO cmr_pending_uploads (storage_backend, storage_path, version_id, host, pid, "
        "started_at, token, expires_at) VALUES ('local', 'x/1/checkpoint/y', :missing, 'h', 1, "
        ":at, 't', :at)",
        missing=MISSING,
        at=soon.isoformat(sep=" "),
    )
    [subject] = only(registry.check(), "orphan_claim")
    assert "'x/1/checkpoint/y'" in subject


def test_an_artifact_of_a_missing_version(
    registry: Registry, db_url: str, versions: dict[str, int]
):
    corrupt(db_url, "UPDATE cmr_artifacts SET version_id = :missing", missing=MISSING)
    [subject] = only(registry.check(), "orphan_artifact")
    assert subject.startswith("artifact ")


def test_a_version_counter_behind_the_numbered_versions(
    registry: Registry, db_url: str, versions: dict[str, int]
):
    corrupt(db_url, "UPDATE cmr_models SET version_seq = 1 WHERE name = :name", name=MODEL)
    [subject] = only(registry.check(), "version_counter")
    assert MODEL in subject


def test_every_invariant_has_a_test():
    tested = {
        "stage_history",
        "metrics",
        "tags",
        "orphan_edge",
        "orphan_alias",
        "orphan_claim",
        "orphan_artifact",
        "version_counter",
    }
    assert set(INVARIANTS) == tested
