"""LocalStorage: artifact bytes in a directory tree on a local or mounted filesystem."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from crucible_model_registry.errors import StorageError
from crucible_model_registry.storage._streaming import (
    AtomicFile,
    check_sha256,
    confine,
    copy_hashing,
    fsync_dir,
    open_source_file,
    os_errors_as_storage_error,
)
from crucible_model_registry.storage.base import (
    DEFAULT_URL_EXPIRY,
    TEMPORARY_SUFFIX,
    ProgressCallback,
    StoredItem,
    TransferResult,
    blob_path,
    check_remote_path,
)

__all__ = ["LocalStorage"]

_log = logging.getLogger("crucible_model_registry")
_ATTEMPTS = 3  # a concurrent delete may remove an empty parent directory between two steps


class LocalStorage:
    """Stores each artifact file at ``<base_path>/<remote path>``.

    Writes go to a temporary file in the destination directory, are fsynced and renamed
    into place, so a reader sees the old file or the new one, never a mix. The recorded
    ``storage_path`` is the remote path relative to ``base_path``, so the tree can move.

    Content-addressed (``StoresBlobs``, on by default): every stored file is also hard-linked
    at ``.cmr-blobs/sha256/<aa>/<sha256>``, and a later file with the same bytes becomes
    another hard link to it instead of a copy, so identical bytes take disk space once.
    Files are never changed in place (every write is a new file renamed into place), which
    is what makes sharing an inode safe; do not edit stored files by hand.

    Args:
        base_path: the storage root; created on the first upload.
        content_addressed: keep blobs and link identical files to them.
    """

    name: str = "local"

    def __init__(
        self, base_path: str | os.PathLike[str], *, content_addressed: bool = True
    ) -> None:
        self.base_path = Path(base_path).expanduser().resolve()
        self._content_addressed = bool(content_addressed)

    @property
    def content_addressed(self) -> bool:
        """Whether identical files are stored once, as hard links to one blob."""
        return self._content_addressed

    def __repr__(self) -> str:
        return f"LocalStorage(base_path={str(self.base_path)!r})"

    def upload(
        self,
        local_path: str | os.PathLike[str],
        remote_path: str,
        *,
        progress: ProgressCallback | None = None,
    ) -> TransferResult:
        """Copy a file into the tree; see ``StorageBackend.upload``."""
        rel = check_remote_path(remote_path)
        with open_source_file(local_path) as src:
            target = confine(self.base_path, rel)
            with os_errors_as_storage_error(self.name, f"store {rel}"), AtomicFile(target) as out:
                size, sha256 = copy_hashing(src, out.write, progress=progress)
                out.commit()
        return TransferResult(storage_path=rel, size_bytes=size, sha256=sha256)

    def download(
        self,
        remote_path: str,
        local_path: str | os.PathLike[str],
        *,
        expected_sha256: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> TransferResult:
        """Copy a stored file out, verified before it lands; see ``StorageBackend.download``."""
        rel = check_remote_path(remote_path)
        source = confine(self.base_path, rel)
        with os_errors_as_storage_error(self.name, f"fetch {rel}"):
            try:
                src = source.open("rb", buffering=0)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
                raise StorageError(f"nothing is stored at {rel!r}", backend=self.name) from exc
            with src, AtomicFile(Path(local_path)) as out:
                size, sha256 = copy_hashing(src, out.write, progress=progress)
                check_sha256(sha256, expected_sha256, backend=self.name, path=rel)
                out.commit()
        return TransferResult(storage_path=rel, size_bytes=size, sha256=sha256)

    def hash_stored(
        self, remote_path: str, *, progress: ProgressCallback | None = None
    ) -> TransferResult:
        """Size and SHA-256 of a stored file, read in place (``HashesStoredFiles``)."""
        rel = check_remote_path(remote_path)
        source = confine(self.base_path, rel)
        with os_errors_as_storage_error(self.name, f"read {rel}"):
            try:
                src = source.open("rb", buffering=0)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
                raise StorageError(f"nothing is stored at {rel!r}", backend=self.name) from exc
            with src:
                size, sha256 = copy_hashing(src, None, progress=progress)
        return TransferResult(storage_path=rel, size_bytes=size, sha256=sha256)

    def delete(self, remote_path: str) -> None:
        """Remove a stored file and the directories it leaves empty."""
        rel = check_remote_path(remote_path)
        target = confine(self.base_path, rel)
        with os_errors_as_storage_error(self.name, f"delete {rel}"):
            if target.is_dir() and not target.is_symlink():
                raise StorageError(f"{rel!r} is a directory, not a file", backend=self.name)
            target.unlink(missing_ok=True)
            parent = target.parent
            while parent != self.base_path and self.base_path in parent.parents:
                # rmdir refuses a non-empty directory: that is the stop condition.
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent

    def exists(self, remote_path: str) -> bool:
        """Is a file stored at ``remote_path``?"""
        target = confine(self.base_path, check_remote_path(remote_path))
        with contextlib.suppress(OSError):
            return target.is_file()
        return False

    def url(self, remote_path: str, *, expires_in: int = DEFAULT_URL_EXPIRY) -> str:
        """A ``file://`` URL of the stored file (``expires_in`` does not apply)."""
        return confine(self.base_path, check_remote_path(remote_path)).as_uri()

    # -- StoresBlobs (content-addressed bytes) ---------------------------------------------

    def link_blob(self, sha256: str, remote_path: str, *, size_bytes: int) -> TransferResult | None:
        """Hard-link the blob at ``remote_path`` (atomically); None if there is no such blob."""
        rel = check_remote_path(remote_path)
        blob = confine(self.base_path, blob_path(sha256))
        target = confine(self.base_path, rel)
        with os_errors_as_storage_error(self.name, f"link {rel} to its stored bytes"):
            for _ in range(_ATTEMPTS):
                try:
                    info = blob.lstat()
                except FileNotFoundError:
                    return None
                if not stat.S_ISREG(info.st_mode) or info.st_size != size_bytes:
                    _log.warning("blob %s is not a file of %d bytes; not used", sha256, size_bytes)
                    return None
                target.parent.mkdir(parents=True, exist_ok=True)
                # Named like AtomicFile's temporaries, so the upload's claim covers it in gc.
                tmp = target.parent / f".{target.name[:64]}.{secrets.token_hex(4)}.cmr-tmp"
                try:
                    os.link(blob, tmp)
                except FileNotFoundError:
                    continue  # the blob, or the new parent directory, was removed meanwhile
                try:
                    os.replace(tmp, target)
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise
                fsync_dir(target.parent)
                return TransferResult(storage_path=rel, size_bytes=size_bytes, sha256=sha256)
        return None

    def adopt_blob(self, remote_path: str, sha256: str) -> None:
        """Hard-link the stored file as the blob of ``sha256``; if that blob exists (an
        identical upload ran at the same time), make the file a link to it instead, so the
        bytes are stored once either way."""
        rel = check_remote_path(remote_path)
        source = confine(self.base_path, rel)
        blob = confine(self.base_path, blob_path(sha256))
        with os_errors_as_storage_error(self.name, f"keep the bytes of {rel} as a blob"):
            for _ in range(_ATTEMPTS):
                blob.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(source, blob)  # creates the name only if it is free: no clobbering
                except FileExistsError:
                    if not os.path.samefile(source, blob):
                        self.link_blob(sha256, rel, size_bytes=source.stat().st_size)
                    return
                except FileNotFoundError:
                    if not source.is_file():
                        raise StorageError(
                            f"nothing is stored at {rel!r}", backend=self.name
                        ) from None
                    continue  # the blob's parent directory was removed meanwhile
                # No fsync of the directory: a blob lost to a crash costs a later upload
                # its shortcut (link_blob finds nothing and the bytes are sent), nothing more.
                return

    def delete_blob(self, sha256: str) -> None:
        """Remove a blob (its bytes stay while any artifact path still links them)."""
        self.delete(blob_path(sha256))

    # -- ListsStoredFiles (garbage collection) ------------------------------------------

    def relative_path(self, storage_path: str) -> str:
        """The remote path a recorded storage path names (they are the same here)."""
        directory = storage_path.endswith("/")
        rel = check_remote_path(storage_path[:-1] if directory else storage_path)
        return rel + "/" if directory else rel

    def list_stored(self) -> Iterator[StoredItem]:
        """Every regular file under ``base_path``; our ``.cmr-tmp`` leftovers as temporaries.

        Symlinks are neither followed nor listed: the registry never creates them.
        """
        if not self.base_path.is_dir():
            return
        with os_errors_as_storage_error(self.name, "list the stored files"):
            for dirpath, _, filenames in os.walk(self.base_path):
                for name in filenames:
                    path = Path(dirpath, name)
                    try:
                        info = path.lstat()
                    except FileNotFoundError:
                        continue  # removed since the walk listed it
                    if not stat.S_ISREG(info.st_mode):
                        continue
                    temporary = name.startswith(".") and name.endswith(TEMPORARY_SUFFIX)
                    yield StoredItem(
                        path=path.relative_to(self.base_path).as_posix(),
                        kind="temporary" if temporary else "file",
                        size_bytes=info.st_size,
                        modified=datetime.fromtimestamp(info.st_mtime, UTC),
                    )

    def remove_stored(self, item: StoredItem) -> None:
        """Delete a listed file or temporary (and the directories it leaves empty)."""
        if item.kind != "incomplete_upload":
            self.delete(item.path)
