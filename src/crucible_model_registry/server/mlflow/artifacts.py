"""MLflow's artifact proxy (``/api/2.0/mlflow-artifacts/artifacts``) over our storage.

Two trees are served:

- ``cmr-versions/<id>/...``: a version's recorded artifacts, read-only. A version whose only
  artifact is a directory shows that directory's files at its root (an MLflow model folder
  with its ``MLmodel`` downloads as MLflow expects); otherwise each artifact is an entry
  named after its stored file or folder. Every file is checked against the SHA-256 the
  registry recorded before a byte of it is sent.
- anything else: files an MLflow client uploads (``PUT``), stored in the registry's default
  storage under ``mlflow-artifacts/<path>``, their SHA-256 stored beside them under
  ``mlflow-artifacts-sha256/<path>``; a download is checked against it the same way.
"""

from __future__ import annotations

import hashlib
import posixpath
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from crucible_model_registry.errors import NotFoundError, RegistryError, ValidationError
from crucible_model_registry.server.mlflow.convert import ARTIFACT_ROOT
from crucible_model_registry.storage.base import ListsStoredFiles, check_remote_path
from crucible_model_registry.storage.manifest import file_storage_path, is_directory_path

if TYPE_CHECKING:
    from crucible_model_registry.domain.records import Artifact
    from crucible_model_registry.registry import Registry

__all__ = ["UPLOAD_PREFIX", "download", "list_artifacts", "upload"]

UPLOAD_PREFIX = "mlflow-artifacts"
"""Where files uploaded through the proxy are stored in the default storage."""
DIGEST_PREFIX = "mlflow-artifacts-sha256"
"""Where each uploaded file's SHA-256 is stored (a small text object per file)."""


@dataclass(frozen=True, slots=True)
class _VersionFile:
    artifact: Artifact
    file: str | None  # the path inside a directory artifact; None for a file artifact
    size: int | None
    sha256: str | None


def _clean(path: str | None) -> str:
    """A relative ``/`` path without empty, ``.`` or ``..`` segments ('' for the root)."""
    text = (path or "").strip("/")
    return "" if text == "" else check_remote_path(text, field="path")


def _version_id(path: str) -> tuple[int, str] | None:
    parts = path.split("/", 2)
    if len(parts) < 2 or parts[0] != ARTIFACT_ROOT:
        return None
    if not parts[1].isdigit():
        raise NotFoundError("artifact", path)
    return int(parts[1]), parts[2] if len(parts) == 3 else ""


def _version_files(registry: Registry, version_id: int) -> dict[str, _VersionFile]:
    version = registry.get_version(version_id)
    artifacts = version.artifacts
    folders = [a for a in artifacts if is_directory_path(a.storage_path)]
    files: dict[str, _VersionFile] = {}
    if len(artifacts) == 1 and folders:
        for entry in folders[0].manifest or []:
            files[str(entry["path"])] = _VersionFile(
                folders[0], str(entry["path"]), entry.get("size"), entry.get("sha256")
            )
        return files
    for a in artifacts:
        name = posixpath.basename(a.storage_path.rstrip("/")) or f"artifact-{a.id}"
        if any(key == name or key.startswith(name + "/") for key in files):
            name = f"{a.id}-{name}"
        if is_directory_path(a.storage_path):
            for entry in a.manifest or []:
                files[f"{name}/{entry['path']}"] = _VersionFile(
                    a, str(entry["path"]), entry.get("size"), entry.get("sha256")
                )
        else:
            files[name] = _VersionFile(a, None, a.size_bytes, a.checksum)
    return files


def _listing(paths: dict[str, int | None], prefix: str) -> list[dict[str, Any]]:
    """The direct children of ``prefix`` among ``paths`` (file -> size), MLflow's shape."""
    below = prefix + "/" if prefix else ""
    entries: dict[str, dict[str, Any]] = {}
    for path, size in paths.items():
        if not path.startswith(below):
            continue
        head, _, rest = path[len(below) :].partition("/")
        if rest:
            entries.setdefault(head, {"path": head, "is_dir": True})
        else:
            entries[head] = {"path": head, "is_dir": False, "file_size": size or 0}
    return [entries[k] for k in sorted(entries)]


def list_artifacts(registry: Registry, path: str | None) -> dict[str, Any]:
    """MLflow's ``{"files": [...]}`` for the directory at ``path`` (a file lists nothing)."""
    clean = _clean(path)
    target = _version_id(clean)
    if target is not None:
        version_id, inside = target
        sizes = {p: f.size for p, f in _version_files(registry, version_id).items()}
        files = _listing(sizes, inside)
    elif clean == ARTIFACT_ROOT:
        files = []
    else:
        storage = registry.storage_backend()
        if not isinstance(storage, ListsStoredFiles):
            raise ValidationError.single(
                "path", f"the {storage.name} storage cannot list what it holds"
            )
        root = f"{UPLOAD_PREFIX}/"
        sizes = {
            item.path[len(root) :]: item.size_bytes
            for item in storage.list_stored()
            if item.kind == "file" and item.path.startswith(root)
        }
        files = _listing(sizes, clean)
    return {"files": files} if files else {}


def _fetch(registry: Registry, path: str, dest: Path) -> None:
    """Download the file at ``path`` to ``dest``, verified against its recorded SHA-256."""
    target = _version_id(path)
    if target is not None:
        version_id, inside = target
        found = _version_files(registry, version_id).get(inside)
        if found is None:
            raise NotFoundError("artifact", path, "list the version's files first")
        if found.file is None:
            registry.download_artifact(found.artifact, dest)
        else:
            storage = registry.storage_backend(found.artifact.storage_backend)
            storage.download(
                file_storage_path(found.artifact, found.file), dest, expected_sha256=found.sha256
            )
        return
    storage = registry.storage_backend()
    digest_file = dest.with_name(dest.name + ".sha256")
    try:
        storage.download(f"{DIGEST_PREFIX}/{path}", digest_file)
    except RegistryError:
        raise NotFoundError("artifact", path) from None
    expected = digest_file.read_text().strip()
    storage.download(f"{UPLOAD_PREFIX}/{path}", dest, expected_sha256=expected)


async def download(registry: Registry, path: str) -> Response:
    """The file at ``path``, verified before it is sent."""
    clean = _clean(path)
    scratch = Path(await anyio.to_thread.run_sync(tempfile.mkdtemp, None, "cmr-mlflow-"))
    try:
        served = scratch / "file"
        await run_in_threadpool(_fetch, registry, clean, served)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return FileResponse(
        served,
        media_type="application/octet-stream",
        background=BackgroundTask(shutil.rmtree, scratch, True),
    )


def _store(registry: Registry, path: str, local: Path, sha256: str) -> None:
    storage = registry.storage_backend()
    digest = local.with_name("digest")
    digest.write_text(sha256 + "\n")
    result = storage.upload(local, f"{UPLOAD_PREFIX}/{path}")
    if result.sha256 != sha256:
        raise ValidationError.single("body", "the stored bytes differ from those received")
    storage.upload(digest, f"{DIGEST_PREFIX}/{path}")


async def upload(registry: Registry, path: str, request: Request) -> JSONResponse:
    """Store the request body as the file at ``path`` (not inside ``cmr-versions``)."""
    consumed = False
    scratch = Path(await anyio.to_thread.run_sync(tempfile.mkdtemp, None, "cmr-mlflow-"))
    try:
        clean = _clean(path)
        if not clean or clean.split("/")[0] == ARTIFACT_ROOT:
            raise ValidationError.single(
                "path", f"{ARTIFACT_ROOT}/ holds registered versions' files: it is read-only"
            )
        received = scratch / "body"
        hasher = hashlib.sha256()
        with received.open("wb") as sink:
            async for chunk in request.stream():
                hasher.update(chunk)
                await anyio.to_thread.run_sync(sink.write, chunk)
        consumed = True
        await run_in_threadpool(_store, registry, clean, received, hasher.hexdigest())
    except RegistryError:
        if not consumed:
            async for _chunk in request.stream():
                pass
        raise
    finally:
        await anyio.to_thread.run_sync(shutil.rmtree, scratch, True)
    return JSONResponse({})
