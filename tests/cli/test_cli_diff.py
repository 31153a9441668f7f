"""`cmr diff A B` (issue 20 #1): the real executable, for people and for scripts."""

from __future__ import annotations

from tests.cli.runner import Runner, assert_user_error

from crucible_model_registry import Registry


def _pair(registry: Registry):
    a = registry.register(
        model_name="llama-sft", recipe="sft", base_model="base",
        training_config={"lr": 1e-4, "optim": {"name": "adamw"}, "warmup": 100},
        metrics={"accuracy": 0.9, "loss": 1.2}, tags=["sft"],
    )  # fmt: skip
    b = registry.register(
        model_name="llama-sft", recipe="sft", base_model="base",
        training_config={"lr": 2e-4, "optim": {"name": "lion", "wd": 0.1}},
        metrics={"accuracy": 0.93}, tags=["dpo"], parents=[a],
    )  # fmt: skip
    registry.promote(b, "production")
    return a, b


def test_diff_for_people(cmr: Runner, home_registry: Registry):
    a, _ = _pair(home_registry)
    result = cmr("diff", a.ref, "llama-sft@production")
    assert result.code == 0, result.stderr
    out = result.stdout
    assert "llama-sft@2 descends from llama-sft@1 (1 edge down)" in out
    assert "stage: experiment → production" in out
    assert "only in llama-sft@1: sft; only in llama-sft@2: dpo" in out
    lines = {
        line.split()[1]: line.split() for line in out.splitlines() if line[:2] in (" ~", " +", " -")
    }
    assert lines["lr"] == ["~", "lr", "0.0001", "0.0002"]
    assert lines["optim.name"] == ["~", "optim.name", "adamw", "lion"]
    assert lines["optim.wd"] == ["+", "optim.wd", "0.1"]
    assert lines["warmup"] == ["-", "warmup", "100"]
    assert any(line.split() == ["accuracy", "0.9", "0.93", "+0.03"] for line in out.splitlines())
    assert any(line.split() == ["loss", "1.2", "-"] for line in out.splitlines())


def test_diff_as_json(cmr: Runner, home_registry: Registry):
    a, b = _pair(home_registry)
    doc = cmr("diff", str(b.id), a.ref, "--json").json()
    assert (doc["left_ref"], doc["right_ref"]) == (b.ref, a.ref)
    assert doc["lineage"] == {"kind": "descendant", "depth": 1, "shared": [], "shared_refs": []}
    assert doc["config"]["added"] == {"warmup": 100}
    assert doc["config"]["removed"] == {"optim.wd": 0.1}
    assert {c["path"] for c in doc["config"]["changed"]} == {"lr", "optim.name"}
    assert doc["metrics"][0]["name"] == "accuracy"
    assert round(doc["metrics"][0]["delta"], 9) == -0.03
    assert (doc["left_stage"], doc["right_stage"]) == ("production", "experiment")


def test_diff_of_an_unknown_version_is_a_user_error(cmr: Runner, home_registry: Registry):
    a, _ = _pair(home_registry)
    assert_user_error(cmr("diff", a.ref, "llama-sft@7"))
