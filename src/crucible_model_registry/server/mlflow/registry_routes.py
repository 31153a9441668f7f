"""MLflow's model-registry endpoints (``/api/2.0/mlflow/...``) over our Registry.

Each handler reads MLflow's request fields, calls the registry (whose rules, policies and
permissions apply as at every other door) and answers MLflow's response message. Nothing
here decides what is allowed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from crucible_model_registry.domain.enums import Stage
from crucible_model_registry.domain.rules import MAX_BASE_MODEL
from crucible_model_registry.errors import ValidationError
from crucible_model_registry.query import Query
from crucible_model_registry.server.mlflow import filters
from crucible_model_registry.server.mlflow.convert import (
    MLFLOW_KEY,
    STAGES,
    aliases_by_version,
    current_aliases,
    download_uri,
    mlflow_number,
    model_json,
    our_stage,
    resolve_version,
    version_json,
)

if TYPE_CHECKING:
    from crucible_model_registry.domain.records import Model, ModelVersion
    from crucible_model_registry.registry import Registry

__all__ = ["HANDLERS", "Params"]

Params = Mapping[str, Any]
Handler = Callable[["Registry", Params], dict[str, Any]]

RECIPE = "mlflow"
"""The recipe of every version created through MLflow's API."""

MODEL_SEARCH_MAX = 1000
VERSION_SEARCH_MAX = 200_000
VERSION_SEARCH_DEFAULT = 10_000


# --------------------------------------------------------------------------- request fields


def _text(params: Params, key: str, *, required: bool = True) -> str | None:
    value = params.get(key)
    if value is None or value == "":
        if required:
            raise ValidationError.single(key, f"missing value for required parameter {key!r}")
        return None
    if not isinstance(value, str):
        raise ValidationError.single(key, "must be a string")
    return value


def _required(params: Params, key: str) -> str:
    value = _text(params, key)
    assert value is not None
    return value


def _bool(params: Params, key: str) -> bool:
    value = params.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if value is None:
        raise ValidationError.single(key, f"missing value for required parameter {key!r}")
    raise ValidationError.single(key, "must be true or false")


def _int(params: Params, key: str, *, default: int, maximum: int) -> int:
    value = params.get(key)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError.single(key, "must be a whole number") from None
    if isinstance(value, bool) or number < 1 or number > maximum:
        raise ValidationError.single(key, f"must be between 1 and {maximum}, not {value}")
    return number


def _strings(params: Params, key: str) -> list[str]:
    value = params.get(key)
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValidationError.single(key, "must be a list of strings")
    return list(items)


def _tags(params: Params) -> dict[str, str]:
    value = params.get("tags") or []
    if not isinstance(value, list):
        raise ValidationError.single("tags", "must be a list of {key, value} objects")
    tags: dict[str, str] = {}
    for item in value:
        if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
            raise ValidationError.single("tags", "each tag needs a string key")
        tags[_tag_key(item["key"])] = str(item.get("value") or "")
    return tags


def _tag_key(key: object) -> str:
    if not isinstance(key, str) or not key.strip():
        raise ValidationError.single("key", "a tag key must be a non-empty string")
    if len(key) > 250:
        raise ValidationError.single("key", "a tag key is at most 250 characters")
    return key


def _tag_patch(key: str, value: str | None) -> dict[str, Any]:
    return {MLFLOW_KEY: {"tags": {key: value}}}


# --------------------------------------------------------------------------- answers


def _latest(registry: Registry, name: str, stages: Iterable[Stage]) -> list[ModelVersion]:
    """The latest version of the model in each stage, in MLflow's stage order.

    Latest is the most recently registered: for auto-numbered versions the highest number,
    as MLflow's server answers. One small indexed query per stage, however many versions.
    """
    wanted = set(stages)
    found = []
    for stage in STAGES:
        if stage in wanted:
            newest = (
                Query().where_model_name(name).where_stage(stage).order_by("id", "desc").limit(1)
            )
            found.extend(registry.query(newest))
    return found


def _model_answer(registry: Registry, model: Model) -> dict[str, Any]:
    latest = _latest(registry, model.name, STAGES)
    known = {v.id: v for v in latest}
    numbers = {
        alias: mlflow_number(known.get(version_id) or registry.get_version(version_id))
        for alias, version_id in current_aliases(registry, model.name).items()
    }
    return model_json(model, latest, numbers)


def _version_answer(registry: Registry, version: ModelVersion) -> dict[str, Any]:
    aliases = aliases_by_version(current_aliases(registry, version.model_name))
    return version_json(version, aliases.get(version.id, ()))


# --------------------------------------------------------------------------- registered models


def create_registered_model(registry: Registry, params: Params) -> dict[str, Any]:
    tags = _tags(params)
    model = registry.create_model(
        _required(params, "name"),
        description=_text(params, "description", required=False),
        metadata={MLFLOW_KEY: {"tags": tags}} if tags else None,
    )
    return {"registered_model": model_json(model, [], {})}  # new: no versions, no aliases


def get_registered_model(registry: Registry, params: Params) -> dict[str, Any]:
    model = registry.get_model(_required(params, "name"))
    return {"registered_model": _model_answer(registry, model)}


def rename_registered_model(registry: Registry, params: Params) -> dict[str, Any]:
    model = registry.rename_model(_required(params, "name"), _required(params, "new_name"))
    return {"registered_model": _model_answer(registry, model)}


def update_registered_model(registry: Registry, params: Params) -> dict[str, Any]:
    name = _required(params, "name")
    if "description" in params:
        model = registry.update_model(
            name, description=_text(params, "description", required=False)
        )
    else:
        model = registry.get_model(name)
    return {"registered_model": _model_answer(registry, model)}


def delete_registered_model(registry: Registry, params: Params) -> dict[str, Any]:
    registry.delete_model(_required(params, "name"))
    return {}


def search_registered_models(registry: Registry, params: Params) -> dict[str, Any]:
    raw_filter = _text(params, "filter", required=False)
    conditions = filters.parse_filter(raw_filter, "models")
    order_by = _strings(params, "order_by")
    order = filters.parse_order_by(order_by, "models")
    size = _int(params, "max_results", default=100, maximum=MODEL_SEARCH_MAX)
    search = ("models", raw_filter, order_by)
    offset = filters.decode_page_token(_text(params, "page_token", required=False), search)
    found = [m for m in registry.list_models() if filters.matches_model(m, conditions)]
    filters.sort_models(found, order)
    page = found[offset : offset + size]
    answer: dict[str, Any] = {}
    if page:
        answer["registered_models"] = [_model_answer(registry, m) for m in page]
    if offset + size < len(found):
        answer["next_page_token"] = filters.encode_page_token(offset + size, search)
    return answer


def get_latest_versions(registry: Registry, params: Params) -> dict[str, Any]:
    name = _required(params, "name")
    registry.get_model(name)
    wanted = {our_stage(s, field="stages") for s in _strings(params, "stages")} or set(STAGES)
    latest = _latest(registry, name, wanted)
    if not latest:
        return {}
    # Here MLflow's server does show each version's aliases.
    aliases = aliases_by_version(current_aliases(registry, name))
    return {"model_versions": [version_json(v, aliases.get(v.id, ())) for v in latest]}


def set_registered_model_tag(registry: Registry, params: Params) -> dict[str, Any]:
    key = _tag_key(_required(params, "key"))
    value = params.get("value")
    if not isinstance(value, str):
        raise ValidationError.single("value", "missing value for required parameter 'value'")
    registry.update_model(_required(params, "name"), metadata_patch=_tag_patch(key, value))
    return {}


def delete_registered_model_tag(registry: Registry, params: Params) -> dict[str, Any]:
    key = _tag_key(_required(params, "key"))
    registry.update_model(_required(params, "name"), metadata_patch=_tag_patch(key, None))
    return {}


def set_registered_model_alias(registry: Registry, params: Params) -> dict[str, Any]:
    version = resolve_version(registry, _required(params, "name"), params.get("version"))
    registry.set_alias(version, _required(params, "alias"))
    return {}


def delete_registered_model_alias(registry: Registry, params: Params) -> dict[str, Any]:
    name, alias = _required(params, "name"), _required(params, "alias")
    # MLflow's server answers a missing alias (of an existing model) with success.
    if alias in current_aliases(registry, name):
        registry.delete_alias(name, alias)
    return {}


def get_model_version_by_alias(registry: Registry, params: Params) -> dict[str, Any]:
    name, alias = _required(params, "name"), _required(params, "alias")
    aliases = current_aliases(registry, name)
    if alias not in aliases:
        # MLflow's server calls this an invalid parameter, not a missing resource.
        raise ValidationError.single("alias", f"registered model alias {alias} not found")
    version = registry.get_version(aliases[alias])
    return {"model_version": version_json(version, aliases_by_version(aliases)[version.id])}


# --------------------------------------------------------------------------- model versions


def create_model_version(registry: Registry, params: Params) -> dict[str, Any]:
    name = _required(params, "name")
    source = _required(params, "source")
    run_id = _text(params, "run_id", required=False)
    # MLflow creates versions only in a registered model (our register would create it).
    registry.get_model(name)
    info: dict[str, Any] = {"source": source, "tags": _tags(params)}
    for key in ("run_id", "run_link", "model_id"):
        value = _text(params, key, required=False)
        if value is not None:
            info[key] = value
    # MLflow allows one run (or source) in several versions, while our deduplication keeps
    # one version per (base model, recipe, config): a registration id in the config makes
    # each MLflow registration its own run, and the config still says where it came from.
    version = registry.register(
        model_name=name,
        recipe=RECIPE,
        base_model=source[:MAX_BASE_MODEL],
        training_config={"source": source, "run_id": run_id, "registration": uuid.uuid4().hex},
        description=_text(params, "description", required=False),
        metadata={MLFLOW_KEY: info},
    )
    return {"model_version": version_json(version)}


def _version(registry: Registry, params: Params) -> ModelVersion:
    return resolve_version(registry, _required(params, "name"), params.get("version"))


def get_model_version(registry: Registry, params: Params) -> dict[str, Any]:
    return {"model_version": _version_answer(registry, _version(registry, params))}


def update_model_version(registry: Registry, params: Params) -> dict[str, Any]:
    version = _version(registry, params)
    if "description" in params:
        version = registry.update_version(
            version, description=_text(params, "description", required=False)
        )
    return {"model_version": _version_answer(registry, version)}


def delete_model_version(registry: Registry, params: Params) -> dict[str, Any]:
    registry.delete_version(_version(registry, params))
    return {}


def transition_model_version_stage(registry: Registry, params: Params) -> dict[str, Any]:
    version = _version(registry, params)
    stage = our_stage(_required(params, "stage"))
    archive = _bool(params, "archive_existing_versions")
    promoted = registry.promote(version, stage, archive_existing=archive)
    return {"model_version": _version_answer(registry, promoted)}


def get_model_version_download_uri(registry: Registry, params: Params) -> dict[str, Any]:
    return {"artifact_uri": download_uri(_version(registry, params))}


def search_model_versions(registry: Registry, params: Params) -> dict[str, Any]:
    raw_filter = _text(params, "filter", required=False)
    conditions = filters.parse_filter(raw_filter, "versions")
    order_by = _strings(params, "order_by")
    order = filters.parse_order_by(order_by, "versions")
    size = _int(params, "max_results", default=VERSION_SEARCH_DEFAULT, maximum=VERSION_SEARCH_MAX)
    search = ("versions", raw_filter, order_by)
    offset = filters.decode_page_token(_text(params, "page_token", required=False), search)
    candidates = registry.query(filters.to_query(conditions))
    found = [v for v in candidates if filters.matches_version(v, conditions)]
    filters.version_sort(found, order)
    page = found[offset : offset + size]
    answer: dict[str, Any] = {}
    if page:
        answer["model_versions"] = [version_json(v) for v in page]
    if offset + size < len(found):
        answer["next_page_token"] = filters.encode_page_token(offset + size, search)
    return answer


def set_model_version_tag(registry: Registry, params: Params) -> dict[str, Any]:
    key = _tag_key(_required(params, "key"))
    value = params.get("value")
    if not isinstance(value, str):
        raise ValidationError.single("value", "missing value for required parameter 'value'")
    registry.update_version(_version(registry, params), metadata_patch=_tag_patch(key, value))
    return {}


def delete_model_version_tag(registry: Registry, params: Params) -> dict[str, Any]:
    key = _tag_key(_required(params, "key"))
    registry.update_version(_version(registry, params), metadata_patch=_tag_patch(key, None))
    return {}


HANDLERS: dict[tuple[str, str], Handler] = {
    ("POST", "registered-models/create"): create_registered_model,
    ("GET", "registered-models/get"): get_registered_model,
    ("POST", "registered-models/rename"): rename_registered_model,
    ("PATCH", "registered-models/update"): update_registered_model,
    ("DELETE", "registered-models/delete"): delete_registered_model,
    ("GET", "registered-models/search"): search_registered_models,
    ("POST", "registered-models/get-latest-versions"): get_latest_versions,
    ("GET", "registered-models/get-latest-versions"): get_latest_versions,
    ("POST", "registered-models/set-tag"): set_registered_model_tag,
    ("DELETE", "registered-models/delete-tag"): delete_registered_model_tag,
    ("POST", "registered-models/alias"): set_registered_model_alias,
    ("DELETE", "registered-models/alias"): delete_registered_model_alias,
    ("GET", "registered-models/alias"): get_model_version_by_alias,
    ("POST", "model-versions/create"): create_model_version,
    ("GET", "model-versions/get"): get_model_version,
    ("PATCH", "model-versions/update"): update_model_version,
    ("DELETE", "model-versions/delete"): delete_model_version,
    ("GET", "model-versions/search"): search_model_versions,
    ("POST", "model-versions/transition-stage"): transition_model_version_stage,
    ("GET", "model-versions/get-download-uri"): get_model_version_download_uri,
    ("POST", "model-versions/set-tag"): set_model_version_tag,
    ("DELETE", "model-versions/delete-tag"): delete_model_version_tag,
}
"""(HTTP method, path under ``/api/2.0/mlflow/``) -> handler: every endpoint we answer."""
