"""`cmr register`, `show`, `promote`, `history`, `metrics`, `tag`, `delete` and `models`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.cli.runner import Runner, assert_user_error

from crucible_model_registry import Registry, hash_config


def _register(registry: Registry, name: str = "llama-sft", **fields):
    defaults = {"recipe": "sft", "base_model": "meta-llama/Llama-3.1-8B", "training_config": {}}
    return registry.register(model_name=name, **{**defaults, **fields})


def test_register_from_a_yaml_file_with_overrides(
    cmr: Runner, home_registry: Registry, tmp_path: Path
):
    parent = _register(home_registry, "base-sft", training_config={"lr": 1})
    config = tmp_path / "config.yaml"
    config.write_text("lr: 0.0001\noptim:\n  name: adamw\n  betas: [0.9, 0.95]\n")
    result = cmr(
        "register", "llama-dpo", "--recipe", "dpo", "--base-model", "meta-llama/Llama-3.1-8B",
        "--config", str(config), "--set", "optim.name=lion", "--set", "optim.wd=0.1",
        "--set", "run.note=hello world", "--set", "flags=[1, 2]",
        "--metric", "accuracy=0.91", "-m", "loss=1.5",
        "--artifact", "checkpoint=s3://bucket/ckpt", "-a", "tokenizer=hf://org/repo",
        "-a", "config=relative/config.json",
        "--parent", parent.ref, "--lineage-type", "dpo", "--tag", "dpo", "-t", "rlhf",
        "--version", "1.0.0", "--description", "first DPO", "--json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    doc = result.json()
    expected_config = {
        "lr": 0.0001,
        "optim": {"name": "lion", "betas": [0.9, 0.95], "wd": 0.1},
        "run": {"note": "hello world"},
        "flags": [1, 2],
    }
    assert doc["training_config"] == expected_config
    assert doc["config_hash"] == hash_config(expected_config)
    assert doc["version"] == "1.0.0"
    assert doc["metrics"] == {"accuracy": 0.91, "loss": 1.5}
    assert sorted(doc["tags"]) == ["dpo", "rlhf"]
    assert doc["description"] == "first DPO"
    backends = {a["type"]: (a["storage_backend"], a["storage_path"]) for a in doc["artifacts"]}
    assert backends["checkpoint"] == ("s3", "s3://bucket/ckpt")
    assert backends["tokenizer"] == ("huggingface", "hf://org/repo")
    assert backends["config"][0] == "local"
    assert Path(backends["config"][1]).is_absolute()
    parents = home_registry.get_ancestors(doc["id"], with_distance=True)
    assert [(h.version.id, h.relationship.value) for h in parents] == [
        (parent.id, "dpo_trained_from")
    ]


def test_register_from_json_file_numbers_versions(cmr: Runner, seeded_home: Path, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"lr": 0.1}))
    first = cmr("-q", "register", "m", "-r", "sft", "-b", "base", "-c", str(config))
    second = cmr("--json", "register", "m", "-r", "sft", "-b", "base", "-s", "lr=0.2")
    assert (first.code, second.code) == (0, 0), (first.stderr, second.stderr)
    assert first.stdout.strip() == "1"
    assert second.json()["version"] == "2"


def test_register_duplicate_run_fails_or_returns(cmr: Runner, home_registry: Registry):
    existing = _register(home_registry, training_config={"lr": 1})
    args = ["register", "other", "-r", "sft", "-b", "meta-llama/Llama-3.1-8B", "-s", "lr=1"]
    failed = cmr(*args)
    assert_user_error(failed)
    assert "--on-duplicate return" in failed.stderr
    returned = cmr(*args, "--on-duplicate", "return", "--json")
    assert returned.code == 0
    assert returned.json()["id"] == existing.id
    assert [m.name for m in home_registry.list_models()] == ["llama-sft"]


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(["--set", "novalue"], id="set-without-equals"),
        pytest.param(["--set", "a=1", "--set", "a.b=2"], id="set-through-a-scalar"),
        pytest.param(["--metric", "accuracy=high"], id="metric-not-a-number"),
        pytest.param(["--config", "/no/such/file.yaml"], id="missing-config-file"),
        pytest.param(["--parent", "nosuch@1"], id="unknown-parent"),
        pytest.param(["--artifact", "checkpoint"], id="artifact-without-uri"),
    ],
)
def test_register_rejects_bad_input(cmr: Runner, home_registry: Registry, extra):
    assert_user_error(cmr("register", "m", "-r", "sft", "-b", "base", *extra))
    assert home_registry.list_models() == []


def test_register_rejects_a_config_file_that_is_not_a_mapping(
    cmr: Runner, home_registry: Registry, tmp_path: Path
):
    config = tmp_path / "config.yaml"
    config.write_text("- just\n- a list\n")
    assert_user_error(cmr("register", "m", "-r", "sft", "-b", "b", "-c", str(config)))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert_user_error(cmr("register", "m", "-r", "sft", "-b", "b", "-c", str(broken)))
    assert home_registry.list_models() == []


def test_show_has_metrics_config_artifacts_lineage_and_history(
    cmr: Runner, home_registry: Registry
):
    parent = _register(home_registry, "base", training_config={"x": 1})
    v = _register(
        home_registry,
        training_config={"lr": 0.5, "optim": {"name": "adamw"}},
        metrics={"accuracy": 0.9},
        artifacts=[{"type": "checkpoint", "storage_backend": "s3", "storage_path": "s3://b/k"}],
        parents=[parent],
    )
    child = _register(home_registry, "child", training_config={"y": 1}, parents=[v])
    home_registry.promote(v, "staging", reason="looks good")

    human = cmr("show", v.ref)
    assert human.code == 0, human.stderr
    for expected in ("llama-sft@1", "accuracy", "optim.name", "adamw", "s3://b/k", "base@1",
                     "child@1", "fine_tuned_from", "looks good", "staging"):  # fmt: skip
        assert expected in human.stdout, expected

    doc = cmr("show", str(v.id), "--json").json()
    version_fields = {k: doc[k] for k in v.to_dict()}
    assert version_fields == v.to_dict() | {"stage": "staging", "updated_at": doc["updated_at"]}
    assert [p["id"] for p in doc["lineage"]["parents"]] == [parent.id]
    assert [c["id"] for c in doc["lineage"]["children"]] == [child.id]
    assert [t["to_stage"] for t in doc["stage_history"]] == ["experiment", "staging"]
    assert doc["warnings"] == []


@pytest.mark.parametrize("ref", ["nosuch@1", "not a ref"])
def test_show_unknown_or_malformed_ref_is_a_user_error(cmr: Runner, seeded_home, ref):
    assert_user_error(cmr("show", ref))


def test_promote_with_archive_existing_and_reason(cmr: Runner, home_registry: Registry):
    old = _register(home_registry, training_config={"a": 1})
    new = _register(home_registry, training_config={"a": 2})
    home_registry.promote(old, "production")
    result = cmr(
        "promote", new.ref, "production", "--archive-existing", "--reason", "better", "--json"
    )
    assert result.code == 0, result.stderr
    assert result.json()["stage"] == "production"
    assert home_registry.get_version(old.id).stage.value == "archived"
    assert home_registry.stage_history(new)[-1].reason == "better"

    human = cmr("promote", "llama-sft@production", "production")
    assert human.code == 0
    assert "no change" in human.stdout


def test_promote_to_an_unknown_stage_changes_nothing(cmr: Runner, home_registry: Registry):
    v = _register(home_registry)
    assert_user_error(cmr("promote", v.ref, "heaven"))
    assert home_registry.get_version(v.id).stage.value == "experiment"
    assert len(home_registry.stage_history(v)) == 1


def test_history_of_a_version_and_of_a_model(cmr: Runner, home_registry: Registry):
    first = _register(home_registry, training_config={"a": 1})
    second = _register(home_registry, training_config={"a": 2})
    home_registry.promote(first, "production", reason="launch")
    home_registry.promote(second, "production", archive_existing=True)
    home_registry.set_alias(second, "champion")

    of_version = cmr("history", first.ref, "--json").json()
    assert [(t["from_stage"], t["to_stage"]) for t in of_version] == [
        (None, "experiment"),
        ("experiment", "production"),
        ("production", "archived"),
    ]
    of_model = cmr("history", "llama-sft", "--json").json()
    assert len(of_model["stage_history"]) == 5
    assert [c["alias"] for c in of_model["alias_history"]] == ["champion"]
    human = cmr("history", "llama-sft")
    assert human.code == 0
    assert "launch" in human.stdout
    assert "champion" in human.stdout


def test_history_at_a_past_time(cmr: Runner, home_registry: Registry):
    first = _register(home_registry, training_config={"a": 1})
    home_registry.promote(first, "production")
    between = datetime.now(UTC)
    second = _register(home_registry, training_config={"a": 2})
    home_registry.promote(second, "production", archive_existing=True)

    then = cmr("history", "llama-sft@production", "--at", between.isoformat(), "--json")
    assert then.code == 0, then.stderr
    assert then.json()["id"] == first.id
    now = cmr("-q", "history", "llama-sft@production", "--at", datetime.now(UTC).isoformat())
    assert now.stdout.strip() == str(second.id)
    before_anything = (between - timedelta(days=365)).strftime("%Y-%m-%d")
    assert_user_error(cmr("history", "llama-sft@production", "--at", before_anything))
    assert_user_error(cmr("history", "llama-sft@production", "--at", "yesterday"))


def test_history_of_an_unknown_model_is_a_user_error(cmr: Runner, seeded_home: Path):
    assert_user_error(cmr("history", "nosuch"))


def test_metrics_show_and_merge(cmr: Runner, home_registry: Registry):
    v = _register(home_registry, metrics={"accuracy": 0.8})
    shown = cmr("metrics", v.ref, "--json")
    assert shown.json() == {"accuracy": 0.8}
    merged = cmr("metrics", v.ref, "bleu=31.2", "accuracy=0.85", "--json")
    assert merged.code == 0, merged.stderr
    assert merged.json() == {"accuracy": 0.85, "bleu": 31.2}
    assert home_registry.get_version(v.id).metrics == {"accuracy": 0.85, "bleu": 31.2}


def test_metrics_rejects_non_numbers_and_changes_nothing(cmr: Runner, home_registry: Registry):
    v = _register(home_registry, metrics={"accuracy": 0.8})
    assert_user_error(cmr("metrics", v.ref, "bleu=high"))
    assert_user_error(cmr("metrics", v.ref, "bleu=inf"))
    assert home_registry.get_version(v.id).metrics == {"accuracy": 0.8}


def test_tag_add_and_remove(cmr: Runner, home_registry: Registry):
    v = _register(home_registry, tags=["sft"])
    added = cmr("tag", "add", v.ref, "eval", "release", "--json")
    assert added.code == 0, added.stderr
    assert sorted(added.json()["tags"]) == ["eval", "release", "sft"]
    removed = cmr("-q", "tag", "remove", v.ref, "sft")
    assert sorted(removed.stdout.split()) == ["eval", "release"]
    assert_user_error(cmr("tag", "add", "nosuch@1", "x"))
    assert_user_error(cmr("tag", "remove", "nosuch@1", "x"))
    assert_user_error(cmr("tag", "add", v.ref))  # no tags given


def test_delete_refuses_production_unless_forced(cmr: Runner, home_registry: Registry):
    v = _register(home_registry)
    home_registry.promote(v, "production")
    refused = cmr("delete", v.ref)
    assert_user_error(refused)
    assert "--force" in refused.stderr
    assert home_registry.get_version(v.id).id == v.id
    deleted = cmr("delete", v.ref, "--force", "--json")
    assert deleted.code == 0, deleted.stderr
    assert deleted.json() == {"deleted": v.id, "ref": v.ref, "artifact_bytes_kept": []}
    assert_user_error(cmr("show", str(v.id)))


def test_models(cmr: Runner, home_registry: Registry):
    assert "No models yet" in cmr("models").stdout
    _register(home_registry, "b-model")
    _register(home_registry, "a-model", training_config={"x": 1})
    assert [m["name"] for m in cmr("models", "--json").json()] == ["a-model", "b-model"]
    assert cmr("-q", "models").stdout.split() == ["a-model", "b-model"]


def test_global_json_flag_before_the_command(cmr: Runner, home_registry: Registry):
    _register(home_registry)
    assert cmr("--json", "models").json()[0]["name"] == "llama-sft"


def test_promote_check_lists_each_condition_and_changes_nothing(
    cmr: Runner, home_registry: Registry
):
    v = _register(home_registry, metrics={"accuracy": 0.5})
    home_registry.set_promotion_policy(
        v.model_name, {"gates": {"production": {"min_accuracy": 0.9}}}
    )
    result = cmr("promote", v.ref, "production", "--check", "--json")
    assert result.code == 1
    doc = result.json()
    assert doc["allowed"] is False
    assert [c["met"] for c in doc["conditions"]] == [False]
    assert "(it is 0.5)" in doc["conditions"][0]["text"]
    assert home_registry.get_version(v.id).stage.value == "experiment"
    assert len(home_registry.stage_history(v)) == 1
    human = cmr("promote", v.ref, "staging", "--check")
    assert human.code == 0
    assert "allowed" in human.stdout
