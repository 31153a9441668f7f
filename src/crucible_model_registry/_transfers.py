"""Moving an artifact's bytes and keeping its record in step: upload, download, delete.

The steps that span the metadata backend (records, path claims) and a storage backend
(bytes), which are siblings that never import each other; ``Registry`` checks the arguments
and calls one function here. No transaction stays open while bytes move: claim the path,
move the bytes, record (or forget), give the claim back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crucible_model_registry import telemetry
from crucible_model_registry._blobs import (
    BlobUploads,
    artifact_blobs,
    content_addressed,
    release_unused,
)
from crucible_model_registry.domain.audit import Attribution
from crucible_model_registry.domain.enums import ArtifactType
from crucible_model_registry.domain.records import Artifact, ModelVersion
from crucible_model_registry.domain.specs import ArtifactSpec
from crucible_model_registry.domain.storage_reports import (
    ArtifactDeletion,
    GarbageItem,
    GarbageReport,
)
from crucible_model_registry.errors import RegistryError
from crucible_model_registry.storage.base import ListsStoredFiles
from crucible_model_registry.storage.garbage import (
    KeptPaths,
    find_garbage,
    overlaps,
    remote_path_of,
)
from crucible_model_registry.storage.manifest import (
    MANIFEST_NAME,
    DirectoryTransferResult,
    delete_artifact_files,
    download_artifact_files,
    is_directory_path,
    upload_artifact_files,
)

if TYPE_CHECKING:
    from crucible_model_registry.backends.base import MetadataBackend, UploadClaim
    from crucible_model_registry.storage.base import (
        ProgressCallback,
        StorageBackend,
        StoredItem,
        TransferResult,
    )

__all__ = ["collect_garbage", "delete", "download", "forget", "upload"]

_log = logging.getLogger("crucible_model_registry")


def upload(
    metadata: MetadataBackend,
    backend: StorageBackend,
    version: ModelVersion,
    *,
    kind: ArtifactType,
    local: Path,
    remote: str,
    progress: ProgressCallback | None = None,
    by: Attribution,
) -> Artifact:
    """Upload ``local`` to ``remote`` and record it as an artifact of ``version``.

    Raises:
        ValidationError: the version already has an artifact there, or another upload to
            it is under way; nothing was sent.
        NotFoundError: the version was deleted meanwhile; the bytes were deleted again.
        StorageError: the backend failed; nothing is recorded.
    """
    claim = metadata.claim_upload(version.id, backend.name, remote, ref=version.ref)
    recorded = False
    store = content_addressed(backend)
    blobs = None if store is None else BlobUploads(metadata, store, claim, backend.name)
    try:
        with (
            metadata.keep_claim_alive(claim),
            telemetry.operation(
                "upload", model=version.model_name, version=version.version, backend=backend.name
            ) as op,
        ):
            result = upload_artifact_files(
                backend,
                local,
                remote,
                progress=progress,
                upload_file=None if blobs is None else blobs.upload_file,
            )
            op.measurements["size_bytes"] = result.size_bytes
            if blobs is not None:
                op.measurements["reused_bytes"] = blobs.reused_bytes
            spec = ArtifactSpec(
                type=kind,
                storage_backend=backend.name,
                storage_path=result.storage_path,
                checksum=result.sha256,
                size_bytes=result.size_bytes,
                manifest=_manifest_rows(result),
                blobs=()
                if blobs is None
                else tuple((sha, size, probe) for sha, (size, probe) in blobs.blobs.items()),
            )
            try:
                artifact = metadata.add_artifact(version.id, spec, claim=claim, by=by)
                recorded = True
            except BaseException:
                # Nothing may stay stored that no record points to, but only a path this
                # upload still holds is its own: after a lost claim the bytes there may be
                # another upload's (issue 14).
                if _still_holds(metadata, claim):
                    _delete_quietly(backend, result.storage_path)
                raise
    finally:
        if not recorded:
            _release_quietly(metadata, claim)
            if blobs is not None:  # after the release: the upload's own pins are gone
                release_unused(metadata, backend, blobs.blobs)
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
    metadata: MetadataBackend,
    backend: StorageBackend,
    artifact: Artifact,
    version: ModelVersion,
    *,
    by: Attribution,
) -> ArtifactDeletion:
    """Delete ``artifact``'s record, then its bytes if they are its own and nobody else's.

    Bytes are deleted only when they are this version's own upload (at its layout path
    ``<model>/<version>/<type>/<name>``) and no other artifact record references them (the
    same path, a file inside this folder, or a folder holding this file): deleting an
    artifact registered by reference, or one whose bytes another record shares, removes
    the record only (issue 14, item 4). The path is held (claimed) from the record's
    removal until the bytes are gone, so no upload to it can start in between.

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
    name = path.rstrip("/").rsplit("/", 1)[-1]
    remote = f"{version.model_name}/{version.version}/{artifact.type.value}/{name}"
    mine = remote_path_of(backend, path)
    if mine is None or mine.rstrip("/") != remote:
        # Registered by reference: the bytes are not this version's upload.
        metadata.remove_artifact(artifact.id, by=by)
        return ArtifactDeletion(artifact, bytes_deleted=False, reason="reference")
    # Hold the path, as an upload does, until its bytes are gone: an upload to it that
    # started in between would otherwise lose its bytes to this deletion. The key is the
    # path an upload of it claimed (the layout of storage.base.artifact_remote_path).
    claim = metadata.new_claim(backend.name, remote)
    metadata.remove_artifact(artifact.id, claim=claim, by=by)
    try:
        with metadata.keep_claim_alive(claim):
            # Read after the record is gone: a record that shares the bytes is found whether
            # it was registered before or while this one was removed.
            shared = _sharing(metadata, backend, mine, excluding=artifact.id)
            if shared:
                return ArtifactDeletion(
                    artifact, bytes_deleted=False, reason="shared", shared_with=shared
                )
            delete_artifact_files(backend, path)
    finally:
        _release_quietly(metadata, claim)
    # The record's references went with it: its blobs go too unless another record
    # references them or an upload has pinned them meanwhile (_blobs.py).
    release_unused(metadata, backend, artifact_blobs(artifact))
    return ArtifactDeletion(artifact, bytes_deleted=True)


def forget(metadata: MetadataBackend, artifact: Artifact, *, by: Attribution) -> ArtifactDeletion:
    """Delete ``artifact``'s record only; its bytes stay where they are.

    Raises:
        NotFoundError: the record is already gone.
    """
    metadata.remove_artifact(artifact.id, by=by)
    return ArtifactDeletion(artifact, bytes_deleted=False, reason="keep_bytes")


def _sharing(
    metadata: MetadataBackend, backend: StorageBackend, mine: str, *, excluding: int
) -> list[int]:
    """The other artifact records on ``backend`` whose bytes overlap the remote path ``mine``."""
    candidates = metadata.artifacts_sharing(backend.name, mine.rstrip("/"), excluding=excluding)
    shared = []
    for artifact_id, storage_path in candidates:
        theirs = remote_path_of(backend, storage_path)
        if theirs is not None and overlaps(mine, theirs):
            shared.append(artifact_id)
    return sorted(shared)


_RECHECK_BATCH = 100


def collect_garbage(
    metadata: MetadataBackend,
    backends: Sequence[StorageBackend],
    *,
    dry_run: bool,
    older_than: timedelta,
    by: Attribution,
) -> GarbageReport:
    """Find, and unless ``dry_run`` remove, what no record needs on each backend.

    See ``storage/garbage.py`` for what counts as garbage. Each backend is listed first and
    its records read afterwards, so an upload that finished during the listing is seen as
    recorded; before removing, the records are read again (every ``_RECHECK_BATCH`` items),
    so anything recorded or claimed meanwhile stays. What was removed is recorded in one
    audit entry (``collect_garbage``) afterwards: bytes have no transaction to share.
    """
    started = datetime.now(UTC)
    cutoff = started - older_than
    items: list[GarbageItem] = []
    skipped: list[str] = []
    errors: list[str] = []
    for backend in backends:
        if not isinstance(backend, ListsStoredFiles):
            skipped.append(f"{backend.name}: it cannot list what it holds")
            continue
        try:
            listing = list(backend.list_stored())
            found = find_garbage(
                listing, _kept(metadata, backend.name, backend), cutoff=cutoff, started=started
            )
        except RegistryError as exc:
            errors.append(f"{backend.name}: {exc}")
            continue
        for start in range(0, len(found), _RECHECK_BATCH):
            batch = found[start : start + _RECHECK_BATCH]
            if not dry_run:
                batch = find_garbage(
                    batch, _kept(metadata, backend.name, backend), cutoff=cutoff, started=started
                )
            for item in batch:
                if not dry_run:
                    try:
                        backend.remove_stored(item)
                    except RegistryError as exc:
                        errors.append(f"{backend.name}: {item.path}: {exc}")
                        continue
                items.append(_garbage_item(backend.name, item))
    if items and not dry_run:
        _audit_removal(metadata, backends, items, errors, by)
    return GarbageReport(
        dry_run=dry_run,
        older_than_seconds=older_than.total_seconds(),
        items=items,
        skipped_backends=skipped,
        errors=errors,
    )


_AUDITED_ITEMS = 1000  # paths listed in the entry; the counts cover the rest


def _audit_removal(
    metadata: MetadataBackend,
    backends: Sequence[StorageBackend],
    items: list[GarbageItem],
    errors: list[str],
    by: Attribution,
) -> None:
    details = {
        "removed": len(items),
        "size_bytes": sum(item.size_bytes or 0 for item in items),
        "items": [
            {"backend": i.backend, "path": i.path, "kind": i.kind} for i in items[:_AUDITED_ITEMS]
        ],
        "errors": len(errors),
    }
    metadata.record_audit(
        actor=by.actor,
        action="collect_garbage",
        target=",".join(sorted({item.backend for item in items})),
        details=details,
        request_id=by.request_id,
    )


def _kept(metadata: MetadataBackend, name: str, backend: ListsStoredFiles) -> KeptPaths:
    records = metadata.backend_records(name)
    return KeptPaths.from_records(
        backend, records.storage_paths, records.claimed, records.models, records.blobs
    )


def _garbage_item(backend: str, item: StoredItem) -> GarbageItem:
    kind = "orphan" if item.kind == "file" else item.kind
    return GarbageItem(backend, item.path, kind, item.size_bytes, item.modified)


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


def _still_holds(metadata: MetadataBackend, claim: UploadClaim) -> bool:
    try:
        return metadata.holds_claim(claim)
    except Exception:  # unsure whose the bytes are: leave them (gc finds orphans)
        _log.exception("could not check the upload claim %r", claim)
        return False


def _release_quietly(metadata: MetadataBackend, claim: UploadClaim) -> None:
    try:
        metadata.release_upload(claim)
    except Exception:  # the error that failed the operation is the one to report
        _log.exception(
            "could not release the upload claim %r; the next upload there takes it over "
            "when its lease runs out",
            claim,
        )
