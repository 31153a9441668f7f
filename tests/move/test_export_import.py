"""Export and import through the library, on SQLite and PostgreSQL (the ``registry`` fixture)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.move.conftest import read_export, rewrite_manifest, seed

from crucible_model_registry import (
    ChecksumMismatchError,
    NotFoundError,
    Registry,
    Stage,
    ValidationError,
)


def _export(registry: Registry, path: Path, **options: Any) -> dict[str, list[dict[str, Any]]]:
    registry.export_to(path, **options)
    return read_export(path)


def test_round_trip_preserves_everything(seeded: Registry, registry: Registry, tmp_path: Path):
    before = _export(seeded, tmp_path / "a")
    report = registry.import_from(tmp_path / "a")
    assert report.refused == []
    assert report.imported["versions"] == 4
    assert report.imported["lineage_edges"] == 3
    assert report.imported["stage_transitions"] == 7
    assert _export(registry, tmp_path / "b") == before
    # The records behind the lines, through the public API.
    sft1 = registry.get_version("sft@1")
    source = seeded.get_version("sft@1")
    assert sft1.stage is Stage.PRODUCTION
    assert (sft1.created_at, sft1.updated_at) == (source.created_at, source.updated_at)
    assert [(t.to_stage, t.reason, t.at) for t in registry.stage_history(sft1)] == [
        (t.to_stage, t.reason, t.at) for t in seeded.stage_history(source)
    ]
    assert registry.get_version("sft@champion").version == "2"
    assert [(c.alias, c.reason, c.at) for c in registry.alias_history("sft")] == [
        (c.alias, c.reason, c.at) for c in seeded.alias_history("sft")
    ]
    assert registry.get_promotion_policy("sft") == seeded.get_promotion_policy("sft")
    assert [v.ref for v in registry.get_ancestors("zeta-consumer@1")] == [
        "sft@2",
        "sft@1",
        "base@1.0",
    ]
    assert registry.query({"tag": "family"})[0].ref == "base@1.0"
    assert registry.query({"min_accuracy": 0.8})[0].ref == "sft@1"
    # Numbering continues after the imported versions, not from 1.
    nxt = registry.register(
        model_name="sft", recipe="sft", base_model="base", training_config={"lr": 9.0}
    )
    assert nxt.version == "4"


def test_second_import_adds_nothing(seeded: Registry, registry: Registry, tmp_path: Path):
    seeded.export_to(tmp_path / "a")
    first = registry.import_from(tmp_path / "a")
    after_first = _export(registry, tmp_path / "b")
    second = registry.import_from(tmp_path / "a")
    assert first.changed
    assert not second.changed
    assert second.skipped == first.imported
    assert sum(second.conflicts.values()) == 0
    assert _export(registry, tmp_path / "c") == after_first


def test_import_into_a_registry_with_other_models(
    seeded: Registry, registry: Registry, tmp_path: Path
):
    mine = registry.register(
        model_name="mine", recipe="r", base_model="b", training_config={"x": 1}
    )
    seeded.export_to(tmp_path / "a")
    report = registry.import_from(tmp_path / "a")
    assert report.refused == []
    assert registry.get_version("mine@1").id == mine.id
    assert {m.name for m in registry.list_models()} == {"mine", "zeta-consumer", "base", "sft"}


def test_a_conflicting_version_refuses_its_model_and_changes_nothing(
    seeded: Registry, registry: Registry, tmp_path: Path
):
    seeded.export_to(tmp_path / "a")
    registry.register(
        model_name="sft",
        version="1",
        recipe="sft",
        base_model="base",
        training_config={"lr": 1e-4},
        metrics={"accuracy": 0.1},  # differs from the export's 0.9
    )
    before = _export(registry, tmp_path / "before")
    report = registry.import_from(tmp_path / "a")
    assert report.refused_models == ["sft"]
    assert report.conflicts["versions"] == 1
    conflict = next(c for c in report.refused if c.kind == "versions")
    assert (conflict.model, conflict.ref) == ("sft", "sft@1")
    assert "metrics" in conflict.reason
    after = _export(registry, tmp_path / "after")
    sft_kinds = {
        k: [ln for ln in v if ln.get("model", ln.get("name")) == "sft"] for k, v in after.items()
    }
    assert sft_kinds == {
        k: [ln for ln in v if ln.get("model", ln.get("name")) == "sft"] for k, v in before.items()
    }
    assert registry.get_version("sft@1").metrics == {"accuracy": 0.1}
    # The other models went in; the edge from the refused model's version could not.
    assert registry.get_version("base@1.0").metrics == {"loss": 1.25, "accuracy": 0.5}
    assert registry.get_ancestors("zeta-consumer@1") == []
    assert report.conflicts["lineage_edges"] == 1


def test_the_same_training_run_under_another_name_is_a_conflict(
    seeded: Registry, registry: Registry, tmp_path: Path
):
    seeded.export_to(tmp_path / "a")
    registry.register(
        model_name="elsewhere",
        recipe="pretrain",
        base_model="scratch",
        training_config={"lr": 3e-4},
    )
    report = registry.import_from(tmp_path / "a")
    assert "base" in report.refused_models
    with pytest.raises(NotFoundError):
        registry.get_model("base")
    assert report.conflicts["versions"] == 1


def test_a_bad_line_leaves_its_model_out_and_imports_the_others(
    seeded: Registry, registry: Registry, tmp_path: Path
):
    export = tmp_path / "a"
    seeded.export_to(export)
    versions = (export / "versions.jsonl").read_text().splitlines()
    # Corrupt one line of model sft (the second of its versions), as a broken writer would.
    index = [i for i, raw in enumerate(versions) if json.loads(raw)["model"] == "sft"][1]
    versions[index] = versions[index][: len(versions[index]) // 2]
    (export / "versions.jsonl").write_text("\n".join(versions) + "\n")
    rewrite_manifest(export)
    report = registry.import_from(export)
    assert report.refused_models == ["sft"]
    assert report.conflicts["lines"] == 1
    assert {m.name for m in registry.list_models()} == {"zeta-consumer", "base"}
    assert registry.query({"model_name": "sft"}) == []


def test_an_invalid_value_leaves_its_model_out(
    seeded: Registry, registry: Registry, tmp_path: Path
):
    export = tmp_path / "a"
    seeded.export_to(export)
    lines = [json.loads(raw) for raw in (export / "versions.jsonl").read_text().splitlines()]
    for line in lines:
        if line["model"] == "base":
            line["stage"] = "shipped"
    (export / "versions.jsonl").write_text("".join(json.dumps(ln) + "\n" for ln in lines))
    rewrite_manifest(export)
    report = registry.import_from(export)
    assert report.refused_models == ["base"]
    assert {m.name for m in registry.list_models()} == {"zeta-consumer", "sft"}
    # sft's edge from base could not be made, and says so.
    assert registry.get_ancestors("sft@1") == []
    assert any(c.kind == "lineage_edges" and c.model == "sft" for c in report.refused)


def test_a_file_that_differs_from_its_manifest_is_refused(
    seeded: Registry, registry: Registry, tmp_path: Path
):
    export = tmp_path / "a"
    seeded.export_to(export)
    with (export / "aliases.jsonl").open("a") as fh:
        fh.write("\n")
    with pytest.raises(ChecksumMismatchError) as caught:
        registry.import_from(export)
    assert caught.value.path == "aliases.jsonl"
    assert registry.list_models() == []


def test_not_an_export_is_refused(registry: Registry, tmp_path: Path):
    with pytest.raises(ValidationError) as caught:
        registry.import_from(tmp_path)
    assert "src" in caught.value.errors
    assert registry.list_models() == []


def test_dry_run_counts_and_writes_nothing(seeded: Registry, registry: Registry, tmp_path: Path):
    seeded.export_to(tmp_path / "a")
    dry = registry.import_from(tmp_path / "a", dry_run=True)
    assert dry.dry_run
    assert registry.list_models() == []
    real = registry.import_from(tmp_path / "a")
    assert (dry.imported, dry.skipped, dry.conflicts) == (
        real.imported,
        real.skipped,
        real.conflicts,
    )


def test_export_of_some_models(seeded: Registry, registry: Registry, tmp_path: Path):
    result = seeded.export_to(tmp_path / "a", models="s*")
    assert result.counts["models"] == 1
    report = registry.import_from(tmp_path / "a")
    assert [m.name for m in registry.list_models()] == ["sft"]
    # sft@1's parent (base@1.0) was not exported and is not here: reported, not invented.
    assert report.conflicts["lineage_edges"] == 1


def test_export_refuses_a_taken_destination(seeded: Registry, tmp_path: Path):
    dest = tmp_path / "taken"
    dest.mkdir()
    (dest / "x").write_text("mine")
    with pytest.raises(ValidationError) as caught:
        seeded.export_to(dest)
    assert "dest" in caught.value.errors
    assert [p.name for p in dest.iterdir()] == ["x"]


def test_artifact_bytes_travel_and_are_verified(
    seeded: Registry, make_registry: Any, tmp_path: Path
):
    export = tmp_path / "a"
    result = seeded.export_to(export, with_artifacts=True)
    assert result.artifact_bytes > 0
    assert (export / "artifacts" / "sft" / "1" / "checkpoint" / "weights.bin").is_file()
    target = make_registry("target")
    report = target.import_from(export)
    assert report.refused == []
    sft1 = target.get_version("sft@1")
    kinds = {a.type.value: a for a in sft1.artifacts}
    assert all(target.verify_artifact(a) for a in kinds.values())
    out = target.download_artifact(kinds["tokenizer"], tmp_path / "tok")
    assert (out / "sub" / "merges.txt").read_text() == "ab"
    assert not target.import_from(export).changed


def test_corrupt_artifact_bytes_refuse_their_model(
    seeded: Registry, make_registry: Any, tmp_path: Path
):
    export = tmp_path / "a"
    seeded.export_to(export, with_artifacts=True)
    blob = export / "artifacts" / "sft" / "1" / "checkpoint" / "weights.bin"
    blob.write_bytes(b"X" + blob.read_bytes()[1:])
    rewrite_manifest(export)
    target = make_registry("target")
    report = target.import_from(export)
    assert report.refused_models == ["sft"]
    assert report.conflicts["artifact_bytes"] == 1
    assert not target.storage_backend().exists("sft/1/checkpoint/weights.bin")
    assert "sft" not in {m.name for m in target.list_models()}


def test_a_failed_export_leaves_nothing(seeded: Registry, tmp_path: Path):
    artifact = next(
        a for a in seeded.get_version("sft@1").artifacts if a.type.value == "checkpoint"
    )
    stored = tmp_path / "source-artifacts" / artifact.storage_path
    stored.write_bytes(b"rot")
    with pytest.raises(ChecksumMismatchError):
        seeded.export_to(tmp_path / "out" / "a", with_artifacts=True)
    assert list((tmp_path / "out").iterdir()) == []


def test_seed_works_on_both_databases(registry: Registry, tmp_path: Path):
    # The data set used above can be written to either database and read back the same.
    seed(registry, tmp_path)
    first = _export(registry, tmp_path / "a")
    assert first["versions"][0]["model"] == "zeta-consumer"
    assert len(first["stage_transitions"]) == 7


def test_an_interrupted_import_leaves_whole_models_and_a_rerun_completes_it(
    seeded: Registry, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from crucible_model_registry import _registry_move

    seeded.export_to(tmp_path / "a")
    monkeypatch.setattr(_registry_move, "_BATCH_LINES", 1)  # one model per backend call

    def stop_after_the_first_model(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        registry.import_from(tmp_path / "a", progress=stop_after_the_first_model)
    assert registry.check().ok
    assert [m.name for m in registry.list_models()] == ["zeta-consumer"]
    assert [v.ref for v in registry.query({"model_name": "zeta-consumer"})] == ["zeta-consumer@1"]
    rerun = registry.import_from(tmp_path / "a")
    assert rerun.refused == []
    assert rerun.skipped["models"] == 1
    assert _export(registry, tmp_path / "b") == read_export(tmp_path / "a")
