"""Property-based fuzz of the OpenAPI document (Schemathesis) against a real ``cmr serve``.

Schemathesis reads ``/api/v1/openapi.json`` from a uvicorn process on loopback and sends
every operation generated requests, valid and invalid (coverage and fuzzing phases, also
methods a path does not declare). Every answer must be no server error (5xx), have a
documented status and content type, match its documented schema (records and the one error
shape), and say the truth in ``Allow``. The server runs as ``cmr serve`` does by default,
tokens required; Schemathesis sends the test server's admin token, so requests reach the
routes (the access matrix of every route is tests/server/test_access*.py's subject).

Left out: Schemathesis' ``positive_data_acceptance`` check. The document declares path
parameters and bodies loosely (a model name is a string) while the registry's rules (names,
refs, metric values) live in the registry, not in a second copy in the schema; a generated
"valid" name such as ``'\\x9cd'`` is refused with 422 by design.

Then regression tests, one per bug the fuzz found, through plain HTTP.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from tests.servers.registry_server import RegistryServer, start_registry_server

ST = str(Path(sys.executable).with_name("st"))

MAX_EXAMPLES = 25
"""Per operation in the fuzzing phase: ~40 operations in well under a minute under load."""

CONFIG = """\
[generation]
max-examples = {max_examples}

[phases.stateful]
enabled = false

[checks.positive_data_acceptance]
enabled = false

[[operations]]
include-path = "/api/v1/models/{{name}}/aliases/history"
# The same path is also DELETE /models/{{name}}/aliases/{{alias}} of the alias "history"
# (a valid alias name), so Allow rightly lists DELETE, which this template lacks.
checks.allow_header_conformance.enabled = false

[[operations]]
include-path = "/api/v1/import/bundles"
# NDJSON bodies: Schemathesis has no serializer for them; tests/move/test_remote_move.py
# drives this route with real and broken bundles.
enabled = false
"""


@pytest.fixture(scope="module")
def fuzz_server(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[RegistryServer]:
    """A ``cmr serve`` over SQLite for this module (admin token), one version registered."""
    workdir = tmp_path_factory.mktemp("fuzz")
    database = workdir / "registry.db"
    shutil.copyfile(sqlite_template, database)
    server = start_registry_server(f"sqlite:///{database}", workdir)
    version = {"model_name": "m", "recipe": "r", "base_model": "b", "training_config": {}}
    answer = httpx2.post(
        f"{server.url}/api/v1/versions", json=version, headers=server.auth, timeout=10
    )
    answer.raise_for_status()
    yield server
    server.stop()


@pytest.mark.slow
def test_every_answer_is_documented_and_no_server_error(
    fuzz_server: RegistryServer, tmp_path: Path
) -> None:
    # Schemathesis' own runner (its pytest plugin does not work with pytest 9): examples,
    # coverage and fuzzing phases, every check but positive_data_acceptance.
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(max_examples=MAX_EXAMPLES))
    command = [
        ST,
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{fuzz_server.url}/api/v1/openapi.json",
        "--url",
        fuzz_server.url,
        "--header",
        f"Authorization: Bearer {fuzz_server.token}",
        "--seed",
        "15",  # the same cases each run; change it to explore
        "--report-dir",
        str(tmp_path / "report"),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": ""}
    run = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path
    )
    summary = run.stdout[-6000:]
    assert run.returncode == 0, f"{summary}\n{run.stderr[-2000:]}"
    assert " 0 failures" not in summary  # the closing line counts cases, never 0 of them
    assert "generated" in summary


# --------------------------------------------------------------------------- what it found


def test_an_artifact_id_beyond_64_bits_is_a_422_not_a_500(fuzz_server: RegistryServer) -> None:
    huge = 2**100
    for path in (f"/api/v1/artifacts/{huge}", f"/api/v1/artifacts/{huge}/content"):
        response = httpx2.get(fuzz_server.url + path, headers=fuzz_server.auth, timeout=10)
        assert response.status_code == 422, path
        error = response.json()["error"]
        assert error["type"] == "ValidationError"
        assert "out of range" in error["message"]


def test_a_sub_resource_path_with_an_undeclared_method_is_405_with_its_allow(
    fuzz_server: RegistryServer,
) -> None:
    # GET /versions/1/metrics used to reach GET /versions/{version:path} as the ref
    # '1/metrics' and answer 422; the metrics of version 1 answer PATCH only.
    response = httpx2.get(
        f"{fuzz_server.url}/api/v1/versions/1/metrics", headers=fuzz_server.auth, timeout=10
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "PATCH"
    assert response.json()["error"]["type"] == "ValidationError"
    response = httpx2.request(
        "DELETE",
        f"{fuzz_server.url}/api/v1/models/m/policy",
        headers=fuzz_server.auth,
        timeout=10,
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, PUT"
    # A ref holding '/' still reaches the version route.
    version = {"model_name": "org/sub", "recipe": "r", "base_model": "b"}
    version["training_config"] = {"test": "org/sub"}
    httpx2.post(
        f"{fuzz_server.url}/api/v1/versions", json=version, headers=fuzz_server.auth, timeout=10
    ).raise_for_status()
    response = httpx2.get(
        f"{fuzz_server.url}/api/v1/versions/org/sub@1", headers=fuzz_server.auth, timeout=10
    )
    assert response.status_code == 200
    assert response.json()["model_name"] == "org/sub"


def test_allow_lists_every_method_of_the_path(fuzz_server: RegistryServer) -> None:
    # Starlette named only the first matching route's methods (GET for /artifacts/{id}).
    for path, allowed in (
        ("/api/v1/artifacts/1", "DELETE, GET, HEAD"),
        ("/api/v1/versions/any@1", "DELETE, GET, HEAD, PATCH"),
        ("/api/v1/models/any", "DELETE, GET, HEAD, PATCH"),
        ("/api/v1/aliases", "POST"),
    ):
        response = httpx2.request(
            "TRACE", fuzz_server.url + path, headers=fuzz_server.auth, timeout=10
        )
        assert response.status_code == 405, path
        assert response.headers["allow"] == allowed, path


def test_errors_and_records_are_declared_in_the_document(fuzz_server: RegistryServer) -> None:
    document = httpx2.get(
        f"{fuzz_server.url}/api/v1/openapi.json", headers=fuzz_server.auth, timeout=10
    ).json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    get_version = document["paths"]["/api/v1/versions/{version}"]["get"]["responses"]
    assert get_version["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ModelVersion"
    }
    for status in ("404", "422", "503"):
        error = get_version[status]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/Error"}
    version_schema = document["components"]["schemas"]["ModelVersion"]
    assert version_schema["additionalProperties"] is False
    assert "config_hash" in version_schema["required"]
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]


def test_request_bodies_are_declared(fuzz_server: RegistryServer) -> None:
    # Without them the fuzz sent any JSON and nearly every body stopped at "must be a JSON
    # object"; declared, it generates registrations, promotions and queries that get deep.
    document = httpx2.get(
        f"{fuzz_server.url}/api/v1/openapi.json", headers=fuzz_server.auth, timeout=10
    ).json()
    register = document["paths"]["/api/v1/versions"]["post"]["requestBody"]
    schema = register["content"]["application/json"]["schema"]
    assert register["required"] is True
    assert set(schema["required"]) == {"model_name", "recipe", "base_model", "training_config"}
    assert schema["additionalProperties"] is False
    promote = document["paths"]["/api/v1/versions/{version}/promote"]["post"]["requestBody"]
    assert promote["content"]["application/json"]["schema"]["required"] == ["stage"]


def test_a_mapping_is_no_tag_list_and_gc_checks_its_fields(fuzz_server: RegistryServer) -> None:
    # {"remove": {"a": 1}} removed the tag "a" (a mapping iterates over its keys), and
    # gc took {"storage": {}} for "every backend".
    version = {"model_name": "tagged", "recipe": "r", "base_model": "b"}
    version["training_config"] = {"test": "tags"}
    version["tags"] = ["a"]
    url = fuzz_server.url
    made = httpx2.post(f"{url}/api/v1/versions", json=version, headers=fuzz_server.auth, timeout=10)
    assert made.status_code == 201, made.text
    response = httpx2.patch(
        f"{url}/api/v1/versions/tagged@1/tags",
        json={"remove": {"a": 1}},
        headers=fuzz_server.auth,
        timeout=10,
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"]["errors"] == {"tags": ["must be a list of strings"]}
    kept = httpx2.get(f"{url}/api/v1/versions/tagged@1", headers=fuzz_server.auth, timeout=10)
    assert kept.json().get("tags") == ["a"], kept.text
    for body, field in (
        ({"storage": {}}, "storage"),
        ({"dry_run": "yes"}, "dry_run"),
        ({"older_than_seconds": 1e308}, "older_than_seconds"),  # was a 500: timedelta overflow
    ):
        response = httpx2.post(f"{url}/api/v1/gc", json=body, headers=fuzz_server.auth, timeout=10)
        assert response.status_code == 422, body
        assert list(response.json()["error"]["details"]["errors"]) == [field]


def test_a_malformed_deferred_edge_line_is_refused_not_a_server_error(
    fuzz_server: RegistryServer,
) -> None:
    # Schemathesis found {"lines": [{}]} answered 500 (a KeyError in the edge import).
    before = httpx2.get(
        f"{fuzz_server.url}/api/v1/audit", headers=fuzz_server.auth, timeout=10
    ).json()
    lines = [
        {},
        {"model": "m", "version": "1", "parent_model": "m", "parent_version": "2"},
        {
            "model": "m",
            "version": "1",
            "parent_model": "p",
            "parent_version": "1",
            "relationship": "fine_tuned_from",
            "created_at": "yesterday",
        },
    ]
    response = httpx2.post(
        f"{fuzz_server.url}/api/v1/import/edges",
        json={"lines": lines},
        headers=fuzz_server.auth,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    outcomes = response.json()["outcomes"]
    assert "'model' must be a string" in outcomes[0]
    assert "'relationship' must be a string" in outcomes[1]
    assert "malformed" in outcomes[2]
    after = httpx2.get(
        f"{fuzz_server.url}/api/v1/audit", headers=fuzz_server.auth, timeout=10
    ).json()
    assert after == before  # nothing imported, nothing recorded
