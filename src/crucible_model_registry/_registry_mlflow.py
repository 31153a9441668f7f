"""``Registry.import_mlflow``: an MLflow model registry brought over, model by model.

The MLflow registry is read (``_mlflow_source``: its database or its REST API), each model
mapped to the export form (``domain.mlflow``, where the mapping is documented) and applied
by the export import (the backend's ``import_bundles``), one model per transaction: what is here
with the same content is skipped, so a second run imports nothing, and a run interrupted
between models resumes where it stopped. Artifact bytes, when asked for, are copied after
their model's records, through the ordinary upload (SHA-256 and size computed on the way).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crucible_model_registry import _transfers
from crucible_model_registry._mlflow_source import MlflowSource, open_source
from crucible_model_registry._registry_move import MoveMethods, MoveProgress, _scratch
from crucible_model_registry.backends.http import HttpBackend
from crucible_model_registry.domain.enums import ArtifactType
from crucible_model_registry.domain.exchange import ImportConflict, ReportCounter
from crucible_model_registry.domain.mlflow import (
    MlflowImportReport,
    MlflowModel,
    bundle_for,
    our_model_name,
)
from crucible_model_registry.errors import ConfigurationError, NotFoundError, RegistryError
from crucible_model_registry.storage.base import artifact_remote_path

if TYPE_CHECKING:
    from crucible_model_registry.domain.records import ModelVersion

__all__ = ["MlflowMethods"]

_KINDS = ["models", "versions", "stage_transitions", "aliases", "alias_changes", "artifacts"]


class MlflowMethods(MoveMethods):
    """The MLflow importer (API.md §13, issue 17); part of ``Registry``."""

    def import_mlflow(
        self,
        uri: str,
        *,
        models: str | None = None,
        copy_artifacts: bool = False,
        dry_run: bool = False,
        token: str | None = None,
        progress: MoveProgress | None = None,
    ) -> MlflowImportReport:
        """Bring an MLflow model registry over: models, versions, stages, aliases, tags.

        See ``domain/mlflow.py`` for the mapping (MLflow tags, source and run id land in
        ``metadata["mlflow"]`` of models and versions; recipe ``mlflow``; every MLflow
        version comes over, one run registered twice included). Times are kept. Each model
        is imported all or nothing; a model here already is compared version by version:
        the same content is skipped, a difference refuses the model (reported, never
        overwritten). Idempotent and resumable: run it again after an interruption.

        Args:
            uri: an MLflow database URL (``sqlite:///mlflow.db``, ``postgresql://...``)
                or tracking server (``http://host:5000``).
            models: an fnmatch glob of MLflow model names (``"churn-*"``).
            copy_artifacts: copy each version's files (a local or ``file://`` location,
                or the server's ``mlflow-artifacts`` proxy) into this registry's storage as
                a ``checkpoint`` artifact; without it only ``source`` is kept.
            dry_run: report what would be imported; write nothing.
            token: a bearer token for an MLflow server (``MLFLOW_TRACKING_TOKEN``).
            progress: called with (versions done, versions in all).

        Raises:
            ValidationError: ``uri`` is not an MLflow registry.
            ConfigurationError: this registry is remote, or a driver is missing.
            StorageError: the MLflow server failed.
        """
        if isinstance(self._backend, HttpBackend):  # before MLflow is read
            raise ConfigurationError(
                f"{self!r}: import mlflow needs a SQL database (it copies files into the "
                "registry's storage); run it where the registry's database is reachable"
            )
        self._check_import()
        source = open_source(uri, token=token)
        try:
            chosen = list(source.models(models))
            total = sum(len(m.versions) for m in chosen)
            counter = ReportCounter()
            unmapped: list[ImportConflict] = []
            done = 0
            for model in chosen:
                bundle, problems = bundle_for(model)
                unmapped.extend(problems)
                if bundle is not None:
                    [outcome] = self._backend.import_bundles(
                        [bundle], by=self._by(), dry_run=dry_run
                    )
                    counter.merge(outcome.counter)
                    if copy_artifacts and not outcome.refused:
                        mapped = {line["version"] for line in bundle.of("versions")}
                        self._copy_mlflow_files(
                            source, model, mapped, counter, unmapped, dry_run=dry_run
                        )
                done += len(model.versions)
                if progress is not None:
                    progress(done, total)
        finally:
            source.close()
        return MlflowImportReport.of(
            counter.report(dry_run=dry_run, kinds=_KINDS),
            source=source.describe(),
            models_read=len(chosen),
            versions_read=total,
            unmapped=unmapped,
        )

    def _copy_mlflow_files(
        self,
        source: MlflowSource,
        model: MlflowModel,
        mapped: set[str],
        counter: ReportCounter,
        unmapped: list[ImportConflict],
        *,
        dry_run: bool,
    ) -> None:
        name = our_model_name(model)
        backend = self._storages.default()
        kind = ArtifactType.CHECKPOINT
        for mlflow_version in model.versions:
            if str(mlflow_version.version) not in mapped:
                continue
            ref = f"{name}@{mlflow_version.version}"
            version: ModelVersion | None
            try:
                version = self.get_version(ref)
            except NotFoundError:
                version = None  # a dry run's new version, or one not mapped
            if version is not None and version.artifacts:
                counter.add("skipped", "artifacts")
                continue
            if dry_run:
                counter.add("imported", "artifacts")
                continue
            if version is None:
                continue
            with _scratch(True) as tmp:
                assert tmp is not None
                try:
                    local = source.fetch_artifacts(model, mlflow_version, tmp)
                    remote = artifact_remote_path(name, version.version, kind.value, local.name)
                    _transfers.upload(
                        self._backend,
                        backend,
                        version,
                        kind=kind,
                        local=local,
                        remote=remote,
                        by=self._by(),
                    )
                except (RegistryError, OSError) as exc:
                    unmapped.append(ImportConflict("artifacts", name, ref, str(exc)))
                    continue
            counter.add("imported", "artifacts")
