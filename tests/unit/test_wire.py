"""wire.py: JSON forms both ways; a malformed document is a ValidationError, never a crash."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.properties.test_query_oracle import build, make_world, orders, trees

import crucible_model_registry as cmr
from crucible_model_registry import errors
from crucible_model_registry.domain.integrity import IntegrityReport, Violation
from crucible_model_registry.domain.lineage import LineageGraph, LineageHit
from crucible_model_registry.domain.policy import PolicyChange
from crucible_model_registry.domain.query_spec import QuerySpec
from crucible_model_registry.domain.records import PromotionResult
from crucible_model_registry.wire import (
    ERROR_TYPES,
    error_from_json,
    error_to_json,
    from_json,
    to_json,
)

T0 = datetime(2026, 11, 1, 12, 30, 15, 123456, tzinfo=UTC)
WORLD = make_world(7, 40)


def through_text(value: object) -> Any:
    return json.loads(json.dumps(to_json(value)))


def artifact(i: int, *, manifest: bool = False) -> cmr.Artifact:
    return cmr.Artifact(
        id=i,
        model_version_id=1,
        type=cmr.ArtifactType.CHECKPOINT,
        storage_backend="s3",
        storage_path=f"s3://bucket/m/1/checkpoint/{i}/",
        checksum="ab" * 32,
        size_bytes=1234,
        created_at=T0,
        manifest=[{"path": "a.bin", "size_bytes": 3, "sha256": "cd" * 32}] if manifest else None,
    )


def version(i: int = 1, **changes: Any) -> cmr.ModelVersion:
    fields: dict[str, Any] = {
        "id": i,
        "model_id": 3,
        "model_name": "llama-3.1-8b-sft",
        "version": f"1.{i}",
        "stage": cmr.Stage.STAGING,
        "recipe": "sl_basic",
        "base_model": "meta-llama/Llama-3.1-8B",
        "config_hash": "0f" * 32,
        "training_config": {"lr": 1e-4, "layers": [1, 2, {"x": None}], "name": "ü"},
        "metrics": {"accuracy": 0.92, "loss": 1.0},
        "tags": ["sft", "eval"],
        "description": None,
        "artifacts": [artifact(1), artifact(2, manifest=True)],
        "created_at": T0,
        "updated_at": T0 + timedelta(seconds=1),
    }
    return cmr.ModelVersion(**(fields | changes))


RECORDS: list[object] = [
    PolicyChange(
        old=None,
        new=cmr.PromotionPolicy(exclusive=["production"], gate_tags="version_or_model"),
        actor="a",
        at=T0,
    ),
    IntegrityReport(violations=(Violation("orphan_edge", "edge 3", "its child 9 does not exist"),)),
    version(),
    version(2, stage=cmr.Stage.PRODUCTION, artifacts=[], description="d", metrics={}),
    version(3, created_at=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=2)))),
    cmr.Model(
        id=3,
        name="m",
        description=None,
        tags=["a"],
        metadata={"team": "x", "n": 1.5},
        created_at=T0,
        updated_at=T0,
    ),
    artifact(9, manifest=True),
    cmr.LineageEdge(
        id=4,
        source_version_id=1,
        target_version_id=2,
        relationship=cmr.Relationship.MERGED_FROM,
        metadata={"weights": [0.5, 0.5]},
        created_at=T0,
    ),
    cmr.StageTransition(
        version_id=1, from_stage=None, to_stage=cmr.Stage.EXPERIMENT, reason=None, actor="a", at=T0
    ),
    cmr.AliasChange(alias="champion", version_id=None, reason="gone", actor="b", at=T0),
    LineageHit(version=version(), distance=2, relationship=cmr.Relationship.DPO_TRAINED_FROM),
    LineageGraph(
        focus=version(1),
        ancestors=(LineageHit(version(2), 1, cmr.Relationship.FINE_TUNED_FROM),),
        descendants=(LineageHit(version(3), 1, cmr.Relationship.ADAPTER_OF),),
        edges=(
            cmr.LineageEdge(5, 2, 1, cmr.Relationship.FINE_TUNED_FROM, {}, T0),
            cmr.LineageEdge(6, 1, 3, cmr.Relationship.ADAPTER_OF, {}, T0),
        ),
    ),
    cmr.Page(items=[version(1), version(2)], next_cursor="abc"),
    cmr.Page(items=[], next_cursor=None),
    PromotionResult(
        version=version(), from_stage=cmr.Stage.EXPERIMENT, archived_ids=[7], changed=True
    ),
    cmr.PromotionPolicy(
        allowed={"production": ["staging"]},
        gates={"production": cmr.Query().where_metric("accuracy", ">=", 0.9).where_tag("sft")},
        exclusive=["production"],
    ),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_records_round_trip_through_json_text(record: object) -> None:
    assert from_json(type(record), through_text(record)) == record


def test_a_records_wire_form_is_its_to_dict() -> None:
    for record in RECORDS:
        to_dict = getattr(record, "to_dict", None)
        if to_dict is not None and not isinstance(record, LineageGraph):
            assert to_json(record) == to_dict()


def test_lists_and_dicts_of_records_are_encoded_inside() -> None:
    doc = to_json({"versions": [version()], "n": 1, "at": T0, "stage": cmr.Stage.ARCHIVED})
    assert doc == {
        "versions": [version().to_dict()],
        "n": 1,
        "at": T0.isoformat(),
        "stage": "archived",
    }


def test_something_without_a_json_form_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        to_json(object())
    with pytest.raises(TypeError):
        to_json(float("nan"))


# --------------------------------------------------------------------------- query specs


def spec_of(wheres: list[Any], order: list[Any], limit: int | None, offset: int) -> QuerySpec:
    query = cmr.Query()
    for tree in wheres:
        query = query & build(WORLD, tree)
    for key in order:
        if key[0] == "metric":
            query = query.order_by_metric(key[2], key[1])
        else:
            query = query.order_by(key[0], key[1])
    return query.limit(limit).offset(offset).spec


specs = st.builds(
    spec_of,
    st.lists(trees, max_size=3),
    orders,
    st.one_of(st.none(), st.integers(0, 40)),
    st.integers(0, 15),
)


@settings(max_examples=300, deadline=None)
@given(spec=specs)
def test_any_query_spec_round_trips(spec: QuerySpec) -> None:
    assert from_json(QuerySpec, through_text(spec)) == spec


# --------------------------------------------------------------------------- errors

SAMPLES: dict[type[cmr.RegistryError], cmr.RegistryError] = {
    errors.RegistryError: errors.RegistryError("something failed"),
    errors.ValidationError: errors.ValidationError({"name": ["bad"], "tags": ["x", "y"]}),
    errors.NotFoundError: errors.NotFoundError("version", "m@production", "try cmr list"),
    errors.DuplicateVersionError: errors.DuplicateVersionError("m", "1.0"),
    errors.DuplicateConfigError: errors.DuplicateConfigError(version()),
    errors.DuplicateModelError: errors.DuplicateModelError("m"),
    errors.LineageCycleError: errors.LineageCycleError(3, 1),
    errors.StorageError: errors.StorageError("bucket gone", backend="s3"),
    errors.ChecksumMismatchError: errors.ChecksumMismatchError(
        backend="local", path="m/1/checkpoint/x", expected="a" * 64, actual="b" * 64
    ),
    errors.PromotionDeniedError: errors.PromotionDeniedError(
        "m@1", "production", ["production gate: accuracy >= 0.9 (it is 0.5)", "x"]
    ),
    errors.SchemaNotReadyError: errors.SchemaNotReadyError("no schema"),
    errors.ConfigurationError: errors.ConfigurationError("unknown backend 'gcs'"),
    errors.DatabaseError: errors.DatabaseError("database error: connection refused"),
    errors.ConstraintViolationError: errors.ConstraintViolationError("unique"),
    errors.StageFailedError: errors.StageFailedError(
        "model_register", 1, errors.DuplicateVersionError("m", "2")
    ),
    errors.AuthenticationError: errors.AuthenticationError("token expired"),
    errors.PermissionDeniedError: errors.PermissionDeniedError("promote", "resnet", principal="ci"),
}


def test_every_error_class_has_a_sample() -> None:
    assert set(SAMPLES) == set(ERROR_TYPES.values())


@pytest.mark.parametrize("error", SAMPLES.values(), ids=lambda e: type(e).__name__)
def test_an_error_comes_back_as_the_same_class_with_the_same_attributes(
    error: cmr.RegistryError,
) -> None:
    doc = through_text(error)
    assert set(doc) == {"error"}
    assert set(doc["error"]) == {"type", "message", "details"}
    assert doc["error"]["type"] == type(error).__name__
    back = error_from_json(doc)
    assert type(back) is type(error)
    assert str(back) == str(error)
    assert back.code == error.code
    for name, value in error.details().items():
        got = getattr(back, name)
        if isinstance(value, BaseException):
            assert (type(got), str(got)) == (type(value), str(value))
        else:
            assert got == value


def test_an_error_raised_by_a_stage_that_is_not_a_registry_error_keeps_its_story() -> None:
    error = errors.StageFailedError("model_promote", 0, KeyError("stage"))
    back = error_from_json(through_text(error))
    assert isinstance(back, errors.StageFailedError)
    assert type(back.error) is cmr.RegistryError
    assert str(back.error) == "KeyError: 'stage'"


def test_an_unknown_error_type_becomes_a_registry_error() -> None:
    back = error_from_json(
        {"error": {"type": "QuotaError", "message": "over", "details": {"n": 1}}}
    )
    assert type(back) is cmr.RegistryError
    assert str(back) == "QuotaError: over"


def test_duplicate_config_carries_the_existing_version_as_a_record() -> None:
    back = error_from_json(error_to_json(SAMPLES[errors.DuplicateConfigError]))
    assert isinstance(back, errors.DuplicateConfigError)
    assert back.existing == version()


# --------------------------------------------------------------------------- malformed input

GOOD = version().to_dict()

BAD_VERSIONS = [
    None,
    [],
    "v",
    {k: v for k, v in GOOD.items() if k != "stage"},
    GOOD | {"extra": 1},
    GOOD | {"id": "1"},
    GOOD | {"id": True},
    GOOD | {"stage": "development"},
    GOOD | {"created_at": "2026-11-01T12:00:00"},
    GOOD | {"created_at": "yesterday"},
    GOOD | {"metrics": {"accuracy": "high"}},
    GOOD | {"metrics": []},
    GOOD | {"tags": "sft"},
    GOOD | {"artifacts": [{"id": 1}]},
    GOOD | {"artifacts": [GOOD["artifacts"][0] | {"type": "weights"}]},
    GOOD | {"training_config": {"x": {1, 2}}},
    GOOD | {"description": 5},
]


@pytest.mark.parametrize("doc", BAD_VERSIONS)
def test_a_malformed_version_is_a_validation_error(doc: object) -> None:
    with pytest.raises(cmr.ValidationError) as caught:
        from_json(cmr.ModelVersion, doc)
    assert all(field.startswith("ModelVersion") for field in caught.value.errors)


BAD_ERRORS = [
    None,
    {},
    {"error": None},
    {"error": {"type": "NotFoundError", "message": "x"}},
    {"error": {"type": "NotFoundError", "message": "x", "details": {"kind": "model"}}},
    {"error": {"type": "NotFoundError", "message": 1, "details": {"kind": "m", "ref": 1}}},
    {"error": {"type": 1, "message": "x", "details": {}}},
    {
        "error": {
            "type": "LineageCycleError",
            "message": "x",
            "details": {"parent_id": "1", "child_id": 2},
        }
    },
    {"error": {"type": "DuplicateConfigError", "message": "x", "details": {"existing": {"id": 1}}}},
    {"error": {"type": "ValidationError", "message": "x", "details": {"errors": {"a": "b"}}}},
    {"error": {"type": "StorageError", "message": "x", "details": {"backend": "s3", "more": 1}}},
    {
        "error": {
            "type": "StageFailedError",
            "message": "x",
            "details": {"stage": "s", "index": 0, "error": {}},
        }
    },
]


@pytest.mark.parametrize("doc", BAD_ERRORS)
def test_a_malformed_error_document_is_a_validation_error(doc: object) -> None:
    with pytest.raises(cmr.ValidationError):
        error_from_json(doc)


def test_an_unknown_invariant_is_a_validation_error() -> None:
    doc = {"violations": [{"invariant": "colour", "subject": "x", "detail": "y"}]}
    with pytest.raises(cmr.ValidationError):
        from_json(IntegrityReport, doc)


BAD_SPECS = [
    None,
    {"version": 2},
    {"version": 1, "where": {"nonsense": 1}},
    {"version": 1, "where": {"metric": ["a", "~", 1]}},
    {"version": 1, "where": {"descendant_of": "no-at-sign"}},
    {"version": 1, "order": [{"field": "colour", "direction": "asc"}]},
    {"version": 1, "limit": -1},
    {"version": 1, "where": {"all": {}}},
]


@pytest.mark.parametrize("doc", BAD_SPECS)
def test_a_malformed_query_spec_is_a_validation_error(doc: object) -> None:
    with pytest.raises(cmr.ValidationError):
        from_json(QuerySpec, doc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    doc=st.one_of(
        json_values,
        st.builds(lambda d: GOOD | d, st.dictionaries(st.sampled_from(sorted(GOOD)), json_values)),
        st.builds(
            lambda d: {"error": d},
            st.dictionaries(st.sampled_from(["type", "message", "details"]), json_values),
        ),
    ),
    kind=st.sampled_from(
        [cmr.ModelVersion, QuerySpec, cmr.Page, LineageGraph, cmr.PromotionPolicy]
    ),
)
def test_random_documents_are_read_or_refused_never_crash(doc: Any, kind: type[Any]) -> None:
    with contextlib.suppress(cmr.ValidationError):
        from_json(kind, doc)
    with contextlib.suppress(cmr.ValidationError):
        error_from_json(doc)
