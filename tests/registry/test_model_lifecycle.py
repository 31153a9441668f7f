"""create_model, rename_model, delete_model and update_version, on every registry kind."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from crucible_model_registry import (
    DuplicateModelError,
    ModelVersion,
    NotFoundError,
    Registry,
    ValidationError,
)

_seeds = itertools.count(1)


def reg(registry: Registry, model: str = "m", **overrides: Any) -> ModelVersion:
    fields: dict[str, Any] = {
        "model_name": model,
        "recipe": "sl_basic",
        "base_model": "base",
        "training_config": {"seed": next(_seeds)},
    }
    fields.update(overrides)
    return registry.register(**fields)


def test_create_model_without_versions(registry: Registry) -> None:
    made = registry.create_model("fresh", description="d", tags=["t"], metadata={"k": "v"})
    assert (made.name, made.description, made.tags, made.metadata) == (
        "fresh",
        "d",
        ["t"],
        {"k": "v"},
    )
    assert registry.get_model("fresh") == made
    assert registry.query({"model_name": "fresh"}) == []
    # Registering into it numbers from 1.
    assert reg(registry, "fresh").version == "1"


def test_create_model_twice_is_a_duplicate_and_changes_nothing(registry: Registry) -> None:
    first = registry.create_model("dup", description="first")
    with pytest.raises(DuplicateModelError) as info:
        registry.create_model("dup", description="second")
    assert info.value.model_name == "dup"
    assert registry.get_model("dup") == first


def test_create_model_refuses_a_bad_name(registry: Registry) -> None:
    with pytest.raises(ValidationError):
        registry.create_model("")
    with pytest.raises(ValidationError):
        registry.create_model("ok", metadata=["not", "a", "mapping"])  # type: ignore[arg-type]
    assert [m.name for m in registry.list_models()] == []


def test_rename_moves_versions_aliases_policy_and_history(registry: Registry) -> None:
    v1 = reg(registry, "old")
    v2 = reg(registry, "old")
    registry.set_alias(v1, "champion")
    registry.promote(v2, "staging")
    registry.set_promotion_policy("old", {"allowed": {"production": ["staging"]}})
    renamed = registry.rename_model("old", "new")
    assert renamed.name == "new"
    assert renamed.id == v1.model_id
    with pytest.raises(NotFoundError):
        registry.get_model("old")
    assert registry.get_version("new@champion").id == v1.id
    assert registry.get_version("new@staging").id == v2.id
    assert registry.get_version(v1.id).model_name == "new"
    assert [h.to_stage.value for h in registry.stage_history(v2)] == ["experiment", "staging"]
    assert registry.get_promotion_policy("new") is not None
    assert [a.alias for a in registry.alias_history("new")] == ["champion"]
    # Numbering continues where it was.
    assert reg(registry, "new").version == "3"


def test_rename_to_an_existing_name_is_refused(registry: Registry) -> None:
    v = reg(registry, "a")
    reg(registry, "b")
    with pytest.raises(DuplicateModelError) as info:
        registry.rename_model("a", "b")
    assert info.value.model_name == "b"
    assert registry.get_version(v.id).model_name == "a"
    assert sorted(m.name for m in registry.list_models()) == ["a", "b"]


def test_rename_of_a_missing_model_or_to_a_bad_name(registry: Registry) -> None:
    reg(registry, "a")
    with pytest.raises(NotFoundError):
        registry.rename_model("missing", "x")
    with pytest.raises(ValidationError) as info:
        registry.rename_model("a", "")
    assert "new_name" in info.value.errors
    assert [m.name for m in registry.list_models()] == ["a"]
    # The same name is a no-op.
    assert registry.rename_model("a", "a").name == "a"


def test_delete_model_removes_it_and_all_of_it(registry: Registry) -> None:
    v1 = reg(registry, "gone")
    v2 = reg(registry, "gone", parents=[v1])
    registry.set_alias(v2, "champion")
    keep = reg(registry, "kept")
    registry.delete_model("gone")
    with pytest.raises(NotFoundError):
        registry.get_model("gone")
    for v in (v1, v2):
        with pytest.raises(NotFoundError):
            registry.get_version(v.id)
    assert [m.name for m in registry.list_models()] == ["kept"]
    assert registry.get_version(keep.id) == keep
    assert registry.check().ok
    # The name is free again, and numbering starts afresh.
    assert reg(registry, "gone").version == "1"


def test_delete_model_refuses_production_and_outside_descendants(registry: Registry) -> None:
    v = reg(registry, "live")
    registry.promote(v, "production")
    with pytest.raises(ValidationError) as info:
        registry.delete_model("live")
    assert "model" in info.value.errors
    assert registry.get_version(v.id).stage.value == "production"

    parent = reg(registry, "parent")
    child = reg(registry, "child", parents=[parent])
    with pytest.raises(ValidationError):
        registry.delete_model("parent")
    assert registry.get_version(parent.id) == parent

    registry.delete_model("parent", force=True)
    assert registry.get_ancestors(child) == []
    registry.delete_model("live", force=True)
    assert [m.name for m in registry.list_models()] == ["child"]
    assert registry.check().ok


def test_delete_of_a_missing_model(registry: Registry) -> None:
    with pytest.raises(NotFoundError):
        registry.delete_model("missing")


def test_metadata_at_registration_and_update_version(registry: Registry) -> None:
    v = reg(registry, metadata={"mlflow": {"tags": {"k": "v"}, "run_id": "r1"}})
    assert v.metadata == {"mlflow": {"tags": {"k": "v"}, "run_id": "r1"}}
    assert registry.get_version(v.id).metadata == v.metadata
    changed = registry.update_version(v, description="better", metadata={"a": 1})
    assert (changed.description, changed.metadata) == ("better", {"a": 1})
    only_description = registry.update_version(v, description=None)
    assert (only_description.description, only_description.metadata) == (None, {"a": 1})
    with pytest.raises(ValidationError):
        registry.update_version(v, metadata={"bad": float("nan")})
    assert registry.get_version(v.id).metadata == {"a": 1}
    with pytest.raises(NotFoundError):
        registry.update_version("m@99", description="x")
    # A version registered without metadata has an empty mapping.
    assert reg(registry).metadata == {}


def test_metadata_patch_merges_and_removes(registry: Registry) -> None:
    v = reg(registry, metadata={"mlflow": {"tags": {"a": "1", "b": "2"}}, "other": True})
    patched = registry.update_version(v, metadata_patch={"mlflow": {"tags": {"a": None, "c": "3"}}})
    assert patched.metadata == {"mlflow": {"tags": {"b": "2", "c": "3"}}, "other": True}
    with pytest.raises(ValidationError):
        registry.update_version(v, metadata={}, metadata_patch={})
    registry.create_model("pm", metadata={"keep": 1})
    model = registry.update_model("pm", metadata_patch={"mlflow": {"tags": {"k": "v"}}})
    assert model.metadata == {"keep": 1, "mlflow": {"tags": {"k": "v"}}}
    assert registry.update_model("pm", metadata_patch={"keep": None}).metadata == {
        "mlflow": {"tags": {"k": "v"}}
    }


def test_query_where_metadata(registry: Registry) -> None:
    from crucible_model_registry import Query

    a = reg(registry, metadata={"mlflow": {"tags": {"team": "vision", "k.with.dots": "x"}}})
    b = reg(registry, metadata={"mlflow": {"tags": {"team": "nlp"}, "run_id": "r1"}})
    c = reg(registry)  # no metadata at all
    team = Query().where_metadata(["mlflow", "tags", "team"], "vision")
    assert [v.id for v in registry.query(team)] == [a.id]
    assert [v.id for v in registry.query(~team)] == [b.id, c.id]
    dotted = Query().where_metadata(["mlflow", "tags", "k.with.dots"], "x")
    assert [v.id for v in registry.query(dotted)] == [a.id]
    run = Query().where_metadata(("mlflow", "run_id"), "r1") & Query().where_model_name("m")
    assert [v.id for v in registry.query(run)] == [b.id]
    with pytest.raises(ValidationError):
        Query().where_metadata(["bad'key"], "x")
    with pytest.raises(ValidationError):
        Query().where_metadata([], "x")
    with pytest.raises(ValidationError):
        Query().where_metadata(["k"], 1)  # type: ignore[arg-type]


def test_concurrent_metadata_patches_all_land(registry: Registry) -> None:
    from concurrent.futures import ThreadPoolExecutor

    v = reg(registry)
    registry.create_model("tagged")

    def tag_both(i: int) -> None:
        patch = {"mlflow": {"tags": {f"k{i}": str(i)}}}
        registry.update_version(v, metadata_patch=patch)
        registry.update_model("tagged", metadata_patch=patch)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(tag_both, range(12)))
    expected = {f"k{i}": str(i) for i in range(12)}
    assert registry.get_version(v.id).metadata["mlflow"]["tags"] == expected
    assert registry.get_model("tagged").metadata["mlflow"]["tags"] == expected
    assert registry.check().ok
