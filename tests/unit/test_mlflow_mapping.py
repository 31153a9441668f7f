"""The MLflow -> registry mapping of ``domain.mlflow``, on plain values (no database)."""

from __future__ import annotations

from typing import Any

from crucible_model_registry.domain.config_hash import hash_config
from crucible_model_registry.domain.mlflow import (
    MlflowModel,
    MlflowVersion,
    bundle_for,
    training_config,
    wanted,
)


def _version(n: int, **fields: Any) -> MlflowVersion:
    return MlflowVersion(
        version=n, creation_time=1_000 * n, last_updated_time=1_000 * n + 7, **fields
    )


def test_a_model_of_another_workspace_is_prefixed():
    bundle, unmapped = bundle_for(
        MlflowModel("m", 0, 10, workspace="team-a", versions=[_version(1)])
    )
    assert unmapped == []
    assert bundle is not None
    assert bundle.name == "team-a/m"
    assert bundle.model["metadata"]["mlflow"]["workspace"] == "team-a"
    assert wanted("m", "team-a", "team-a/*")
    assert wanted("m", "team-a", "m")
    assert not wanted("m", "team-a", "other")


def test_the_default_workspace_keeps_the_name():
    bundle, _ = bundle_for(MlflowModel("m", 0, 10, workspace="default"))
    assert bundle is not None
    assert bundle.name == "m"
    assert "workspace" not in bundle.model["metadata"]["mlflow"]


def test_an_unknown_stage_and_a_dangling_alias_are_unmapped():
    model = MlflowModel(
        "m",
        0,
        10,
        aliases={"gone": 9, "ok": 1},
        versions=[_version(1), _version(2, current_stage="Weird")],
    )
    bundle, unmapped = bundle_for(model)
    assert bundle is not None
    assert [line["version"] for line in bundle.of("versions")] == ["1"]
    assert {(u.kind, u.ref) for u in unmapped} == {("versions", "m@2"), ("aliases", "m@gone")}
    assert [a["alias"] for a in bundle.of("aliases")] == ["ok"]


def test_one_run_in_two_versions_gets_two_configs():
    one, two = (
        _version(1, run_id="r", source="runs:/r/m"),
        _version(2, run_id="r", source="runs:/r/m"),
    )
    bundle, _ = bundle_for(MlflowModel("m", 0, 10, versions=[two, one]))
    assert bundle is not None
    hashes = [line["config_hash"] for line in bundle.of("versions")]
    assert hashes == [
        hash_config(training_config("m", one)),
        hash_config(training_config("m", two)),
    ]
    assert hashes[0] != hashes[1]
    assert bundle.model["version_seq"] == 2


def test_stage_history_is_registration_then_the_current_stage():
    bundle, _ = bundle_for(MlflowModel("m", 0, 10, versions=[_version(3, current_stage="Staging")]))
    assert bundle is not None
    moves = [(t["from_stage"], t["to_stage"], t["at"]) for t in bundle.of("stage_transitions")]
    assert moves == [
        (None, "experiment", "1970-01-01T00:00:03.000000+00:00"),
        ("experiment", "staging", "1970-01-01T00:00:03.007000+00:00"),
    ]


def test_config_hashes_equal_hash_config_for_any_text():
    for name, source in [("m", "runs:/r/m"), ("m", "s3://b/ﬁ"), ("m", "e\u0301")]:
        version = _version(1, run_id="r", source=source)
        bundle, _ = bundle_for(MlflowModel(name, 0, 10, versions=[version]))
        assert bundle is not None
        (line,) = bundle.of("versions")
        assert line["config_hash"] == hash_config(training_config(name, version))
