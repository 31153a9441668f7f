"""How two versions differ: training config, metrics, stage, tags, artifacts and lineage."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from crucible_model_registry.domain.enums import Stage
from crucible_model_registry.domain.lineage import LineageHit
from crucible_model_registry.domain.records import Artifact, ModelVersion, _Record

__all__ = [
    "ArtifactDiff",
    "ConfigChange",
    "ConfigDiff",
    "LineageRelation",
    "MetricDiff",
    "VersionDiff",
    "diff_configs",
    "diff_versions",
]

RelationKind = Literal["same", "ancestor", "descendant", "siblings", "common_ancestor", "unrelated"]


@dataclasses.dataclass(frozen=True, slots=True)
class ConfigChange(_Record):
    """A training-config key whose value differs; ``path`` is dotted for nested mappings."""

    path: str
    left: Any
    right: Any


@dataclasses.dataclass(frozen=True, slots=True)
class ConfigDiff(_Record):
    """Keys (dotted paths) that changed, appeared in the right config or vanished from it."""

    changed: list[ConfigChange]
    added: dict[str, Any]
    removed: dict[str, Any]

    @property
    def is_empty(self) -> bool:
        """True when both configs are equal."""
        return not (self.changed or self.added or self.removed)


@dataclasses.dataclass(frozen=True, slots=True)
class MetricDiff(_Record):
    """One metric on both sides; ``delta`` is right minus left when both have it."""

    name: str
    left: float | None
    right: float | None
    delta: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class ArtifactDiff(_Record):
    """The artifacts of one type on both sides, and whether their bytes match.

    ``status``: ``same`` (equal checksums), ``changed``, ``added`` (right only) or
    ``removed`` (left only). Artifacts without a checksum never count as the same.
    """

    type: str
    status: Literal["same", "changed", "added", "removed"]
    left: list[Artifact]
    right: list[Artifact]


@dataclasses.dataclass(frozen=True, slots=True)
class LineageRelation(_Record):
    """How the left version relates to the right one in lineage.

    ``kind``: ``ancestor`` (the right version was made from the left one, ``depth`` edges
    away), ``descendant`` (the reverse), ``siblings`` (they share a parent: ``shared``),
    ``common_ancestor`` (they share an older ancestor: ``shared`` holds the nearest ones,
    ``depth`` the longer of the two distances to them), ``same`` or ``unrelated``.
    ``shared_refs`` are the ``model@version`` refs of ``shared``.
    """

    kind: RelationKind
    depth: int | None
    shared: list[int]
    shared_refs: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class VersionDiff(_Record):
    """Everything that differs between two versions (left → right)."""

    left_id: int
    left_ref: str
    right_id: int
    right_ref: str
    lineage: LineageRelation
    left_stage: Stage
    right_stage: Stage
    config: ConfigDiff
    metrics: list[MetricDiff]
    tags_only_left: list[str]
    tags_only_right: list[str]
    artifacts: list[ArtifactDiff]
    same_config_hash: bool


def _same(left: Any, right: Any) -> bool:
    # Plain == says True == 1 and 1 == 1.0; a bool and a number differ in a config, while
    # 1 and 1.0 do not (they hash the same: RFC 8785 writes both as 1).
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(map(_same, left, right))
    return bool(left == right)


def diff_configs(left: Mapping[str, Any], right: Mapping[str, Any]) -> ConfigDiff:
    """Compare two training configs key by key, descending into nested mappings.

    Lists are compared whole. A key holding a mapping on one side and something else on
    the other is one change at that key.
    """
    changed: list[ConfigChange] = []
    added: dict[str, Any] = {}
    removed: dict[str, Any] = {}

    def leaves(value: Any, path: str, into: dict[str, Any]) -> None:
        if isinstance(value, Mapping) and value:
            for key in sorted(value, key=str):
                leaves(value[key], f"{path}.{key}", into)
        else:
            into[path] = value

    def walk(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str) -> None:
        for key in sorted(a.keys() | b.keys(), key=str):
            path = f"{prefix}{key}"
            if key not in b:
                leaves(a[key], path, removed)
            elif key not in a:
                leaves(b[key], path, added)
            elif isinstance(a[key], Mapping) and isinstance(b[key], Mapping):
                walk(a[key], b[key], f"{path}.")
            elif not _same(a[key], b[key]):
                changed.append(ConfigChange(path, a[key], b[key]))

    walk(left, right, "")
    return ConfigDiff(changed=changed, added=added, removed=removed)


def _diff_metrics(left: Mapping[str, float], right: Mapping[str, float]) -> list[MetricDiff]:
    rows = []
    for name in sorted(left.keys() | right.keys()):
        a, b = left.get(name), right.get(name)
        rows.append(MetricDiff(name, a, b, None if a is None or b is None else b - a))
    return rows


def _diff_artifacts(left: Sequence[Artifact], right: Sequence[Artifact]) -> list[ArtifactDiff]:
    rows = []
    for kind in sorted({a.type.value for a in left} | {a.type.value for a in right}):
        ours = [a for a in left if a.type.value == kind]
        theirs = [a for a in right if a.type.value == kind]
        if not theirs:
            status: Literal["same", "changed", "added", "removed"] = "removed"
        elif not ours:
            status = "added"
        else:
            sums = [sorted(str(a.checksum) for a in side) for side in (ours, theirs)]
            known = all(a.checksum for a in (*ours, *theirs))
            status = "same" if known and sums[0] == sums[1] else "changed"
        rows.append(ArtifactDiff(kind, status, ours, theirs))
    return rows


def _relation(
    left: ModelVersion,
    right: ModelVersion,
    left_ancestors: Sequence[LineageHit],
    right_ancestors: Sequence[LineageHit],
) -> LineageRelation:
    if left.id == right.id:
        return LineageRelation("same", 0, [])
    above_left = {h.version.id: h.distance for h in left_ancestors}
    above_right = {h.version.id: h.distance for h in right_ancestors}
    refs = {h.version.id: h.version.ref for h in (*left_ancestors, *right_ancestors)}
    if left.id in above_right:
        return LineageRelation("ancestor", above_right[left.id], [])
    if right.id in above_left:
        return LineageRelation("descendant", above_left[right.id], [])
    shared_parents = sorted(
        vid for vid, d in above_left.items() if d == 1 and above_right.get(vid) == 1
    )
    if shared_parents:
        return LineageRelation("siblings", 1, shared_parents, [refs[v] for v in shared_parents])
    common = above_left.keys() & above_right.keys()
    if not common:
        return LineageRelation("unrelated", None, [])
    depth = min(max(above_left[vid], above_right[vid]) for vid in common)
    nearest = sorted(vid for vid in common if max(above_left[vid], above_right[vid]) == depth)
    return LineageRelation("common_ancestor", depth, nearest, [refs[v] for v in nearest])


def diff_versions(
    left: ModelVersion,
    right: ModelVersion,
    *,
    left_ancestors: Sequence[LineageHit] = (),
    right_ancestors: Sequence[LineageHit] = (),
) -> VersionDiff:
    """How ``right`` differs from ``left``; the ancestor lists (with distances) give lineage."""
    return VersionDiff(
        left_id=left.id,
        left_ref=left.ref,
        right_id=right.id,
        right_ref=right.ref,
        lineage=_relation(left, right, left_ancestors, right_ancestors),
        left_stage=left.stage,
        right_stage=right.stage,
        config=diff_configs(left.training_config, right.training_config),
        metrics=_diff_metrics(left.metrics, right.metrics),
        tags_only_left=sorted(set(left.tags) - set(right.tags)),
        tags_only_right=sorted(set(right.tags) - set(left.tags)),
        artifacts=_diff_artifacts(left.artifacts, right.artifacts),
        same_config_hash=left.config_hash == right.config_hash,
    )
