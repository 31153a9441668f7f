"""What deleting an artifact and collecting garbage did to stored bytes, as frozen records."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from crucible_model_registry.domain.records import Artifact, _Record

__all__ = ["ArtifactDeletion", "BackendRecords", "GarbageItem", "GarbageReport"]


@dataclasses.dataclass(frozen=True, slots=True)
class ArtifactDeletion(_Record):
    """An artifact's record is gone; what happened to its bytes.

    Attributes:
        artifact: the record as it was.
        bytes_deleted: whether its stored bytes were deleted.
        reason: why they were kept (None when deleted): ``keep_bytes`` (asked for),
            ``reference`` (registered by reference: the bytes are not this version's
            upload), ``shared`` (another artifact record references them).
        shared_with: the ids of the artifacts that still reference the bytes.
    """

    artifact: Artifact
    bytes_deleted: bool
    reason: str | None = None
    shared_with: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class GarbageItem(_Record):
    """Something stored that no record needs.

    Attributes:
        backend: the backend's name.
        path: its remote path, relative to the backend's root.
        kind: ``orphan`` (bytes no artifact references), ``temporary`` (a ``.cmr-tmp``
            left by an interrupted write) or ``incomplete_upload`` (an S3 multipart upload
            never completed).
        size_bytes: its size, where known.
        modified: when it was last written (an upload: started), where known.
    """

    backend: str
    path: str
    kind: str
    size_bytes: int | None
    modified: datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class GarbageReport(_Record):
    """What :meth:`Registry.collect_garbage` found and removed.

    Attributes:
        dry_run: True if nothing was removed (``items`` is what would have been).
        older_than_seconds: the age temporaries and incomplete uploads needed.
        items: the garbage removed (or, in a dry run, found).
        skipped_backends: backends that cannot list what they hold, with the reason.
        errors: items that could not be removed, with the reason (they stay).
    """

    dry_run: bool
    older_than_seconds: float
    items: list[GarbageItem]
    skipped_backends: list[str]
    errors: list[str]

    @property
    def size_bytes(self) -> int:
        """The total known size of ``items``."""
        return sum(item.size_bytes or 0 for item in self.items)


@dataclasses.dataclass(frozen=True, slots=True)
class BackendRecords:
    """One backend's recorded paths, read in one transaction.

    Attributes:
        storage_paths: every artifact record's storage path on the backend.
        claimed: every path a live upload (or deletion) holds a claim on.
        models: every model's name.
        blobs: the SHA-256 of every blob an artifact references or a live upload pins.
    """

    storage_paths: tuple[str, ...]
    claimed: tuple[str, ...]
    models: tuple[str, ...]
    blobs: tuple[str, ...] = ()
