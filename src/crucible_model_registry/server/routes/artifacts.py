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
from pathlib import Path
from typing import Literal

import anyio.to_thread
from fastapi import APIRouter
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from crucible_model_registry.errors import RegistryError, ValidationError
from crucible_model_registry.server.routes._common import ref, registry_of, reply
from crucible_model_registry.storage.base import check_artifact_name
from crucible_model_registry.storage.manifest import is_directory_path

__all__ = ["LAYOUT_HEADER", "router"]

router = APIRouter(tags=["artifacts"])

LAYOUT_HEADER = "x-cmr-layout"
"""``file`` or ``tar``: how an upload's body or a download's content is laid out."""


@router.get("/artifacts/{artifact_id}")
def get_artifact(request: Request, artifact_id: int) -> JSONResponse:
    """The artifact record."""
    return reply(registry_of(request).backend.get_artifact(artifact_id))


@router.put(
    "/versions/{version:path}/artifacts/{artifact_type}",
    status_code=201,
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


@router.get("/artifacts/{artifact_id}/content")
def download(request: Request, artifact_id: int) -> Response:
    """The artifact's bytes (a tar for a directory), verified; ETag is the SHA-256."""
    registry = registry_of(request)
    record = registry.backend.get_artifact(artifact_id)
    scratch = Path(tempfile.mkdtemp(prefix="cmr-download-"))
    cleanup = BackgroundTask(shutil.rmtree, scratch, True)
    try:
        if is_directory_path(record.storage_path):
            tree = registry.download_artifact(record, scratch / "tree")
            served = scratch / "artifact.tar"
            with tarfile.open(served, "w") as archive:
                for path in sorted(tree.rglob("*")):
                    archive.add(path, arcname=path.relative_to(tree).as_posix(), recursive=False)
            layout, media = "tar", "application/x-tar"
        else:
            served = registry.download_artifact(record, scratch / "artifact")
            layout, media = "file", "application/octet-stream"
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    response = FileResponse(served, media_type=media, background=cleanup)
    if record.checksum:
        response.headers["etag"] = f'"{record.checksum}"'
    response.headers[LAYOUT_HEADER] = layout
    return response


@router.get("/artifacts/{artifact_id}/url")
def artifact_url(request: Request, artifact_id: int, expires_in: int = 3600) -> JSONResponse:
    """``{"url"}``: where the artifact can be fetched from (presigned where supported)."""
    return reply({"url": registry_of(request).artifact_url(artifact_id, expires_in=expires_in)})


@router.post("/artifacts/{artifact_id}/verify")
def verify(request: Request, artifact_id: int) -> JSONResponse:
    """``{"ok": bool}``: do the stored bytes still match the recorded SHA-256?"""
    return reply({"ok": registry_of(request).verify_artifact(artifact_id)})


@router.delete("/artifacts/{artifact_id}", status_code=204)
def delete(request: Request, artifact_id: int, keep_bytes: bool = False) -> Response:
    """Delete the record, then (unless ``keep_bytes``) the stored bytes."""
    registry_of(request).delete_artifact(artifact_id, keep_bytes=keep_bytes)
    return Response(status_code=204)


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
