"""History tables a later migration adds are exported and imported without code of their own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, Column, ForeignKey, Integer, String, Table, insert, select

from crucible_model_registry import Registry
from crucible_model_registry.store.tables import UTCDateTime, metadata


@pytest.fixture
def policy_changes() -> Iterator[Table]:
    """A per-model history table, as a migration would add it (removed afterwards)."""
    table = Table(
        "cmr_test_policy_changes",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("model_id", Integer, ForeignKey("cmr_models.id", ondelete="CASCADE")),
        Column("version_id", Integer, nullable=True),
        Column("policy", JSON, nullable=False),
        Column("actor", String(255)),
        Column("at", UTCDateTime(), nullable=False),
    )
    try:
        yield table
    finally:
        metadata.remove(table)


def test_an_extra_history_table_round_trips(
    policy_changes: Table, seeded: Registry, make_registry: Any, tmp_path: Path
):
    target = make_registry("target")
    target.list_models()  # migrated
    for registry in (seeded, target):
        policy_changes.create(registry.engine)
    sft = seeded.get_model("sft")
    sft1 = seeded.get_version("sft@1")
    at = datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC)
    with seeded.engine.begin() as conn:
        conn.execute(
            insert(policy_changes),
            [
                {
                    "model_id": sft.id,
                    "version_id": sft1.id,
                    "policy": {"a": 1},
                    "actor": "x",
                    "at": at,
                },
                {"model_id": sft.id, "version_id": None, "policy": {}, "actor": "y", "at": at},
            ],
        )
    result = seeded.export_to(tmp_path / "a")
    assert result.counts["test_policy_changes"] == 2
    report = target.import_from(tmp_path / "a")
    assert report.imported["test_policy_changes"] == 2
    assert not target.import_from(tmp_path / "a").changed
    with target.engine.connect() as conn:
        rows = conn.execute(select(policy_changes).order_by(policy_changes.c.id)).all()
    assert [(r.version_id, r.policy, r.actor, r.at) for r in rows] == [
        (target.get_version("sft@1").id, {"a": 1}, "x", at),
        (None, {}, "y", at),
    ]
    assert {r.model_id for r in rows} == {target.get_model("sft").id}
