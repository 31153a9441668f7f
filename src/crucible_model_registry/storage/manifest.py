"""Directory manifests (path, size and SHA-256 of every file) and file-or-directory transfers.

A directory artifact is stored file by file through any backend's file operations, under
``<remote path>/<relative file path>``, followed by its manifest at
``<remote path>/cmr-manifest.json``. Its recorded ``storage_path`` ends with ``/``; its
recorded checksum is the SHA-256 of the manifest, so one recorded value verifies every file.
The manifest is written last: a directory without one was never completely uploaded.

The ``*_artifact_files`` functions take either kind of artifact and are what the registry
calls; they work with every ``StorageBackend``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from crucible_model_registry.domain.records import Artifact
from crucible_model_registry.errors import (
    ChecksumMismatchError,
    StorageError,
    ValidationError,
)
from crucible_model_registry.storage._placing import Placement, refuse_collisions
from crucible_model_registry.storage._streaming import confine
from crucible_model_registry.storage.base import (
    CommitsFilesTogether,
    FileList,
    HashesStoredFiles,
    ProgressCallback,
    StorageBackend,
    TransferResult,
    check_remote_path,
)

__all__ = [
    "MANIFEST_NAME",
    "DirectoryTransferResult",
    "UploadFile",
    "Manifest",
    "ManifestEntry",
    "delete_artifact_files",
    "delete_directory",
    "download_artifact_files",
    "download_directory",
    "download_file",
    "download_target",
    "file_storage_path",
    "is_directory_path",
    "upload_artifact_files",
    "upload_directory",
    "verify_artifact_files",
]

MANIFEST_NAME = "cmr-manifest.json"
_FORMAT = "crucible-model-registry/manifest"
_FORMAT_VERSION = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")

UploadFile = Callable[[Path, str, ProgressCallback | None], TransferResult]
"""Stores one local file at a remote path: ``backend.upload`` or a content-addressed one."""


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One file of a directory artifact.

    Attributes:
        path: ``/``-separated, relative to the directory.
        size_bytes: the file's size.
        sha256: lowercase hex SHA-256 of its bytes.
    """

    path: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Manifest:
    """Every file of a directory artifact, sorted by path."""

    files: tuple[ManifestEntry, ...]

    @property
    def size_bytes(self) -> int:
        """The total size of the files."""
        return sum(entry.size_bytes for entry in self.files)

    def to_json_bytes(self) -> bytes:
        """Canonical JSON (sorted keys and files, no spaces), so equal trees hash equal."""
        doc = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "files": [
                {"path": e.path, "size": e.size_bytes, "sha256": e.sha256}
                for e in sorted(self.files, key=lambda e: e.path)
            ],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def from_json_bytes(cls, data: bytes, *, backend: str) -> Manifest:
        """Parse and check a stored manifest.

        Raises:
            StorageError: it is not a manifest this version understands.
            ValidationError: a file path would leave the directory.
        """
        try:
            doc = json.loads(data)
            ok = (
                isinstance(doc, dict)
                and doc.get("format") == _FORMAT
                and doc.get("version") == _FORMAT_VERSION
            )
            raw_files = doc["files"] if ok else None
        except (ValueError, KeyError) as exc:
            raise StorageError("the stored manifest is not valid JSON", backend=backend) from exc
        if not isinstance(raw_files, list):
            raise StorageError("the stored manifest has an unknown format", backend=backend)
        entries: list[ManifestEntry] = []
        seen: set[str] = set()
        for item in raw_files:
            if not (
                isinstance(item, dict)
                and isinstance(item.get("path"), str)
                and type(item.get("size")) is int
                and item["size"] >= 0
                and isinstance(item.get("sha256"), str)
                and _SHA256.fullmatch(item["sha256"])
            ):
                raise StorageError("the stored manifest has a malformed entry", backend=backend)
            path = check_remote_path(item["path"], field="manifest.path")
            if path in seen:
                raise StorageError(f"the stored manifest lists {path!r} twice", backend=backend)
            seen.add(path)
            entries.append(ManifestEntry(path, item["size"], item["sha256"]))
        return cls(tuple(sorted(entries, key=lambda e: e.path)))


@dataclass(frozen=True, slots=True)
class DirectoryTransferResult(TransferResult):
    """A directory's transfer: ``sha256`` is the manifest's, ``size_bytes`` the files' total.

    Attributes:
        manifest: every file moved.
    """

    manifest: Manifest


def is_directory_path(storage_path: str) -> bool:
    """Does this recorded storage path name a directory artifact (it ends with ``/``)?"""
    return storage_path.endswith("/")


def _local_tree(root: Path) -> Iterator[tuple[str, Path]]:
    """Every regular file under ``root`` as (relative ``/`` path, path), sorted.

    Symlinks to files are followed (a Hugging Face cache snapshot is made of them);
    symlinks to directories and special files are refused.
    """
    stack = [root]
    files: list[tuple[str, Path]] = []
    while stack:
        current = stack.pop()
        with os.scandir(current) as it:
            for entry in it:
                path = Path(entry.path)
                rel = path.relative_to(root).as_posix()
                if entry.is_dir(follow_symlinks=False):
                    stack.append(path)
                    continue
                if entry.is_symlink() and path.is_dir():
                    raise ValidationError.single(
                        "local_path", f"{rel!r} is a symlink to a directory; copy it instead"
                    )
                try:
                    regular = stat.S_ISREG(entry.stat(follow_symlinks=True).st_mode)
                except OSError:
                    regular = False
                if not regular:
                    raise ValidationError.single(
                        "local_path", f"{rel!r} is not a regular file (or a broken symlink)"
                    )
                if rel == MANIFEST_NAME:
                    raise ValidationError.single(
                        "local_path", f"{MANIFEST_NAME!r} is a reserved name at the top level"
                    )
                files.append((check_remote_path(rel, field="local_path"), path))
    yield from sorted(files)


def upload_directory(
    backend: StorageBackend,
    local_dir: str | os.PathLike[str],
    remote_path: str,
    *,
    progress: ProgressCallback | None = None,
    upload_file: UploadFile | None = None,
) -> DirectoryTransferResult:
    """Upload a directory's tree and then its manifest (all in one step where the backend
    commits files together, see ``CommitsFilesTogether``).

    Args:
        backend: where to store it.
        local_dir: the directory to upload.
        remote_path: the directory's remote path (no trailing ``/``).
        progress: called with byte increments across all files.
        upload_file: stores each file of the tree (default: ``backend.upload``); the
            manifest always goes through ``backend.upload``.

    Returns:
        The directory's storage path (ending with ``/``), total size, manifest SHA-256
        and the manifest.

    Raises:
        ValidationError: the tree holds something other than files and directories.
        StorageError: a transfer failed; files already uploaded were deleted again (or,
            stored together, none became visible).
    """
    base = check_remote_path(remote_path)
    root = Path(local_dir)
    if not root.is_dir():
        raise ValidationError.single("local_path", f"{str(root)!r} is not a directory")
    files = list(_local_tree(root))  # walk first: a bad tree fails before any upload
    if isinstance(backend, CommitsFilesTogether):
        manifest, result = _upload_together(backend, base, files, progress)
    else:
        manifest, result = _upload_one_by_one(backend, base, files, progress, upload_file)
    if not result.storage_path.endswith("/" + MANIFEST_NAME):
        raise StorageError(
            f"backend returned storage path {result.storage_path!r}, which does not end "
            "with the remote path it was given",
            backend=backend.name,
        )
    directory = result.storage_path[: -len(MANIFEST_NAME)]
    return DirectoryTransferResult(
        storage_path=directory,
        size_bytes=manifest.size_bytes,
        sha256=result.sha256,
        manifest=manifest,
    )


def _upload_one_by_one(
    backend: StorageBackend,
    base: str,
    files: list[tuple[str, Path]],
    progress: ProgressCallback | None,
    upload_file: UploadFile | None = None,
) -> tuple[Manifest, TransferResult]:
    """Each file, then the manifest; on failure, what was uploaded is deleted again."""
    uploaded: list[str] = []
    try:
        entries = []
        for rel, path in files:
            if upload_file is None:
                result = backend.upload(path, f"{base}/{rel}", progress=progress)
            else:
                result = upload_file(path, f"{base}/{rel}", progress)
            uploaded.append(result.storage_path)
            entries.append(ManifestEntry(rel, result.size_bytes, result.sha256))
        manifest = Manifest(tuple(entries))
        with tempfile.TemporaryDirectory(prefix="cmr-manifest-") as tmp:
            manifest_file = Path(tmp, MANIFEST_NAME)
            manifest_file.write_bytes(manifest.to_json_bytes())
            result = backend.upload(manifest_file, f"{base}/{MANIFEST_NAME}")
        uploaded.append(result.storage_path)
    except BaseException:
        for done in uploaded:
            with contextlib.suppress(Exception):
                backend.delete(done)
        raise
    return manifest, result


def _upload_together(
    backend: CommitsFilesTogether,
    base: str,
    files: list[tuple[str, Path]],
    progress: ProgressCallback | None,
) -> tuple[Manifest, TransferResult]:
    """The files and their manifest in one atomic step: nothing to clean up on failure."""
    built: list[Manifest] = []
    with tempfile.TemporaryDirectory(prefix="cmr-manifest-") as tmp:
        manifest_file = Path(tmp, MANIFEST_NAME)

        def add_manifest(results: list[TransferResult]) -> FileList:
            entries = [
                ManifestEntry(rel, r.size_bytes, r.sha256)
                for (rel, _), r in zip(files, results, strict=True)
            ]
            built.append(Manifest(tuple(entries)))
            manifest_file.write_bytes(built[0].to_json_bytes())
            return [(manifest_file, f"{base}/{MANIFEST_NAME}")]

        results = backend.upload_together(
            [(path, f"{base}/{rel}") for rel, path in files], then=add_manifest, progress=progress
        )
    return built[0], results[-1]


def _read_manifest(
    backend: StorageBackend, storage_path: str, scratch: Path, expected_sha256: str | None
) -> tuple[Manifest, str]:
    """The stored manifest of a directory artifact and its SHA-256."""
    target = scratch / MANIFEST_NAME
    result = backend.download(storage_path + MANIFEST_NAME, target, expected_sha256=expected_sha256)
    return Manifest.from_json_bytes(target.read_bytes(), backend=backend.name), result.sha256


def download_directory(
    backend: StorageBackend,
    storage_path: str,
    local_dir: str | os.PathLike[str],
    *,
    expected_sha256: str | None = None,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
    parents: bool = False,
) -> DirectoryTransferResult:
    """Download a directory artifact into ``local_dir``, beside whatever is there already.

    The artifact's files are added to ``local_dir`` (created if missing); nothing else in it
    is touched. They are downloaded and verified in a staging directory of our own first
    and moved in only when every file matched the manifest (and the manifest
    ``expected_sha256``); a failure or an interruption leaves ``local_dir`` as it was. The
    manifest itself is not written into ``local_dir``. See ``storage/_placing.py``.

    Args:
        overwrite: replace files of ``local_dir`` that have the name of one of the
            artifact's files (those files only).
        parents: create ``local_dir``'s missing parent directories.

    Raises:
        ValidationError: ``storage_path`` is not a directory path; a file of the artifact
            already exists in ``local_dir`` (without ``overwrite``) or something else is in
            the way; ``local_dir``'s parent is missing (without ``parents``). Nothing was
            changed.
        ChecksumMismatchError: the manifest or a file does not match; ``local_dir`` untouched.
        StorageError: a transfer failed; ``local_dir`` untouched.
    """
    if not is_directory_path(storage_path):
        raise ValidationError.single("storage_path", f"{storage_path!r} does not end with '/'")
    dest = Path(local_dir).absolute()
    with Placement(overwrite=overwrite) as place:
        place.make_dirs(dest, parents=parents)
        staging = place.staging_dir(dest)
        manifest, sha256 = _read_manifest(backend, storage_path, staging, expected_sha256)
        paths = [entry.path for entry in manifest.files]
        refuse_collisions(dest, paths, overwrite=overwrite)  # before any byte is fetched
        tree = (staging / "tree").resolve()
        tree.mkdir()
        for entry in manifest.files:
            backend.download(
                storage_path + entry.path,
                confine(tree, entry.path, field="manifest.path"),
                expected_sha256=entry.sha256,
                progress=progress,
            )
        refuse_collisions(dest, paths, overwrite=overwrite)  # again: the transfer took time
        for entry in manifest.files:
            parts = entry.path.split("/")
            place.move_in(tree.joinpath(*parts), dest.joinpath(*parts))
        place.sync()
    return DirectoryTransferResult(
        storage_path=storage_path,
        size_bytes=manifest.size_bytes,
        sha256=sha256,
        manifest=manifest,
    )


def download_file(
    backend: StorageBackend,
    storage_path: str,
    local_path: str | os.PathLike[str],
    *,
    expected_sha256: str | None = None,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
    parents: bool = False,
) -> TransferResult:
    """Download a file artifact to the file ``local_path``, verified before it lands there.

    Args:
        overwrite: replace an existing file at ``local_path``.
        parents: create ``local_path``'s missing parent directories.

    Raises:
        ValidationError: a file exists at ``local_path`` (without ``overwrite``), something
            that is not a file is there, or its parent is missing (without ``parents``).
        ChecksumMismatchError: the bytes do not match; ``local_path`` untouched.
        StorageError: the transfer failed; ``local_path`` untouched.
    """
    target = Path(local_path).absolute()
    with Placement(overwrite=overwrite) as place:
        if parents:
            place.make_dirs(target.parent, parents=True)
        elif not target.parent.is_dir():
            raise ValidationError.single(
                "dest",
                f"{target.parent} does not exist; create it first or pass parents=True "
                "(cmr download --parents)",
            )
        refuse_collisions(target.parent, [target.name], overwrite=overwrite)
        staged = place.staging_dir(target.parent) / "file"
        result = backend.download(
            storage_path, staged, expected_sha256=expected_sha256, progress=progress
        )
        refuse_collisions(target.parent, [target.name], overwrite=overwrite)
        place.move_in(staged, target)
        place.sync()
    return result


def download_target(storage_path: str, dest: str | os.PathLike[str]) -> Path:
    """Where a download of ``storage_path`` to ``dest`` lands.

    A file artifact downloaded to an existing directory lands inside it under its stored
    name; otherwise at ``dest`` itself (a directory artifact's files go into ``dest``).
    """
    target = Path(dest)
    if not is_directory_path(storage_path) and target.is_dir():
        return target / storage_path.rsplit("/", 1)[-1]
    return target


def file_storage_path(artifact: Artifact, file: str | None) -> str:
    """The storage path of one file of ``artifact``: a folder's manifest, or its ``file``.

    Args:
        artifact: a file or folder artifact record.
        file: a path inside a folder artifact (None: the manifest for a folder, the file
            itself for a file artifact).

    Raises:
        ValidationError: (field ``file``) given for a single-file artifact, malformed, or
            not listed in the folder's recorded manifest.
    """
    path = artifact.storage_path
    if not is_directory_path(path):
        if file is not None:
            raise ValidationError.single(
                "file", f"artifact {artifact.id} is a single file; --file/file= is for folders"
            )
        return path
    if file is None:
        return path + MANIFEST_NAME
    rel = check_remote_path(file, field="file")
    listed = [entry["path"] for entry in artifact.manifest or []]
    if artifact.manifest is not None and rel not in listed:
        shown = ", ".join(listed[:8]) + (f" and {len(listed) - 8} more" if len(listed) > 8 else "")
        raise ValidationError.single(
            "file", f"{rel!r} is not a file of artifact {artifact.id}; it has {shown}"
        )
    return path + rel


def delete_directory(backend: StorageBackend, storage_path: str) -> None:
    """Delete every file of a directory artifact, the manifest last; absent is not an error."""
    if not is_directory_path(storage_path):
        raise ValidationError.single("storage_path", f"{storage_path!r} does not end with '/'")
    if not backend.exists(storage_path + MANIFEST_NAME):
        return
    if isinstance(backend, CommitsFilesTogether):
        backend.delete_folder(storage_path.rstrip("/"))
        return
    with tempfile.TemporaryDirectory(prefix="cmr-manifest-") as tmp:
        manifest, _ = _read_manifest(backend, storage_path, Path(tmp), None)
    for entry in manifest.files:
        backend.delete(storage_path + entry.path)
    backend.delete(storage_path + MANIFEST_NAME)


def upload_artifact_files(
    backend: StorageBackend,
    local_path: str | os.PathLike[str],
    remote_path: str,
    *,
    progress: ProgressCallback | None = None,
    upload_file: UploadFile | None = None,
) -> TransferResult:
    """Upload a file, or a directory with its manifest (see :func:`upload_directory`).

    Args:
        upload_file: stores each file (default: ``backend.upload``).
    """
    if Path(local_path).is_dir():
        return upload_directory(
            backend, local_path, remote_path, progress=progress, upload_file=upload_file
        )
    if upload_file is not None:
        return upload_file(Path(local_path), remote_path, progress)
    return backend.upload(local_path, remote_path, progress=progress)


def download_artifact_files(
    backend: StorageBackend,
    storage_path: str,
    local_path: str | os.PathLike[str],
    *,
    expected_sha256: str | None = None,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
    parents: bool = False,
) -> TransferResult:
    """Download a file or a directory artifact, verified before it lands at ``local_path``.

    A file artifact goes to the file ``local_path``, or inside it under its stored name if
    it is an existing directory (see :func:`download_target`); a directory artifact's files
    go into the directory ``local_path``, beside what is there. Nothing that is not the
    artifact's is ever removed; see :func:`download_directory` and :func:`download_file`.
    """
    if is_directory_path(storage_path):
        return download_directory(
            backend,
            storage_path,
            local_path,
            expected_sha256=expected_sha256,
            progress=progress,
            overwrite=overwrite,
            parents=parents,
        )
    return download_file(
        backend,
        storage_path,
        download_target(storage_path, local_path),
        expected_sha256=expected_sha256,
        progress=progress,
        overwrite=overwrite,
        parents=parents,
    )


def delete_artifact_files(backend: StorageBackend, storage_path: str) -> None:
    """Delete a file or a directory artifact; absent is not an error."""
    if is_directory_path(storage_path):
        delete_directory(backend, storage_path)
    else:
        backend.delete(storage_path)


def verify_artifact_files(
    backend: StorageBackend,
    storage_path: str,
    expected_sha256: str,
    *,
    progress: ProgressCallback | None = None,
) -> bool:
    """Read a stored artifact back and compare it with its recorded SHA-256.

    Where the backend can hash stored files in place (``HashesStoredFiles``: local disk,
    S3) nothing is written; elsewhere the bytes go to a scratch directory that is removed
    afterwards.

    Returns:
        False if the artifact (or, for a directory, any file) does not match; True otherwise.

    Raises:
        StorageError: the bytes could not be read (absent, backend failure).
    """
    if isinstance(backend, HashesStoredFiles):
        return _verify_in_place(backend, storage_path, expected_sha256, progress)
    with tempfile.TemporaryDirectory(prefix="cmr-verify-") as tmp:
        try:
            download_artifact_files(
                backend,
                storage_path,
                Path(tmp, "artifact"),
                expected_sha256=expected_sha256,
                progress=progress,
            )
        except ChecksumMismatchError:
            return False
    return True


def _verify_in_place(
    backend: StorageBackend,
    storage_path: str,
    expected_sha256: str,
    progress: ProgressCallback | None,
) -> bool:
    assert isinstance(backend, HashesStoredFiles)
    expected = expected_sha256.lower()
    if not is_directory_path(storage_path):
        return backend.hash_stored(storage_path, progress=progress).sha256 == expected
    with tempfile.TemporaryDirectory(prefix="cmr-verify-") as tmp:
        try:
            manifest, _ = _read_manifest(backend, storage_path, Path(tmp), expected)
        except ChecksumMismatchError:
            return False
    for entry in manifest.files:
        result = backend.hash_stored(storage_path + entry.path, progress=progress)
        if (result.sha256, result.size_bytes) != (entry.sha256, entry.size_bytes):
            return False
    return True
