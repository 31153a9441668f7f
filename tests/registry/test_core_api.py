"""Every core operation of API.md §3 through the public API, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.pool import NullPool

import crucible_model_registry as cmr
from crucible_model_registry import (
    Artifact,
    ArtifactType,
    DuplicateConfigError,
    DuplicateVersionError,
    Model,
    ModelVersion,
    NotFoundError,
    Registry,
    Relationship,
    Stage,
    StageTransition,
    ValidationError,
)
from crucible_model_registry.store.tables import (
    EDGES,
    METRICS,
    TRANSITIONS,
    VERSION_TAGS,
    VERSIONS,
)

MODEL = "llama-3.1-8b-sft"
BASE = "meta-llama/Llama-3.1-8B"
_seeds = itertools.count(1)


def fields(**overrides: Any) -> dict[str, Any]:
    """A valid registration; each call is a distinct training run unless told otherwise."""
    values: dict[str, Any] = {
        "model_name": MODEL,
        "recipe": "sl_basic",
        "base_model": BASE,
        "training_config": {"lr": 1e-4, "seed": next(_seeds)},
    }
    values.update(overrides)
    return values


def reg(registry: Registry, **overrides: Any) -> ModelVersion:
    return registry.register(**fields(**overrides))


def count(registry: Registry, table: Any) -> int:
    with registry.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def edges(registry: Registry) -> set[tuple[int, int, str]]:
    e = EDGES.c
    with registry.engine.connect() as conn:
        rows = conn.execute(select(e.source_version_id, e.target_version_id, e.relationship))
        return {(r[0], r[1], r[2]) for r in rows}


def is_utc(moment: datetime) -> bool:
    return moment.tzinfo is not None and moment.utcoffset() == timedelta(0)


# --------------------------------------------------------------------------- register


def test_register_records_every_field(registry: Registry) -> None:
    config = {"lr": 1e-4, "epochs": 3}
    before = datetime.now(UTC)
    v = registry.register(
        model_name=MODEL,
        version="1.0.0",
        recipe="sl_basic",
        base_model=BASE,
        training_config=config,
        metrics={"accuracy": 0.92, "loss": 1},
        tags=["sft", "v1"],
        description="first run",
        artifacts=[
            {"type": "checkpoint", "storage_backend": "s3", "storage_path": "s3://b/ckpt"},
            {"type": "tokenizer", "storage_backend": "local", "storage_path": "tok/"},
        ],
    )
    assert isinstance(v, ModelVersion)
    assert (v.model_name, v.version, v.stage) == (MODEL, "1.0.0", Stage.EXPERIMENT)
    assert (v.recipe, v.base_model, v.description) == ("sl_basic", BASE, "first run")
    assert v.training_config == config
    assert v.config_hash == cmr.hash_config(config)
    assert v.metrics == {"accuracy": 0.92, "loss": 1.0}
    assert v.tags == ["sft", "v1"]
    assert [(a.type, a.storage_backend, a.storage_path) for a in v.artifacts] == [
        (ArtifactType.CHECKPOINT, "s3", "s3://b/ckpt"),
        (ArtifactType.TOKENIZER, "local", "tok/"),
    ]
    assert all(isinstance(a, Artifact) and a.model_version_id == v.id for a in v.artifacts)
    assert is_utc(v.created_at)
    assert is_utc(v.updated_at)
    assert before - timedelta(seconds=1) <= v.created_at <= datetime.now(UTC)
    assert registry.get_version(v.id) == v


def test_register_creates_the_model_once(registry: Registry) -> None:
    first = reg(registry)
    second = reg(registry)
    model = registry.get_model(MODEL)
    assert isinstance(model, Model)
    assert model.id == first.model_id == second.model_id
    assert model.name == MODEL
    assert is_utc(model.created_at)
    assert is_utc(model.updated_at)
    assert [m.name for m in registry.list_models()] == [MODEL]


def test_register_accepts_a_single_mapping(registry: Registry) -> None:
    v = registry.register(fields(version="2.0", metrics={"bleu": 31.2}))
    assert (v.version, v.metrics) == ("2.0", {"bleu": 31.2})


def test_keyword_arguments_win_over_the_mapping(registry: Registry) -> None:
    v = registry.register(fields(version="a"), version="b")
    assert v.version == "b"


def test_the_module_level_functions_use_the_default_registry(registry: Registry) -> None:
    v = cmr.register(**fields())
    assert cmr.get_version(v.id) == v
    assert cmr.get_registry() is registry


def test_versions_are_numbered_per_model(registry: Registry) -> None:
    assert [reg(registry).version for _ in range(3)] == ["1", "2", "3"]
    assert reg(registry, model_name="other").version == "1"
    assert reg(registry).version == "4"


def test_numbering_skips_numbers_taken_by_explicit_versions(registry: Registry) -> None:
    reg(registry, version="2")
    assert [reg(registry).version for _ in range(3)] == ["1", "3", "4"]


def test_an_explicit_version_may_be_any_valid_string(registry: Registry) -> None:
    assert reg(registry, version="1.0.0-rc1+build.5").version == "1.0.0-rc1+build.5"


def test_a_taken_version_string_is_refused(registry: Registry) -> None:
    reg(registry, version="1.0")
    with pytest.raises(DuplicateVersionError) as info:
        reg(registry, version="1.0")
    assert (info.value.model_name, info.value.version) == (MODEL, "1.0")
    assert count(registry, VERSIONS) == 1
    assert count(registry, TRANSITIONS) == 1


def test_the_same_training_run_is_refused_with_the_existing_version(registry: Registry) -> None:
    config = {"lr": 1e-4, "optimizer": {"name": "adamw", "betas": [0.9, 0.95]}}
    first = reg(registry, version="1", training_config=config, metrics={"a": 1.0})
    reordered = {"optimizer": {"betas": [0.9, 0.95], "name": "adamw"}, "lr": 1e-4}
    with pytest.raises(DuplicateConfigError) as info:
        reg(registry, version="2", training_config=reordered)
    assert info.value.existing == first
    assert count(registry, VERSIONS) == 1


def test_the_same_training_run_under_another_model_is_a_duplicate(registry: Registry) -> None:
    first = reg(registry, training_config={"lr": 1})
    with pytest.raises(DuplicateConfigError) as info:
        reg(registry, model_name="renamed", training_config={"lr": 1})
    assert info.value.existing.id == first.id


def test_on_duplicate_return_gives_back_the_existing_version(registry: Registry) -> None:
    first = reg(registry, training_config={"lr": 1})
    again = reg(registry, training_config={"lr": 1}, on_duplicate="return", version="9")
    assert again == first
    assert count(registry, VERSIONS) == 1


def test_a_different_recipe_or_base_model_is_a_new_run(registry: Registry) -> None:
    a = reg(registry, training_config={"lr": 1})
    b = reg(registry, training_config={"lr": 1}, recipe="dpo")
    c = reg(registry, training_config={"lr": 1}, base_model="Qwen/Qwen2.5-7B")
    assert len({a.id, b.id, c.id}) == 3
    assert a.config_hash == b.config_hash == c.config_hash


# --------------------------------------------------------------------------- parents


def test_a_parent_becomes_a_lineage_edge(registry: Registry) -> None:
    base = reg(registry)
    child = reg(registry, parents=[base], lineage_type="dpo")
    assert edges(registry) == {(base.id, child.id, Relationship.DPO_TRAINED_FROM.value)}


def test_one_parent_defaults_to_fine_tuned_from(registry: Registry) -> None:
    base = reg(registry)
    child = reg(registry, parents=[base.id])
    assert edges(registry) == {(base.id, child.id, "fine_tuned_from")}


def test_several_parents_default_to_a_merge(registry: Registry) -> None:
    a = reg(registry)
    b = reg(registry, model_name="other")
    merged = reg(registry, model_name="merged", parents=[a, f"other@{b.version}"])
    assert edges(registry) == {(a.id, merged.id, "merged_from"), (b.id, merged.id, "merged_from")}


def test_parent_version_id_is_accepted(registry: Registry) -> None:
    base = reg(registry)
    child = reg(registry, parent_version_id=base.id, lineage_type="distillation")
    assert edges(registry) == {(base.id, child.id, "distilled_from")}


def test_a_parent_given_twice_makes_one_edge(registry: Registry) -> None:
    base = reg(registry)
    child = reg(registry, parents=[base, base.id], parent_version_id=base.id)
    assert edges(registry) == {(base.id, child.id, "fine_tuned_from")}


def test_a_latest_ref_to_the_same_model_names_the_version_before(registry: Registry) -> None:
    first = reg(registry)
    child = reg(registry, parents=[f"{MODEL}@latest"])
    assert edges(registry) == {(first.id, child.id, "fine_tuned_from")}


def test_a_failed_registration_writes_no_edges(registry: Registry) -> None:
    base = reg(registry, version="1")
    with pytest.raises(DuplicateVersionError):
        reg(registry, version="1", parents=[base])
    assert edges(registry) == set()
    assert count(registry, VERSIONS) == 1


# --------------------------------------------------------------------------- promote


def test_promote_changes_the_stage_and_records_it(registry: Registry) -> None:
    v = reg(registry)
    promoted = registry.promote(v, "staging", reason="eval passed")
    assert promoted.stage is Stage.STAGING
    assert promoted.updated_at >= v.updated_at
    assert registry.get_version(v.id).stage is Stage.STAGING
    history = registry.stage_history(v)
    assert all(isinstance(t, StageTransition) for t in history)
    assert [(t.from_stage, t.to_stage, t.reason, t.actor) for t in history] == [
        (None, Stage.EXPERIMENT, "registered", "tester"),
        (Stage.EXPERIMENT, Stage.STAGING, "eval passed", "tester"),
    ]
    assert all(is_utc(t.at) and t.version_id == v.id for t in history)


def test_any_stage_to_any_other(registry: Registry) -> None:
    v = reg(registry)
    path = ["production", "experiment", "archived", "staging", "development"]
    for stage in path:
        registry.promote(v, stage)
    history = registry.stage_history(v)
    assert [t.to_stage.value for t in history] == ["experiment", *path[:-1], "experiment"]


def test_promoting_to_the_current_stage_is_a_no_op(registry: Registry) -> None:
    v = registry.promote(reg(registry), Stage.PRODUCTION)
    again = registry.promote(v, "production", reason="again", archive_existing=True)
    assert again == v
    assert len(registry.stage_history(v)) == 2


def test_archive_existing_archives_the_incumbents(registry: Registry) -> None:
    old, older, current = reg(registry), reg(registry), reg(registry)
    registry.promote(older, "production")
    registry.promote(old, "production")
    untouched = registry.promote(reg(registry), "staging")
    registry.promote(current, "production", archive_existing=True)
    assert registry.get_version(old.id).stage is Stage.ARCHIVED
    assert registry.get_version(older.id).stage is Stage.ARCHIVED
    assert registry.get_version(current.id).stage is Stage.PRODUCTION
    assert registry.get_version(untouched.id).stage is Stage.STAGING
    last = registry.stage_history(old)[-1]
    assert (last.from_stage, last.to_stage, last.actor) == (
        Stage.PRODUCTION,
        Stage.ARCHIVED,
        "tester",
    )


def test_archive_existing_leaves_other_models_alone(registry: Registry) -> None:
    other = registry.promote(reg(registry, model_name="other"), "production")
    registry.promote(reg(registry), "production", archive_existing=True)
    assert registry.get_version(other.id).stage is Stage.PRODUCTION


def test_without_archive_existing_several_versions_share_a_stage(registry: Registry) -> None:
    a = registry.promote(reg(registry), "production")
    b = registry.promote(reg(registry), "production")
    assert registry.get_version(a.id).stage is Stage.PRODUCTION
    assert registry.get_version(f"{MODEL}@production").id == b.id


def test_promote_takes_refs(registry: Registry) -> None:
    v = reg(registry, version="1.0")
    assert registry.promote(f"{MODEL}@1.0", "staging").id == v.id
    assert registry.promote(v.id, "production").stage is Stage.PRODUCTION
    assert registry.promote(f"{MODEL}@production", "archived").stage is Stage.ARCHIVED


# --------------------------------------------------------------------------- read


def test_get_version_by_every_kind_of_ref(registry: Registry) -> None:
    first = reg(registry, version="1.0")
    second = reg(registry, version="2.0")
    registry.promote(first, "production")
    assert registry.get_version(first.id).id == first.id
    assert registry.get_version(str(first.id)).id == first.id
    assert registry.get_version(f"{MODEL}@1.0").id == first.id
    assert registry.get_version(f"{MODEL}@production").id == first.id
    assert registry.get_version(f"{MODEL}@PRODUCTION").id == first.id
    assert registry.get_version(f"{MODEL}@latest").id == second.id
    assert registry.get_version(f"{MODEL}@experiment").id == second.id
    assert registry.get_version(f"{MODEL}@development").id == second.id
    assert registry.get_version(first).id == first.id


def test_a_stage_ref_names_the_latest_registered_version_in_it(registry: Registry) -> None:
    a, b, c = reg(registry), reg(registry), reg(registry)
    registry.promote(b, "staging")
    registry.promote(a, "staging")
    registry.promote(c, "production")
    assert registry.get_version(f"{MODEL}@staging").id == b.id


@pytest.mark.parametrize("ref", [999_999, f"{MODEL}@9.9", f"{MODEL}@staging", "nobody@1"])
def test_unknown_refs_are_not_found(registry: Registry, ref: object) -> None:
    reg(registry, version="1")
    with pytest.raises(NotFoundError) as info:
        registry.get_version(ref)  # type: ignore[arg-type]
    assert info.value.kind in ("version", "model")


def test_an_unknown_model_is_not_found(registry: Registry) -> None:
    with pytest.raises(NotFoundError) as info:
        registry.get_model("nobody")
    assert (info.value.kind, info.value.ref) == ("model", "nobody")
    with pytest.raises(NotFoundError) as info:
        registry.get_version("nobody@latest")
    assert (info.value.kind, info.value.ref) == ("model", "nobody")


def test_list_models_is_sorted_by_name(registry: Registry) -> None:
    assert registry.list_models() == []
    for name in ("zeta", "alpha", "org/mid"):
        reg(registry, model_name=name)
    assert [m.name for m in registry.list_models()] == ["alpha", "org/mid", "zeta"]


def test_find_by_config_hash_returns_the_earliest(registry: Registry) -> None:
    config = {"lr": 3e-4}
    first = reg(registry, training_config=config)
    reg(registry, training_config=config, recipe="other")
    h = cmr.hash_config(config)
    assert registry.find_by_config_hash(h) == first
    assert registry.find_by_config_hash(h.upper()) == first
    assert registry.find_by_config_hash(cmr.hash_config({"lr": 1})) is None


@pytest.mark.parametrize("value", ["abc", "", 42, "g" * 64 + "0"])
def test_find_by_config_hash_refuses_what_is_not_a_hash(registry: Registry, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        registry.find_by_config_hash(value)
    assert list(info.value.errors) == ["config_hash"]


def test_stage_history_of_an_unknown_version(registry: Registry) -> None:
    with pytest.raises(NotFoundError):
        registry.stage_history(12345)


# --------------------------------------------------------------------------- metrics and tags


def metric_rows(registry: Registry, version_id: int) -> dict[str, float]:
    m = METRICS.c
    with registry.engine.connect() as conn:
        rows = conn.execute(select(m.name, m.value).where(m.version_id == version_id))
        return {r[0]: r[1] for r in rows}


def test_update_metrics_merges(registry: Registry) -> None:
    v = reg(registry, metrics={"accuracy": 0.9, "loss": 1.2})
    updated = registry.update_metrics(v, {"bleu": 31.2, "accuracy": 0.95})
    assert updated.metrics == {"accuracy": 0.95, "loss": 1.2, "bleu": 31.2}
    assert updated.updated_at >= v.updated_at
    assert registry.get_version(v.id).metrics == updated.metrics
    assert metric_rows(registry, v.id) == updated.metrics


def test_metrics_can_arrive_after_registration(registry: Registry) -> None:
    v = reg(registry)
    assert v.metrics == {}
    assert registry.update_metrics(f"{MODEL}@latest", {"mmlu": 0.61}).metrics == {"mmlu": 0.61}
    assert metric_rows(registry, v.id) == {"mmlu": 0.61}


def test_registered_metrics_are_indexed_rows_too(registry: Registry) -> None:
    v = reg(registry, metrics={"accuracy": 0.9, "loss": 1.2})
    assert metric_rows(registry, v.id) == {"accuracy": 0.9, "loss": 1.2}


def test_add_and_remove_tags(registry: Registry) -> None:
    v = reg(registry, tags=["sft"])
    v = registry.add_tags(v, ["eval", "sft", "dpo"])
    assert v.tags == ["sft", "eval", "dpo"]
    v = registry.remove_tags(v, ["sft", "missing"])
    assert v.tags == ["eval", "dpo"]
    assert registry.get_version(v.id).tags == ["eval", "dpo"]
    t = VERSION_TAGS.c
    with registry.engine.connect() as conn:
        stored = set(conn.execute(select(t.tag).where(t.version_id == v.id)).scalars())
    assert stored == {"eval", "dpo"}


def test_tag_changes_of_an_unknown_version(registry: Registry) -> None:
    with pytest.raises(NotFoundError):
        registry.add_tags(999, ["x"])


# --------------------------------------------------------------------------- delete


def test_delete_version_keeps_its_history(registry: Registry) -> None:
    v = reg(
        registry,
        metrics={"a": 1.0},
        tags=["t"],
        artifacts=[{"type": "checkpoint", "storage_backend": "s3", "storage_path": "s3://b/k"}],
    )
    registry.promote(v, "staging")
    registry.delete_version(v)
    with pytest.raises(NotFoundError):
        registry.get_version(v.id)
    assert count(registry, VERSIONS) == 0
    assert count(registry, METRICS) == 0
    with registry.engine.connect() as conn:
        kept = conn.execute(
            select(func.count()).where(TRANSITIONS.c.version_id == v.id)
        ).scalar_one()
    assert kept == 2


def test_delete_refuses_a_production_version(registry: Registry) -> None:
    v = registry.promote(reg(registry), "production")
    with pytest.raises(ValidationError) as info:
        registry.delete_version(v)
    assert list(info.value.errors) == ["version"]
    assert registry.get_version(v.id) == v
    registry.delete_version(v, force=True)
    with pytest.raises(NotFoundError):
        registry.get_version(v.id)


def test_delete_refuses_a_version_with_descendants(registry: Registry) -> None:
    parent = reg(registry)
    child = reg(registry, parents=[parent])
    with pytest.raises(ValidationError):
        registry.delete_version(parent)
    assert edges(registry) == {(parent.id, child.id, "fine_tuned_from")}
    registry.delete_version(parent, force=True)
    assert edges(registry) == set()
    assert registry.get_version(child.id).id == child.id


def test_a_leaf_can_be_deleted_and_its_parent_then_too(registry: Registry) -> None:
    parent = reg(registry)
    child = reg(registry, parents=[parent])
    registry.delete_version(child)
    registry.delete_version(parent)
    assert count(registry, VERSIONS) == 0


def test_delete_of_an_unknown_version(registry: Registry) -> None:
    with pytest.raises(NotFoundError):
        registry.delete_version(4242)


# --------------------------------------------------------------------------- records


def test_records_are_frozen(registry: Registry) -> None:
    v = reg(registry)
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.stage = Stage.PRODUCTION  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        registry.get_model(MODEL).name = "x"  # type: ignore[misc]


def test_records_are_plain_json(registry: Registry) -> None:
    v = reg(
        registry,
        metrics={"a": 0.5},
        artifacts=[{"type": "gguf", "storage_backend": "local", "storage_path": "m.gguf"}],
    )
    v = registry.promote(v, "staging")
    as_dict = json.loads(json.dumps(v.to_dict()))
    assert as_dict["stage"] == "staging"
    assert as_dict["model_name"] == MODEL
    assert as_dict["artifacts"][0]["type"] == "gguf"
    assert datetime.fromisoformat(as_dict["created_at"]) == v.created_at
    for record in [registry.get_model(MODEL), *registry.stage_history(v)]:
        json.dumps(record.to_dict())


def test_reads_give_timezone_aware_utc(registry: Registry) -> None:
    v = reg(registry, artifacts=[{"type": "other", "storage_backend": "x", "storage_path": "p"}])
    read = registry.get_version(v.id)
    assert is_utc(read.created_at)
    assert is_utc(read.updated_at)
    assert is_utc(read.artifacts[0].created_at)
    assert read.created_at == v.created_at


# --------------------------------------------------------------------------- connections


@pytest.mark.postgres
def test_a_connection_dropped_while_idle_is_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crucible_model_registry.store import engine

    monkeypatch.setattr(engine, "IDLE_PING_SECONDS", 0.0)
    registry = Registry.from_url(postgres_url)
    admin = create_engine(postgres_url, poolclass=NullPool)
    try:
        registry.list_models()
        with admin.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            dropped = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> :me"
                ),
                {"me": pid},
            ).scalar_one()
        assert dropped >= 1
        assert isinstance(registry.list_models(), list)
    finally:
        registry.close()
        admin.dispose()


def test_numbering_after_a_failed_duplicate_reuses_no_number_and_keeps_parents(
    registry: Registry,
) -> None:
    parent = registry.register(**fields(model_name="base-m", recipe="base"))
    first = registry.register(**fields(training_config={"lr": 1.0}, parents=[parent.id]))
    with pytest.raises(DuplicateConfigError):
        registry.register(**fields(training_config={"lr": 1.0}, parents=[parent.id]))
    second = registry.register(**fields(training_config={"lr": 2.0}, parents=[parent.id]))
    assert (first.version, second.version) == ("1", "2")
    assert [v.id for v in registry.get_ancestors(second)] == [parent.id]
    assert registry.get_version(second.id) == second


def test_update_model_sets_tags_that_queries_match_for_every_version(registry: Registry) -> None:
    first = reg(registry)
    second = reg(registry)
    reg(registry, model_name="other")
    model = registry.update_model(
        MODEL, description="chat SFT", tags=["team-x", "team-x"], metadata={"owner": "ml"}
    )
    assert (model.description, model.tags, model.metadata) == (
        "chat SFT",
        ["team-x"],
        {"owner": "ml"},
    )
    assert [v.id for v in cmr.Query().where_tag("team-x").execute()] == [first.id, second.id]
    assert registry.update_model(MODEL, tags=[]).tags == []
    assert cmr.Query().where_tag("team-x").count() == 0
    assert registry.get_model(MODEL).description == "chat SFT"


def test_update_model_refuses_bad_input_and_changes_nothing(registry: Registry) -> None:
    reg(registry)
    registry.update_model(MODEL, tags=["keep"])
    before = registry.get_model(MODEL)
    with pytest.raises(cmr.ValidationError) as info:
        registry.update_model(MODEL, tags=["ok", ""])
    assert "tags" in info.value.errors
    with pytest.raises(cmr.ValidationError):
        registry.update_model(MODEL, metadata={"x": float("nan")})
    with pytest.raises(cmr.NotFoundError) as missing:
        registry.update_model("no-such-model", tags=["x"])
    assert (missing.value.kind, missing.value.ref) == ("model", "no-such-model")
    assert registry.get_model(MODEL) == before
