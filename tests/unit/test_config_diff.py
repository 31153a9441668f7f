"""The pure diff of training configs (domain/diff.py)."""

from __future__ import annotations

from crucible_model_registry.domain.diff import ConfigChange, diff_configs


def test_changed_added_and_removed_keys_use_dotted_paths():
    left = {"lr": 1e-4, "optim": {"name": "adamw", "betas": [0.9, 0.95]}, "warmup": 100}
    right = {"lr": 2e-4, "optim": {"name": "lion", "betas": [0.9, 0.95], "wd": 0.1}}
    d = diff_configs(left, right)
    assert d.changed == [
        ConfigChange("lr", 1e-4, 2e-4),
        ConfigChange("optim.name", "adamw", "lion"),
    ]
    assert d.added == {"optim.wd": 0.1}
    assert d.removed == {"warmup": 100}


def test_a_mapping_present_on_one_side_only_is_listed_leaf_by_leaf():
    d = diff_configs({}, {"sched": {"kind": "cosine", "warm": {"steps": 10}}, "empty": {}})
    assert d.added == {"sched.kind": "cosine", "sched.warm.steps": 10, "empty": {}}
    assert d.changed == []
    assert d.removed == {}


def test_a_mapping_replaced_by_a_scalar_is_one_change():
    d = diff_configs({"optim": {"name": "adamw"}}, {"optim": "sgd"})
    assert d.changed == [ConfigChange("optim", {"name": "adamw"}, "sgd")]


def test_equal_configs_are_empty_but_bools_are_not_numbers():
    assert diff_configs({"a": 1, "b": [1, {"c": 2}]}, {"b": [1.0, {"c": 2}], "a": 1.0}).is_empty
    d = diff_configs({"flag": True, "n": [1]}, {"flag": 1, "n": [True]})
    assert [c.path for c in d.changed] == ["flag", "n"]
