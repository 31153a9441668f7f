"""Records as the database returns them survive the wire form, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import crucible_model_registry as cmr
from crucible_model_registry import Registry
from crucible_model_registry.domain.audit import Attribution
from crucible_model_registry.domain.refs import parse_ref
from crucible_model_registry.wire import error_from_json, from_json, to_json


def through_text(value: object) -> Any:
    return json.loads(json.dumps(to_json(value)))


def test_every_kind_of_record_round_trips(registry: Registry, tmp_path: Path) -> None:
    base = registry.register(
        model_name="wire",
        recipe="sft",
        base_model="org/base",
        training_config={"lr": 1e-4, "nested": {"a": [1, 2.5, None]}},
        metrics={"accuracy": 0.9},
        tags=["sft"],
        artifacts=[{"type": "config", "storage_backend": "s3", "storage_path": "s3://b/c.json"}],
    )
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "w.bin").write_bytes(b"weights")
    uploaded = registry.upload_artifact(base, "checkpoint", tmp_path / "ckpt")
    child = registry.register(
        model_name="wire", recipe="dpo", base_model="org/base", training_config={}, parents=[base]
    )
    edge = registry.add_lineage(
        base,
        registry.register(
            model_name="wire-q", recipe="q", base_model="org/base", training_config={}
        ),
        relationship="quantization",
        metadata={"bits": 4},
    )
    registry.set_alias(child, "champion", reason="best")
    registry.set_promotion_policy("wire", {"gates": {"production": {"min_accuracy": 0.5}}})
    promoted = registry.backend.promote(
        parse_ref("wire@1"),
        cmr.Stage.PRODUCTION,
        reason="r",
        by=Attribution("a"),
        archive_existing=True,
    )
    records: list[object] = [
        registry.get_version(base.id),
        uploaded,
        edge,
        registry.get_model("wire"),
        *registry.stage_history(base),
        *registry.alias_history("wire"),
        registry.get_promotion_policy("wire"),
        registry.get_lineage(base),
        *registry.get_descendants(base, with_distance=True),
        cmr.Query(registry).order_by("created_at", "desc").page(2),
        promoted,
        *registry.policy_history("wire"),
        registry.check(),
        *registry.audit_log(),
    ]
    for record in records:
        assert from_json(type(record), through_text(record)) == record, type(record)
    assert uploaded.manifest is not None


def test_a_registry_error_round_trips_as_raised(registry: Registry) -> None:
    v = registry.register(model_name="wire", recipe="sft", base_model="b", training_config={})
    with pytest.raises(cmr.DuplicateConfigError) as duplicate:
        registry.register(model_name="other", recipe="sft", base_model="b", training_config={})
    back = error_from_json(through_text(duplicate.value))
    assert isinstance(back, cmr.DuplicateConfigError)
    assert back.existing == v
    assert str(back) == str(duplicate.value)
    with pytest.raises(cmr.NotFoundError) as missing:
        registry.get_version("wire@champion", at=datetime.now(UTC))
    again = error_from_json(through_text(missing.value))
    assert isinstance(again, cmr.NotFoundError)
    assert (again.kind, again.ref) == (missing.value.kind, missing.value.ref)
