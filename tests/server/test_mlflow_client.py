"""An unmodified MLflow client (mlflow-skinny) against a live ``cmr serve``.

Each named MLflow call is checked against what our own API (a RemoteRegistry on the same
server) then shows; refused calls are checked for MLflow's error code and for the state
they left unchanged.
"""

from __future__ import annotations

import json
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.servers.registry_server import RegistryServer

from crucible_model_registry import Stage
from crucible_model_registry.registry import RemoteRegistry
from crucible_model_registry.server.mlflow.convert import NUMBER_OFFSET

mlflow = pytest.importorskip("mlflow")

from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

pytestmark = [
    # MLflow deprecates stages (and warns on every stage call); we serve them all the same.
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


@pytest.fixture
def client(server: RegistryServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowClient]:
    """MLflow's client with MLFLOW_TRACKING_URI (and the admin token) as a user would set them."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield MlflowClient()


@pytest.fixture
def ours(server: RegistryServer) -> Iterator[RemoteRegistry]:
    registry = RemoteRegistry(server.url, token=server.token)
    yield registry
    registry.close()


def error_code(info: pytest.ExceptionInfo[MlflowException]) -> str:
    return str(info.value.error_code)


def mlflow_info(ours: RemoteRegistry, ref: str | int) -> dict[str, Any]:
    info: dict[str, Any] = ours.get_version(ref).metadata["mlflow"]
    return info


# --------------------------------------------------------------------------- registered models


def test_create_and_get_registered_model(client: MlflowClient, ours: RemoteRegistry) -> None:
    made = client.create_registered_model("clf", tags={"team": "vision"}, description="d")
    assert (made.name, made.description, made.tags) == ("clf", "d", {"team": "vision"})
    model = ours.get_model("clf")
    assert model.description == "d"
    assert model.metadata == {"mlflow": {"tags": {"team": "vision"}}}
    got = client.get_registered_model("clf")
    assert (got.name, got.tags, got.latest_versions) == ("clf", {"team": "vision"}, [])
    assert got.creation_timestamp == int(model.created_at.timestamp() * 1000)


def test_duplicate_and_missing_models(client: MlflowClient, ours: RemoteRegistry) -> None:
    client.create_registered_model("clf", description="first")
    with pytest.raises(MlflowException) as dup:
        client.create_registered_model("clf", description="second")
    assert error_code(dup) == "RESOURCE_ALREADY_EXISTS"
    assert ours.get_model("clf").description == "first"
    with pytest.raises(MlflowException) as missing:
        client.get_registered_model("nope")
    assert error_code(missing) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as no_version:
        client.get_model_version("clf", "3")
    assert error_code(no_version) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as no_model:
        client.create_model_version("nope", "s3://bucket/x")
    assert error_code(no_model) == "RESOURCE_DOES_NOT_EXIST"
    assert [m.name for m in ours.list_models()] == ["clf"]


def test_update_rename_and_delete_registered_model(
    client: MlflowClient, ours: RemoteRegistry
) -> None:
    client.create_registered_model("old")
    client.create_model_version("old", "s3://bucket/m1")
    client.set_registered_model_alias("old", "champion", "1")
    client.update_registered_model("old", description="better")
    assert ours.get_model("old").description == "better"
    client.rename_registered_model("old", "new")  # MLflow's client returns None here
    assert client.get_registered_model("new").aliases == {"champion": "1"}
    assert [m.name for m in ours.list_models()] == ["new"]
    assert ours.get_version("new@champion").version == "1"
    client.create_registered_model("taken")
    with pytest.raises(MlflowException) as taken:
        client.rename_registered_model("new", "taken")
    assert error_code(taken) == "RESOURCE_ALREADY_EXISTS"
    assert sorted(m.name for m in ours.list_models()) == ["new", "taken"]
    client.delete_registered_model("new")
    assert [m.name for m in ours.list_models()] == ["taken"]
    assert ours.query({"model_name": "new"}) == []


def test_delete_registered_model_follows_our_rules(
    client: MlflowClient, ours: RemoteRegistry
) -> None:
    client.create_registered_model("live")
    client.create_model_version("live", "s3://bucket/m")
    client.transition_model_version_stage("live", "1", "Production")
    with pytest.raises(MlflowException) as refused:
        client.delete_registered_model("live")
    assert error_code(refused) == "INVALID_PARAMETER_VALUE"
    assert ours.get_version("live@1").stage is Stage.PRODUCTION


def test_registered_model_tags(client: MlflowClient, ours: RemoteRegistry) -> None:
    client.create_registered_model("clf", tags={"a": "1"})
    client.set_registered_model_tag("clf", "b", "two words")
    client.set_registered_model_tag("clf", "a", "changed")
    assert ours.get_model("clf").metadata["mlflow"]["tags"] == {"a": "changed", "b": "two words"}
    client.delete_registered_model_tag("clf", "a")
    assert client.get_registered_model("clf").tags == {"b": "two words"}


# --------------------------------------------------------------------------- model versions


def test_create_model_version_is_ready_and_kept(client: MlflowClient, ours: RemoteRegistry) -> None:
    client.create_registered_model("clf")
    made = client.create_model_version(
        "clf", "s3://bucket/run1/model", run_id="run1", tags={"k": "v"}, description="first"
    )
    assert (made.version, made.status, made.current_stage) == ("1", "READY", "None")
    assert (made.source, made.run_id, made.tags) == ("s3://bucket/run1/model", "run1", {"k": "v"})
    v = ours.get_version("clf@1")
    assert (v.recipe, v.stage, v.description) == ("mlflow", Stage.EXPERIMENT, "first")
    assert v.training_config["source"] == "s3://bucket/run1/model"
    assert v.training_config["run_id"] == "run1"
    assert mlflow_info(ours, "clf@1") == {
        "source": "s3://bucket/run1/model",
        "run_id": "run1",
        "tags": {"k": "v"},
    }
    # MLflow allows one run in several versions: our deduplication does not refuse it.
    again = client.create_model_version("clf", "s3://bucket/run1/model", run_id="run1")
    assert again.version == "2"
    got = client.get_model_version("clf", "1")
    assert (got.version, got.tags, got.description) == ("1", {"k": "v"}, "first")


def test_register_model_creates_the_model_once(client: MlflowClient, ours: RemoteRegistry) -> None:
    first = mlflow.register_model("s3://bucket/a", "reg", tags={"from": "register_model"})
    second = mlflow.register_model("s3://bucket/b", "reg")
    assert (first.version, second.version) == ("1", "2")
    assert [m.name for m in ours.list_models()] == ["reg"]
    assert mlflow_info(ours, "reg@1")["tags"] == {"from": "register_model"}
    assert mlflow_info(ours, "reg@2")["source"] == "s3://bucket/b"


def test_update_and_tag_model_version(client: MlflowClient, ours: RemoteRegistry) -> None:
    client.create_registered_model("clf")
    client.create_model_version("clf", "s3://bucket/m", tags={"a": "1"})
    updated = client.update_model_version("clf", "1", description="tuned")
    assert updated.description == "tuned"
    assert ours.get_version("clf@1").description == "tuned"
    client.set_model_version_tag("clf", "1", "quality", "good")
    client.delete_model_version_tag("clf", "1", "a")
    assert mlflow_info(ours, "clf@1")["tags"] == {"quality": "good"}
    assert client.get_model_version("clf", "1").tags == {"quality": "good"}


def test_delete_model_version(client: MlflowClient, ours: RemoteRegistry) -> None:
    client.create_registered_model("clf")
    client.create_model_version("clf", "s3://bucket/1")
    client.create_model_version("clf", "s3://bucket/2")
    client.delete_model_version("clf", "1")
    assert [v.version for v in ours.query({"model_name": "clf"})] == ["2"]
    with pytest.raises(MlflowException) as gone:
        client.delete_model_version("clf", "1")
    assert error_code(gone) == "RESOURCE_DOES_NOT_EXIST"
    # Our rule: a version in production is not deleted (MLflow's client sees why).
    client.transition_model_version_stage("clf", "2", "Production")
    with pytest.raises(MlflowException) as live:
        client.delete_model_version("clf", "2")
    assert error_code(live) == "INVALID_PARAMETER_VALUE"
    assert [v.version for v in ours.query({"model_name": "clf"})] == ["2"]


def test_transition_stage_with_archive_existing(client: MlflowClient, ours: RemoteRegistry) -> None:
    client.create_registered_model("clf")
    for i in range(3):
        client.create_model_version("clf", f"s3://bucket/{i}")
    client.transition_model_version_stage("clf", "1", "Production")
    client.transition_model_version_stage("clf", "2", "staging")
    moved = client.transition_model_version_stage(
        "clf", "3", "Production", archive_existing_versions=True
    )
    assert moved.current_stage == "Production"
    stages = {v.version: v.stage for v in ours.query({"model_name": "clf"})}
    assert stages == {"1": Stage.ARCHIVED, "2": Stage.STAGING, "3": Stage.PRODUCTION}
    assert [t.to_stage for t in ours.stage_history("clf@1")] == [
        Stage.EXPERIMENT,
        Stage.PRODUCTION,
        Stage.ARCHIVED,
    ]
    latest = {v.current_stage: v.version for v in client.get_latest_versions("clf")}
    assert latest == {"Staging": "2", "Production": "3", "Archived": "1"}
    assert [v.version for v in client.get_latest_versions("clf", stages=["None"])] == []
    with pytest.raises(MlflowException) as bad:
        client.transition_model_version_stage("clf", "3", "Shipped")
    assert error_code(bad) == "INVALID_PARAMETER_VALUE"
    assert ours.get_version("clf@3").stage is Stage.PRODUCTION


def test_transition_obeys_our_promotion_policy(client: MlflowClient, ours: RemoteRegistry) -> None:
    client.create_registered_model("clf")
    client.create_model_version("clf", "s3://bucket/m")
    ours.set_promotion_policy("clf", {"allowed": {"production": ["staging"]}})
    with pytest.raises(MlflowException) as denied:
        client.transition_model_version_stage("clf", "1", "Production")
    assert error_code(denied) == "PERMISSION_DENIED"
    assert ours.get_version("clf@1").stage is Stage.EXPERIMENT


def test_aliases(client: MlflowClient, ours: RemoteRegistry) -> None:
    client.create_registered_model("clf")
    client.create_model_version("clf", "s3://bucket/1")
    client.create_model_version("clf", "s3://bucket/2")
    client.set_registered_model_alias("clf", "champion", "1")
    client.set_registered_model_alias("clf", "champion", 2)
    by_alias = client.get_model_version_by_alias("clf", "champion")
    assert (by_alias.version, by_alias.aliases) == ("2", ["champion"])
    assert ours.get_version("clf@champion").version == "2"
    assert client.get_registered_model("clf").aliases == {"champion": "2"}
    client.delete_registered_model_alias("clf", "champion")
    with pytest.raises(MlflowException) as gone:
        client.get_model_version_by_alias("clf", "champion")
    assert error_code(gone) == "INVALID_PARAMETER_VALUE"  # as MLflow's server answers
    client.delete_registered_model_alias("clf", "champion")  # a missing alias: success
    assert [c.version_id for c in ours.alias_history("clf")][-1] is None


def test_non_integer_versions_get_a_stable_number(
    client: MlflowClient, ours: RemoteRegistry
) -> None:
    semver = ours.register(
        model_name="llm", version="1.0.0", recipe="sft", base_model="b", training_config={}
    )
    number = str(NUMBER_OFFSET + semver.id)
    shown = client.get_model_version("llm", number)
    assert (shown.version, shown.name) == (number, "llm")
    assert [v.version for v in client.search_model_versions("name = 'llm'")] == [number]
    client.set_registered_model_alias("llm", "best", number)
    assert ours.get_version("llm@best").version == "1.0.0"


# --------------------------------------------------------------------------- search


def test_search_registered_models(client: MlflowClient, ours: RemoteRegistry) -> None:
    for name in ("alpha", "beta", "Alphabet", "gamma"):
        client.create_registered_model(name, tags={"team": "a" if "a" in name[:1] else "b"})
    names = [m.name for m in client.search_registered_models()]
    assert names == ["Alphabet", "alpha", "beta", "gamma"]
    assert [m.name for m in client.search_registered_models("name LIKE 'alpha%'")] == ["alpha"]
    assert [m.name for m in client.search_registered_models("name ILIKE 'alpha%'")] == [
        "Alphabet",
        "alpha",
    ]
    assert [m.name for m in client.search_registered_models("tags.team = 'a'")] == ["alpha"]
    first = client.search_registered_models(max_results=3, order_by=["name DESC"])
    assert [m.name for m in first] == ["gamma", "beta", "alpha"]
    rest = client.search_registered_models(
        max_results=3, order_by=["name DESC"], page_token=first.token
    )
    assert [m.name for m in rest] == ["Alphabet"]
    assert not rest.token


def test_search_model_versions_with_filters_and_pages(
    client: MlflowClient, ours: RemoteRegistry
) -> None:
    client.create_registered_model("a")
    client.create_registered_model("b")
    for i in range(1, 6):
        client.create_model_version(
            "a", f"s3://bucket/a{i}", run_id=f"run{i % 2}", tags={"parity": str(i % 2)}
        )
    client.create_model_version("b", "s3://bucket/b1", run_id="run1")

    def versions(filter_string: str | None = None, **kwargs: Any) -> list[tuple[str, str]]:
        found = client.search_model_versions(filter_string, **kwargs)
        return [(v.name, v.version) for v in found]

    assert len(versions()) == 6
    assert versions("name = 'a' AND tags.parity = '1'", order_by=["version_number ASC"]) == [
        ("a", "1"),
        ("a", "3"),
        ("a", "5"),
    ]
    assert sorted(versions("run_id = 'run1'")) == [("a", "1"), ("a", "3"), ("a", "5"), ("b", "1")]
    assert versions("name = 'a' AND version_number > 3", order_by=["version_number"]) == [
        ("a", "4"),
        ("a", "5"),
    ]
    assert sorted(versions("name IN ('b') AND run_id IN ('run1', 'x')")) == [("b", "1")]
    assert versions("source_path LIKE '%b1'") == [("b", "1")]
    # Pages of 2, by version number descending, follow one another without a gap.
    seen: list[tuple[str, str]] = []
    token = None
    while True:
        page = client.search_model_versions(
            "name='a'", max_results=2, order_by=["version_number DESC"], page_token=token
        )
        seen += [(v.name, v.version) for v in page]
        token = page.token
        if not token:
            break
    assert seen == [("a", "5"), ("a", "4"), ("a", "3"), ("a", "2"), ("a", "1")]


@pytest.mark.parametrize(
    "bad_filter",
    [
        "name = 'a' OR name = 'b'",
        "description = 'x'",
        "version_number = 'one'",
        "name > 'a'",
        "tags.k IN ('a')",
        "name = ",
    ],
)
def test_untranslatable_filters_are_refused(
    client: MlflowClient, ours: RemoteRegistry, bad_filter: str
) -> None:
    client.create_registered_model("a")
    client.create_model_version("a", "s3://bucket/x")
    with pytest.raises(MlflowException) as refused:
        client.search_model_versions(bad_filter)
    assert error_code(refused) == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as refused_models:
        client.search_registered_models("run_id = 'x'")
    assert error_code(refused_models) == "INVALID_PARAMETER_VALUE"
    assert len(ours.query({"model_name": "a"})) == 1


def test_a_bad_page_token_is_refused(client: MlflowClient) -> None:
    with pytest.raises(MlflowException) as refused:
        client.search_registered_models(page_token="not-a-token")
    assert error_code(refused) == "INVALID_PARAMETER_VALUE"


# --------------------------------------------------------------------------- artifacts


def write_model_folder(root: Path) -> Path:
    folder = root / "model"
    (folder / "data").mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors: {}\n")
    (folder / "data" / "weights.bin").write_bytes(bytes(range(256)) * 64)
    return folder


def test_download_artifacts_of_an_alias(
    client: MlflowClient, ours: RemoteRegistry, tmp_path: Path
) -> None:
    folder = write_model_folder(tmp_path)
    v = ours.register(model_name="clf", recipe="r", base_model="b", training_config={"n": 1})
    ours.upload_artifact(v, "checkpoint", folder)
    client.set_registered_model_alias("clf", "champion", "1")
    uri = client.get_model_version_download_uri("clf", "1")
    assert uri == f"mlflow-artifacts:/cmr-versions/{v.id}"
    got = Path(mlflow.artifacts.download_artifacts("models:/clf@champion", dst_path=tmp_path / "d"))
    assert (got / "MLmodel").read_text() == "flavors: {}\n"
    assert (got / "data" / "weights.bin").read_bytes() == bytes(range(256)) * 64
    one = mlflow.artifacts.download_artifacts("models:/clf/1/MLmodel", dst_path=tmp_path / "e")
    assert Path(one).read_text() == "flavors: {}\n"


def test_a_tampered_file_is_not_served(
    client: MlflowClient, ours: RemoteRegistry, server: RegistryServer, tmp_path: Path
) -> None:
    folder = write_model_folder(tmp_path)
    v = ours.register(model_name="clf", recipe="r", base_model="b", training_config={"n": 2})
    ours.upload_artifact(v, "checkpoint", folder)
    stored = next(server.storage_dir.rglob("weights.bin"))
    stored.write_bytes(b"tampered")
    status, body = server.get(
        f"/api/2.0/mlflow-artifacts/artifacts/cmr-versions/{v.id}/data/weights.bin"
    )
    assert status == 500
    assert json.loads(body)["error_code"] == "DATA_LOSS"


def test_artifacts_uploaded_through_the_proxy(
    client: MlflowClient, ours: RemoteRegistry, server: RegistryServer, tmp_path: Path
) -> None:
    from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository

    folder = write_model_folder(tmp_path)
    MlflowArtifactsRepository("mlflow-artifacts:/exp/run7/artifacts/model").log_artifacts(folder)
    mv = mlflow.register_model("mlflow-artifacts:/exp/run7/artifacts/model", "proxied")
    assert client.get_model_version_download_uri("proxied", mv.version) == (
        "mlflow-artifacts:/exp/run7/artifacts/model"
    )
    got = Path(mlflow.artifacts.download_artifacts("models:/proxied/1", dst_path=tmp_path / "d"))
    assert (got / "data" / "weights.bin").read_bytes() == bytes(range(256)) * 64
    # The stored file is checked against the SHA-256 taken when it arrived.
    stored = next(server.storage_dir.rglob("MLmodel"))
    stored.write_text("changed")
    status, body = server.get(
        "/api/2.0/mlflow-artifacts/artifacts/exp/run7/artifacts/model/MLmodel"
    )
    assert (status, json.loads(body)["error_code"]) == (500, "DATA_LOSS")


def test_the_version_tree_is_read_only(server: RegistryServer) -> None:
    request = urllib.request.Request(
        server.url + "/api/2.0/mlflow-artifacts/artifacts/cmr-versions/1/x",
        data=b"x",
        method="PUT",
        headers=server.auth,
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert json.loads(refused.value.read())["error_code"] == "INVALID_PARAMETER_VALUE"


# --------------------------------------------------------------------------- the wire itself


def test_unknown_endpoints_answer_in_mlflow_shape(server: RegistryServer) -> None:
    status, body = server.get("/api/2.0/mlflow/registered-models/frobnicate")
    assert status == 404
    assert json.loads(body)["error_code"] == "ENDPOINT_NOT_FOUND"
    status, body = server.get("/ajax-api/2.0/mlflow/registered-models/search")
    assert (status, json.loads(body)) == (200, {})


def test_search_by_tags_with_dots_and_odd_keys(client: MlflowClient, ours: RemoteRegistry) -> None:
    client.create_registered_model("m")
    client.create_model_version("m", "s3://bucket/1", tags={"mlflow.source.type": "JOB"})
    client.create_model_version("m", "s3://bucket/2", tags={"it's": "odd, {really}"})
    client.create_model_version("m", "s3://bucket/3")

    def numbers(filter_string: str) -> list[str]:
        found = client.search_model_versions(filter_string, order_by=["version_number"])
        return [v.version for v in found]

    assert numbers("tags.`mlflow.source.type` = 'JOB'") == ["1"]
    assert numbers("tag.`it's` = 'odd, {really}'") == ["2"]
    assert numbers("tags.`mlflow.source.type` != 'JOB'") == ["2", "3"]
    assert numbers("tags.`it's` LIKE 'odd%'") == ["2"]


def test_errors_before_the_routes_also_take_mlflow_shape(server: RegistryServer) -> None:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        # A body declared past the server's limit is refused by the middleware, unread.
        connection.putrequest("POST", "/api/2.0/mlflow/registered-models/create")
        connection.putheader("content-type", "application/json")
        connection.putheader("authorization", f"Bearer {server.token}")
        connection.putheader("content-length", str(1 << 30))
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["error_code"] == "INVALID_PARAMETER_VALUE"
    finally:
        connection.close()


def test_tokens_and_roles_apply_to_mlflow_clients(
    client: MlflowClient,
    ours: RemoteRegistry,
    server: RegistryServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.servers.registry_server import install_token

    from crucible_model_registry.domain.access import new_token_secret

    client.create_registered_model("clf")
    client.create_model_version("clf", "s3://bucket/m")
    reader = new_token_secret()
    install_token(server.database_url, "reader", reader, role="read", models=("clf",))
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", reader)
    as_reader = MlflowClient()
    assert as_reader.get_model_version("clf", "1").version == "1"
    with pytest.raises(MlflowException) as denied:
        as_reader.transition_model_version_stage("clf", "1", "Staging")
    assert error_code(denied) == "PERMISSION_DENIED"
    with pytest.raises(MlflowException) as denied_tag:
        as_reader.set_model_version_tag("clf", "1", "k", "v")
    assert error_code(denied_tag) == "PERMISSION_DENIED"
    assert ours.get_version("clf@1").stage is Stage.EXPERIMENT
    assert ours.get_version("clf@1").metadata["mlflow"]["tags"] == {}
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "cmr_not-a-token")
    with pytest.raises(MlflowException) as unknown:
        MlflowClient().get_registered_model("clf")
    assert error_code(unknown) == "UNAUTHENTICATED"
