"""``cmr model create|rename|delete``."""

from __future__ import annotations

import pytest
from tests.cli.runner import Runner, assert_user_error

from crucible_model_registry import NotFoundError, Registry


def test_model_create_rename_delete(cmr: Runner, home_registry: Registry) -> None:
    made = cmr("model", "create", "fresh", "--description", "new", "--json")
    assert made.code == 0, made.stderr
    assert made.json()["name"] == "fresh"
    assert home_registry.get_model("fresh").description == "new"
    v = home_registry.register(
        model_name="fresh", recipe="sft", base_model="b", training_config={"a": 1}
    )
    renamed = cmr("model", "rename", "fresh", "renamed")
    assert renamed.code == 0, renamed.stderr
    assert home_registry.get_version(v.id).model_name == "renamed"
    home_registry.promote(v, "production")
    assert_user_error(cmr("model", "delete", "renamed"))
    assert home_registry.get_version(v.id).stage.value == "production"
    deleted = cmr("model", "delete", "renamed", "--force", "--json")
    assert deleted.code == 0, deleted.stderr
    assert deleted.json() == {"deleted": v.model_id, "name": "renamed", "versions": 1}
    with pytest.raises(NotFoundError):
        home_registry.get_model("renamed")


def test_model_create_duplicate_is_a_user_error(cmr: Runner, home_registry: Registry) -> None:
    home_registry.create_model("taken", description="first")
    assert_user_error(cmr("model", "create", "taken"))
    assert_user_error(cmr("model", "rename", "missing", "x"))
    assert home_registry.get_model("taken").description == "first"
