"""Validated inputs for writes: what a registration asks the store to record."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from crucible_model_registry.domain.config_hash import canonical_json, normalize_config
from crucible_model_registry.domain.enums import ArtifactType, Relationship, parse_enum
from crucible_model_registry.domain.refs import VersionRef, parse_ref
from crucible_model_registry.domain.rules import (
    MAX_BASE_MODEL,
    MAX_ID,
    MAX_RECIPE,
    MAX_STORAGE_BACKEND,
    MAX_STORAGE_PATH,
    check_long_text,
    check_metrics,
    check_model_name,
    check_tags,
    check_text,
    check_version_string,
    check_whole_number,
)
from crucible_model_registry.errors import ValidationError

__all__ = [
    "ArtifactSpec",
    "NewVersion",
    "OnDuplicate",
    "check_artifact_spec",
    "new_version_from_input",
    "ref_of",
]

OnDuplicate = Literal["raise", "return"]


@dataclass(frozen=True, slots=True)
class ArtifactSpec:
    """An artifact to record: bytes already stored somewhere (by reference) or just uploaded."""

    type: ArtifactType
    storage_backend: str
    storage_path: str
    checksum: str | None = None
    size_bytes: int | None = None
    manifest: list[dict[str, Any]] | None = None
    # Content-addressed copies of its files on its backend, (sha256, size, probe): one
    # reference each to count (issue 21). Empty for bytes stored at their own path only.
    blobs: tuple[tuple[str, int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class NewVersion:
    """A registration whose every field has passed the rules in ``domain.rules``."""

    model_name: str
    version: str | None
    recipe: str
    base_model: str
    training_config: dict[str, Any]
    config_hash: str
    metrics: dict[str, float]
    tags: list[str]
    description: str | None
    artifacts: list[ArtifactSpec] = field(default_factory=list)
    parents: list[VersionRef] = field(default_factory=list)
    relationship: Relationship = Relationship.FINE_TUNED_FROM
    on_duplicate: OnDuplicate = "raise"
    actor: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


REGISTER_FIELDS = frozenset(
    {
        "model_name",
        "version",
        "recipe",
        "base_model",
        "training_config",
        "metrics",
        "tags",
        "description",
        "artifacts",
        "parents",
        "parent_version_id",
        "lineage_type",
        "on_duplicate",
        "metadata",
    }
)
_HEX64 = frozenset("0123456789abcdef")


def new_version_from_input(fields: Mapping[str, Any], *, actor: str | None) -> NewVersion:
    """Check every registration field at once and build the store's input.

    Raises:
        ValidationError: listing every bad or missing field; nothing has been written.
    """
    errors: dict[str, list[str]] = {}

    def check(name: str, fn: Callable[[], _T]) -> _T | None:
        try:
            return fn()
        except ValidationError as exc:
            for key, msgs in exc.errors.items():
                errors.setdefault(key, []).extend(msgs)
            return None

    unknown = sorted(set(fields) - REGISTER_FIELDS)
    if unknown:
        errors["fields"] = [f"unknown field(s) {', '.join(unknown)}"]
    for required in ("model_name", "recipe", "base_model", "training_config"):
        if fields.get(required) is None:
            errors.setdefault(required, []).append("is required")
    model_name = check("model_name", lambda: check_model_name(fields.get("model_name")))
    version = fields.get("version")
    if version is not None:
        version = check("version", lambda: check_version_string(version))
    recipe = check(
        "recipe", lambda: check_text(fields.get("recipe"), field="recipe", limit=MAX_RECIPE)
    )
    base_model = check(
        "base_model",
        lambda: check_text(fields.get("base_model"), field="base_model", limit=MAX_BASE_MODEL),
    )
    raw_config = fields.get("training_config")
    config: Any = None
    config_hash = None
    if raw_config is not None:
        config = check("training_config", lambda: normalize_config(raw_config))
        if config is not None and not isinstance(config, dict):
            errors.setdefault("training_config", []).append("must be a mapping (JSON object)")
        elif config is not None:
            config_hash = check("training_config", lambda: _hash(config))
    metrics = check("metrics", lambda: check_metrics(fields.get("metrics")))
    tags = check("tags", lambda: check_tags(fields.get("tags")))
    description = check(
        "description", lambda: check_long_text(fields.get("description"), field="description")
    )
    metadata = check("metadata", lambda: check_metadata(fields.get("metadata")))
    artifacts = check("artifacts", lambda: _artifact_specs(fields.get("artifacts")))
    parents = check("parents", lambda: _parent_refs(fields))
    relationship = check("lineage_type", lambda: _relationship(fields, parents or []))
    on_duplicate = fields.get("on_duplicate", "raise")
    if on_duplicate not in ("raise", "return"):
        errors.setdefault("on_duplicate", []).append(
            f"{on_duplicate!r} must be 'raise' or 'return'"
        )
    if errors:
        raise ValidationError(errors)
    assert model_name
    assert recipe
    assert base_model
    assert config_hash is not None
    return NewVersion(
        model_name=model_name,
        version=version,
        recipe=recipe,
        base_model=base_model,
        training_config=config,
        config_hash=config_hash,
        metrics=metrics or {},
        tags=tags or [],
        description=description,
        artifacts=artifacts or [],
        parents=parents or [],
        relationship=relationship or Relationship.FINE_TUNED_FROM,
        on_duplicate=on_duplicate,
        actor=actor,
        metadata=metadata or {},
    )


def check_metadata(value: object, *, field: str = "metadata") -> dict[str, Any]:
    """A metadata mapping as JSON values (None is ``{}``).

    Raises:
        ValidationError: not a mapping, or a value with no JSON form.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError.single(field, "must be a mapping (JSON object)")
    normalised = normalize_config(dict(value), path=field)
    assert isinstance(normalised, dict)
    return normalised


def merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``target`` changed by a JSON merge patch (RFC 7396): null removes a key, objects merge."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            current = result.get(key)
            result[key] = merge_patch(current if isinstance(current, Mapping) else {}, value)
        else:
            result[key] = value
    return result


_T = TypeVar("_T")


def _hash(config: Any) -> str:
    return hashlib.sha256(canonical_json(config)).hexdigest()


def check_artifact_spec(item: object, *, field: str = "artifacts") -> ArtifactSpec:
    """An artifact given by reference: ``type``, ``storage_backend``, ``storage_path``."""
    if not isinstance(item, Mapping):
        raise ValidationError.single(field, "each artifact must be a mapping")
    unknown = set(item) - {"type", "storage_backend", "storage_path", "checksum", "size_bytes"}
    if unknown:
        raise ValidationError.single(field, f"unknown artifact key(s) {sorted(unknown)}")
    kind = parse_enum(ArtifactType, item.get("type", "other"), field=f"{field}.type")
    backend = check_text(
        item.get("storage_backend"), field=f"{field}.storage_backend", limit=MAX_STORAGE_BACKEND
    )
    # A path names bytes as they are stored: not normalised, or it could name another file.
    path = check_text(
        item.get("storage_path"),
        field=f"{field}.storage_path",
        limit=MAX_STORAGE_PATH,
        normalize=False,
    )
    checksum = item.get("checksum")
    if checksum is not None and (
        not isinstance(checksum, str) or len(checksum) != 64 or not set(checksum) <= _HEX64
    ):
        raise ValidationError.single(f"{field}.checksum", "must be 64 lowercase hex digits")
    size = item.get("size_bytes")
    if size is not None:
        check_whole_number(size, field=f"{field}.size_bytes", maximum=MAX_ID)
    return ArtifactSpec(
        type=kind, storage_backend=backend, storage_path=path, checksum=checksum, size_bytes=size
    )


def _artifact_specs(items: object) -> list[ArtifactSpec]:
    if items is None:
        return []
    if isinstance(items, Mapping | str) or not isinstance(items, Iterable):
        raise ValidationError.single("artifacts", "must be a list of artifact mappings")
    return [check_artifact_spec(item, field=f"artifacts[{i}]") for i, item in enumerate(items)]


def ref_of(value: object, *, field: str = "ref") -> VersionRef:
    """A VersionRef from a record (anything with an int ``id`` and ``model_name``) or a ref."""
    if isinstance(value, VersionRef):
        return value
    record_id = getattr(value, "id", None)
    if isinstance(record_id, int) and hasattr(value, "model_name"):
        return VersionRef(id=record_id)
    return parse_ref(value, field=field)


def _parent_refs(fields: Mapping[str, Any]) -> list[VersionRef]:
    parents = fields.get("parents")
    single = fields.get("parent_version_id")
    refs: list[VersionRef] = []
    if parents is not None:
        if isinstance(parents, str | bytes) or not isinstance(parents, Iterable):
            parents = [parents]
        refs.extend(ref_of(p, field="parents") for p in parents)
    if single is not None:
        refs.append(ref_of(single, field="parent_version_id"))
    # A parent named twice is one parent: not a merge, and one edge.
    return list(dict.fromkeys(refs))


def _relationship(fields: Mapping[str, Any], parents: list[VersionRef]) -> Relationship:
    given = fields.get("lineage_type")
    if given is None:
        # Several parents without a stated relationship can only be a merge.
        return Relationship.MERGED_FROM if len(parents) > 1 else Relationship.FINE_TUNED_FROM
    return parse_enum(Relationship, given, field="lineage_type")
