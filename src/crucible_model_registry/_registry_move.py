"""The moving methods of ``Registry``: export to a directory, import from one, copy between two.

All three run on the backend's stream of bundles (one model's lines of every kind): an
export writes the lines its backend renders (``export_bundles``), an import hands the
bundles to its backend in batches, each model in one transaction (``import_bundles``), and
a copy pipes one registry's stream straight into the other's import, without an export on
disk. The backend is SQL or a registry server, so each end may be either.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from crucible_model_registry import _move_files, _transfers, telemetry
from crucible_model_registry._registry_base import RegistryBase
from crucible_model_registry.domain.access import Role
from crucible_model_registry.domain.exchange import (
    ARTIFACTS_DIR,
    BundleOutcome,
    ExportBundle,
    ExportPlan,
    ExportResult,
    ImportConflict,
    ImportReport,
    ModelBundle,
    ReportCounter,
    format_time,
)
from crucible_model_registry.domain.hub_card import (
    HUB_RECIPE,
    artifact_type_for,
    base_models,
    card_metrics,
    card_relationship,
    card_tags,
)
from crucible_model_registry.domain.records import ModelVersion
from crucible_model_registry.domain.specs import new_version_from_input
from crucible_model_registry.errors import (
    ConfigurationError,
    NotFoundError,
    RegistryError,
    ValidationError,
)
from crucible_model_registry.storage.backends import create_backend
from crucible_model_registry.storage.base import StorageBackend, artifact_remote_path
from crucible_model_registry.storage.hub_models import read_hub_model
from crucible_model_registry.storage.manifest import (
    MANIFEST_NAME,
    delete_artifact_files,
    download_artifact_files,
    is_directory_path,
    upload_artifact_files,
    verify_artifact_files,
)

__all__ = ["MoveMethods", "MoveProgress"]

MoveProgress = Callable[[int, int], None]
"""Called with (versions done, versions in all) as an export, import or copy advances."""

T = TypeVar("T")

_BATCH_LINES = 5_000
"""Lines per call of the backend's import (one request to a server), whole models at a time."""

# Where an artifact's bytes are for an import: a local file or directory, or None.
_BytesSource = Callable[[dict[str, Any], Path], Path | None]


class MoveMethods(RegistryBase):
    """Export, import and copy of whole registries (API.md §15); part of ``Registry``."""

    def export_to(
        self,
        dest: str | os.PathLike[str],
        *,
        with_artifacts: bool = False,
        models: str | None = None,
        progress: MoveProgress | None = None,
    ) -> ExportResult:
        """Write the registry (or the models matching ``models``) to a new directory.

        JSON Lines per kind (models, versions, artifacts, lineage edges, stage and alias
        history, aliases, promotion policies, other history tables) and a manifest with
        counts and the SHA-256 of every file; see ``domain/exchange.py`` for the format.
        Streams in constant memory; the directory appears only once complete.

        Args:
            dest: a path that does not exist yet (or an empty directory).
            with_artifacts: also copy the bytes of every artifact this registry has a
                backend for, under ``artifacts/`` in the local storage layout (verified
                against their SHA-256 on the way).
            models: an fnmatch pattern of model names (``"llama-*"``).

        Raises:
            ValidationError: ``dest`` is taken.
            ChecksumMismatchError: stored artifact bytes are corrupt; nothing is written.
            StorageError: a backend failed; nothing is written.
        """
        self._authorize(Role.READ, None, action="export_to")
        target = Path(dest)
        plan = self._backend.export_plan(models)
        writer = _move_files.ExportWriter(target, plan.kinds)
        artifact_bytes = done = 0
        try:
            with _closing(self._backend.export_bundles(models)) as bundles:
                for bundle in bundles:
                    if with_artifacts:
                        artifact_bytes += self._export_bytes(bundle, writer.root)
                    writer.write(bundle)
                    done += bundle.count("versions")
                    if progress is not None:
                        progress(done, plan.versions)
            files = writer.commit(
                {
                    "created_at": format_time(datetime.now(UTC)),
                    "source_dialect": plan.source_dialect,
                    "models_pattern": models,
                    "with_artifacts": with_artifacts,
                }
            )
        except BaseException:
            writer.abort()
            raise
        return ExportResult(str(target), dict(writer.counts), files, artifact_bytes)

    def _export_bytes(self, bundle: ExportBundle, root: Path) -> int:
        size = 0
        lines = [json.loads(raw) for raw in bundle.lines.get("artifacts", ())]
        for line in lines:
            source = self._artifact_source(line)
            if source is None:
                continue  # a reference to storage this registry cannot read: kept as one
            rel = f"{ARTIFACTS_DIR}/{_layout(line)}"
            directory = is_directory_path(line["storage_path"])
            try:
                download_artifact_files(  # into the export's own, fresh tree
                    source,
                    line["storage_path"],
                    root / rel,
                    expected_sha256=line["checksum"],
                    parents=True,
                )
            except ConfigurationError:
                continue  # a server without that storage: a reference, as above
            line["file"] = rel + ("/" if directory else "")
            size += int(line.get("size_bytes") or 0)
        if lines:
            bundle.lines["artifacts"] = [json.dumps(line, ensure_ascii=False) for line in lines]
        return size

    def _artifact_source(self, line: dict[str, Any]) -> StorageBackend | None:
        """Where an exported artifact's bytes can be read, or None for a mere reference."""
        try:
            return self._storages.get(line["storage_backend"])
        except ConfigurationError:
            return None

    def _import_storage(self) -> StorageBackend:
        """Where an import stores the artifact bytes an export carries."""
        return self._storages.default()

    def import_from(
        self,
        src: str | os.PathLike[str],
        *,
        dry_run: bool = False,
        progress: MoveProgress | None = None,
    ) -> ImportReport:
        """Bring an export into this registry, empty or not, model by model.

        Every file's SHA-256 is checked against the manifest first. Each model is then
        imported all or nothing: what is here with the same content is skipped (see
        ``domain/exchange.py`` for "same content"), a conflict refuses the model and is
        reported, never overwritten. Ids are new; times, histories, aliases, lineage and
        policies are kept. Artifact bytes in the export are uploaded to this registry's
        storage and verified. A second import of the same export adds nothing.

        Args:
            dry_run: count what would happen, writing nothing.

        Raises:
            ValidationError: ``src`` is not an export this release reads.
            ChecksumMismatchError: a file of the export differs from its manifest;
                nothing is imported.
        """
        self._authorize(Role.ADMIN, None, action="import_from")
        root = Path(src)
        manifest = _move_files.read_manifest(root)
        _move_files.verify_files(root, manifest)
        listed = manifest.get("counts")
        counts: dict[str, Any] = listed if isinstance(listed, dict) else {}
        kinds = list(counts) or _move_files.export_kinds([])
        strays: list[ImportConflict] = []
        bundles = _move_files.read_bundles(root, kinds, strays)

        def from_export(line: dict[str, Any], _tmp: Path) -> Path | None:
            rel = line.get("file")
            return None if not isinstance(rel, str) else root / rel.rstrip("/")

        carries_bytes = manifest.get("with_artifacts") is not False  # older exports: look
        return self._import_bundles(
            bundles,
            kinds=kinds,
            total=int(counts.get("versions", 0)),
            dry_run=dry_run,
            bytes_source=from_export if carries_bytes else None,
            strays=strays,
            progress=progress,
        )

    def copy_to(
        self,
        target: MoveMethods,
        *,
        with_artifacts: bool = False,
        models: str | None = None,
        dry_run: bool = False,
        progress: MoveProgress | None = None,
    ) -> ImportReport:
        """Import this registry into ``target`` directly: the export stream, without files.

        Args:
            with_artifacts: copy the bytes of every artifact this registry can read into
                ``target``'s storage (else artifacts are recorded as references).

        Returns:
            ``target``'s import report.
        """
        self._authorize(Role.READ, None, action="copy_to")
        plan = self._backend.export_plan(models)

        def from_source(line: dict[str, Any], tmp: Path) -> Path | None:
            source = self._artifact_source(line)
            if source is None:
                return None
            local = tmp / _layout(line)
            download_artifact_files(  # into a scratch directory of our own
                source, line["storage_path"], local, expected_sha256=line["checksum"], parents=True
            )
            return local

        return target._import_bundles(
            (bundle.parsed() for bundle in self._backend.export_bundles(models)),
            kinds=plan.kinds,
            total=plan.versions,
            dry_run=dry_run,
            bytes_source=from_source if with_artifacts else None,
            strays=[],
            progress=progress,
        )

    def _import_bundles(
        self,
        bundles: Iterable[ModelBundle],
        *,
        kinds: list[str],
        total: int,
        dry_run: bool,
        bytes_source: _BytesSource | None,
        strays: list[ImportConflict],
        progress: MoveProgress | None,
    ) -> ImportReport:
        counter = ReportCounter()
        deferred: list[dict[str, Any]] = []
        imported_models: set[str] = set()
        done = 0
        batch: list[tuple[ModelBundle, list[tuple[StorageBackend, str]]]] = []

        def flush() -> None:
            nonlocal done
            outcomes = self._backend.import_bundles(
                [b for b, _ in batch], by=self._by(), dry_run=dry_run
            )
            for (bundle, uploaded), outcome in zip(batch, outcomes, strict=True):
                if outcome.refused:
                    _delete_quietly(uploaded)
                else:
                    imported_models.add(bundle.name)
                counter.merge(outcome.counter)
                deferred.extend(outcome.deferred_edges)
                done += len(bundle.of("versions"))
            batch.clear()
            if progress is not None:
                progress(done, total)

        lines = 0
        with _closing(bundles) as stream:
            for bundle in stream:
                uploaded: list[tuple[StorageBackend, str]] = []
                with _scratch(bytes_source is not None) as tmp:
                    refusal = None
                    if bytes_source is not None and tmp is not None:
                        refusal = self._import_bytes(bundle, bytes_source, tmp, dry_run, uploaded)
                if refusal is not None:
                    counter.refuse(refusal)
                    counter.refused_models.append(bundle.name)
                    done += len(bundle.of("versions"))
                    continue
                batch.append((bundle, uploaded))
                lines += sum(len(v) for v in bundle.lines.values())
                if lines >= _BATCH_LINES:
                    flush()
                    lines = 0
        if batch:
            flush()
        for start in range(0, len(deferred), _BATCH_LINES):
            self._import_deferred_edges(
                deferred[start : start + _BATCH_LINES], counter, dry_run, imported_models
            )
        for stray in strays:
            counter.refuse(stray)
        return counter.report(dry_run=dry_run, kinds=kinds)

    def _import_deferred_edges(
        self, lines: list[dict[str, Any]], counter: ReportCounter, dry_run: bool, models: set[str]
    ) -> None:
        applied = []
        for line in lines:
            if dry_run and line["parent_model"] in models and line["parent_model"] != line["model"]:
                counter.add("imported", "lineage_edges")  # its parent's model would be written
            else:
                applied.append(line)
        outcomes = (
            self._backend.import_edges(applied, by=self._by(), dry_run=dry_run) if applied else []
        )
        for line, outcome in zip(applied, outcomes, strict=True):
            if outcome is None:
                counter.add("imported", "lineage_edges")
            elif outcome == "skipped":
                counter.add("skipped", "lineage_edges")
            else:
                parent, child = line["parent_model"], line["model"]
                ref = f"{parent}@{line['parent_version']} -> {child}@{line['version']}"
                counter.refuse(ImportConflict("lineage_edges", line["model"], ref, outcome))

    def _import_bytes(
        self,
        bundle: ModelBundle,
        bytes_source: _BytesSource,
        tmp: Path,
        dry_run: bool,
        uploaded: list[tuple[StorageBackend, str]],
    ) -> ImportConflict | None:
        """Upload the bundle's artifact bytes to this registry's storage; why not, if not.

        Bytes already recorded here with the same checksum are not sent again; a path
        that holds other bytes is never overwritten.
        """
        lines = bundle.of("artifacts")
        if not lines:
            return None
        recorded = self._backend.artifact_checksums(bundle.name)
        for line in lines:
            ref = f"{bundle.name}@{line.get('version')}"
            try:
                key = (line["version"], line["type"], _file_name(line["storage_path"]))
                if recorded.get(key, "") == line.get("checksum"):
                    continue  # the import will skip this artifact
                local = bytes_source(line, tmp)
                if local is None:
                    continue  # a reference: recorded as it is
                backend = self._import_storage()
                remote = _layout(line)
                directory = is_directory_path(line["storage_path"])
                stored = remote + "/" if directory else remote
                if backend.exists(remote + "/" + MANIFEST_NAME if directory else remote):
                    # The same bytes stored already (this storage served the export): reuse them.
                    checksum = line.get("checksum")
                    if checksum and verify_artifact_files(backend, stored, checksum):
                        line["storage_backend"], line["storage_path"] = backend.name, stored
                        continue
                    return ImportConflict(
                        "artifact_bytes",
                        bundle.name,
                        ref,
                        f"{backend.name} storage holds other bytes at {remote}; not overwritten",
                    )
                if dry_run:
                    continue
                result = upload_artifact_files(backend, local, remote)
                uploaded.append((backend, result.storage_path))
                if result.sha256 != line.get("checksum"):
                    _delete_quietly(uploaded)
                    return ImportConflict(
                        "artifact_bytes",
                        bundle.name,
                        ref,
                        f"the bytes of {remote} have SHA-256 {result.sha256}, "
                        f"not the recorded {line.get('checksum')}",
                    )
                line["storage_backend"] = backend.name
                line["storage_path"] = result.storage_path
            except (KeyError, TypeError) as exc:
                _delete_quietly(uploaded)
                return ImportConflict("lines", bundle.name, ref, f"invalid artifact line: {exc}")
            except RegistryError as exc:  # StorageError, ChecksumMismatchError, bad path
                _delete_quietly(uploaded)
                return ImportConflict("artifact_bytes", bundle.name, ref, str(exc))
        return None

    # -- what a server's move routes run (server/routes/moving.py), checked like the above

    def _export_plan_checked(self, models: str | None) -> ExportPlan:
        self._authorize(Role.READ, None, action="export_to")
        return self._backend.export_plan(models)

    def _export_stream_checked(self, models: str | None) -> Iterator[ExportBundle]:
        """The backend's export stream, once the caller may read every model."""
        self._authorize(Role.READ, None, action="export_to")
        return self._backend.export_bundles(models)

    def _check_import(self) -> None:
        """Refuse unless the caller may import (admin on every model)."""
        self._authorize(Role.ADMIN, None, action="import_from")

    def _import_bundles_checked(
        self, bundles: list[ModelBundle], *, dry_run: bool
    ) -> list[BundleOutcome]:
        self._check_import()
        return self._backend.import_bundles(bundles, by=self._by(), dry_run=dry_run)

    def _import_edges_checked(
        self, lines: list[dict[str, Any]], *, dry_run: bool
    ) -> list[str | None]:
        self._check_import()
        return self._backend.import_edges(lines, by=self._by(), dry_run=dry_run)

    def _artifact_checksums_checked(
        self, model_name: str
    ) -> dict[tuple[str, str, str], str | None]:
        self._authorize(Role.READ, model_name, action="artifact_checksums")
        return self._backend.artifact_checksums(model_name)

    def import_hf(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        token: str | None = None,
        endpoint: str | None = None,
        copy_artifacts: bool = False,
    ) -> ModelVersion:
        """Register a Hugging Face Hub model from its model card; importing it again is a no-op.

        The version is ``<repo_id>@<commit[:12]>`` (recipe ``huggingface-hub``, the commit
        in its training config, so one commit is one version). The card's ``base_model``
        becomes lineage to the latest version of the model of that name when the registry
        has one (``base_model_relation`` says how; see ``domain/hub_card.py``), else stays
        an external base model; ``model-index`` results become metrics; tags and license
        become tags. The repository's files become artifacts by reference
        (``hf://<repo_id>@<commit>/<path>``), or, with ``copy_artifacts``, are downloaded,
        verified and uploaded to this registry's storage.

        Raises:
            NotFoundError: no such repository or revision.
            StorageError: the Hub failed or the card cannot be parsed.
        """
        self._authorize(Role.ADMIN, None, action="import_hf")
        hub = read_hub_model(repo_id, revision=revision, token=token, endpoint=endpoint)
        bases = base_models(hub.card)
        parents: list[ModelVersion] = []
        for base in bases:
            with contextlib.suppress(NotFoundError, ValidationError):
                parents.append(self.get_version(f"{base}@latest"))
        files = [f for f in hub.files if f.path != ".gitattributes"]
        references = [
            {
                "type": artifact_type_for(f.path).value,
                "storage_backend": "huggingface",
                "storage_path": f"hf://{repo_id}@{hub.commit}/{f.path}",
                "checksum": f.sha256,
                "size_bytes": f.size_bytes,
            }
            for f in files
        ]
        fields = dict(
            model_name=repo_id,
            version=hub.commit[:12],
            recipe=HUB_RECIPE,
            base_model=bases[0] if bases else repo_id,
            training_config={"hub_repo": repo_id, "hub_commit": hub.commit},
            metrics=card_metrics(hub.card),
            tags=card_tags(hub.card),
            description=f"Imported from the Hugging Face Hub: {repo_id} at {hub.commit}",
            artifacts=None if copy_artifacts else references,
            parents=list(parents) or None,
            lineage_type=card_relationship(hub.card).value,
            on_duplicate="return",
        )
        by = self._by()
        spec = new_version_from_input(fields, actor=by.actor)
        with telemetry.operation("register", model=repo_id) as op:
            version = self._backend.register(spec, by=by)
            op.metadata.update(version=version.version, stage=version.stage.value)
        if copy_artifacts and not version.artifacts:
            options = {"repo_id": repo_id, "revision": hub.commit, "token": token}
            if endpoint is not None:
                options["endpoint"] = endpoint
            source = create_backend("huggingface", options)
            with _scratch(True) as tmp:
                assert tmp is not None
                for f in files:
                    local = tmp / f.path
                    source.download(f.path, local, expected_sha256=f.sha256)
                    kind = artifact_type_for(f.path)
                    remote = artifact_remote_path(
                        repo_id, version.version, kind.value, f.path.replace("/", "--")
                    )
                    _transfers.upload(
                        self._backend,
                        self._storages.default(),
                        version,
                        kind=kind,
                        local=local,
                        remote=remote,
                        by=by,
                    )
            version = self.get_version(version.id)
        return version


def _file_name(storage_path: str) -> str:
    return storage_path.rstrip("/").rsplit("/", 1)[-1]


def _layout(line: dict[str, Any]) -> str:
    """Where an artifact's bytes go: ``<model>/<version>/<type>/<file name>``."""
    name = _file_name(str(line["storage_path"]))
    try:
        return artifact_remote_path(line["model"], line["version"], line["type"], name)
    except ValidationError:
        raise
    except (TypeError, ValueError) as exc:
        raise ValidationError.single("artifacts", f"bad artifact line: {exc}") from exc


@contextlib.contextmanager
def _scratch(wanted: bool) -> Iterator[Path | None]:
    if not wanted:
        yield None
        return
    path = Path(tempfile.mkdtemp(prefix="cmr-move-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _closing(items: Iterable[T]) -> Iterator[Iterator[T]]:
    """Iterate ``items`` and close them on the way out, early or not (a generator's files,
    or the read transaction of an export)."""
    stream = iter(items)
    try:
        yield stream
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


def _delete_quietly(uploaded: list[tuple[StorageBackend, str]]) -> None:
    while uploaded:
        backend, path = uploaded.pop()
        with contextlib.suppress(Exception):  # cleanup must not hide the refusal
            delete_artifact_files(backend, path)
