"""Artifacts: streaming upload (a file, or a directory as tar), streaming download, verify, url.

An upload streams the request body to a temporary file on the server (bounded memory), then
``Registry.upload_artifact`` stores and records it. A download fetches the artifact, verified,
to a temporary file and serves it with its SHA-256 as the ETag and ``Range`` support; a
directory artifact comes as an uncompressed tar of its tree. The temporary files are
removed when the response is sent.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Body
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from crucible_model_registry.domain.records import Artifact
from crucible_model_registry.domain.storage_reports import ArtifactDeletion, GarbageReport
from crucible_model_registry.errors import RegistryError, ValidationError
from crucible_model_registry.server._openapi import (
    NULLABLE_STRING,
    json_body,
    returns,
    text_response,
)
from crucible_model_registry.server.routes._common import fields_of, ref, registry_of, reply
from crucible_model_registry.storage.base import check_artifact_name
from crucible_model_registry.storage.manifest import (
    MANIFEST_NAME,
    file_storage_path,
    is_directory_path,
)

__all__ = ["LAYOUT_HEADER", "router"]

router = APIRouter(prefix="/api/v1", tags=["artifacts"])


@dataclass(frozen=True)
class _Url:
    url: str


@dataclass(frozen=True)
class _Verified:
    ok: bool


LAYOUT_HEADER = "x-cmr-layout"
"""``file`` or ``tar``: how an upload's body or a download's content is laid out."""


@router.get("/artifacts/{artifact_id}", responses=returns(Artifact))
def get_artifact(request: Request, artifact_id: int) -> JSONResponse:
    """The artifact record."""
    return reply(registry_of(request).get_artifact(artifact_id))


@router.put(
    "/versions/{version:path}/artifacts/{artifact_type}",
    status_code=201,
    responses=returns(Artifact, status=201),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "application/x-tar": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def upload(
    request: Request,
    version: str,
    artifact_type: str,
    *,
    name: str,
    layout: Literal["file", "tar"] = "file",
    storage: str | None = None,
) -> JSONResponse:
    """Upload the body as the artifact ``name`` of ``version`` (``layout=tar``: a directory)."""
    registry = registry_of(request)
    scratch = Path(await anyio.to_thread.run_sync(tempfile.mkdtemp, None, "cmr-upload-"))
    consumed = False
    try:
        check_artifact_name(name)
        ref(version)
        received = scratch / "body"
        with received.open("wb") as sink:
            async for chunk in request.stream():
                await anyio.to_thread.run_sync(sink.write, chunk)
        consumed = True
        local = scratch / "upload" / name
        local.parent.mkdir()
        if layout == "tar":
            await anyio.to_thread.run_sync(_untar, received, local)
        else:
            received.rename(local)
        artifact = await run_in_threadpool(
            registry.upload_artifact, version, artifact_type, local, name=name, storage=storage
        )
    except RegistryError:
        if not consumed:
            # Read the rest of the body, so the client hears the error instead of a reset.
            async for _chunk in request.stream():
                pass
        raise
    finally:
        await anyio.to_thread.run_sync(shutil.rmtree, scratch, True)
    return reply(artifact, status=201)


@router.get(
    "/artifacts/{artifact_id}/content",
    response_class=Response,
    responses={
        **text_response("application/octet-stream", "application/x-tar"),
        **text_response("application/octet-stream", status=206, description="A byte range"),
    },
)
def download(request: Request, artifact_id: int, file: str | None = None) -> Response:
    """The artifact's bytes, verified; the ETag is their SHA-256; ``Range`` is served.

    A folder artifact: ``file`` is one of its files (as its manifest lists them), or
    ``cmr-manifest.json`` for the manifest; without ``file``, a tar of the whole tree.
    """
    registry = registry_of(request)
    record = registry.get_artifact(artifact_id)
    scratch = Path(tempfile.mkdtemp(prefix="cmr-download-"))
    cleanup = BackgroundTask(shutil.rmtree, scratch, True)
    etag = record.checksum
    try:
        if file is not None and is_directory_path(record.storage_path):
            expected = _expected_sha256(record, file)
            path = (
                record.storage_path + MANIFEST_NAME
                if file == MANIFEST_NAME
                else file_storage_path(record, file)
            )
            served = scratch / "file"
            registry.storage_backend(record.storage_backend).download(
                path, served, expected_sha256=expected
            )
            layout, media, etag = "file", "application/octet-stream", expected
        elif is_directory_path(record.storage_path):
            tree = registry.download_artifact(record, scratch / "tree")
            served = scratch / "artifact.tar"
            with tarfile.open(served, "w") as archive:
                for item in sorted(tree.rglob("*")):
                    archive.add(item, arcname=item.relative_to(tree).as_posix(), recursive=False)
            layout, media = "tar", "application/x-tar"
        else:
            file_storage_path(record, file)  # refuses file= for a single-file artifact
            served = registry.download_artifact(record, scratch / "artifact")
            layout, media = "file", "application/octet-stream"
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    response = FileResponse(served, media_type=media, background=cleanup)
    if etag:
        response.headers["etag"] = f'"{etag}"'
    response.headers[LAYOUT_HEADER] = layout
    return response


def _expected_sha256(record: Artifact, file: str) -> str | None:
    if file == MANIFEST_NAME:
        return record.checksum
    for entry in record.manifest or []:
        if entry.get("path") == file:
            return str(entry["sha256"])
    return None


@router.get("/artifacts/{artifact_id}/url", responses=returns(_Url))
def artifact_url(
    request: Request, artifact_id: int, expires_in: int = 3600, file: str | None = None
) -> JSONResponse:
    """``{"url"}``: where the artifact (or ``file`` of a folder) can be fetched from."""
    url = registry_of(request).artifact_url(artifact_id, expires_in=expires_in, file=file)
    return reply({"url": url})


@router.post("/artifacts/{artifact_id}/verify", responses=returns(_Verified))
def verify(request: Request, artifact_id: int) -> JSONResponse:
    """``{"ok": bool}``: do the stored bytes still match the recorded SHA-256?"""
    return reply({"ok": registry_of(request).verify_artifact(artifact_id)})


@router.delete("/artifacts/{artifact_id}", responses=returns(ArtifactDeletion))
def delete(request: Request, artifact_id: int, keep_bytes: bool = False) -> JSONResponse:
    """Delete the record, then its bytes unless kept; the answer says which (ArtifactDeletion)."""
    return reply(registry_of(request).delete_artifact(artifact_id, keep_bytes=keep_bytes))


@router.post(
    "/gc",
    responses=returns(GarbageReport),
    openapi_extra=json_body(
        {
            "dry_run": {"type": "boolean"},
            "older_than_seconds": {"type": "number", "minimum": 0},
            "storage": NULLABLE_STRING,
        }
    ),
)
def collect_garbage(request: Request, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """Remove stored bytes no record references (``dry_run``: only report them)."""
    fields = fields_of(body, allowed=("dry_run", "older_than_seconds", "storage"))
    seconds = fields.get("older_than_seconds", 24 * 3600)
    longest = timedelta.max.total_seconds()
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ValidationError.single("older_than_seconds", "must be a number >= 0")
    if not seconds <= longest:  # also NaN; timedelta() overflows past it
        raise ValidationError.single("older_than_seconds", f"must be at most {longest:.0f}")
    report = registry_of(request).collect_garbage(
        dry_run=fields.get("dry_run", False),
        older_than=timedelta(seconds=seconds),
        storage=fields.get("storage"),
    )
    return reply(report)


def _untar(archive: Path, dest: Path) -> None:
    dest.mkdir()
    try:
        with tarfile.open(archive, "r:") as tar:
            # The "data" filter refuses absolute paths, '..', links out of the tree and devices.
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ValidationError.single(
            "body", f"is not a readable tar of a directory: {exc}"
        ) from exc
