"""The artifact methods of ``Registry``: upload, download, URL, verify and delete bytes."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from crucible_model_registry import _transfers
from crucible_model_registry._context import current_principal
from crucible_model_registry._registry_base import RegistryBase, VersionLike
from crucible_model_registry.domain.access import Role
from crucible_model_registry.domain.enums import ArtifactType, Relationship, parse_enum
from crucible_model_registry.domain.records import Artifact, ModelVersion
from crucible_model_registry.domain.refs import VersionRef
from crucible_model_registry.domain.rules import (
    MAX_STORAGE_BACKEND,
    check_id,
    check_local_path,
    check_text,
)
from crucible_model_registry.domain.specs import ref_of
from crucible_model_registry.domain.storage_reports import ArtifactDeletion, GarbageReport
from crucible_model_registry.errors import RegistryError, ValidationError
from crucible_model_registry.storage.base import artifact_remote_path
from crucible_model_registry.storage.manifest import (
    download_target,
    file_storage_path,
    verify_artifact_files,
)

if TYPE_CHECKING:
    from crucible_model_registry.storage.base import ProgressCallback, StorageBackend

__all__ = ["ArtifactMethods"]

_log = logging.getLogger("crucible_model_registry")


class ArtifactMethods(RegistryBase):
    """Artifact bytes in the registry's storages (API.md §6); part of ``Registry``."""

    def storage_backend(self, name: str | None = None) -> StorageBackend:
        """The backend called ``name`` (default: the registry's own storage).

        Raises:
            ConfigurationError: this registry has no backend of that name configured.
        """
        if name is not None:
            name = check_text(name, field="storage", limit=MAX_STORAGE_BACKEND)
        return self._storages.get(name)

    def upload_artifact(
        self,
        version: VersionLike,
        artifact_type: ArtifactType | str,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        storage: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> Artifact:
        """Upload a file or a directory and record it as an artifact of ``version``.

        Stored at ``<model_name>/<version>/<type>/<name>``; a directory keeps its tree and
        a manifest of every file's path, size and SHA-256. A failed upload records nothing;
        a failure while recording deletes what was uploaded.

        Args:
            name: the stored name (default: the file or directory name).
            storage: a configured backend's name (default: the registry's storage).
            progress: called with byte increments as the upload advances.

        Raises:
            ValidationError: bad type or path, the version already has that artifact, or
                another upload to that path is under way.
            StorageError: the backend failed.
        """
        kind = parse_enum(ArtifactType, artifact_type, field="type")
        local = check_local_path(path, field="path")
        if not local.exists():
            raise ValidationError.single("path", f"{str(local)!r} does not exist")
        record = self.get_version(version)
        self._authorize(Role.WRITE, record.model_name, action="upload_artifact", target=record.ref)
        backend = self.storage_backend(storage)
        remote = artifact_remote_path(
            record.model_name,
            record.version,
            kind.value,
            # The stored name is text on every backend: undecodable file-name bytes are refused.
            check_text(name or local.resolve().name, field="name", normalize=False),
        )
        artifact = _transfers.upload(
            self._backend,
            backend,
            record,
            kind=kind,
            local=local,
            remote=remote,
            progress=progress,
            by=self._by(),
        )
        self._push_model_card(backend, record)
        return artifact

    def _push_model_card(self, backend: StorageBackend, record: ModelVersion) -> None:
        # The Hub understands base_model/base_model_relation in the model card; other
        # backends have no card. The artifact is stored and recorded by now, so a card
        # that cannot be written is reported, not raised.
        push = getattr(backend, "push_model_card", None)
        if not callable(push):
            return
        parents = self._backend.ancestors(ref_of(record, field="version"), 1)
        relationship = parents[0].relationship if parents else None
        if relationship is Relationship.MERGED_FROM:
            base_models = list(dict.fromkeys(p.version.base_model for p in parents))
        else:
            base_models = [record.base_model]
        try:
            push(
                model_name=record.model_name,
                version=record.version,
                base_models=base_models,
                relationship=relationship,
                metrics=record.metrics,
                recipe=record.recipe,
                config_hash=record.config_hash,
            )
        except RegistryError as exc:
            _log.warning("artifact stored, but the model card was not updated: %s", exc)

    def get_artifact(self, artifact: Artifact | int) -> Artifact:
        """The artifact record with this id (at a server, if the token may read its model).

        Raises:
            NotFoundError: there is no such artifact.
        """
        return self._artifact(artifact, Role.READ, action="get_artifact")

    def download_artifact(
        self,
        artifact: Artifact | int,
        dest: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        parents: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Path:
        """Download an artifact to ``dest``, verified against its recorded SHA-256.

        Never removes anything that is not the artifact's. A file artifact goes to the file
        ``dest``, or inside ``dest`` under its stored name if that is an existing directory;
        a folder artifact's files are added to the directory ``dest`` (created if missing),
        beside what is there. Everything is downloaded and verified in a staging directory
        first; a failure or an interruption leaves the destination as it was.

        Args:
            overwrite: replace existing files that have the name of a file being written
                (those files only); without it, such a file is an error naming it.
            parents: create the destination's missing parent directories.

        Returns:
            The file or directory written.

        Raises:
            ValidationError: (field ``dest``) a file of the same name exists and
                ``overwrite`` is False, something else is in the way, or the parent is
                missing and ``parents`` is False; nothing was written.
            ChecksumMismatchError: the stored bytes are corrupt; ``dest`` is untouched.
            StorageError: the backend failed or the bytes are gone.
        """
        record = self._artifact(artifact, Role.READ, action="download_artifact")
        backend = self.storage_backend(record.storage_backend)
        version = self.get_version(record.model_version_id)
        target = download_target(record.storage_path, check_local_path(dest, field="dest"))
        _transfers.download(
            backend,
            record,
            version,
            target,
            overwrite=overwrite,
            parents=parents,
            progress=progress,
        )
        return target

    def artifact_url(
        self, artifact: Artifact | int, *, expires_in: int = 3600, file: str | None = None
    ) -> str:
        """A URL to fetch the artifact from (presigned where the backend supports it).

        A folder artifact's URL is its manifest's (``cmr-manifest.json``: every file's path,
        size and SHA-256); ``file`` gives the URL of one of its files instead.

        Args:
            expires_in: seconds a presigned URL stays valid.
            file: a file of a folder artifact, as its manifest lists it (``tokenizer/vocab.json``).

        Raises:
            ValidationError: ``expires_in`` is not a whole number of seconds >= 1; ``file``
                is given for a single-file artifact or is not one of the folder's files.
        """
        if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in < 1:
            raise ValidationError.single("expires_in", "must be a whole number of seconds >= 1")
        record = self._artifact(artifact, Role.READ, action="artifact_url")
        return self.storage_backend(record.storage_backend).url(
            file_storage_path(record, file), expires_in=expires_in
        )

    def verify_artifact(
        self, artifact: Artifact | int, *, progress: ProgressCallback | None = None
    ) -> bool:
        """Read the stored bytes back: do they still match the recorded SHA-256?

        Args:
            progress: called with byte increments as the bytes are read.

        Raises:
            ValidationError: the artifact has no recorded checksum.
            StorageError: the bytes cannot be read.
        """
        record = self._artifact(artifact, Role.READ, action="verify_artifact")
        if record.checksum is None:
            raise ValidationError.single(
                "artifact", f"artifact {record.id} has no recorded checksum to verify against"
            )
        return verify_artifact_files(
            self.storage_backend(record.storage_backend),
            record.storage_path,
            record.checksum,
            progress=progress,
        )

    def delete_artifact(
        self, artifact: Artifact | int, *, keep_bytes: bool = False
    ) -> ArtifactDeletion:
        """Delete the artifact's record, then its stored bytes if nothing else needs them.

        The bytes are deleted only if they are the version's own upload and no other
        artifact record references them; deleting an artifact registered by reference, or
        one whose bytes another record shares, removes the record only. The result says
        which happened.

        Args:
            keep_bytes: delete only the record, whatever the bytes.

        Raises:
            NotFoundError: there is no such artifact.
            ValidationError: its storage path leaves the backend's root, or an upload to
                that path is under way; nothing is deleted.
            ConfigurationError: this registry lacks the artifact's backend.
            StorageError: the backend failed.
        """
        record = self._artifact(artifact, Role.ADMIN, action="delete_artifact")
        if keep_bytes:
            return _transfers.forget(self._backend, record, by=self._by())
        backend = self.storage_backend(record.storage_backend)
        version = self.get_version(record.model_version_id)
        return _transfers.delete(self._backend, backend, record, version, by=self._by())

    def collect_garbage(
        self,
        *,
        dry_run: bool = False,
        older_than: timedelta = timedelta(hours=24),
        storage: str | None = None,
    ) -> GarbageReport:
        """Remove stored bytes no artifact record references, and leftovers of dead uploads.

        On every configured backend that can list what it holds (local, S3, the Hub):
        files in the registry's layout (``<model>/<version>/<type>/...``) that no artifact
        record references; ``.cmr-tmp`` temporaries and incomplete S3 multipart uploads
        older than ``older_than``. Never anything an artifact record references, anything
        an upload claim holds, files written after the collection started, or files
        outside the layout of the registry's models.

        Args:
            dry_run: only report what would be removed.
            older_than: the age a temporary or an incomplete upload must have.
            storage: one backend's name (default: every configured backend).

        Raises:
            ValidationError: ``older_than`` is negative.
            ConfigurationError: there is no backend called ``storage``.
        """
        if not isinstance(older_than, timedelta) or older_than < timedelta(0):
            raise ValidationError.single("older_than", "must be a timedelta of 0 or more")
        if not isinstance(dry_run, bool):
            raise ValidationError.single("dry_run", "must be True or False")
        if storage is not None and not isinstance(storage, str):
            raise ValidationError.single("storage", "must be a storage backend's name or None")
        self._authorize(Role.ADMIN, None, action="collect_garbage")
        backends = [self.storage_backend(storage)] if storage else self._storages.all()
        return _transfers.collect_garbage(
            self._backend, backends, dry_run=bool(dry_run), older_than=older_than, by=self._by()
        )

    def _artifact(
        self, artifact: Artifact | int, needed: Role = Role.READ, *, action: str = "get_artifact"
    ) -> Artifact:
        artifact_id = artifact.id if isinstance(artifact, Artifact) else artifact
        if isinstance(artifact_id, bool) or not isinstance(artifact_id, int):
            raise ValidationError.single("artifact", "pass an Artifact or an artifact id")
        record = self._backend.get_artifact(check_id(artifact_id, field="artifact"))
        if current_principal() is not None:
            version = self._backend.get_version(VersionRef(id=record.model_version_id))
            self._authorize(
                needed, version.model_name, action=action, target=f"artifact {record.id}"
            )
        return record
