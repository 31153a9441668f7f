"""Content-addressed artifact bytes: reuse a stored blob instead of sending a file again.

A storage backend that keeps blobs (``storage.base.StoresBlobs``: local disk, S3 when
asked) holds each file's bytes once under their SHA-256; the records keep their human
paths and count references to blobs (``cmr_blob_refs``, migration 0007). This module is
the part of an upload, a deletion and a collection that spans both sides (issue 21, item 4).

Why it is safe, whatever runs at the same time:

- An artifact's own path is always a complete, verified file: either the upload's bytes
  (hashed as they were sent) or a link/copy of a blob, whose name is its content's hash
  and which is only ever made from such a verified file. So a blob that vanishes at the
  wrong moment costs a transfer, never an artifact's bytes: ``link_blob`` then says
  "absent" and the file is uploaded instead. On local disk a hard link, once made, keeps
  the bytes whatever happens to the blob's name.
- A blob is removed only when no record references it and no live upload pins it. An
  upload pins a blob (under its leased claim) before it looks for it or makes it; the
  record that turns the pin into a reference is written in the transaction that gives
  the claim back. Deletion and gc read references and pins after the fact, so at worst
  they race a pin that was written after their read, and the upload then re-creates the
  blob (the first point).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from crucible_model_registry.errors import RegistryError, ValidationError
from crucible_model_registry.storage._streaming import hash_file, probe_file
from crucible_model_registry.storage.base import StoresBlobs

if TYPE_CHECKING:
    from crucible_model_registry.backends.base import MetadataBackend, UploadClaim
    from crucible_model_registry.domain.records import Artifact
    from crucible_model_registry.storage.base import (
        ProgressCallback,
        StorageBackend,
        TransferResult,
    )

__all__ = ["BlobUploads", "artifact_blobs", "content_addressed", "release_unused"]

_log = logging.getLogger("crucible_model_registry")


def content_addressed(backend: StorageBackend) -> StoresBlobs | None:
    """The backend as a blob store, if it is one and keeps blobs; else None."""
    if isinstance(backend, StoresBlobs) and backend.content_addressed:
        return backend
    return None


class BlobUploads:
    """Uploads one artifact's files through the blob store, under the artifact's claim.

    Use :meth:`upload_file` for each file; afterwards :attr:`blobs` lists the references
    to record, and :attr:`reused_bytes` what was not sent.
    """

    def __init__(
        self, metadata: MetadataBackend, backend: StoresBlobs, claim: UploadClaim, name: str
    ) -> None:
        self._metadata = metadata
        self._backend = backend
        self._claim = claim
        self._name = name
        self.blobs: dict[str, tuple[int, str]] = {}  # sha256 -> (size, probe)
        self.reused_bytes = 0

    def upload_file(
        self, local: str | os.PathLike[str], remote: str, progress: ProgressCallback | None
    ) -> TransferResult:
        """Store ``local`` at ``remote``: a link to its blob if there is one, else an upload.

        A file is hashed before anything is sent only if a blob of its size and probe
        (``probe_file``: 16 small blocks) exists on the backend, the records say: otherwise
        it cannot be a stored one, and it goes out in one pass, hashed on the way.
        """
        backend = self._backend
        size = Path(local).stat().st_size
        probe = probe_file(local)
        if self._metadata.blob_candidates(self._name, size, probe):
            hashed_size, sha256 = hash_file(local)
            self._pin(sha256)
            linked = backend.link_blob(sha256, remote, size_bytes=hashed_size)
            if linked is not None:
                self.blobs[sha256] = (hashed_size, probe)
                self.reused_bytes += hashed_size
                if progress is not None:
                    progress(hashed_size)
                return linked
        result = backend.upload(local, remote, progress=progress)
        self._pin(result.sha256)
        try:
            backend.adopt_blob(remote, result.sha256)
        except RegistryError as exc:  # the artifact is complete without it; dedup waits
            _log.warning("stored %s, but could not keep its bytes as a blob: %s", remote, exc)
            return result
        self.blobs[result.sha256] = (result.size_bytes, probe)
        return result

    def _pin(self, sha256: str) -> None:
        if not self._metadata.pin_blob(self._claim, sha256):
            # The claim expired: recording would refuse; make no blob that nobody pins.
            raise ValidationError.single(
                "path",
                "the upload's claim on its path expired before it finished (it was not "
                "renewed in time); upload again",
            )


def artifact_blobs(artifact: Artifact) -> set[str]:
    """The SHA-256 of every file of ``artifact`` (a blob each may be)."""
    if artifact.manifest is not None:
        return {str(entry["sha256"]) for entry in artifact.manifest}
    return {artifact.checksum} if artifact.checksum else set()


def release_unused(metadata: MetadataBackend, backend: StorageBackend, shas: Iterable[str]) -> None:
    """Remove the blobs among ``shas`` that no record references and no upload pins.

    Best effort: a blob left behind is found by the next ``collect_garbage``.
    """
    store = content_addressed(backend)
    if store is None:
        return
    for sha256 in sorted(shas):
        try:
            if not metadata.blob_in_use(backend.name, sha256):
                store.delete_blob(sha256)
        except Exception:  # cleanup must not hide the result or error it follows
            _log.exception("could not remove the unused blob %s from %s", sha256, backend.name)
