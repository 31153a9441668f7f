"""NoopStorage: a backend that stores nothing, for registering artifacts without keeping bytes."""

from __future__ import annotations

import os

from crucible_model_registry.errors import StorageError
from crucible_model_registry.storage._streaming import hash_file
from crucible_model_registry.storage.base import (
    DEFAULT_URL_EXPIRY,
    ProgressCallback,
    TransferResult,
    check_remote_path,
)

__all__ = ["NoopStorage"]


class NoopStorage:
    """Reads a file to report its size and SHA-256, and stores nothing.

    Useful when artifacts live elsewhere and only their checksums should be recorded;
    ``download`` and ``url`` raise ``StorageError`` because there is nothing to fetch.
    """

    name: str = "noop"

    def __repr__(self) -> str:
        return "NoopStorage()"

    def upload(
        self,
        local_path: str | os.PathLike[str],
        remote_path: str,
        *,
        progress: ProgressCallback | None = None,
    ) -> TransferResult:
        """Hash the file and return what would have been recorded."""
        rel = check_remote_path(remote_path)
        size, sha256 = hash_file(local_path, progress=progress)
        return TransferResult(storage_path=rel, size_bytes=size, sha256=sha256)

    def download(
        self,
        remote_path: str,
        local_path: str | os.PathLike[str],
        *,
        expected_sha256: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> TransferResult:
        """Always raises: the noop backend keeps no bytes.

        Raises:
            StorageError: always.
        """
        rel = check_remote_path(remote_path)
        raise StorageError(
            f"nothing is stored for {rel!r}: the noop backend keeps no bytes; "
            "configure a real backend (local, s3, huggingface) to download artifacts",
            backend=self.name,
        )

    def delete(self, remote_path: str) -> None:
        """Nothing to remove."""
        check_remote_path(remote_path)

    def exists(self, remote_path: str) -> bool:
        """Always False: nothing is stored."""
        check_remote_path(remote_path)
        return False

    def url(self, remote_path: str, *, expires_in: int = DEFAULT_URL_EXPIRY) -> str:
        """Always raises: there is nothing to link to.

        Raises:
            StorageError: always.
        """
        rel = check_remote_path(remote_path)
        raise StorageError(
            f"no URL for {rel!r}: the noop backend keeps no bytes", backend=self.name
        )
