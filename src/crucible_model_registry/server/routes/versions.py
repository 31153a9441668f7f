"""Versions: register, get by any ref (also ``at=``), metrics, tags, promote, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body
from starlette.requests import Request
from starlette.responses import JSONResponse

from crucible_model_registry.domain.specs import REGISTER_FIELDS
from crucible_model_registry.errors import ValidationError
from crucible_model_registry.server.routes._common import fields_of, ref, registry_of, reply

__all__ = ["router"]

router = APIRouter(tags=["versions"])


@router.post("/versions", status_code=201)
def register(request: Request, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """Register a version: the fields of ``Registry.register``; every rule runs here."""
    fields = fields_of(body, allowed=REGISTER_FIELDS)
    return reply(registry_of(request).register(fields), status=201)


@router.get("/versions/by-config-hash/{config_hash}")
def find_by_config_hash(request: Request, config_hash: str) -> JSONResponse:
    """The earliest version with this config hash, or null."""
    return reply(registry_of(request).find_by_config_hash(config_hash))


@router.get("/versions/{version:path}/stage-history")
def stage_history(request: Request, version: str) -> JSONResponse:
    """Every stage change of the version, oldest first."""
    return reply(registry_of(request).stage_history(ref(version)))


@router.get("/versions/{version:path}/promotion-check")
def check_promotion(
    request: Request, version: str, stage: str, archive_existing: bool = False
) -> JSONResponse:
    """Each policy condition on promoting the version to ``stage``, met or not; no write."""
    check = registry_of(request).check_promotion(
        ref(version), stage, archive_existing=archive_existing
    )
    return reply(check)


@router.post("/versions/{version:path}/promote")
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


@router.patch("/versions/{version:path}/metrics")
def update_metrics(request: Request, version: str, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """Merge ``metrics`` into the version."""
    fields = fields_of(body, allowed=("metrics",), required=("metrics",))
    return reply(registry_of(request).update_metrics(ref(version), fields["metrics"]))


@router.patch("/versions/{version:path}/tags")
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


@router.delete("/versions/{version:path}")
def delete_version(request: Request, version: str, force: bool = False) -> JSONResponse:
    """Delete the version's records (its history stays); the answer is the version as it was."""
    registry = registry_of(request)
    record = registry.get_version(ref(version))
    registry.delete_version(record, force=force)
    return reply(record)


@router.get("/versions/{version:path}")
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
