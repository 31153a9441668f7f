"""Access control through a real ``cmr serve``: every endpoint x every role x granted/other model.

One server process (SQLite, authentication cache of 1 s) serves the module. Each role has
two tokens: one granted the models ``g*`` and one granted every model. A case is allowed
exactly when the role includes the one the endpoint needs and the model is granted; an
allowed case must succeed, a refused one must answer 403 ``PermissionDeniedError`` naming
the role needed, and leave every ``cmr_*`` table but the audit log as it was.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool
from tests.servers.registry_server import (
    RegistryServer,
    install_token,
    start_registry_server,
)

from crucible_model_registry import AuthenticationError, PermissionDeniedError
from crucible_model_registry.domain.access import Role, new_token_secret
from crucible_model_registry.registry import RemoteRegistry
from crucible_model_registry.store.tables import AUDIT_LOG, TOKENS, metadata

ROLES = [r.value for r in Role]
GRANTED, OTHER = "gmodel", "omodel"  # granted (matches g*) and other


@dataclass
class AccessServer:
    server: RegistryServer
    tokens: dict[str, str]  # "<role>-g" / "<role>-all" -> secret

    def admin(self) -> RemoteRegistry:
        return RemoteRegistry(self.server.url, token=self.server.token)

    def call(self, token: str, method: str, path: str, **kw: Any) -> httpx2.Response:
        headers = {"authorization": f"Bearer {token}", **kw.pop("headers", {})}
        return httpx2.request(
            method, self.server.url + "/api/v1" + path, headers=headers, timeout=30, **kw
        )

    def reseed(self) -> dict[str, Any]:
        """Empty the registry and build the same state again (same ids, same tokens)."""
        self.server.reset()
        for name, secret in self.tokens.items():
            role, scope = name.split("-")
            models = ("g*",) if scope == "g" else ()
            install_token(self.server.database_url, name, secret, role=role, models=models)
        return seed(self.admin(), self.server.storage_dir.parent)


def seed(admin: RemoteRegistry, scratch: Path) -> dict[str, Any]:
    """Per model: @1 (artifact, alias cand), @2 (child of @1), @3 (production, alias live)."""
    ids: dict[str, Any] = {}
    blob = scratch / "weights.bin"
    blob.write_bytes(b"w" * 100)
    for model in (GRANTED, OTHER):
        v1 = admin.register(
            model_name=model, recipe="sft", base_model="b", training_config={"m": model, "i": 1}
        )
        admin.register(
            model_name=model,
            recipe="sft",
            base_model="b",
            training_config={"m": model, "i": 2},
            parents=[v1],
        )
        v3 = admin.register(
            model_name=model, recipe="sft", base_model="b", training_config={"m": model, "i": 3}
        )
        admin.promote(v3, "production")
        admin.set_alias(v1, "cand")
        admin.set_alias(v3, "live")
        ids[f"{model}-artifact"] = admin.upload_artifact(v1, "checkpoint", blob).id
        ids[f"{model}-hash"] = v1.config_hash
    admin.close()
    return ids


@pytest.fixture(scope="module")
def access(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[AccessServer]:
    workdir = tmp_path_factory.mktemp("access")
    shutil.copyfile(sqlite_template, workdir / "registry.db")
    server = start_registry_server(
        f"sqlite:///{workdir / 'registry.db'}",
        workdir,
        extra_env={"CMR_AUTH_CACHE_SECONDS": "1", "CMR_AUTH_MAX_FAILURES": "1000"},
    )
    tokens = {f"{role}-{scope}": new_token_secret() for role in ROLES for scope in ("g", "all")}
    found = AccessServer(server, tokens)
    yield found
    server.stop()


# --------------------------------------------------------------------------- the matrix


@dataclass(frozen=True)
class Endpoint:
    """One route called on model ``m``: the role it needs and whether it writes."""

    name: str
    method: str
    path: Callable[[str, dict[str, Any]], str]
    needs: str
    body: Callable[[str, dict[str, Any]], Any] | None = None
    params: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None
    content: bytes | None = None
    scope: str = "model"  # "model", "global" (every model), "filtered" (answers shrink)
    writes: bool = True


def _json(value: Any) -> Callable[[str, dict[str, Any]], Any]:
    return lambda m, ids: value


ENDPOINTS = [
    Endpoint("register", "POST", lambda m, i: "/versions", "write",
             body=lambda m, i: {"model_name": m, "recipe": "sft", "base_model": "b",
                                "training_config": {"m": m, "new": 1}}),
    Endpoint("get_version", "GET", lambda m, i: f"/versions/{m}@1", "read", writes=False),
    Endpoint("stage_history", "GET", lambda m, i: f"/versions/{m}@1/stage-history", "read",
             writes=False),
    Endpoint("check_promotion", "GET", lambda m, i: f"/versions/{m}@1/promotion-check", "read",
             params=lambda m, i: {"stage": "staging"}, writes=False),
    Endpoint("promote", "POST", lambda m, i: f"/versions/{m}@1/promote", "write",
             body=_json({"stage": "staging"})),
    Endpoint("promote_protected", "POST", lambda m, i: f"/versions/{m}@1/promote", "promote",
             body=_json({"stage": "production"})),
    Endpoint("demote_protected", "POST", lambda m, i: f"/versions/{m}@3/promote", "promote",
             body=_json({"stage": "archived"})),
    Endpoint("metrics", "PATCH", lambda m, i: f"/versions/{m}@1/metrics", "write",
             body=_json({"metrics": {"x": 1.0}})),
    Endpoint("tags", "PATCH", lambda m, i: f"/versions/{m}@1/tags", "write",
             body=_json({"add": ["t"]})),
    Endpoint("delete_version", "DELETE", lambda m, i: f"/versions/{m}@2", "admin",
             params=_json({"force": "true"})),
    Endpoint("get_model", "GET", lambda m, i: f"/models/{m}", "read", writes=False),
    Endpoint("create_model", "POST", lambda m, i: "/models", "write",
             body=lambda m, i: {"name": f"{m}-new"}),
    Endpoint("rename_model", "POST", lambda m, i: f"/models/{m}/rename", "admin",
             body=lambda m, i: {"new_name": f"{m}-renamed"}),
    Endpoint("delete_model", "DELETE", lambda m, i: f"/models/{m}", "admin",
             params=_json({"force": "true"})),
    Endpoint("update_version", "PATCH", lambda m, i: f"/versions/{m}@1", "write",
             body=_json({"description": "d", "metadata_patch": {"k": "v"}})),
    Endpoint("update_model", "PATCH", lambda m, i: f"/models/{m}", "write",
             body=_json({"description": "d"})),
    Endpoint("get_policy", "GET", lambda m, i: f"/models/{m}/policy", "read", writes=False),
    Endpoint("policy_history", "GET", lambda m, i: f"/models/{m}/policy/history", "read",
             writes=False),
    Endpoint("set_policy", "PUT", lambda m, i: f"/models/{m}/policy", "admin",
             body=_json({"policy": {"exclusive": ["production"]}})),
    Endpoint("set_alias", "POST", lambda m, i: "/aliases", "write",
             body=lambda m, i: {"version": f"{m}@2", "alias": "cand"}),
    Endpoint("move_protected_alias", "POST", lambda m, i: "/aliases", "promote",
             body=lambda m, i: {"version": f"{m}@2", "alias": "live"}),
    Endpoint("alias_history", "GET", lambda m, i: f"/models/{m}/aliases/history", "read",
             writes=False),
    Endpoint("delete_alias", "DELETE", lambda m, i: f"/models/{m}/aliases/cand", "write"),
    Endpoint("add_edge", "POST", lambda m, i: "/lineage/edges", "write",
             body=lambda m, i: {"parent": f"{m}@1", "child": f"{m}@3"}),
    Endpoint("would_create_cycle", "GET", lambda m, i: "/lineage/would-create-cycle", "read",
             params=lambda m, i: {"parent": f"{m}@1", "child": f"{m}@2"}, writes=False),
    Endpoint("ancestors", "GET", lambda m, i: f"/versions/{m}@2/ancestors", "read",
             writes=False),
    Endpoint("descendants", "GET", lambda m, i: f"/versions/{m}@1/descendants", "read",
             writes=False),
    Endpoint("lineage", "GET", lambda m, i: f"/versions/{m}@1/lineage", "read", writes=False),
    Endpoint("get_artifact", "GET", lambda m, i: f"/artifacts/{i[m + '-artifact']}", "read",
             writes=False),
    Endpoint("download", "GET", lambda m, i: f"/artifacts/{i[m + '-artifact']}/content",
             "read", writes=False),
    Endpoint("artifact_url", "GET", lambda m, i: f"/artifacts/{i[m + '-artifact']}/url",
             "read", writes=False),
    Endpoint("verify", "POST", lambda m, i: f"/artifacts/{i[m + '-artifact']}/verify", "read",
             writes=False),
    Endpoint("delete_artifact", "DELETE", lambda m, i: f"/artifacts/{i[m + '-artifact']}",
             "admin"),
    Endpoint("upload", "PUT", lambda m, i: f"/versions/{m}@2/artifacts/checkpoint", "write",
             params=_json({"name": "new.bin"}), content=b"bytes"),
    Endpoint("by_config_hash", "GET", lambda m, i: f"/versions/by-config-hash/{i[m + '-hash']}",
             "read", scope="filtered", writes=False),
    Endpoint("list_models", "GET", lambda m, i: "/models", "read", scope="filtered",
             writes=False),
    Endpoint("query", "POST", lambda m, i: "/query", "read", body=_json({"filters": {}}),
             scope="filtered", writes=False),
    Endpoint("query_count", "POST", lambda m, i: "/query/count", "read",
             body=_json({"filters": {}}), scope="filtered", writes=False),
    Endpoint("query_first", "POST", lambda m, i: "/query/first", "read",
             body=_json({"filters": {}}), scope="filtered", writes=False),
    Endpoint("query_page", "POST", lambda m, i: "/query/page", "read",
             body=_json({"filters": {}, "size": 50}), scope="filtered", writes=False),
    Endpoint("check", "GET", lambda m, i: "/check", "read", scope="global", writes=False),
    Endpoint("gc", "POST", lambda m, i: "/gc", "admin", body=_json({"dry_run": True}),
             scope="global"),
    Endpoint("list_tokens", "GET", lambda m, i: "/tokens", "admin", scope="global",
             writes=False),
    Endpoint("create_token", "POST", lambda m, i: "/tokens", "admin",
             body=_json({"name": "new-token", "role": "read"}), scope="global"),
    Endpoint("revoke_token", "DELETE", lambda m, i: "/tokens/read-g", "admin",
             scope="global"),
    Endpoint("audit_log", "GET", lambda m, i: "/audit", "admin", scope="global",
             writes=False),
    Endpoint("export_plan", "GET", lambda m, i: "/export/plan", "read", scope="global",
             writes=False),
    Endpoint("export", "GET", lambda m, i: "/export", "read", scope="global", writes=False),
    Endpoint("import_bundles", "POST", lambda m, i: "/import/bundles", "admin", content=b"",
             scope="global", writes=False),
    Endpoint("import_edges", "POST", lambda m, i: "/import/edges", "admin",
             body=_json({"lines": []}), scope="global", writes=False),
    Endpoint("artifact_checksums", "GET", lambda m, i: "/import/artifact-checksums", "read",
             params=lambda m, i: {"model": m}, writes=False),
]  # fmt: skip


def snapshot(server: RegistryServer) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every registry table but the audit log (a token's last use left out)."""
    engine = create_engine(server.database_url, poolclass=NullPool)
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table is AUDIT_LOG:
                continue
            columns = [c for c in table.c if not (table is TOKENS and c.name == "last_used_at")]
            rows = conn.execute(select(*columns)).all()
            out[table.name] = sorted((tuple(map(repr, r)) for r in rows), key=repr)
    engine.dispose()
    return out


def _case(access: AccessServer, ids: dict[str, Any], e: Endpoint, token: str, model: str):
    return access.call(
        token,
        e.method,
        e.path(model, ids),
        json=None if e.body is None else e.body(model, ids),
        params=None if e.params is None else e.params(model, ids),
        content=e.content,
    )


def test_the_matrix_covers_every_api_route(access: AccessServer) -> None:
    spec = httpx2.get(access.server.url + "/api/v1/openapi.json").json()
    routes = {
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method in ops
        if path.startswith("/api/v1") and path not in ("/api/v1/openapi.json", "/api/v1/docs")
    }
    ids = {
        **{f"{m}-artifact": 7 for m in (GRANTED, OTHER)},
        **{f"{m}-hash": "ab" * 32 for m in (GRANTED, OTHER)},
    }
    covered = set()
    for e in ENDPOINTS:
        concrete = e.path(GRANTED, ids)
        for method, template in routes:
            parts, given = template.removeprefix("/api/v1").split("/"), concrete.split("/")
            if method == e.method and _matches(parts, given):
                covered.add((method, template))
    assert routes - covered == set()


def _matches(template: list[str], path: list[str]) -> bool:
    if len(template) != len(path):
        return False
    return all(t == p or t.startswith("{") for t, p in zip(template, path, strict=True))


@pytest.mark.parametrize("role", ROLES)
def test_every_endpoint_for_every_role_on_granted_and_other_models(
    access: AccessServer, role: str
) -> None:
    ids = access.reseed()
    for e in ENDPOINTS:
        allowed = Role(role).includes(Role(e.needs))
        if e.scope == "global":
            granted, other = access.tokens[f"{role}-all"], access.tokens[f"{role}-g"]
        else:
            granted = other = access.tokens[f"{role}-g"]
        for which, token, model in (("granted", granted, GRANTED), ("other", other, OTHER)):
            before = snapshot(access.server)
            response = _case(access, ids, e, token, model)
            label = f"{e.name} as {role} on the {which} model"
            if e.scope == "filtered":
                assert response.status_code == 200, (label, response.text)
                if which == "other":
                    assert OTHER not in response.text, label
                else:
                    assert GRANTED in response.text or e.name == "query_count", label
                continue
            if allowed and which == "granted":
                assert response.status_code in (200, 201, 204), (label, response.text)
                if e.writes:
                    ids = access.reseed()
                continue
            assert response.status_code == 403, (label, response.text)
            error = response.json()["error"]
            assert error["type"] == "PermissionDeniedError", label
            # The first right found missing is named: the one the endpoint needs, or a
            # lesser one the token lacks (its role, or any right on the other model).
            named = Role(error["details"]["permission"])
            assert Role(e.needs).includes(named), label
            assert named == Role(e.needs) or which == "other" or not Role(role).includes(named)
            assert snapshot(access.server) == before, label


def test_a_refusal_is_audited_without_the_token(access: AccessServer) -> None:
    access.reseed()
    token = access.tokens["read-g"]
    response = access.call(
        token, "PATCH", f"/versions/{GRANTED}@1/metrics", json={"metrics": {"x": 1}}
    )
    assert response.status_code == 403
    engine = create_engine(access.server.database_url, poolclass=NullPool)
    with engine.connect() as conn:
        rows = conn.execute(select(AUDIT_LOG).where(AUDIT_LOG.c.outcome == "denied")).all()
    engine.dispose()
    (row,) = [r for r in rows if r.action == "update_metrics"]
    assert (row.actor, row.target) == ("read-g", f"{GRANTED}@1")
    assert row.request_id == response.headers["x-request-id"]
    assert token not in json.dumps([tuple(map(str, r)) for r in rows])


# --------------------------------------------------------------------------- authentication


def test_no_token_a_wrong_one_or_a_malformed_header_is_401(access: AccessServer) -> None:
    access.reseed()
    url = access.server.url + "/api/v1/models"
    for headers in ({}, {"authorization": "Bearer cmr_wrong"}, {"authorization": "Basic x"}):
        response = httpx2.get(url, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "AuthenticationError"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert httpx2.get(access.server.url + "/healthz").status_code == 200
    anonymous = RemoteRegistry(access.server.url)
    with pytest.raises(AuthenticationError):
        anonymous.list_models()
    anonymous.close()


def test_a_token_in_the_query_string_is_refused(access: AccessServer) -> None:
    access.reseed()
    secret = access.tokens["admin-all"]
    for params in ({"token": secret}, {"access_token": secret}, {"reason": secret}):
        response = httpx2.get(access.server.url + "/api/v1/models", params=params)
        assert response.status_code == 400
        assert secret not in response.text


def test_the_session_cookie_authenticates_like_a_bearer_token(access: AccessServer) -> None:
    access.reseed()
    cookies = {"cmr_session": access.tokens["read-g"]}
    response = httpx2.get(access.server.url + "/api/v1/models", cookies=cookies)
    assert response.status_code == 200
    assert [m["name"] for m in response.json()] == [GRANTED]


def test_an_expired_token_is_401(access: AccessServer) -> None:
    access.reseed()
    admin = access.admin()
    made = admin.create_token("short", role="read", expires_in=1)
    assert access.call(made.token, "GET", "/models").status_code == 200
    time.sleep(1.2)
    response = access.call(made.token, "GET", "/models")
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]
    admin.close()


def test_a_revoked_token_stops_working_within_the_cache_window(access: AccessServer) -> None:
    access.reseed()
    admin = access.admin()
    made = admin.create_token("leaving", role="read")
    assert access.call(made.token, "GET", "/models").status_code == 200
    admin.revoke_token("leaving")
    revoked_at = time.monotonic()
    while access.call(made.token, "GET", "/models").status_code == 200:
        assert time.monotonic() - revoked_at < 1.0 + 0.5  # the server's window is 1 s
        time.sleep(0.05)
    assert access.call(made.token, "GET", "/models").status_code == 401
    admin.close()


def test_the_actor_is_the_token_never_the_client_header(access: AccessServer) -> None:
    access.reseed()
    token = access.tokens["promote-g"]
    headers = {"x-cmr-actor": "mallory"}
    access.call(token, "POST", f"/versions/{GRANTED}@1/promote", json={"stage": "staging"},
                headers=headers)  # fmt: skip
    access.call(token, "POST", "/aliases", json={"version": f"{GRANTED}@1", "alias": "pick"},
                headers=headers)  # fmt: skip
    admin = access.admin()
    assert admin.stage_history(f"{GRANTED}@1")[-1].actor == "promote-g"
    assert admin.alias_history(GRANTED)[-1].actor == "promote-g"
    writer = RemoteRegistry(access.server.url, token=access.tokens["write-g"])
    made = writer.register(
        model_name=GRANTED, recipe="sft", base_model="b", training_config={"who": 1}
    )
    assert made.registered_by == "write-g"
    writer.close()
    admin.close()


def test_four_eyes_through_the_server(access: AccessServer) -> None:
    access.reseed()
    admin = access.admin()
    admin.set_promotion_policy(GRANTED, {"require_distinct_promoter": ["production"]})
    writer = RemoteRegistry(access.server.url, token=access.tokens["promote-g"])
    v = writer.register(model_name=GRANTED, recipe="sft", base_model="b", training_config={"4": 1})
    from crucible_model_registry import PromotionDeniedError

    with pytest.raises(PromotionDeniedError) as caught:
        writer.promote(v, "production")
    assert any("require_distinct_promoter" in u for u in caught.value.unmet)
    other = RemoteRegistry(access.server.url, token=access.tokens["promote-all"])
    assert other.promote(v, "production").stage.value == "production"
    for client in (admin, writer, other):
        client.close()


def test_tokens_through_the_cli_against_a_server(access: AccessServer) -> None:
    from tests.cli.runner import run_cmr

    access.reseed()
    env = {"CMR_SERVER_URL": access.server.url, "CMR_TOKEN": access.server.token}
    made = run_cmr("token", "create", "ci", "--role", "write", "--models", "g*",
                   "--expires-in", "90d", "--json", env=env)  # fmt: skip
    assert made.code == 0, made.stderr
    doc = made.json()
    assert set(doc) == {"name", "token", "role", "models", "expires_at"}
    assert (doc["name"], doc["role"], doc["models"]) == ("ci", "write", ["g*"])
    listed = run_cmr("token", "list", "--json", env=env)
    assert doc["token"] not in listed.stdout
    assert "ci" in [t["name"] for t in listed.json()]
    refused = run_cmr("token", "list", env={**env, "CMR_TOKEN": doc["token"]})
    assert refused.code == 1
    assert "admin" in refused.stderr
    assert run_cmr("token", "revoke", "ci", env=env).code == 0


def test_a_token_never_reaches_the_server_log(access: AccessServer) -> None:
    # Runs last in this module: every token used above must be absent from the log.
    log = access.server.log.read_text()
    assert "request_id=" in log  # the access log is there, and was written
    for secret in (*access.tokens.values(), access.server.token):
        assert secret not in log


# --------------------------------------------------------------------------- abuse


def test_failed_authentications_are_rate_limited_per_address(
    tmp_path: Path, sqlite_template: Path
) -> None:
    shutil.copyfile(sqlite_template, tmp_path / "r.db")
    server = start_registry_server(
        f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "w",
        extra_env={"CMR_AUTH_MAX_FAILURES": "3"},
    )  # fmt: skip
    try:
        url = server.url + "/api/v1/models"
        codes = [httpx2.get(url, headers={"authorization": "Bearer cmr_guess"}).status_code
                 for _ in range(4)]  # fmt: skip
        assert codes == [401, 401, 401, 429]
        limited = httpx2.get(url, headers=server.auth)
        assert limited.status_code == 429  # even a good token waits: the address is limited
        assert int(limited.headers["retry-after"]) >= 1
        assert httpx2.get(server.url + "/healthz").status_code == 200
    finally:
        server.stop()


def test_with_no_token_in_the_database_the_answer_says_how_to_make_one(
    tmp_path: Path, sqlite_template: Path
) -> None:
    shutil.copyfile(sqlite_template, tmp_path / "r.db")
    server = start_registry_server(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "w")
    try:
        engine = create_engine(server.database_url, poolclass=NullPool)
        with engine.begin() as conn:
            conn.execute(TOKENS.delete())
        engine.dispose()
        response = httpx2.get(server.url + "/api/v1/models")
        assert response.status_code == 401
        assert "cmr token create admin --role admin" in response.json()["error"]["message"]
    finally:
        server.stop()


def test_permission_denied_travels_to_the_remote_client(access: AccessServer) -> None:
    access.reseed()
    reader = RemoteRegistry(access.server.url, token=access.tokens["read-g"])
    with pytest.raises(PermissionDeniedError) as caught:
        reader.promote(f"{GRANTED}@1", "staging")
    assert (caught.value.permission, caught.value.model) == ("write", GRANTED)
    reader.close()


def test_the_readme_walkthrough_from_an_empty_database(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """README "Access control": first admin by database URL, a CI token, a release manager."""
    from tests.cli.runner import assert_user_error, run_cmr

    shutil.copyfile(sqlite_template, tmp_path / "r.db")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    server = start_registry_server(url, tmp_path / "w")
    try:
        engine = create_engine(url, poolclass=NullPool)
        with engine.begin() as conn:
            conn.execute(TOKENS.delete())  # an empty database: no token at all
        engine.dispose()
        first = run_cmr("token", "create", "admin", "--role", "admin", "--database-url", url,
                        "--json")  # fmt: skip
        assert first.code == 0, first.stderr
        admin = {"CMR_SERVER_URL": server.url, "CMR_TOKEN": first.json()["token"]}
        tokens = {}
        for name, role, days in (("ci", "write", "90d"), ("release", "promote", "30d")):
            made = run_cmr("token", "create", name, "--role", role, "--models", "team-*",
                           "--expires-in", days, "--json", env=admin)  # fmt: skip
            assert made.code == 0, made.stderr
            tokens[name] = {**admin, "CMR_TOKEN": made.json()["token"]}
        registered = run_cmr("--json", "register", "team-sft", "-r", "sft", "-b", "base",
                             env=tokens["ci"])  # fmt: skip
        assert registered.code == 0, registered.stderr
        assert run_cmr("promote", "team-sft@1", "staging", env=tokens["ci"]).code == 0
        refused = run_cmr("promote", "team-sft@1", "production", env=tokens["ci"])
        assert_user_error(refused)
        assert "promote" in refused.stderr
        elsewhere = run_cmr("register", "other-model", "-r", "sft", "-b", "base",
                            env=tokens["ci"])  # fmt: skip
        assert_user_error(elsewhere)
        assert run_cmr("promote", "team-sft@1", "production", env=tokens["release"]).code == 0
        shown = run_cmr("--json", "show", "team-sft@production", env=admin).json()
        assert shown["registered_by"] == "ci"
        history = run_cmr("--json", "history", "team-sft@1", env=admin).json()
        assert [h["actor"] for h in history] == ["ci", "ci", "release"]
    finally:
        server.stop()
