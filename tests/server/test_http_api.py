"""The REST API over a real ``cmr serve``: error statuses and shapes, refused requests, bytes.

Every refused request must answer 4xx with ``{"error": {"type", "message", "details"}}``
and write nothing; the remote client must raise the server's class with its attributes.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool
from tests.servers.registry_server import RegistryServer

from crucible_model_registry import errors
from crucible_model_registry.registry import RemoteRegistry
from crucible_model_registry.server.errors import STATUS, status_of
from crucible_model_registry.store.tables import metadata

FIELDS = {
    "model_name": "m",
    "recipe": "sft",
    "base_model": "base",
    "training_config": {"lr": 0.001},
}


def rows(server: RegistryServer) -> dict[str, int]:
    """How many rows each registry table holds."""
    engine = create_engine(server.database_url, poolclass=NullPool)
    with engine.connect() as conn:
        counts = {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in metadata.sorted_tables
        }
    engine.dispose()
    return counts


def error_of(response: httpx2.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"type", "message", "details"}
    return body["error"]


# --------------------------------------------------------------------------- the table


@pytest.mark.parametrize("name", errors.__all__)
def test_every_public_error_has_a_status(name: str) -> None:
    cls = getattr(errors, name)
    assert cls in STATUS
    assert 400 <= STATUS[cls] <= 599


def test_the_contract_statuses() -> None:
    # API.md §11: 400/422 validation, 401, 403, 404, 409, 413, 503.
    expected = {
        errors.ValidationError: 422,
        errors.AuthenticationError: 401,
        errors.PermissionDeniedError: 403,
        errors.PromotionDeniedError: 403,
        errors.NotFoundError: 404,
        errors.DuplicateVersionError: 409,
        errors.DuplicateConfigError: 409,
        errors.DuplicateModelError: 409,
        errors.LineageCycleError: 409,
        errors.SchemaNotReadyError: 503,
    }
    assert {cls: STATUS[cls] for cls in expected} == expected
    assert status_of(errors.ChecksumMismatchError(backend="b", path="p", expected="e", actual="a"))


# --------------------------------------------------------------------------- error classes


def test_validation_error_is_422_and_raised_with_its_fields(
    server: RegistryServer, remote: RemoteRegistry
) -> None:
    response = httpx2.post(
        f"{server.url}/api/v1/versions", json={**FIELDS, "model_name": ""}, headers=server.auth
    )
    assert response.status_code == 422
    assert error_of(response)["type"] == "ValidationError"
    with pytest.raises(errors.ValidationError) as info:
        remote.register({**FIELDS, "model_name": "", "recipe": ""})
    assert {"model_name", "recipe"} <= set(info.value.errors)
    assert rows(server)["cmr_model_versions"] == 0


def test_not_found_is_404_with_kind_and_ref(server: RegistryServer, remote: RemoteRegistry) -> None:
    response = httpx2.get(f"{server.url}/api/v1/versions/nope@1", headers=server.auth)
    assert response.status_code == 404
    with pytest.raises(errors.NotFoundError) as info:
        remote.get_version("nope@1")
    assert (info.value.kind, info.value.ref) == ("model", "nope")


def test_duplicates_are_409_with_their_attributes(
    server: RegistryServer, remote: RemoteRegistry
) -> None:
    first = remote.register({**FIELDS, "version": "1.0"})
    with pytest.raises(errors.DuplicateConfigError) as config:
        remote.register({**FIELDS, "version": "2.0"})
    assert config.value.existing == first
    with pytest.raises(errors.DuplicateVersionError) as version:
        remote.register({**FIELDS, "version": "1.0", "training_config": {"lr": 2}})
    assert (version.value.model_name, version.value.version) == ("m", "1.0")
    response = httpx2.post(
        f"{server.url}/api/v1/versions", json={**FIELDS, "version": "3.0"}, headers=server.auth
    )
    assert response.status_code == 409
    assert rows(server)["cmr_model_versions"] == 1


def test_a_lineage_cycle_is_409_with_both_ids(remote: RemoteRegistry) -> None:
    a = remote.register(FIELDS)
    b = remote.register({**FIELDS, "training_config": {"lr": 2}, "parents": [a.id]})
    with pytest.raises(errors.LineageCycleError) as info:
        remote.add_lineage(b, a)
    assert (info.value.parent_id, info.value.child_id) == (b.id, a.id)


def test_promotion_denied_is_403_with_every_unmet_condition(
    server: RegistryServer, remote: RemoteRegistry
) -> None:
    v = remote.register(FIELDS)
    remote.set_promotion_policy("m", {"gates": {"production": {"min_accuracy": 0.9}}})
    with pytest.raises(errors.PromotionDeniedError) as info:
        remote.promote(v, "production")
    assert info.value.version_ref == "m@1"
    assert info.value.target == "production"
    assert info.value.unmet
    assert remote.get_version(v.id).stage.value == "experiment"
    response = httpx2.post(
        f"{server.url}/api/v1/versions/m@1/promote",
        json={"stage": "production"},
        headers=server.auth,
    )
    assert response.status_code == 403


def test_a_server_over_an_unmigrated_database_is_not_ready(tmp_path: Path) -> None:
    from tests.servers.registry_server import start_registry_server

    database = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(pytest.fail.Exception):  # /readyz never answers 200
        start_registry_server(database, tmp_path / "w", ready_timeout=3)
    server = start_registry_server(database, tmp_path / "w2", wait_for="/healthz")
    try:
        status, body = server.get("/readyz")
        assert status == 503
        assert json.loads(body)["error"]["type"] == "SchemaNotReadyError"
        remote = RemoteRegistry(server.url, token=server.token)
        with pytest.raises(errors.SchemaNotReadyError) as info:
            remote.list_models()
        assert info.value.command.startswith("cmr ")
        remote.close()
    finally:
        server.stop()


# --------------------------------------------------------------------------- refused requests


def test_malformed_json_is_400_and_writes_nothing(server: RegistryServer) -> None:
    response = httpx2.post(
        f"{server.url}/api/v1/versions",
        content=b'{"model_name": "m",',
        headers={**server.auth, "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert error_of(response)["type"] == "ValidationError"
    assert rows(server)["cmr_model_versions"] == 0


def test_an_unknown_key_is_refused_not_ignored(server: RegistryServer) -> None:
    response = httpx2.post(
        f"{server.url}/api/v1/versions", json={**FIELDS, "colour": "red"}, headers=server.auth
    )
    assert response.status_code == 422
    response = httpx2.post(
        f"{server.url}/api/v1/query",
        json={"filters": {"stage": "production"}, "limit": 3},
        headers=server.auth,
    )
    assert response.status_code == 422
    assert rows(server)["cmr_models"] == 0


def test_an_oversized_body_is_413_and_writes_nothing(server: RegistryServer) -> None:
    big = {**FIELDS, "description": "x" * (17 * 1024 * 1024)}
    response = httpx2.post(
        f"{server.url}/api/v1/versions", json=big, timeout=60, headers=server.auth
    )
    assert response.status_code == 413
    assert error_of(response)["type"] == "ValidationError"
    assert rows(server)["cmr_model_versions"] == 0


def test_an_oversized_chunked_body_is_413(server: RegistryServer) -> None:
    def chunks():
        yield b'{"model_name": "m", "description": "'
        for _ in range(17):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    response = httpx2.post(
        f"{server.url}/api/v1/versions",
        content=chunks(),
        headers={**server.auth, "content-type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413
    assert rows(server)["cmr_model_versions"] == 0


def test_unknown_routes_and_wrong_methods_are_clear_4xx(server: RegistryServer) -> None:
    missing = httpx2.get(f"{server.url}/api/v1/nothing-here", headers=server.auth)
    assert missing.status_code == 404
    assert error_of(missing)["type"] == "NotFoundError"
    wrong = httpx2.delete(f"{server.url}/api/v1/query", headers=server.auth)
    assert wrong.status_code == 405
    assert "POST" in wrong.headers["allow"]
    assert error_of(wrong)["type"] == "ValidationError"


# --------------------------------------------------------------------------- operations


def test_request_ids_health_metrics_and_openapi(server: RegistryServer) -> None:
    given = httpx2.get(f"{server.url}/healthz", headers={**server.auth, "x-request-id": "abc-123"})
    assert (given.status_code, given.headers["x-request-id"]) == (200, "abc-123")
    fresh = httpx2.get(f"{server.url}/readyz", headers=server.auth)
    assert fresh.status_code == 200
    assert len(fresh.headers["x-request-id"]) == 32
    httpx2.get(f"{server.url}/api/v1/versions/m@1", headers=server.auth)
    metrics = httpx2.get(f"{server.url}/metrics", headers=server.auth).text
    assert 'route="/api/v1/versions/{version:path}",status="404"' in metrics
    assert "cmr_http_request_duration_seconds_bucket" in metrics
    httpx2.post(f"{server.url}/api/v1/versions", json=FIELDS, headers=server.auth)
    metrics = httpx2.get(f"{server.url}/metrics", headers=server.auth).text
    assert 'cmr_registry_operations_total{operation="register",outcome="ok"}' in metrics
    spec = httpx2.get(f"{server.url}/api/v1/openapi.json", headers=server.auth).json()
    assert "/api/v1/versions" in spec["paths"]
    assert httpx2.get(f"{server.url}/api/v1/docs", headers=server.auth).status_code == 200


def test_the_access_log_names_the_request_id_and_never_a_token(server: RegistryServer) -> None:
    secret = "cmr_secret_token_value"
    response = httpx2.get(
        f"{server.url}/api/v1/models", headers={"authorization": f"Bearer {secret}"}
    )
    request_id = response.headers["x-request-id"]
    deadline = time.monotonic() + 10
    # The line is written after the answer is sent: wait for it.
    while f"request_id={request_id}" not in (log := server.log.read_text()):
        assert time.monotonic() < deadline, log[-2000:]
        time.sleep(0.05)
    assert secret not in log


# --------------------------------------------------------------------------- artifact bytes


def test_a_download_has_its_sha256_as_etag_and_serves_ranges(
    server: RegistryServer, remote: RemoteRegistry, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 4096
    (tmp_path / "model.bin").write_bytes(data)
    v = remote.register(FIELDS)
    artifact = remote.upload_artifact(v, "checkpoint", tmp_path / "model.bin")
    assert artifact.checksum == hashlib.sha256(data).hexdigest()
    url = f"{server.url}/api/v1/artifacts/{artifact.id}/content"
    whole = httpx2.get(url, headers=server.auth)
    assert whole.headers["etag"] == f'"{artifact.checksum}"'
    assert whole.content == data
    part = httpx2.get(url, headers={**server.auth, "range": "bytes=1000-1999"})
    assert part.status_code == 206
    assert part.content == data[1000:2000]


def test_a_directory_round_trips_through_the_server(remote: RemoteRegistry, tmp_path: Path) -> None:
    tree = tmp_path / "ckpt"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.bin").write_bytes(b"a" * 5000)
    (tree / "sub" / "b.json").write_text("{}")
    v = remote.register(FIELDS)
    artifact = remote.upload_artifact(v, "checkpoint", tree)
    out = remote.download_artifact(artifact, tmp_path / "out")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "a.bin",
        "sub",
        "sub/b.json",
    ]
    assert (out / "a.bin").read_bytes() == b"a" * 5000
    assert remote.verify_artifact(artifact) is True


def test_a_corrupt_download_is_refused_by_the_client(
    server: RegistryServer, remote: RemoteRegistry, tmp_path: Path
) -> None:
    (tmp_path / "m.bin").write_bytes(b"good" * 1000)
    v = remote.register(FIELDS)
    artifact = remote.upload_artifact(v, "checkpoint", tmp_path / "m.bin")
    [stored] = [p for p in server.storage_dir.rglob("m.bin")]
    stored.write_bytes(b"evil" * 1000)
    dest = tmp_path / "dest.bin"
    dest.write_bytes(b"before")
    with pytest.raises(errors.ChecksumMismatchError) as info:
        remote.download_artifact(artifact, dest, overwrite=True)
    assert info.value.expected == artifact.checksum
    assert dest.read_bytes() == b"before"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest.bin", "m.bin"]


def test_artifact_uploads_stream_past_the_body_limit(
    server: RegistryServer, remote: RemoteRegistry, tmp_path: Path
) -> None:
    data = b"\x5a" * (17 * 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(data)
    v = remote.register(FIELDS)
    artifact = remote.upload_artifact(v, "checkpoint", tmp_path / "big.bin")
    assert artifact.size_bytes == len(data)
    response = httpx2.put(
        f"{server.url}/api/v1/models/m/policy",
        json={"policy": {"allowed": {}, "pad": "x" * (17 * 1024 * 1024)}},
        timeout=60,
        headers=server.auth,
    )
    assert response.status_code == 413
    assert remote.get_promotion_policy("m") is None


def test_lineage_renders_as_json_dot_and_mermaid(
    server: RegistryServer, remote: RemoteRegistry
) -> None:
    a = remote.register(FIELDS)
    remote.register({**FIELDS, "training_config": {"lr": 2}, "parents": [a.id]})
    base = f"{server.url}/api/v1/versions/m@1/lineage"
    graph = httpx2.get(base, headers=server.auth).json()
    assert set(graph) == {"focus", "ancestors", "descendants", "edges"}
    assert len(graph["edges"]) == 1
    assert httpx2.get(base, params={"format": "dot"}, headers=server.auth).text.startswith(
        "digraph"
    )
    assert httpx2.get(base, params={"format": "mermaid"}, headers=server.auth).text.startswith(
        "flowchart"
    )
    assert httpx2.get(base, params={"format": "svg"}, headers=server.auth).status_code == 422


def test_cmr_server_url_makes_the_module_functions_remote(
    server: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import crucible_model_registry as cmr

    monkeypatch.setenv("CMR_SERVER_URL", server.url)
    monkeypatch.setenv("CMR_TOKEN", server.token)
    cmr.configure(None)
    made = cmr.register(FIELDS)
    registry = cmr.get_registry()
    assert isinstance(registry, RemoteRegistry)
    assert server.token not in repr(registry)
    assert [v.id for v in cmr.query({"model_name": "m"})] == [made.id]
    assert rows(server)["cmr_model_versions"] == 1
    registry.close()


def test_create_app_refuses_to_serve_a_remote_registry() -> None:
    from crucible_model_registry.server import create_app

    with pytest.raises(errors.ConfigurationError):
        create_app(RemoteRegistry("http://127.0.0.1:9"))
