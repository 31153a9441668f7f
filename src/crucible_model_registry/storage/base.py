"""The StorageBackend protocol every backend conforms to, its result type and remote-path rules.

A backend moves the bytes of one file at a time between a local path and a *remote path*:
a ``/``-separated path relative to the backend's root (``llama/1.0.0/checkpoint/model.bin``).
Directories are built on top of these file operations by
:mod:`crucible_model_registry.storage.manifest`, generically for every backend; a backend
that can also store or remove several files in one atomic step (a Hub commit) says so by
conforming to :class:`CommitsFilesTogether`, and directories then use that step.

Rules every backend keeps:

- Remote paths are checked with :func:`check_remote_path` (or its own recorded form, see
  :attr:`TransferResult.storage_path`); nothing can escape the backend's root: ``..``,
  absolute paths and (on local disk) symlinks raise ``ValidationError`` before any I/O.
- Bytes stream in bounded memory; SHA-256 and size come from the same pass as the transfer.
- A download is written to a temporary file beside ``local_path``, checked against
  ``expected_sha256`` (``ChecksumMismatchError`` otherwise, the destination untouched) and
  only then renamed into place.
- ``delete`` of an absent path is a no-op; ``download`` of an absent path raises
  ``StorageError``; SDK and OS failures become ``StorageError(backend=name)`` with no
  credentials in the message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from crucible_model_registry.errors import ValidationError

__all__ = [
    "BLOB_ROOT",
    "DEFAULT_URL_EXPIRY",
    "TEMPORARY_SUFFIX",
    "CommitsFilesTogether",
    "FileList",
    "HashesStoredFiles",
    "ListsStoredFiles",
    "ProgressCallback",
    "StorageBackend",
    "StoredItem",
    "StoresBlobs",
    "TransferResult",
    "artifact_remote_path",
    "blob_path",
    "blob_sha256",
    "check_artifact_name",
    "check_remote_path",
]

DEFAULT_URL_EXPIRY = 3600

TEMPORARY_SUFFIX = ".cmr-tmp"
"""Ends the name of every temporary file or directory the registry creates while writing."""

BLOB_ROOT = ".cmr-blobs/sha256"
"""Where content-addressed bytes live under a backend's root (``StoresBlobs``). Model names
start with a letter or digit, so no artifact's layout path can fall inside it."""

ProgressCallback = Callable[[int], None]
"""Called with the number of bytes moved since the previous call (an increment, not a total)."""

# Control characters and backslashes never belong in a remote path: a backslash is a
# separator on Windows and would let "a\\..\\..\\x" slip past a "/"-only check.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\]")
_MAX_REMOTE_PATH = 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class TransferResult:
    """What one upload or download moved.

    Attributes:
        storage_path: the path to record for the artifact; passing it back to the same
            backend's ``download``/``exists``/``delete``/``url`` finds the same bytes. It
            may be the remote path itself or a backend URI (``s3://bucket/prefix/...``),
            but it must end with the remote path, so that a directory's storage path
            (which ends with ``/``, see ``manifest.py``) joined with a relative file path
            is that file's storage path.
        size_bytes: bytes moved (for a directory, the sum over its files).
        sha256: lowercase hex SHA-256 of the bytes moved (for a directory, of its manifest).
    """

    storage_path: str
    size_bytes: int
    sha256: str


@runtime_checkable
class StorageBackend(Protocol):
    """Moves artifact bytes between local files and one storage root.

    Implementations conform structurally; no base class is needed. Third-party backends
    publish a factory under the entry-point group ``crucible_model_registry.storage``.
    """

    @property
    def name(self) -> str:
        """The settings name: ``local``, ``s3``, ``huggingface``, ``noop`` or the plugin's."""
        ...

    def upload(
        self,
        local_path: str | os.PathLike[str],
        remote_path: str,
        *,
        progress: ProgressCallback | None = None,
    ) -> TransferResult:
        """Store the file at ``local_path`` under ``remote_path``, replacing what was there.

        Args:
            local_path: a regular file (symlinks are followed).
            remote_path: where to store it, relative to the backend's root.
            progress: called with byte increments as the transfer advances.

        Returns:
            The path to record, the size and the SHA-256 of the bytes sent.

        Raises:
            ValidationError: ``local_path`` is not a file or ``remote_path`` escapes the root.
            StorageError: the backend failed; nothing is left visible at ``remote_path``.
        """
        ...

    def download(
        self,
        remote_path: str,
        local_path: str | os.PathLike[str],
        *,
        expected_sha256: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> TransferResult:
        """Fetch ``remote_path`` into the file ``local_path`` (parents are created).

        Args:
            remote_path: a path relative to the root, or a ``storage_path`` this backend returned.
            local_path: the destination file; replaced atomically, only after verification.
            expected_sha256: if given, the bytes must hash to it.
            progress: called with byte increments as the transfer advances.

        Returns:
            The storage path, the size and the SHA-256 of the bytes received.

        Raises:
            ValidationError: ``remote_path`` escapes the root.
            ChecksumMismatchError: the bytes do not match ``expected_sha256``; the
                destination is untouched.
            StorageError: the path is absent or the backend failed.
        """
        ...

    def delete(self, remote_path: str) -> None:
        """Remove ``remote_path``; an absent path is not an error."""
        ...

    def exists(self, remote_path: str) -> bool:
        """Is there a file stored at ``remote_path``?"""
        ...

    def url(self, remote_path: str, *, expires_in: int = DEFAULT_URL_EXPIRY) -> str:
        """A URL from which ``remote_path`` can be fetched (presigned where the backend can).

        Args:
            remote_path: the stored file.
            expires_in: seconds the URL stays valid, where the backend supports expiry.
        """
        ...


FileList = Sequence[tuple[str | os.PathLike[str], str]]
"""(local path, remote path) pairs."""


@runtime_checkable
class CommitsFilesTogether(Protocol):
    """A backend that stores, or removes, several files in one atomic step.

    Directory artifacts use it where a backend offers it: on the Hugging Face Hub a sharded
    checkpoint becomes one commit, not one per file, and is stored whole or not at all.
    """

    def upload_together(
        self,
        files: FileList,
        *,
        then: Callable[[list[TransferResult]], FileList] | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[TransferResult]:
        """Store ``files`` and the files ``then`` names, all in one step, or none of them.

        Args:
            files: what to store.
            then: called with the results for ``files`` (their sizes and SHA-256) before
                anything is sent; returns more files for the same step (a manifest of them).
            progress: called with byte increments as the transfer advances.

        Returns:
            A result per file, in order: ``files``, then what ``then`` returned.

        Raises:
            ValidationError: a local path is not a file, or a remote path escapes the root.
            StorageError: the backend failed; none of the files is visible.
        """
        ...

    def delete_folder(self, remote_path: str) -> None:
        """Remove everything under the folder ``remote_path`` in one step; absent is a no-op."""
        ...


@dataclass(frozen=True, slots=True)
class StoredItem:
    """Something a backend holds, as :class:`ListsStoredFiles` lists it for garbage collection.

    Attributes:
        path: the remote path, relative to the backend's root.
        kind: ``file`` (stored bytes), ``temporary`` (a ``.cmr-tmp`` file a write left
            behind, e.g. when its process was killed) or ``incomplete_upload`` (an S3
            multipart upload never completed nor aborted).
        size_bytes: its size, where the backend knows it.
        modified: when it was last written (an incomplete upload: when it started), UTC;
            None where the backend does not say.
        upload_id: the multipart upload's id (``incomplete_upload`` only).
    """

    path: str
    kind: Literal["file", "temporary", "incomplete_upload"]
    size_bytes: int | None
    modified: datetime | None
    upload_id: str | None = None


@runtime_checkable
class ListsStoredFiles(Protocol):
    """A backend that can list what it holds, so that ``collect_garbage`` can find orphans.

    Optional: backends without it are skipped by garbage collection (and say so).
    """

    def list_stored(self) -> Iterator[StoredItem]:
        """Everything under the backend's root: files, temporaries, incomplete uploads."""
        ...

    def remove_stored(self, item: StoredItem) -> None:
        """Remove one listed item (delete the file, abort the upload); absent is a no-op."""
        ...

    def relative_path(self, storage_path: str) -> str:
        """The remote path a recorded ``storage_path`` names (a directory's keeps its ``/``).

        Raises:
            ValidationError: it is not inside this backend's root.
        """
        ...


@runtime_checkable
class HashesStoredFiles(Protocol):
    """A backend that can hash a stored file where it lies, so ``verify`` writes nothing.

    Optional: ``verify_artifact`` downloads to a scratch directory on backends without it.
    """

    def hash_stored(
        self, remote_path: str, *, progress: ProgressCallback | None = None
    ) -> TransferResult:
        """Size and SHA-256 of the stored file (StorageError if it is absent)."""
        ...


@runtime_checkable
class StoresBlobs(StorageBackend, Protocol):
    """A backend that keeps each file's bytes once, under their SHA-256 (issue 21, item 4).

    The bytes of every file uploaded are also kept at ``blob_path(sha256)``; an artifact's
    own path (``<model>/<version>/<type>/<name>``, what records and manifests name) is then
    made from that copy without sending the bytes again: a hard link on local disk (the
    bytes are stored once), a server-side copy on S3 (the transfer is skipped; S3 has no
    links, so the object is stored again). A blob's key is its content's hash and it is
    only ever made from bytes that were verified on upload, so a blob never holds other
    bytes than its name says; when it is missing, the caller simply uploads.

    Which blobs may be removed is the registry's decision (reference counts in the
    records); the backend only moves bytes.
    """

    @property
    def content_addressed(self) -> bool:
        """Whether this backend instance keeps blobs (an option; off: plain paths only)."""
        ...

    def link_blob(self, sha256: str, remote_path: str, *, size_bytes: int) -> TransferResult | None:
        """Make ``remote_path`` hold the blob's bytes without sending them.

        Atomic like an upload: ``remote_path`` shows the old bytes or the new, never a mix.

        Returns:
            The result an upload of those bytes would have given, or None when there is
            no blob of that hash and size (nothing was changed then).
        """
        ...

    def adopt_blob(self, remote_path: str, sha256: str) -> None:
        """Keep the file just stored at ``remote_path`` (bytes of ``sha256``) as its blob.

        A no-op if the blob is there already. The caller guarantees the file's hash.
        """
        ...

    def delete_blob(self, sha256: str) -> None:
        """Remove the blob; an absent one is not an error."""
        ...


def blob_path(sha256: str) -> str:
    """The remote path of the blob of ``sha256`` (lowercase hex)."""
    if not _HEX64.fullmatch(sha256):
        raise ValidationError.single("sha256", "must be 64 lowercase hexadecimal digits")
    return f"{BLOB_ROOT}/{sha256[:2]}/{sha256}"


def blob_sha256(path: str) -> str | None:
    """The hash a remote path names if it is a blob's (``blob_path``), else None."""
    prefix, _, name = path.rpartition("/")
    if prefix != f"{BLOB_ROOT}/{name[:2]}" or not _HEX64.fullmatch(name):
        return None
    return name


def check_remote_path(path: object, *, field: str = "remote_path") -> str:
    """Validate a remote path and return it in normal form (``/``-separated, relative).

    Raises:
        ValidationError: the path is empty, absolute, holds ``.``/``..``/empty segments,
            backslashes or control characters, or is longer than 1024 characters.
    """
    if not isinstance(path, str) or not path:
        raise ValidationError.single(field, "must be a non-empty string")
    if len(path) > _MAX_REMOTE_PATH:
        raise ValidationError.single(field, f"is longer than {_MAX_REMOTE_PATH} characters")
    if _FORBIDDEN.search(path):
        raise ValidationError.single(field, "may not contain backslashes or control characters")
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        raise ValidationError.single(field, f"{path!r} must be relative to the storage root")
    segments = path.split("/")
    if any(seg in ("", ".", "..") for seg in segments):
        raise ValidationError.single(
            field, f"{path!r} may not contain empty, '.' or '..' segments (it would leave the root)"
        )
    return path


def check_artifact_name(name: object) -> str:
    """An artifact's stored name: one path segment that stays inside the storage root.

    Raises:
        ValidationError: the name holds ``/``, is ``.``/``..``, or breaks :func:`check_remote_path`.
    """
    if isinstance(name, str) and "/" in name:
        raise ValidationError.single("name", f"{name!r} must be a single path segment")
    return check_remote_path(name, field="name")


def artifact_remote_path(model_name: str, version: str, artifact_type: str, name: str) -> str:
    """The remote path of an artifact: ``<model_name>/<version>/<type>/<name>``.

    Args:
        model_name: may hold a namespace (``org/model``).
        version: one path segment.
        artifact_type: one path segment (an ``ArtifactType`` value).
        name: the file or directory name, one path segment.

    Raises:
        ValidationError: a part is empty, ``.``/``..``, or (except ``model_name``) holds ``/``.
    """
    for field, value in (("version", version), ("type", artifact_type), ("name", name)):
        if isinstance(value, str) and "/" in value:
            raise ValidationError.single(field, f"{value!r} must be a single path segment")
        check_remote_path(value, field=field)
    check_remote_path(model_name, field="model_name")
    return f"{model_name}/{version}/{artifact_type}/{name}"
