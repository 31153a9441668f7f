"""HttpBackend: the MetadataBackend over a registry server's REST API (``cmr serve``).

Each method is one request; the server's ``Registry`` runs every rule on its SQL backend and
answers in the wire form (``wire.py``), which is read back here into the same records and,
for an error, raised again as the same class with the same attributes. Artifact bytes move
through the server too (:meth:`upload_artifact`, :meth:`download_artifact`): this backend
has no upload claims of its own, the server holds them.

Requests time out, share one pooled connection set, and are retried with exponential
backoff when the connection fails or the server answers 502/503/504, but only when
repeating them cannot do a thing twice: reads, deletes, and the merges that are no-ops
when repeated. A registration is never resent blindly: before a retry the client asks
whether the training run (its config hash, recipe and base model) is recorded by now, and
if it is, that version is the answer (dedup semantics, no idempotency key). httpx2 (the
client ``huggingface_hub`` uses) is imported on the first request, not with this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from crucible_model_registry.backends.base import KEEP, Keep, UploadClaim
from crucible_model_registry.domain.access import NewToken, Role, TokenInfo
from crucible_model_registry.domain.audit import Attribution, AuditEntry
from crucible_model_registry.domain.exchange import (
    BundleOutcome,
    ExportBundle,
    ExportPlan,
    ModelBundle,
)
from crucible_model_registry.domain.integrity import IntegrityReport
from crucible_model_registry.domain.lineage import LineageGraph, LineageHit
from crucible_model_registry.domain.policy import PolicyChange, PromotionCheck, PromotionPolicy
from crucible_model_registry.domain.query_spec import Page
from crucible_model_registry.domain.records import (
    AliasChange,
    Artifact,
    LineageEdge,
    Model,
    ModelVersion,
    PromotionResult,
    StageTransition,
)
from crucible_model_registry.domain.storage_reports import ArtifactDeletion, GarbageReport
from crucible_model_registry.errors import (
    AuthenticationError,
    ChecksumMismatchError,
    ConfigurationError,
    DatabaseError,
    NotFoundError,
    PermissionDeniedError,
    RegistryError,
    ValidationError,
)
from crucible_model_registry.wire import error_from_json, from_json, to_json

if TYPE_CHECKING:
    import httpx2

    from crucible_model_registry.domain.enums import ArtifactType, Relationship, Stage
    from crucible_model_registry.domain.lineage import Direction
    from crucible_model_registry.domain.query_spec import QuerySpec
    from crucible_model_registry.domain.refs import VersionRef
    from crucible_model_registry.domain.specs import ArtifactSpec, NewVersion
    from crucible_model_registry.domain.storage_reports import BackendRecords
    from crucible_model_registry.storage.base import ProgressCallback

__all__ = ["ACTOR_HEADER", "HttpBackend", "is_server_url"]

T = TypeVar("T")

ACTOR_HEADER = "X-CMR-Actor"
"""Who acts (percent-encoded UTF-8), for the server's histories, until access control names
the token's principal instead."""

_CHUNK = 1024 * 1024
_RETRY_STATUSES = frozenset({502, 503, 504})


def is_server_url(url: str) -> bool:
    """Does ``url`` name a registry server (``http://`` or ``https://``)?"""
    return url.startswith(("http://", "https://"))


class HttpBackend:
    """Models, versions, lineage and histories kept by a registry server.

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:8470``.
        token: sent as ``Authorization: Bearer <token>``; never printed.
        timeout: seconds to connect and between bytes of an answer.
        retries: further attempts of a request that may be repeated (see the module).
        backoff: the first wait between attempts, doubled each time.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
    ) -> None:
        if not is_server_url(url):
            raise ConfigurationError(f"not a registry server URL (http:// or https://): {url!r}")
        parts = urlsplit(url.rstrip("/"))
        if parts.username or parts.password:
            raise ConfigurationError("put the token in token= or CMR_TOKEN, not in the URL")
        self._url = urlunsplit(parts)
        self._token = token
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._client: httpx2.Client | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ transport

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self._url

    def _http(self) -> httpx2.Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import httpx2

                    headers = {"user-agent": "crucible-model-registry"}
                    if self._token:
                        headers["authorization"] = f"Bearer {self._token}"
                    self._client = httpx2.Client(
                        base_url=self._url,
                        headers=headers,
                        timeout=httpx2.Timeout(self._timeout),
                        limits=httpx2.Limits(max_connections=32, max_keepalive_connections=16),
                    )
        return self._client

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, object] | None = None,
        actor: str | None = None,
        retry: bool = True,
        before_retry: Callable[[], T | None] | None = None,
    ) -> Any:
        """One request to ``/api/v1`` + ``path``; the decoded JSON answer (None for 204).

        Raises:
            RegistryError: the server's error, as the same class; DatabaseError when the
                server cannot be reached.
        """
        import httpx2

        # Writes name their actor (never the request id: the server has its own); the
        # server trusts it until access control names the token's principal instead.
        headers = {ACTOR_HEADER: quote(actor, safe="")} if actor is not None else {}
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            failure: Exception | None = None
            try:
                response = self._http().request(
                    method,
                    "/api/v1" + path,
                    json=json,
                    params=query,
                    headers=headers,
                )
            except httpx2.ConnectError as exc:  # never reached the server: always safe to resend
                failure = exc
                repeatable = True
            except httpx2.TransportError as exc:  # sent, perhaps processed: only if repeatable
                failure = exc
                repeatable = retry or before_retry is not None
            else:
                if response.status_code not in _RETRY_STATUSES or attempt >= self._retries:
                    return self._answer(response)
                repeatable = retry or before_retry is not None
                if not repeatable:
                    return self._answer(response)
            if not repeatable or attempt >= self._retries:
                raise DatabaseError(
                    f"the registry server at {self._url} did not answer {method} {path}: "
                    f"{type(failure).__name__}; is `cmr serve` running there?"
                ) from failure
            time.sleep(self._backoff * (2**attempt))
            attempt += 1
            if before_retry is not None:
                with contextlib.suppress(RegistryError):
                    found = before_retry()
                    if found is not None:
                        return found

    def _answer(self, response: httpx2.Response) -> Any:
        if not response.is_success:
            _raise_for(response, self._url)
        return None if response.status_code == 204 else response.json()

    def _get(self, kind: type[T], path: str, **params: object) -> T:
        return from_json(kind, self._send("GET", path, params=params), field="answer")

    # ------------------------------------------------------------------ schema

    def migrate(self) -> None:
        """Check that the server is ready; its operator migrates (``cmr db upgrade``)."""
        import httpx2

        try:
            response = self._http().get("/readyz")
        except httpx2.TransportError as exc:
            raise DatabaseError(f"the registry server at {self._url} is unreachable") from exc
        if not response.is_success:
            _raise_for(response, self._url)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def describe(self) -> str:
        return self._url

    def check(self) -> IntegrityReport:
        return self._get(IntegrityReport, "/check")

    def record_audit(self, **fields: Any) -> NoReturn:
        raise ConfigurationError(
            "the audit log is written by the registry server, not by its clients"
        )

    # ------------------------------------------------------------------ tokens

    def create_token(
        self,
        name: str,
        *,
        role: Role,
        models: tuple[str, ...],
        expires_in: timedelta | None,
        actor: str,
        request_id: str | None,
    ) -> NewToken:
        body = {
            "name": name,
            "role": role.value,
            "models": list(models),
            "expires_in": None if expires_in is None else int(expires_in.total_seconds()),
        }
        # Not resent: a second attempt would find the name taken, and the secret is lost.
        return from_json(NewToken, self._send("POST", "/tokens", json=body, retry=False))

    def list_tokens(self) -> list[TokenInfo]:
        return self._get(list[TokenInfo], "/tokens")

    def revoke_token(self, name: str, *, actor: str, request_id: str | None) -> None:
        self._send("DELETE", f"/tokens/{quote(name, safe='')}", retry=False)

    def audit_log(
        self,
        *,
        since: datetime | None,
        actor: str | None,
        action: str | None,
        limit: int,
    ) -> list[AuditEntry]:
        return self._get(
            list[AuditEntry], "/audit", since=since, actor=actor, action=action, limit=limit
        )

    # ------------------------------------------------------------------ models and versions

    def register(self, spec: NewVersion, *, by: Attribution) -> ModelVersion:
        fields: dict[str, object] = {
            "model_name": spec.model_name,
            "version": spec.version,
            "recipe": spec.recipe,
            "base_model": spec.base_model,
            "training_config": spec.training_config,
            "metrics": spec.metrics,
            "tags": spec.tags,
            "description": spec.description,
            "metadata": spec.metadata,
            "artifacts": [_artifact_input(a) for a in spec.artifacts],
            "parents": [str(p) for p in spec.parents],
            "on_duplicate": spec.on_duplicate,
        }
        if spec.parents:
            fields["lineage_type"] = spec.relationship.value

        def registered_meanwhile() -> ModelVersion | None:
            # The first attempt may have been recorded before its answer was lost.
            found = self.find_by_config_hash(spec.config_hash)
            same_run = (
                found is not None
                and found.model_name == spec.model_name
                and found.recipe == spec.recipe
                and found.base_model == spec.base_model
                and spec.version in (None, found.version)
            )
            return found if same_run else None

        data = self._send(
            "POST",
            "/versions",
            json=to_json(fields),
            actor=by.actor,
            retry=False,
            before_retry=registered_meanwhile,
        )
        return data if isinstance(data, ModelVersion) else from_json(ModelVersion, data)

    def get_version(self, ref: VersionRef, *, at: datetime | None = None) -> ModelVersion:
        return self._get(ModelVersion, f"/versions/{_ref(ref)}", at=at)

    def find_by_config_hash(self, config_hash: str) -> ModelVersion | None:
        return self._get(
            ModelVersion | None,  # type: ignore[arg-type]
            f"/versions/by-config-hash/{quote(config_hash, safe='')}",
        )

    def get_model(self, name: str) -> Model:
        return self._get(Model, f"/models/{_path(name)}")

    def list_models(self) -> list[Model]:
        return self._get(list[Model], "/models")

    def update_model(
        self,
        name: str,
        *,
        description: str | Keep | None = KEEP,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        metadata_patch: dict[str, Any] | None = None,
        by: Attribution,
    ) -> Model:
        body: dict[str, object] = {}
        if description is not KEEP:
            body["description"] = description
        if tags is not None:
            body["tags"] = tags
        if metadata is not None:
            body["metadata"] = metadata
        if metadata_patch is not None:
            body["metadata_patch"] = metadata_patch
        data = self._send("PATCH", f"/models/{_path(name)}", json=body, actor=by.actor)
        return from_json(Model, data)

    def create_model(
        self,
        name: str,
        *,
        description: str | None,
        tags: list[str],
        metadata: dict[str, Any],
        by: Attribution,
    ) -> Model:
        body = {"name": name, "description": description, "tags": tags, "metadata": metadata}
        # Not resent: a second POST after a lost answer would report the model existing.
        data = self._send("POST", "/models", json=body, retry=False, actor=by.actor)
        return from_json(Model, data)

    def rename_model(self, name: str, new_name: str, *, by: Attribution) -> Model:
        # Resending is safe only before the first attempt landed; a lost answer is then
        # told apart by the caller (the new name exists, the old one does not).
        data = self._send(
            "POST",
            f"/models/{_path(name)}/rename",
            json={"new_name": new_name},
            retry=False,
            actor=by.actor,
        )
        return from_json(Model, data)

    def delete_model(self, name: str, *, force: bool, by: Attribution) -> Model:
        # Not resent: a second DELETE after a lost answer would report the model missing.
        data = self._send(
            "DELETE",
            f"/models/{_path(name)}",
            params={"force": force},
            retry=False,
            actor=by.actor,
        )
        return from_json(Model, data)

    def update_version(
        self,
        ref: VersionRef,
        *,
        description: str | Keep | None = KEEP,
        metadata: dict[str, Any] | None = None,
        metadata_patch: dict[str, Any] | None = None,
        by: Attribution,
    ) -> ModelVersion:
        body: dict[str, object] = {}
        if description is not KEEP:
            body["description"] = description
        if metadata is not None:
            body["metadata"] = metadata
        if metadata_patch is not None:
            body["metadata_patch"] = metadata_patch
        data = self._send("PATCH", f"/versions/{_ref(ref)}", json=body, actor=by.actor)
        return from_json(ModelVersion, data)

    def promote(
        self,
        ref: VersionRef,
        target: Stage,
        *,
        reason: str | None,
        by: Attribution,
        archive_existing: bool,
    ) -> PromotionResult:
        body = {"stage": target.value, "reason": reason, "archive_existing": archive_existing}
        # Promoting to the stage a version holds is a no-op, so a resent promotion is safe.
        data = self._send("POST", f"/versions/{_ref(ref)}/promote", json=body, actor=by.actor)
        return from_json(PromotionResult, data)

    def check_promotion(
        self, ref: VersionRef, target: Stage, *, actor: str | None, archive_existing: bool
    ) -> PromotionCheck:
        # The server judges the four-eyes rule for the token's principal, not ``actor``.
        return self._get(
            PromotionCheck,
            f"/versions/{_ref(ref)}/promotion-check",
            stage=target.value,
            archive_existing=archive_existing,
        )

    def stage_history(self, ref: VersionRef) -> list[StageTransition]:
        return self._get(list[StageTransition], f"/versions/{_ref(ref)}/stage-history")

    def update_metrics(
        self, ref: VersionRef, metrics: dict[str, float], *, by: Attribution
    ) -> ModelVersion:
        path = f"/versions/{_ref(ref)}/metrics"
        data = self._send("PATCH", path, json={"metrics": metrics}, actor=by.actor)
        return from_json(ModelVersion, data)

    def add_tags(self, ref: VersionRef, tags: list[str], *, by: Attribution) -> ModelVersion:
        path = f"/versions/{_ref(ref)}/tags"
        data = self._send("PATCH", path, json={"add": tags}, actor=by.actor)
        return from_json(ModelVersion, data)

    def remove_tags(self, ref: VersionRef, tags: list[str], *, by: Attribution) -> ModelVersion:
        path = f"/versions/{_ref(ref)}/tags"
        data = self._send("PATCH", path, json={"remove": tags}, actor=by.actor)
        return from_json(ModelVersion, data)

    def delete_version(self, ref: VersionRef, *, force: bool, by: Attribution) -> ModelVersion:
        # Not resent: a second DELETE after a lost answer would report the version missing.
        data = self._send(
            "DELETE", f"/versions/{_ref(ref)}", params={"force": force}, actor=by.actor, retry=False
        )
        return from_json(ModelVersion, data)

    # ------------------------------------------------------------------ aliases and policies

    def set_alias(
        self, ref: VersionRef, alias: str, *, reason: str | None, by: Attribution
    ) -> ModelVersion:
        body = {"version": str(ref), "alias": alias, "reason": reason}
        return from_json(ModelVersion, self._send("POST", "/aliases", json=body, actor=by.actor))

    def delete_alias(
        self, model_name: str, alias: str, *, reason: str | None, by: Attribution
    ) -> None:
        self._send(
            "DELETE",
            f"/models/{_path(model_name)}/aliases/{quote(alias, safe='')}",
            params={"reason": reason},
            actor=by.actor,
            retry=False,
        )

    def alias_history(self, model_name: str) -> list[AliasChange]:
        return self._get(list[AliasChange], f"/models/{_path(model_name)}/aliases/history")

    def set_policy(
        self, model_name: str, policy: PromotionPolicy | None, *, by: Attribution
    ) -> None:
        body = {"policy": None if policy is None else policy.to_dict()}
        self._send("PUT", f"/models/{_path(model_name)}/policy", json=body, actor=by.actor)

    def policy_history(self, model_name: str) -> list[PolicyChange]:
        return self._get(list[PolicyChange], f"/models/{_path(model_name)}/policy/history")

    def get_policy(self, model_name: str) -> PromotionPolicy | None:
        data = self._send("GET", f"/models/{_path(model_name)}/policy")
        policy = data.get("policy") if isinstance(data, dict) else None
        return None if policy is None else from_json(PromotionPolicy, policy, field="policy")

    # ------------------------------------------------------------------ lineage

    def add_edge(
        self,
        parent: VersionRef,
        child: VersionRef,
        *,
        relationship: Relationship,
        metadata: dict[str, Any],
        by: Attribution,
    ) -> LineageEdge:
        body = {
            "parent": str(parent),
            "child": str(child),
            "relationship": relationship.value,
            "metadata": metadata,
        }
        data = self._send("POST", "/lineage/edges", json=to_json(body), actor=by.actor)
        return from_json(LineageEdge, data)

    def ancestors(self, ref: VersionRef, max_depth: int | None) -> list[LineageHit]:
        path = f"/versions/{_ref(ref)}/ancestors"
        return self._get(list[LineageHit], path, max_depth=max_depth)

    def descendants(self, ref: VersionRef, max_depth: int | None) -> list[LineageHit]:
        path = f"/versions/{_ref(ref)}/descendants"
        return self._get(list[LineageHit], path, max_depth=max_depth)

    def lineage(
        self, ref: VersionRef, *, direction: Direction, max_depth: int | None
    ) -> LineageGraph:
        path = f"/versions/{_ref(ref)}/lineage"
        return self._get(LineageGraph, path, direction=direction, max_depth=max_depth)

    def would_create_cycle(self, parent: VersionRef, child: VersionRef) -> bool:
        data = self._send(
            "GET", "/lineage/would-create-cycle", params={"parent": parent, "child": child}
        )
        return bool(data["would_create_cycle"])

    # ------------------------------------------------------------------ artifact records

    def get_artifact(self, artifact_id: int) -> Artifact:
        return self._get(Artifact, f"/artifacts/{artifact_id}")

    def claim_upload(self, version_id: int, backend: str, remote: str, *, ref: str) -> UploadClaim:
        _server_side("claim_upload")

    def new_claim(self, backend: str, remote: str) -> UploadClaim:
        _server_side("new_claim")

    def release_upload(self, claim: UploadClaim) -> bool:
        _server_side("release_upload")

    def renew_claim(self, claim: UploadClaim) -> bool:
        _server_side("renew_claim")

    def holds_claim(self, claim: UploadClaim) -> bool:
        _server_side("holds_claim")

    def keep_claim_alive(self, claim: UploadClaim) -> contextlib.AbstractContextManager[None]:
        _server_side("keep_claim_alive")

    def add_artifact(
        self,
        version_id: int,
        spec: ArtifactSpec,
        *,
        claim: UploadClaim | None = None,
        by: Attribution,
    ) -> Artifact:
        _server_side("add_artifact")

    def artifacts_sharing(
        self, backend: str, remote: str, *, excluding: int
    ) -> list[tuple[int, str]]:
        _server_side("artifacts_sharing")

    def backend_records(self, backend: str) -> BackendRecords:
        _server_side("backend_records")

    def blob_candidates(self, backend: str, size_bytes: int, probe: str) -> bool:
        _server_side("blob_candidates")

    def pin_blob(self, claim: UploadClaim, sha256: str) -> bool:
        _server_side("pin_blob")

    def blob_in_use(self, backend: str, sha256: str) -> bool:
        _server_side("blob_in_use")

    def remove_artifact(
        self, artifact_id: int, *, claim: UploadClaim | None = None, by: Attribution
    ) -> Artifact:
        record = self.get_artifact(artifact_id)
        path = f"/artifacts/{artifact_id}"
        self._send("DELETE", path, params={"keep_bytes": True}, actor=by.actor, retry=False)
        return record

    # ------------------------------------------------------------------ artifact bytes

    def upload_artifact(
        self,
        ref: VersionRef,
        kind: ArtifactType,
        local: Path,
        *,
        name: str,
        storage: str | None,
        progress: ProgressCallback | None,
        by: Attribution,
    ) -> Artifact:
        """Stream a file, or a directory as a tar, to the server, which stores and records it.

        Not resent on failure (the body is a stream); the server records nothing for an
        upload that did not arrive whole.
        """
        layout = "tar" if local.is_dir() else "file"
        chunks = _tar_stream(local) if layout == "tar" else _file_stream(local)
        response = self._stream_request(
            "PUT",
            f"/versions/{_ref(ref)}/artifacts/{quote(kind.value, safe='')}",
            params={"name": name, "layout": layout, "storage": storage},
            content=_counted(chunks, progress),
            headers={
                "content-type": "application/x-tar"
                if layout == "tar"
                else "application/octet-stream",
                ACTOR_HEADER: quote(by.actor, safe=""),
            },
        )
        return from_json(Artifact, response)

    def fetch_file(
        self,
        record: Artifact,
        file: str | None,
        local: Path,
        *,
        expected_sha256: str | None,
        progress: ProgressCallback | None,
    ) -> str:
        """Stream one stored file of ``record`` (a folder's ``file``, or its manifest) to
        ``local``, verified here against ``expected_sha256``; its SHA-256.

        Raises:
            ChecksumMismatchError: the bytes do not match; nothing is left at ``local``.
        """
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.with_name(f".{local.name[:64]}.{os.getpid()}.cmr-tmp")
        try:
            digest = self._fetch(record, file, partial, progress)
            if expected_sha256 is not None and digest != expected_sha256:
                raise ChecksumMismatchError(
                    backend=record.storage_backend,
                    path=record.storage_path + (file or ""),
                    expected=expected_sha256,
                    actual=digest,
                )
            # Rename only after the hash matches, so readers never see a wrong file.
            os.replace(partial, local)
        finally:
            partial.unlink(missing_ok=True)
        return digest

    def artifact_url(self, artifact_id: int, *, expires_in: int, file: str | None) -> str:
        params = {"expires_in": expires_in, "file": file}
        return str(self._send("GET", f"/artifacts/{artifact_id}/url", params=params)["url"])

    def verify_artifact(self, artifact_id: int) -> bool:
        return bool(self._send("POST", f"/artifacts/{artifact_id}/verify")["ok"])

    def delete_artifact(
        self, artifact_id: int, *, keep_bytes: bool, by: Attribution
    ) -> ArtifactDeletion:
        data = self._send(
            "DELETE",
            f"/artifacts/{artifact_id}",
            params={"keep_bytes": keep_bytes},
            actor=by.actor,
            retry=False,
        )
        return from_json(ArtifactDeletion, data)

    def collect_garbage(
        self, *, dry_run: bool, older_than_seconds: float, storage: str | None, by: Attribution
    ) -> GarbageReport:
        body = {"dry_run": dry_run, "older_than_seconds": older_than_seconds, "storage": storage}
        data = self._send("POST", "/gc", json=body, actor=by.actor, retry=False)
        return from_json(GarbageReport, data)

    def _stream_request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx2

        headers = kwargs.pop("headers", {})
        params = {k: _param(v) for k, v in kwargs.pop("params", {}).items() if v is not None}
        try:
            response = self._http().request(
                method,
                "/api/v1" + path,
                headers=headers,
                params=params,
                timeout=httpx2.Timeout(self._timeout, read=None, write=None),
                **kwargs,
            )
        except httpx2.TransportError as exc:
            raise DatabaseError(
                f"the registry server at {self._url} did not answer {method} {path}: "
                f"{type(exc).__name__}"
            ) from exc
        return self._answer(response)

    def _fetch(
        self, record: Artifact, file: str | None, dest: Path, progress: ProgressCallback | None
    ) -> str:
        import httpx2

        digest = hashlib.sha256()
        params = {} if file is None else {"file": file}
        try:
            with self._http().stream(
                "GET",
                f"/api/v1/artifacts/{record.id}/content",
                params=params,
                timeout=httpx2.Timeout(self._timeout, read=None),
            ) as response:
                if not response.is_success:
                    response.read()
                    _raise_for(response, self._url)
                with dest.open("wb") as sink:
                    for chunk in response.iter_bytes(_CHUNK):
                        sink.write(chunk)
                        digest.update(chunk)
                        if progress is not None:
                            progress(len(chunk))
        except httpx2.TransportError as exc:
            raise DatabaseError(
                f"the download of artifact {record.id} from {self._url} broke off: "
                f"{type(exc).__name__}; nothing was written at the destination"
            ) from exc
        return digest.hexdigest()

    # ------------------------------------------------------------------ queries

    def find_versions(self, spec: QuerySpec) -> list[ModelVersion]:
        data = self._send("POST", "/query", json={"query": spec.to_json()})
        return from_json(list[ModelVersion], data)

    def count_versions(self, spec: QuerySpec) -> int:
        return int(self._send("POST", "/query/count", json={"query": spec.to_json()})["count"])

    def first_version(self, spec: QuerySpec) -> ModelVersion | None:
        data = self._send("POST", "/query/first", json={"query": spec.to_json()})
        return None if data is None else from_json(ModelVersion, data)

    def page_versions(self, spec: QuerySpec, *, size: int, cursor: str | None) -> Page:
        body = {"query": spec.to_json(), "size": size, "cursor": cursor}
        return from_json(Page, self._send("POST", "/query/page", json=body))

    # ------------------------------------------------------------------ moving

    def export_plan(self, model_glob: str | None) -> ExportPlan:
        return ExportPlan.from_dict(
            self._send("GET", "/export/plan", params={"models": model_glob})
        )

    def export_bundles(self, model_glob: str | None) -> Iterator[ExportBundle]:
        """The server's export stream (``server/routes/moving.py``), regrouped by model."""
        import httpx2

        params = {} if model_glob is None else {"models": model_glob}
        bundle: ExportBundle | None = None
        try:
            with self._http().stream(
                "GET",
                "/api/v1/export",
                params=params,
                timeout=httpx2.Timeout(self._timeout, read=None),
            ) as response:
                if not response.is_success:
                    response.read()
                    _raise_for(response, self._url)
                for frame in response.iter_lines():
                    if not frame:
                        continue
                    kind, raw = _split_frame(frame)
                    if kind == "models":
                        if bundle is not None:
                            yield bundle
                        bundle = ExportBundle(str(json.loads(raw)["name"]), {"models": [raw]})
                    elif kind == "end":
                        if bundle is not None:
                            yield bundle
                        return
                    elif kind == "error":
                        raise error_from_json(json.loads(raw))
                    elif bundle is None:
                        raise ValidationError.single("export", f"a {kind} line before any model")
                    else:
                        bundle.lines.setdefault(kind, []).append(raw)
        except httpx2.TransportError as exc:
            raise DatabaseError(
                f"the export from {self._url} broke off: {type(exc).__name__}"
            ) from exc
        raise DatabaseError(f"the export from {self._url} broke off before its end")

    def import_bundles(
        self, bundles: Sequence[ModelBundle], *, by: Attribution, dry_run: bool
    ) -> list[BundleOutcome]:
        """Stream the bundles as NDJSON (one model per line); never resent (not needed:
        a repeated import skips what the first one wrote, but its report would differ)."""
        body = (
            (
                json.dumps(
                    {"model": b.model, "lines": b.lines, "problems": b.problems},
                    ensure_ascii=False,
                    separators=(",", ":"),
                )
                + "\n"
            ).encode()
            for b in bundles
        )
        data = self._stream_request(
            "POST",
            "/import/bundles",
            params={"dry_run": dry_run},
            content=body,
            headers={"content-type": "application/x-ndjson", **_actor_header(by)},
        )
        outcomes = [BundleOutcome.from_dict(item) for item in data["outcomes"]]
        if len(outcomes) != len(bundles):
            raise DatabaseError(f"the server at {self._url} answered an import incompletely")
        return outcomes

    def import_edges(
        self, lines: Sequence[dict[str, Any]], *, by: Attribution, dry_run: bool
    ) -> list[str | None]:
        body = {"lines": list(lines), "dry_run": dry_run}
        data = self._send("POST", "/import/edges", json=body, retry=False, actor=by.actor)
        return [None if o is None else str(o) for o in data["outcomes"]]

    def artifact_checksums(self, model_name: str) -> dict[tuple[str, str, str], str | None]:
        data = self._send("GET", "/import/artifact-checksums", params={"model": model_name})
        return {(str(v), str(t), str(f)): c for v, t, f, c in data["artifacts"]}


# --------------------------------------------------------------------------- helpers


def _raise_for(response: httpx2.Response, url: str) -> NoReturn:
    """Raise the error a non-2xx answer describes, as the server raised it."""
    try:
        document = response.json()
    except ValueError:
        document = None
    if isinstance(document, dict) and "error" in document:
        try:
            error = error_from_json(document)
        except ValidationError:
            error = None
        if error is not None:
            raise error
    # Not our server's answer (a proxy, a load balancer): say what came back.
    status = response.status_code
    text = f"the registry server at {url} answered {status} to {response.request.method} "
    text += f"{response.request.url.path}"
    if status == 401:
        raise AuthenticationError(text + "; pass token= or set CMR_TOKEN")
    if status == 403:
        raise PermissionDeniedError.restore(text, {"permission": "unknown", "model": None})
    if status == 404:
        raise NotFoundError("route", response.request.url.path)
    if status in (400, 413, 422):
        raise ValidationError.single("request", text)
    if status >= 500:
        raise DatabaseError(text)
    raise RegistryError(text)


def _server_side(method: str) -> NoReturn:
    raise ConfigurationError(
        f"{method} runs on the registry server: a remote registry moves artifact bytes "
        "through the server's artifact routes"
    )


def _param(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _path(name: str) -> str:
    return quote(name, safe="/")


def _ref(ref: VersionRef) -> str:
    return quote(str(ref), safe="/@")


def _artifact_input(spec: ArtifactSpec) -> dict[str, object]:
    item: dict[str, object] = {
        "type": spec.type.value,
        "storage_backend": spec.storage_backend,
        "storage_path": spec.storage_path,
    }
    if spec.checksum is not None:
        item["checksum"] = spec.checksum
    if spec.size_bytes is not None:
        item["size_bytes"] = spec.size_bytes
    return item


def _file_stream(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            yield chunk


def _tar_stream(root: Path) -> Iterator[bytes]:
    """An uncompressed tar of ``root``'s tree, written by a thread into a pipe: bounded memory."""
    read_end, write_end = os.pipe()
    failure: list[BaseException] = []

    def write() -> None:
        try:
            with (
                os.fdopen(write_end, "wb") as sink,
                tarfile.open(fileobj=sink, mode="w|") as archive,
            ):
                for path in sorted(root.rglob("*")):
                    archive.add(path, arcname=path.relative_to(root).as_posix(), recursive=False)
        except BaseException as exc:  # reported by the reader, after the pipe closes
            failure.append(exc)

    writer = threading.Thread(target=write, name="cmr-tar", daemon=True)
    writer.start()
    try:
        with os.fdopen(read_end, "rb") as source:
            while chunk := source.read(_CHUNK):
                yield chunk
    finally:
        writer.join()
    if failure:
        raise ValidationError.single("path", f"could not read the directory: {failure[0]}")


def _counted(chunks: Iterator[bytes], progress: ProgressCallback | None) -> Iterator[bytes]:
    for chunk in chunks:
        if progress is not None:
            progress(len(chunk))
        yield chunk


def _actor_header(by: Attribution) -> dict[str, str]:
    return {} if by.actor is None else {ACTOR_HEADER: quote(by.actor, safe="")}


def _split_frame(frame: str) -> tuple[str, str]:
    """``["kind",<json>]`` -> (kind, the JSON text), without decoding the line itself."""
    kind, sep, rest = frame[2:].partition('",')
    if not (frame.startswith('["') and sep and rest.endswith("]")):
        raise ValidationError.single("export", f"not an export frame: {frame[:80]!r}")
    return kind, rest[:-1]


if TYPE_CHECKING:
    from crucible_model_registry.backends.base import MetadataBackend

    # mypy proves here that HttpBackend has every method of the protocol, as declared.
    _conforms: type[MetadataBackend] = HttpBackend
