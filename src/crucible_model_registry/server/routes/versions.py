"""Versions: register, get by any ref (also ``at=``), metrics, tags, promote, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse

from crucible_model_registry.domain.policy import PromotionCheck
from crucible_model_registry.domain.records import ModelVersion, PromotionResult, StageTransition
from crucible_model_registry.domain.specs import REGISTER_FIELDS
from crucible_model_registry.errors import ValidationError
from crucible_model_registry.server._openapi import (
    NULLABLE_STRING,
    NUMBERS,
    OBJECT,
    REF,
    STRING,
    STRINGS,
    json_body,
    returns,
)
from crucible_model_registry.server.routes._common import (
    fields_of,
    not_a_subresource,
    ref,
    registry_of,
    reply,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["versions"])

_REGISTER_SCHEMAS: dict[str, dict[str, Any]] = {
    "model_name": STRING,
    "version": NULLABLE_STRING,
    "recipe": STRING,
    "base_model": STRING,
    "training_config": OBJECT,
    "metrics": NUMBERS,
    "tags": STRINGS,
    "description": NULLABLE_STRING,
    "parents": {"type": "array", "items": REF},
    "on_duplicate": {"enum": ["raise", "return"]},
}
"""The documented types of the register fields (a field not named here: any JSON)."""


@router.post(
    "/versions",
    status_code=201,
    responses=returns(ModelVersion, status=201),
    openapi_extra=json_body(
        {field: _REGISTER_SCHEMAS.get(field, {}) for field in sorted(REGISTER_FIELDS)},
        required=("model_name", "recipe", "base_model", "training_config"),
    ),
)
def register(request: Request, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """Register a version: the fields of ``Registry.register``; every rule runs here."""
    fields = fields_of(body, allowed=REGISTER_FIELDS)
    return reply(registry_of(request).register(fields), status=201)


@router.get("/versions/by-config-hash/{config_hash}", responses=returns(ModelVersion | None))
def find_by_config_hash(request: Request, config_hash: str) -> JSONResponse:
    """The earliest version with this config hash, or null."""
    return reply(registry_of(request).find_by_config_hash(config_hash))


@router.get("/versions/{version:path}/stage-history", responses=returns(list[StageTransition]))
def stage_history(request: Request, version: str) -> JSONResponse:
    """Every stage change of the version, oldest first."""
    return reply(registry_of(request).stage_history(ref(version)))


@router.get(
    "/versions/{version:path}/promotion-check",
    responses=returns(PromotionCheck),
)
def check_promotion(
    request: Request, version: str, stage: str, archive_existing: bool = False
) -> JSONResponse:
    """Each policy condition on promoting the version to ``stage``, met or not; no write."""
    check = registry_of(request).check_promotion(
        ref(version), stage, archive_existing=archive_existing
    )
    return reply(check)


@router.post(
    "/versions/{version:path}/promote",
    responses=returns(PromotionResult),
    openapi_extra=json_body(
        {"stage": STRING, "reason": NULLABLE_STRING, "archive_existing": {"type": "boolean"}},
        required=("stage",),
    ),
)
def promote(request: Request, version: str, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """Move the version to ``stage``; the answer says what changed (a PromotionResult)."""
    fields = fields_of(body, allowed=("stage", "reason", "archive_existing"), required=("stage",))
    registry = registry_of(request)
    reason = fields.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValidationError.single("reason", "must be a string or null")
    archive = fields.get("archive_existing", False)
    if not isinstance(archive, bool):
        raise ValidationError.single("archive_existing", "must be true or false")
    # Registry.promote answers the version only; a client's Registry needs the whole result,
    # which Registry._promote (the same checks, access control included) gives.
    result = registry._promote(
        ref(version), fields["stage"], reason=reason, archive_existing=archive
    )
    return reply(result)


@router.patch(
    "/versions/{version:path}/metrics",
    responses=returns(ModelVersion),
    # null merges nothing, as Registry.update_metrics(version, None) does
    openapi_extra=json_body(
        {"metrics": {"anyOf": [NUMBERS, {"type": "null"}]}}, required=("metrics",)
    ),
)
def update_metrics(request: Request, version: str, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """Merge ``metrics`` into the version."""
    fields = fields_of(body, allowed=("metrics",), required=("metrics",))
    return reply(registry_of(request).update_metrics(ref(version), fields["metrics"]))


@router.patch(
    "/versions/{version:path}/tags",
    responses=returns(ModelVersion),
    # null: no tags, as Registry.add_tags(version, None) takes it
    openapi_extra=json_body(
        {
            "add": {"anyOf": [STRINGS, {"type": "null"}]},
            "remove": {"anyOf": [STRINGS, {"type": "null"}]},
        }
    ),
)
def change_tags(request: Request, version: str, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """Add the tags in ``add``, then remove those in ``remove``."""
    fields = fields_of(body, allowed=("add", "remove"))
    if not fields:
        raise ValidationError.single("body", "give 'add' and/or 'remove'")
    registry = registry_of(request)
    result = None
    if "add" in fields:
        result = registry.add_tags(ref(version), fields["add"])
    if "remove" in fields:
        result = registry.remove_tags(ref(version), fields["remove"])
    return reply(result)


@router.patch(
    "/versions/{version:path}",
    responses=returns(ModelVersion),
    dependencies=[Depends(not_a_subresource)],
    openapi_extra=json_body(
        {
            "description": NULLABLE_STRING,
            "metadata": {"anyOf": [OBJECT, {"type": "null"}]},
            "metadata_patch": {"anyOf": [OBJECT, {"type": "null"}]},
        }
    ),
)
def update_version(request: Request, version: str, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """Change the description or metadata (replaced): only the keys given."""
    fields = fields_of(body, allowed=("description", "metadata", "metadata_patch"))
    return reply(registry_of(request).update_version(ref(version), **fields))


@router.delete(
    "/versions/{version:path}",
    responses=returns(ModelVersion),
    dependencies=[Depends(not_a_subresource)],
)
def delete_version(request: Request, version: str, force: bool = False) -> JSONResponse:
    """Delete the version's records (its history stays); the answer is the version as it was."""
    registry = registry_of(request)
    record = registry.get_version(ref(version))
    registry.delete_version(record, force=force)
    return reply(record)


@router.get(
    "/versions/{version:path}",
    responses=returns(ModelVersion),
    dependencies=[Depends(not_a_subresource)],
)
def get_version(request: Request, version: str, at: str | None = None) -> JSONResponse:
    """The version a ref names now, or (``at``, ISO 8601 with offset) named then."""
    registry = registry_of(request)
    if at is None:
        return reply(registry.get_version(ref(version)))
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise ValidationError.single("at", "must be an ISO 8601 time with an offset") from None
    return reply(registry.get_version(ref(version), at=moment))
