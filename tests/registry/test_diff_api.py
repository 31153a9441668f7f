"""Registry.diff: two versions compared, lineage relation included, on both databases."""

from __future__ import annotations

import pytest

from crucible_model_registry import NotFoundError, Registry


def _reg(registry: Registry, name: str = "m", **fields):
    defaults = {"recipe": "sft", "base_model": "base", "training_config": {"model": name}}
    return registry.register(model_name=name, **{**defaults, **fields})


def test_diff_reports_config_metrics_stage_tags_artifacts(registry: Registry, tmp_path):
    blob = tmp_path / "w.bin"
    blob.write_bytes(b"weights")
    a = _reg(registry, training_config={"lr": 1, "optim": {"name": "adamw"}},
             metrics={"acc": 0.5, "loss": 2.0}, tags=["x", "both"])  # fmt: skip
    b = _reg(registry, training_config={"lr": 2, "optim": {"name": "adamw", "wd": 0.1}},
             metrics={"acc": 0.75}, tags=["both", "y"], parents=[a])  # fmt: skip
    registry.upload_artifact(a, "checkpoint", blob)
    registry.upload_artifact(b, "checkpoint", blob)
    registry.upload_artifact(b, "tokenizer", blob)
    registry.promote(b, "staging")

    d = registry.diff(a, b.ref)
    assert (d.left_id, d.right_id) == (a.id, b.id)
    assert [(c.path, c.left, c.right) for c in d.config.changed] == [("lr", 1, 2)]
    assert d.config.added == {"optim.wd": 0.1}
    assert d.config.removed == {}
    assert [(m.name, m.left, m.right, m.delta) for m in d.metrics] == [
        ("acc", 0.5, 0.75, 0.25),
        ("loss", 2.0, None, None),
    ]
    assert (d.left_stage.value, d.right_stage.value) == ("experiment", "staging")
    assert (d.tags_only_left, d.tags_only_right) == (["x"], ["y"])
    assert [(x.type, x.status) for x in d.artifacts] == [
        ("checkpoint", "same"),
        ("tokenizer", "added"),
    ]
    assert (d.lineage.kind, d.lineage.depth) == ("ancestor", 1)
    assert d.to_dict()["lineage"] == {"kind": "ancestor", "depth": 1, "shared": [],
                                      "shared_refs": []}  # fmt: skip


def test_diff_names_every_lineage_relation(registry: Registry):
    root = _reg(registry, "root")
    left = _reg(registry, "left", parents=[root])
    right = _reg(registry, "right", parents=[root])
    grandchild = _reg(registry, "grand", parents=[left])
    cousin = _reg(registry, "cousin", parents=[right])
    stranger = _reg(registry, "stranger")

    def relation(a, b):
        r = registry.diff(a, b).lineage
        return r.kind, r.depth, r.shared_refs

    assert relation(root, grandchild) == ("ancestor", 2, [])
    assert relation(grandchild, root) == ("descendant", 2, [])
    assert relation(left, right) == ("siblings", 1, [root.ref])
    assert relation(grandchild, cousin) == ("common_ancestor", 2, [root.ref])
    assert relation(left, stranger) == ("unrelated", None, [])
    assert relation(left, left.id) == ("same", 0, [])


def test_diff_with_an_unknown_version_is_not_found(registry: Registry):
    v = _reg(registry)
    with pytest.raises(NotFoundError) as info:
        registry.diff(v, "m@99")
    assert info.value.kind == "version"
