"""Moving registries through a server: the export stream and the batch import (API.md §15).

``GET /export`` streams the backend's export lines as NDJSON frames, ``["<kind>", <line>]``
per line (a ``models`` frame opens each model), and ends with ``["end", {"models": n}]``;
an error after the answer has started comes as ``["error", <error>]`` instead, so a client
never takes a cut stream for a whole one. The lines are sent as the database rendered them.

Exporting needs read access to every model, importing admin (as ``export_to`` and
``import_from``); the checks run before the stream starts or the body is read.

``POST /import/bundles`` takes NDJSON, one model's bundle per line, spools it to a
temporary file (bounded memory, no body limit) and imports model by model; the answer is
each bundle's outcome, in order. ``POST /import/edges`` applies deferred lineage edges.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from fastapi import APIRouter, Body
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from crucible_model_registry.domain.exchange import (
    BundleOutcome,
    ExportBundle,
    ImportConflict,
    ModelBundle,
    ReportCounter,
)
from crucible_model_registry.errors import RegistryError, ValidationError
from crucible_model_registry.server._openapi import OBJECT, json_body, text_response
from crucible_model_registry.server.routes._common import fields_of, registry_of
from crucible_model_registry.wire import error_to_json

if TYPE_CHECKING:
    from crucible_model_registry.registry import Registry

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["move"])
_OBJECT: dict[int | str, Any] = {
    200: {"description": "Success", "content": {"application/json": {"schema": OBJECT}}}
}

_FRAME_BYTES = 256 * 1024  # text per chunk of the export stream


@router.get("/export/plan", responses=_OBJECT)
def export_plan(request: Request, models: str | None = None) -> JSONResponse:
    """How many versions an export of ``models`` (a glob) holds, and its kinds of line."""
    return JSONResponse(registry_of(request)._export_plan_checked(models).to_dict())


@router.get("/export", responses=text_response("application/x-ndjson"))
def export(request: Request, models: str | None = None) -> StreamingResponse:
    """Every model matching ``models`` with its export lines, as NDJSON frames (see above)."""
    bundles = registry_of(request)._export_stream_checked(models)  # checked before a byte
    return StreamingResponse(_frames(bundles), media_type="application/x-ndjson")


def _frames(bundles: Iterator[ExportBundle]) -> Iterator[str]:
    chunk: list[str] = []
    size = models = 0
    try:
        for bundle in bundles:
            models += 1
            for kind, lines in bundle.lines.items():
                head = f'["{kind}",'
                for raw in lines:
                    chunk.append(f"{head}{raw}]\n")
                    size += len(raw)
                if size >= _FRAME_BYTES:
                    yield "".join(chunk)
                    chunk.clear()
                    size = 0
        chunk.append(json.dumps(["end", {"models": models}]) + "\n")
    except RegistryError as exc:
        chunk.append(json.dumps(["error", error_to_json(exc)]) + "\n")
    finally:
        close = getattr(bundles, "close", None)
        if close is not None:
            close()  # ends the read transaction when the client went away
    yield "".join(chunk)


@router.post(
    "/import/bundles",
    responses=_OBJECT,
    openapi_extra={
        # Not required: an empty body imports nothing (an export of no models).
        "requestBody": {
            "required": False,
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        }
    },
)
async def import_bundles(request: Request, *, dry_run: bool = False) -> JSONResponse:
    """Import the bundles of the body (NDJSON, one model per line); their outcomes, in order."""
    registry = registry_of(request)
    await run_in_threadpool(registry._check_import)  # before a byte of the body is read
    scratch = Path(await anyio.to_thread.run_sync(tempfile.mkdtemp, None, "cmr-import-"))
    try:
        received = scratch / "bundles.ndjson"
        with received.open("wb") as sink:
            async for chunk in request.stream():
                await anyio.to_thread.run_sync(sink.write, chunk)
        outcomes = await run_in_threadpool(_import_spooled, registry, received, dry_run)
    finally:
        await anyio.to_thread.run_sync(shutil.rmtree, scratch, True)
    return JSONResponse({"outcomes": [o.to_dict() for o in outcomes]})


def _import_spooled(registry: Registry, path: Path, dry_run: bool) -> list[BundleOutcome]:
    outcomes: list[BundleOutcome] = []
    with path.open(encoding="utf-8") as lines:
        for number, raw in enumerate(lines, 1):
            if raw.strip():
                bundle = _bundle(raw, number)
                if isinstance(bundle, BundleOutcome):
                    outcomes.append(bundle)
                else:
                    outcomes += registry._import_bundles_checked([bundle], dry_run=dry_run)
    return outcomes


def _bundle(raw: str, number: int) -> ModelBundle | BundleOutcome:
    """A bundle of the body, or (unreadable) the outcome refusing it."""
    problem = "model and lines must be objects"
    try:
        data = json.loads(raw)
        model, lines, problems = data["model"], data["lines"], data.get("problems", [])
        if isinstance(model, dict) and isinstance(lines, dict):
            return ModelBundle(model, lines, [str(p) for p in problems])
    except (ValueError, KeyError, TypeError) as exc:
        problem = str(exc)
    counter = ReportCounter()
    counter.refuse(ImportConflict("lines", "?", f"bundle {number}", f"unreadable: {problem}"))
    counter.refused_models.append("?")
    return BundleOutcome(counter, [])


@router.post(
    "/import/edges",
    responses=_OBJECT,
    openapi_extra=json_body(
        {"lines": {"type": "array", "items": OBJECT}, "dry_run": {"type": "boolean"}},
        required=("lines",),
    ),
)
def import_edges(request: Request, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """Apply deferred lineage edges (``lines``), each with the cycle check; per line: null
    (imported), ``"skipped"``, or why it was refused."""
    fields = fields_of(body, allowed=("lines", "dry_run"), required=("lines",))
    lines, dry_run = fields["lines"], fields.get("dry_run", False)
    if not isinstance(lines, list) or not all(isinstance(line, dict) for line in lines):
        raise ValidationError.single("lines", "must be a list of lineage edge lines (objects)")
    if not isinstance(dry_run, bool):
        raise ValidationError.single("dry_run", "must be true or false")
    outcomes = registry_of(request)._import_edges_checked(lines, dry_run=dry_run)
    return JSONResponse({"outcomes": outcomes})


@router.get("/import/artifact-checksums", responses=_OBJECT)
def artifact_checksums(request: Request, model: str) -> JSONResponse:
    """The model's artifacts: ``[[version, type, file name, checksum], ...]``."""
    found = registry_of(request)._artifact_checksums_checked(model)
    return JSONResponse({"artifacts": [[*key, checksum] for key, checksum in found.items()]})
