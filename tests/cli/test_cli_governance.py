"""``cmr alias set|delete|history`` and ``cmr policy show|set``."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cli.runner import Runner, assert_user_error

from crucible_model_registry import Registry


@pytest.fixture
def two(home_registry: Registry):
    reg = home_registry
    first = reg.register(model_name="m", recipe="sft", base_model="b", training_config={"a": 1})
    second = reg.register(model_name="m", recipe="sft", base_model="b", training_config={"a": 2})
    return first, second


def test_alias_set_move_delete_and_history(cmr: Runner, home_registry: Registry, two):
    first, second = two
    assert cmr("alias", "set", first.ref, "champion", "--reason", "first").code == 0
    moved = cmr("alias", "set", second.ref, "champion", "--json")
    assert moved.code == 0, moved.stderr
    assert moved.json()["id"] == second.id
    assert home_registry.get_version("m@champion").id == second.id
    assert cmr("show", "m@champion", "-q").stdout.strip() == str(second.id)

    deleted = cmr("alias", "delete", "m", "champion", "--reason", "retired")
    assert deleted.code == 0, deleted.stderr
    history = cmr("alias", "history", "m", "--json").json()
    assert [(c["alias"], c["version_id"], c["reason"]) for c in history] == [
        ("champion", first.id, "first"),
        ("champion", second.id, None),
        ("champion", None, "retired"),
    ]
    human = cmr("alias", "history", "m").stdout
    assert "(deleted)" in human
    assert "retired" in human


def test_alias_errors(cmr: Runner, home_registry: Registry, two):
    first, _ = two
    assert_user_error(cmr("alias", "set", first.ref, "production"))  # a stage name
    assert_user_error(cmr("alias", "set", "nosuch@1", "champion"))
    assert_user_error(cmr("alias", "delete", "m", "champion"))  # never set
    assert_user_error(cmr("alias", "history", "nosuch"))
    assert home_registry.alias_history("m") == []


def test_policy_from_toml_is_enforced_then_cleared(
    cmr: Runner, home_registry: Registry, two, tmp_path: Path
):
    first, second = two
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'exclusive = ["production"]\n'
        '[allowed]\nproduction = ["staging"]\n'
        "[gates.production]\nmin_accuracy = 0.9\n"
    )
    assert "no promotion policy" in cmr("policy", "show", "m").stdout
    stored = cmr("policy", "set", "m", str(policy), "--json")
    assert stored.code == 0, stored.stderr
    assert stored.json()["policy"]["allowed"] == {"production": ["staging"]}
    assert cmr("policy", "show", "m", "--json").json() == stored.json()
    assert "accuracy >= 0.9" in cmr("policy", "show", "m").stdout

    assert cmr("promote", first.ref, "staging").code == 0
    denied = cmr("promote", first.ref, "production")  # the gate: no accuracy yet
    assert_user_error(denied)
    assert home_registry.get_version(first.id).stage.value == "staging"

    assert cmr("metrics", first.ref, "accuracy=0.95").code == 0
    assert cmr("promote", first.ref, "production").code == 0
    home_registry.update_metrics(second, {"accuracy": 0.97})
    home_registry.promote(second, "staging")
    assert cmr("promote", second.ref, "production").code == 0
    assert home_registry.get_version(first.id).stage.value == "archived"  # exclusive

    cleared = cmr("policy", "set", "m", "--clear", "--json")
    assert cleared.json() == {"model": "m", "policy": None}
    assert home_registry.get_promotion_policy("m") is None


def test_policy_from_yaml(cmr: Runner, home_registry: Registry, two, tmp_path: Path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("allowed:\n  staging: [experiment]\nexclusive: [staging]\n")
    result = cmr("policy", "set", "m", str(policy))
    assert result.code == 0, result.stderr
    assert "exclusive" in result.stdout
    stored = home_registry.get_promotion_policy("m")
    assert stored is not None
    assert stored.to_dict()["exclusive"] == ["staging"]


def test_policy_errors_store_nothing(cmr: Runner, home_registry: Registry, two, tmp_path: Path):
    bad_stage = tmp_path / "bad.toml"
    bad_stage.write_text('exclusive = ["heaven"]\n')
    assert_user_error(cmr("policy", "set", "m", str(bad_stage)))
    broken = tmp_path / "broken.toml"
    broken.write_text("exclusive = [\n")
    assert_user_error(cmr("policy", "set", "m", str(broken)))
    assert_user_error(cmr("policy", "set", "m"))  # neither a file nor --clear
    assert_user_error(cmr("policy", "set", "nosuch", str(bad_stage)))
    assert_user_error(cmr("policy", "show", "nosuch"))
    assert home_registry.get_promotion_policy("m") is None
