"""Reading an MLflow model registry, without MLflow: its database by reflection, or its REST API.

``open_source(uri)`` gives an :class:`MlflowSource` for a database URL (``sqlite:///...``,
``postgresql://...``, any SQLAlchemy URL; MLflow's tables are reflected, so schemas with
and without the ``workspace`` column both read) or an ``http(s)://`` MLflow server (its
``/api/2.0/mlflow/`` REST API, with ``MLFLOW_TRACKING_TOKEN``-style bearer auth). Both
yield :class:`MlflowModel` values (``domain.mlflow``), one model at a time, and can fetch
a version's artifact files into a local directory: from a local path or ``file://`` URI,
or through the server's ``mlflow-artifacts`` proxy.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlparse

from crucible_model_registry.domain.mlflow import MlflowModel, MlflowVersion, wanted
from crucible_model_registry.domain.redaction import redact
from crucible_model_registry.errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    StorageError,
    ValidationError,
)

if TYPE_CHECKING:
    import httpx2
    from sqlalchemy import Engine, Table

__all__ = ["MlflowSource", "open_source"]

DELETED_STAGE = "deleted_internal"  # MLflow's soft-deleted versions: not there for its users
_PAGE = 1000
_API = "/api/2.0/mlflow"
_ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


class MlflowSource(Protocol):
    """An MLflow registry being read."""

    def describe(self) -> str:
        """Where it is, any password masked."""
        ...

    def models(self, pattern: str | None = None) -> Iterator[MlflowModel]:
        """Every registered model (matching the glob) with its versions, tags and aliases."""
        ...

    def fetch_artifacts(self, model: MlflowModel, version: MlflowVersion, dest: Path) -> Path:
        """Copy the version's files (a file or a directory) under ``dest``; the local path.

        Raises:
            StorageError: they cannot be reached from here (the reason says why).
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def open_source(uri: str, *, token: str | None = None) -> MlflowSource:
    """The MLflow registry at ``uri``: a database URL or an ``http(s)://`` server.

    Raises:
        ValidationError: ``uri`` is neither, or the database holds no MLflow registry.
        ConfigurationError: the driver or HTTP client it needs is not installed.
    """
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme in ("http", "https"):
        return _RestSource(uri.rstrip("/"), token=token)
    if not scheme:
        raise ValidationError.single(
            "uri",
            f"{redact(uri)!r} is not an MLflow URI: give a database URL "
            "(sqlite:///path/mlflow.db, postgresql://user@host/db) or http(s)://host:port",
        )
    return _DatabaseSource(uri)


# --------------------------------------------------------------------------- database


def _local_path(location: str | None) -> Path | None:
    """A local path for ``file://`` URIs and plain absolute paths, else None."""
    if not location:
        return None
    if location.startswith("file:"):
        return Path(unquote(urlparse(location).path))
    if location.startswith("/"):
        return Path(location)
    return None


def _copy_local(path: Path, dest: Path) -> Path:
    if not path.exists():
        raise _failed(f"{path} does not exist on this machine")
    target = dest / (path.name or "artifact")
    if path.is_dir():
        shutil.copytree(path, target)
    else:
        shutil.copyfile(path, target)
    return target


class _DatabaseSource:
    def __init__(self, url: str) -> None:
        from sqlalchemy import MetaData, create_engine
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

        self._url = url
        try:
            self._engine: Engine = create_engine(_sqlalchemy_url(url))
        except (ArgumentError, NoSuchModuleError) as exc:
            raise ConfigurationError(
                f"cannot open {redact(url)}: {exc} (is its database driver installed?)"
            ) from exc
        meta = MetaData()
        wanted = (
            "registered_models",
            "registered_model_tags",
            "model_versions",
            "model_version_tags",
            "registered_model_aliases",
            "runs",
            "logged_models",
        )
        try:
            # Not the tables their foreign keys name: MLflow's whole schema costs a second.
            meta.reflect(self._engine, only=lambda name, _meta: name in wanted, resolve_fks=False)
        except SQLAlchemyError as exc:
            self._engine.dispose()
            raise ValidationError.single(
                "uri", f"cannot read the MLflow database {redact(url)}: {exc.__class__.__name__}"
            ) from exc
        missing = [t for t in wanted[:4] if t not in meta.tables]
        if missing:
            self._engine.dispose()
            raise ValidationError.single(
                "uri",
                f"{redact(url)} holds no MLflow model registry (no table {missing[0]!r})",
            )
        self._tables: dict[str, Table] = dict(meta.tables)

    def describe(self) -> str:
        return redact(self._url)

    def close(self) -> None:
        self._engine.dispose()

    def _key(self, table: Table, row: Any) -> tuple[str, str]:
        workspace = row._mapping["workspace"] if "workspace" in table.c else ""
        return (workspace or "", row._mapping["name"])

    def models(self, pattern: str | None = None) -> Iterator[MlflowModel]:
        from sqlalchemy import select

        t = self._tables
        with self._engine.connect() as conn:
            model_tags: dict[tuple[str, str], dict[str, str]] = {}
            tags_table = t["registered_model_tags"]
            for row in conn.execute(select(tags_table)):
                model_tags.setdefault(self._key(tags_table, row), {})[row.key] = row.value
            aliases: dict[tuple[str, str], dict[str, int]] = {}
            if "registered_model_aliases" in t:
                alias_table = t["registered_model_aliases"]
                for row in conn.execute(select(alias_table)):
                    key = self._key(alias_table, row)
                    aliases.setdefault(key, {})[row.alias] = int(row.version)
            version_tags: dict[tuple[str, str, int], dict[str, str]] = {}
            vt = t["model_version_tags"]
            for row in conn.execute(select(vt)):
                tag_key = (*self._key(vt, row), int(row.version))
                version_tags.setdefault(tag_key, {})[row.key] = row.value
            versions: dict[tuple[str, str], list[MlflowVersion]] = {}
            mv = t["model_versions"]
            for row in conn.execute(select(mv).order_by(mv.c.name, mv.c.version)):
                m = row._mapping
                if (m["current_stage"] or "").lower() == DELETED_STAGE:
                    continue
                key = self._key(mv, row)
                versions.setdefault(key, []).append(
                    MlflowVersion(
                        version=int(m["version"]),
                        creation_time=m["creation_time"],
                        last_updated_time=m["last_updated_time"],
                        description=m["description"] or None,
                        user_id=m["user_id"] or None,
                        current_stage=m["current_stage"],
                        source=m["source"],
                        run_id=m["run_id"] or None,
                        status=m["status"],
                        status_message=m["status_message"] or None,
                        run_link=m["run_link"] or None,
                        storage_location=m.get("storage_location") or None,
                        tags=version_tags.get((*key, int(m["version"])), {}),
                    )
                )
            rm = t["registered_models"]
            rows = list(conn.execute(select(rm).order_by(rm.c.name)))
        for row in rows:
            key = self._key(rm, row)
            m = row._mapping
            if not wanted(m["name"], key[0] or None, pattern):
                continue
            yield MlflowModel(
                name=m["name"],
                creation_time=m["creation_time"],
                last_updated_time=m["last_updated_time"],
                description=m["description"] or None,
                tags=model_tags.get(key, {}),
                aliases=aliases.get(key, {}),
                versions=versions.get(key, []),
                workspace=key[0] or None,
            )

    def fetch_artifacts(self, model: MlflowModel, version: MlflowVersion, dest: Path) -> Path:
        for location in (version.storage_location, version.source):
            path = _local_path(self._resolve(location))
            if path is not None:
                return _copy_local(path, dest)
        raise _failed(
            f"the files of {model.name} version {version.version} ({version.source}) are not "
            "on this machine; import from the MLflow server (http://...) to copy them "
            "through its artifact proxy"
        )

    def _resolve(self, location: str | None) -> str | None:
        """``runs:/<run id>/<path>`` and ``models:/<model id>/<path>`` through MLflow's tables."""
        from sqlalchemy import select

        scheme, rest = _split_reference(location)
        if scheme == "runs" and "runs" in self._tables:
            table, key, column = self._tables["runs"], "run_uuid", "artifact_uri"
        elif scheme == "models" and "logged_models" in self._tables:
            table, key, column = self._tables["logged_models"], "model_id", "artifact_location"
        else:
            return location
        ident, _, rel = rest.partition("/")
        with self._engine.connect() as conn:
            root = conn.execute(select(table.c[column]).where(table.c[key] == ident)).scalar()
        return None if root is None else _joined(str(root), rel)


def _split_reference(location: str | None) -> tuple[str, str]:
    """(``runs`` | ``models``, the rest) for MLflow's references to a run's or model's files."""
    for scheme in ("runs", "models"):
        if location and location.startswith(f"{scheme}:/"):
            return scheme, location[len(scheme) + 2 :].lstrip("/")
    return "", location or ""


def _joined(root: str, rel: str) -> str:
    return f"{root.rstrip('/')}/{rel}".rstrip("/") if rel else root


def _sqlalchemy_url(url: str) -> str:
    # MLflow's own URLs name no driver; ours is psycopg 3 (the postgres extra).
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


# --------------------------------------------------------------------------- REST


class _RestSource:
    def __init__(self, url: str, *, token: str | None) -> None:
        try:
            import httpx2
        except ImportError as exc:
            raise ConfigurationError(
                "reading an MLflow server needs the HTTP client: "
                "pip install 'crucible-model-registry[remote]'"
            ) from exc
        self._url = url
        headers = {"user-agent": "crucible-model-registry"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._http: httpx2.Client = httpx2.Client(
            base_url=url, headers=headers, timeout=httpx2.Timeout(60.0)
        )

    def describe(self) -> str:
        return redact(self._url)

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        import httpx2

        try:
            response = self._http.get(path, params=params)
        except httpx2.HTTPError as exc:
            raise _failed(f"{self.describe()}{path}: {exc}") from exc
        if response.status_code == 404:
            raise NotFoundError("MLflow resource", f"{self.describe()}{path}")
        if response.status_code == 401:
            raise AuthenticationError(
                f"the MLflow server {self.describe()} refused the credentials (401): "
                "pass --mlflow-token or set MLFLOW_TRACKING_TOKEN"
            )
        if response.status_code == 403:
            # Not our PermissionDeniedError: that names a role of this registry.
            raise _failed(
                f"the MLflow server {self.describe()} does not let this token read {path} (403)"
            )
        if response.status_code >= 400:
            raise _failed(
                f"{self.describe()}{path} answered {response.status_code}: {response.text[:300]}",
            )
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if not isinstance(body, dict):
            raise _failed(f"{self.describe()}{path} answered {body!r:.100}")
        return body

    def _pages(self, path: str, key: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            page = self._get(path, {**params, **({"page_token": token} if token else {})})
            yield from page.get(key, [])
            token = page.get("next_page_token")
            if not token:
                return

    def models(self, pattern: str | None = None) -> Iterator[MlflowModel]:
        try:
            yield from self._models(pattern)
        except NotFoundError as exc:
            raise ValidationError.single(
                "uri", f"{self.describe()} answers no MLflow model registry API (404)"
            ) from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise _failed(
                f"{self.describe()} answered something that is not MLflow's registry API "
                f"({exc.__class__.__name__}: {exc})"
            ) from exc

    def _models(self, pattern: str | None) -> Iterator[MlflowModel]:
        listed = list(
            self._pages(
                f"{_API}/registered-models/search", "registered_models", {"max_results": _PAGE}
            )
        )
        for item in sorted(listed, key=lambda m: m["name"]):
            name = item["name"]
            if not wanted(name, None, pattern):
                continue  # before its versions are fetched
            quoted = name.replace("'", "\\'")
            versions = [
                _rest_version(v)
                for v in self._pages(
                    f"{_API}/model-versions/search",
                    "model_versions",
                    {"filter": f"name='{quoted}'", "max_results": 10000},
                )
                if v.get("name") == name and (v.get("current_stage") or "").lower() != DELETED_STAGE
            ]
            yield MlflowModel(
                name=name,
                creation_time=_int(item.get("creation_timestamp")),
                last_updated_time=_int(item.get("last_updated_timestamp")),
                description=item.get("description") or None,
                tags={t["key"]: t.get("value", "") for t in item.get("tags", [])},
                aliases={a["alias"]: int(a["version"]) for a in item.get("aliases", [])},
                versions=sorted(versions, key=lambda v: v.version),
            )

    def fetch_artifacts(self, model: MlflowModel, version: MlflowVersion, dest: Path) -> Path:
        answer = self._get(
            f"{_API}/model-versions/get-download-uri",
            {"name": model.name, "version": str(version.version)},
        )
        uri = self._resolve(str(answer.get("artifact_uri") or ""))
        local = _local_path(uri)
        if local is not None and local.exists():
            return _copy_local(local, dest)
        if not uri.startswith("mlflow-artifacts:"):
            raise _failed(
                f"the files of {model.name} version {version.version} are at {uri!r}, "
                "which neither this machine nor the server's artifact proxy serves",
            )
        root = urlparse(uri).path.strip("/")
        target = dest / (root.rsplit("/", 1)[-1] or "artifact")
        listing = self._get(_ARTIFACTS, {"path": root}).get("files")
        if listing is None:  # a single file, not a directory
            self._download(root, target)
            return target
        self._download_tree(root, target)
        return target

    def _resolve(self, uri: str) -> str:
        """``runs:/`` and ``models:/`` references resolved through the server's API."""
        scheme, rest = _split_reference(uri)
        ident, _, rel = rest.partition("/")
        if scheme == "runs":
            info = self._get(f"{_API}/runs/get", {"run_id": ident})["run"]["info"]
            return _joined(str(info["artifact_uri"]), rel)
        if scheme == "models":
            info = self._get(f"{_API}/logged-models/{ident}", {})["model"]["info"]
            return _joined(str(info["artifact_uri"]), rel)
        return uri

    def _download_tree(self, root: str, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        for entry in self._get(_ARTIFACTS, {"path": root}).get("files", []):
            rel = str(entry["path"]).rsplit("/", 1)[-1]
            if entry.get("is_dir"):
                self._download_tree(f"{root}/{rel}", target / rel)
            else:
                self._download(f"{root}/{rel}", target / rel)

    def _download(self, path: str, target: Path) -> None:
        import httpx2

        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._http.stream("GET", f"{_ARTIFACTS}/{path}") as response:
                if response.status_code >= 400:
                    raise _failed(f"{self.describe()} answered {response.status_code} for {path}")
                with target.open("wb") as fh:
                    for chunk in response.iter_bytes(1024 * 1024):
                        fh.write(chunk)
        except httpx2.HTTPError as exc:
            raise _failed(f"{self.describe()}: {exc}") from exc


def _failed(message: str) -> StorageError:
    return StorageError(message, backend="mlflow")


def _int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _rest_version(item: dict[str, Any]) -> MlflowVersion:
    return MlflowVersion(
        version=int(item["version"]),
        creation_time=_int(item.get("creation_timestamp")),
        last_updated_time=_int(item.get("last_updated_timestamp")),
        description=item.get("description") or None,
        user_id=item.get("user_id") or None,
        current_stage=item.get("current_stage"),
        source=item.get("source"),
        run_id=item.get("run_id") or None,
        status=item.get("status"),
        status_message=item.get("status_message") or None,
        run_link=item.get("run_link") or None,
        storage_location=item.get("storage_location") or None,
        tags={t["key"]: t.get("value", "") for t in item.get("tags", [])},
    )
