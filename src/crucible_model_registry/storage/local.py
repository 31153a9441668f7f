"""LocalStorage: artifact bytes in a directory tree on a local or mounted filesystem."""

from __future__ import annotations

import contextlib
import os
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
    open_source_file,
    os_errors_as_storage_error,
)
from crucible_model_registry.storage.base import (
    DEFAULT_URL_EXPIRY,
    TEMPORARY_SUFFIX,
    ProgressCallback,
    StoredItem,
    TransferResult,
    check_remote_path,
)

__all__ = ["LocalStorage"]


class LocalStorage:
    """Stores each artifact file at ``<base_path>/<remote path>``.

    Writes go to a temporary file in the destination directory, are fsynced and renamed
    into place, so a reader sees the old file or the new one, never a mix. The recorded
    ``storage_path`` is the remote path relative to ``base_path``, so the tree can move.

    Args:
        base_path: the storage root; created on the first upload.
    """

    name: str = "local"

    def __init__(self, base_path: str | os.PathLike[str]) -> None:
        self.base_path = Path(base_path).expanduser().resolve()

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
