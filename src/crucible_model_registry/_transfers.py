"""Moving an artifact's bytes and keeping its record in step: upload, download, delete.

The steps that span the store (records, path claims) and a storage backend (bytes), which
are siblings that never import each other; ``Registry`` checks the arguments and calls one
function here. No transaction stays open while bytes move: claim the path, move the bytes,
record (or forget), give the claim back.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crucible_model_registry import store, telemetry
from crucible_model_registry.domain.enums import ArtifactType
from crucible_model_registry.domain.records import Artifact, ModelVersion
from crucible_model_registry.domain.specs import ArtifactSpec
from crucible_model_registry.storage.manifest import (
    MANIFEST_NAME,
    DirectoryTransferResult,
    delete_artifact_files,
    download_artifact_files,
    is_directory_path,
    upload_artifact_files,
)

if TYPE_CHECKING:
    from crucible_model_registry.storage.base import (
        ProgressCallback,
        StorageBackend,
        TransferResult,
    )
    from crucible_model_registry.store.artifacts import UploadClaim
    from crucible_model_registry.store.engine import Database

__all__ = ["delete", "download", "upload"]

_log = logging.getLogger("crucible_model_registry")


def upload(
    db: Database,
    backend: StorageBackend,
    version: ModelVersion,
    *,
    kind: ArtifactType,
    local: Path,
    remote: str,
    progress: ProgressCallback | None = None,
) -> Artifact:
    """Upload ``local`` to ``remote`` and record it as an artifact of ``version``.

    Raises:
        ValidationError: the version already has an artifact there, or another upload to
            it is under way; nothing was sent.
        NotFoundError: the version was deleted meanwhile; the bytes were deleted again.
        StorageError: the backend failed; nothing is recorded.
    """
    claim = store.artifacts.claim_upload(db, version.id, backend.name, remote, ref=version.ref)
    recorded = False
    try:
        with (
            store.artifacts.keep_claim_alive(db, claim),
            telemetry.operation(
                "upload", model=version.model_name, version=version.version, backend=backend.name
            ) as op,
        ):
            result = upload_artifact_files(backend, local, remote, progress=progress)
            op.measurements["size_bytes"] = result.size_bytes
            spec = ArtifactSpec(
                type=kind,
                storage_backend=backend.name,
                storage_path=result.storage_path,
                checksum=result.sha256,
                size_bytes=result.size_bytes,
                manifest=_manifest_rows(result),
            )
            try:
                artifact = store.artifacts.add_artifact(db, version.id, spec, claim=claim)
                recorded = True
            except BaseException:
                # Nothing may stay stored that no record points to, but only a path this
                # upload still holds is its own: after a lost claim the bytes there may be
                # another upload's (issue 14).
                if _still_holds(db, claim):
                    _delete_quietly(backend, result.storage_path)
                raise
    finally:
        if not recorded:
            _release_quietly(db, claim)
    return artifact


def download(
    backend: StorageBackend,
    artifact: Artifact,
    version: ModelVersion,
    target: Path,
    *,
    overwrite: bool = False,
    parents: bool = False,
    progress: ProgressCallback | None = None,
) -> None:
    """Download ``artifact`` to ``target``, verified against its recorded SHA-256.

    Nothing that is not the artifact's is removed (``storage/_placing.py``).

    Raises:
        ValidationError: something is in the way at ``target`` (see ``download_artifact``).
        ChecksumMismatchError: the stored bytes are corrupt; ``target`` is untouched.
        StorageError: the backend failed or the bytes are gone.
    """
    with telemetry.operation(
        "download",
        model=version.model_name,
        version=version.version,
        backend=backend.name,
        artifact_id=artifact.id,
        type=artifact.type.value,
    ) as op:
        result = download_artifact_files(
            backend,
            artifact.storage_path,
            target,
            expected_sha256=artifact.checksum,
            progress=progress,
            overwrite=overwrite,
            parents=parents,
        )
        op.measurements["size_bytes"] = result.size_bytes


def delete(
    db: Database, backend: StorageBackend, artifact: Artifact, version: ModelVersion
) -> None:
    """Delete ``artifact``'s record, then its bytes, holding its path in between.

    Raises:
        ValidationError: the path leaves the backend's root, or an upload to it is under
            way; nothing is deleted.
        NotFoundError: the record is already gone.
        StorageError: the backend failed (the record is gone by then).
    """
    path = artifact.storage_path
    # The backend checks the path first: one that leaves its root (a reference registered
    # by hand) raises ValidationError while the record still exists.
    backend.exists(path + MANIFEST_NAME if is_directory_path(path) else path)
    # Hold the path, as an upload does, until its bytes are gone: an upload to it that
    # started in between would otherwise lose its bytes to this deletion. The key is the
    # path an upload of it claimed (the layout of storage.base.artifact_remote_path).
    name = path.rstrip("/").rsplit("/", 1)[-1]
    remote = f"{version.model_name}/{version.version}/{artifact.type.value}/{name}"
    claim = store.artifacts.new_claim(backend.name, remote)
    store.artifacts.remove_artifact(db, artifact.id, claim=claim)
    try:
        with store.artifacts.keep_claim_alive(db, claim):
            delete_artifact_files(backend, path)
    finally:
        _release_quietly(db, claim)


def _manifest_rows(result: TransferResult) -> list[dict[str, Any]] | None:
    if not isinstance(result, DirectoryTransferResult):
        return None
    return [
        {"path": e.path, "size_bytes": e.size_bytes, "sha256": e.sha256}
        for e in result.manifest.files
    ]


def _delete_quietly(backend: StorageBackend, storage_path: str) -> None:
    try:
        delete_artifact_files(backend, storage_path)
    except Exception:  # cleanup must not hide the error that caused it
        _log.exception(
            "could not delete %s from %s after a failed record", storage_path, backend.name
        )


def _still_holds(db: Database, claim: UploadClaim) -> bool:
    try:
        return store.artifacts.holds_claim(db, claim)
    except Exception:  # unsure whose the bytes are: leave them (gc finds orphans)
        _log.exception("could not check the claim on %s", claim.remote)
        return False


def _release_quietly(db: Database, claim: UploadClaim) -> None:
    try:
        store.artifacts.release_upload(db, claim)
    except Exception:  # the error that failed the operation is the one to report
        _log.exception(
            "could not release the claim on %s in %s; the next upload there takes it over "
            "when its lease runs out",
            claim.remote,
            claim.backend,
        )
