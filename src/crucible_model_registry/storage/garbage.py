"""Which stored items are garbage: bytes no record references, stale temporaries, dead uploads.

Pure decisions over a backend's listing (``ListsStoredFiles`` in ``storage/base.py``) and
what the records say must stay (:class:`KeptPaths`); the registry reads both and removes
what :func:`find_garbage` returns. The rules, each one a guard against removing something
that is not garbage:

- a stored *file* is an orphan only if it lies in the registry's own layout under a model
  the registry knows (``<model>/<version>/<type>/...``, ``type`` an artifact type), so files
  the registry did not write (a Hub repository's ``README.md``, other tenants of a bucket)
  are never candidates; no record references it (as a file, or inside a folder artifact);
  no upload claim covers it; and it was not written after the collection started;
- a *blob* (``.cmr-blobs/sha256/...``, see ``StoresBlobs``) is garbage once no record
  references it and no upload pins it, and it was not written after the collection started;
- a *temporary* (``.cmr-tmp``) or an *incomplete multipart upload* is garbage once it is
  older than the threshold and no upload claim covers it (an upload still running keeps
  writing, or holds its claim).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from crucible_model_registry.domain.enums import ArtifactType
from crucible_model_registry.errors import ValidationError
from crucible_model_registry.storage.base import (
    TEMPORARY_SUFFIX,
    ListsStoredFiles,
    StorageBackend,
    StoredItem,
    blob_sha256,
    check_remote_path,
)

__all__ = ["KeptPaths", "find_garbage", "in_layout", "overlaps", "remote_path_of"]

_TYPES = frozenset(t.value for t in ArtifactType)


@dataclass(frozen=True, slots=True)
class KeptPaths:
    """What a collection must leave alone on one backend, as remote paths.

    Attributes:
        files: file artifacts' paths.
        folders: folder artifacts' paths, each ending with ``/``.
        claimed: paths uploads in progress have claimed (a file or a folder, no ``/``).
        models: the names of the registry's models (the layout's first part).
        blobs: the SHA-256 of blobs a record references or a live upload pins.
    """

    files: frozenset[str]
    folders: frozenset[str]
    claimed: frozenset[str]
    models: frozenset[str]
    blobs: frozenset[str] = frozenset()

    @classmethod
    def from_records(
        cls,
        backend: ListsStoredFiles,
        storage_paths: Iterable[str],
        claimed: Iterable[str],
        models: Iterable[str],
        blobs: Iterable[str] = (),
    ) -> KeptPaths:
        """Normalise recorded storage paths (URIs or bare) to the backend's remote paths.

        A recorded path outside the backend's root (another bucket, a reference to elsewhere)
        references nothing here and is left out.
        """
        files: set[str] = set()
        folders: set[str] = set()
        for recorded in storage_paths:
            try:
                rel = backend.relative_path(recorded)
            except ValidationError:
                continue
            (folders if rel.endswith("/") else files).add(rel)
        return cls(
            frozenset(files),
            frozenset(folders),
            frozenset(c.rstrip("/") for c in claimed),
            frozenset(models),
            frozenset(blobs),
        )

    def references(self, path: str) -> bool:
        """Does a record reference the file at ``path`` (itself, or a folder holding it)?"""
        return path in self.files or any(f"{a}/" in self.folders for a in _ancestors(path))

    def claims(self, item: StoredItem) -> bool:
        """Does an upload claim cover ``item`` (its path, a folder holding it, or, for a
        temporary, the file it was about to become)?"""
        if item.path in self.claimed or any(a in self.claimed for a in _ancestors(item.path)):
            return True
        if item.kind != "temporary":
            return False
        parent, _, name = item.path.rpartition("/")
        # AtomicFile names its temporary ".<first 64 characters of the name>.<random>.cmr-tmp".
        return any(
            claim.rpartition("/")[0] == parent
            and name.startswith(f".{claim.rpartition('/')[2][:64]}.")
            for claim in self.claimed
        )


def _ancestors(path: str) -> list[str]:
    """``a/b/c`` -> ``["a", "a/b"]``."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def in_layout(path: str, models: frozenset[str]) -> bool:
    """Is ``path`` inside ``<model>/<version>/<type>/`` for one of ``models``?"""
    parts = path.split("/")
    return any(
        "/".join(parts[:i]) in models and parts[i + 1] in _TYPES for i in range(1, len(parts) - 2)
    )


def find_garbage(
    items: Iterable[StoredItem], kept: KeptPaths, *, cutoff: datetime, started: datetime
) -> list[StoredItem]:
    """The listed items that are garbage under the rules of this module.

    Args:
        items: the backend's listing.
        kept: what the records say must stay, read *after* the listing was taken.
        cutoff: temporaries and incomplete uploads must be older than this.
        started: when the collection started; files written since are never removed.
    """
    garbage: list[StoredItem] = []
    for item in items:
        if kept.claims(item):
            continue
        if item.kind == "file" and (sha256 := blob_sha256(item.path)) is not None:
            # A blob: garbage once nothing references or pins it (reference counts).
            if sha256 not in kept.blobs and (item.modified is None or item.modified <= started):
                garbage.append(item)
        elif item.kind == "file":
            if (
                in_layout(item.path, kept.models)
                and not item.path.endswith(TEMPORARY_SUFFIX)
                and not kept.references(item.path)
                and (item.modified is None or item.modified <= started)
            ):
                garbage.append(item)
        elif item.modified is not None and item.modified < cutoff:
            garbage.append(item)
    return garbage


def remote_path_of(backend: StorageBackend, storage_path: str) -> str | None:
    """The remote path a recorded storage path names on ``backend``, or None if outside it.

    A directory's keeps its trailing ``/``. Backends that do not conform to
    :class:`ListsStoredFiles` are assumed to record bare remote paths.
    """
    try:
        if isinstance(backend, ListsStoredFiles):
            return backend.relative_path(storage_path)
        directory = storage_path.endswith("/")
        rel = check_remote_path(storage_path[:-1] if directory else storage_path)
    except ValidationError:
        return None
    return rel + "/" if directory else rel


def overlaps(a: str, b: str) -> bool:
    """Do the remote paths ``a`` and ``b`` (folders end with ``/``) share any bytes?"""
    if a.rstrip("/") == b.rstrip("/"):
        return True
    return (a.endswith("/") and b.startswith(a)) or (b.endswith("/") and a.startswith(b))
