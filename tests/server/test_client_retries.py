"""The remote client survives lost answers, 503s and dropped connections without doing twice."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.servers.fault_proxy import FaultProxy, fault_proxy
from tests.servers.registry_server import RegistryServer

from crucible_model_registry import errors
from crucible_model_registry.registry import RemoteRegistry

__all__ = ["fault_proxy"]

FIELDS = {"model_name": "m", "recipe": "sft", "base_model": "base", "training_config": {"a": 1}}


@pytest.fixture
def client(server: RegistryServer, fault_proxy: FaultProxy) -> Iterator[RemoteRegistry]:
    registry = RemoteRegistry(fault_proxy.url, retries=3, token=server.token)
    registry._http._backoff = 0.01  # the tests wait for retries, not for realism
    yield registry
    registry.close()


@pytest.mark.parametrize("kind", ["503", "drop"])
def test_a_registration_whose_answer_is_lost_is_not_made_twice(
    server: RegistryServer, fault_proxy: FaultProxy, client: RemoteRegistry, kind: str
) -> None:
    fault_proxy.inject("POST", "/api/v1/versions", kind)
    version = client.register(FIELDS)
    assert fault_proxy.forwarded.count("POST /api/v1/versions") == 1
    direct = RemoteRegistry(server.url, token=server.token)
    assert [v.id for v in direct.query({"model_name": "m"})] == [version.id]
    direct.close()


def test_a_registration_refused_before_it_ran_is_sent_again(
    server: RegistryServer, fault_proxy: FaultProxy, client: RemoteRegistry
) -> None:
    fault_proxy.inject("POST", "/api/v1/versions", "refuse-503", times=2)
    version = client.register(FIELDS)
    assert version.version == "1"
    assert fault_proxy.forwarded.count("POST /api/v1/versions") == 1


def test_reads_are_retried_through_503s_and_drops(
    fault_proxy: FaultProxy, client: RemoteRegistry
) -> None:
    made = client.register(FIELDS)
    fault_proxy.inject("GET", "/api/v1/versions/", "503")
    fault_proxy.inject("GET", "/api/v1/versions/", "drop")
    assert client.get_version("m@1") == made


def test_a_deletion_whose_answer_is_lost_is_not_resent(
    server: RegistryServer, fault_proxy: FaultProxy, client: RemoteRegistry
) -> None:
    made = client.register(FIELDS)
    fault_proxy.inject("DELETE", "/api/v1/versions/", "drop")
    with pytest.raises(errors.DatabaseError):
        client.delete_version(made)
    assert fault_proxy.forwarded.count("DELETE /api/v1/versions/m@1") == 0
    assert [r for r in fault_proxy.forwarded if r.startswith("DELETE")] == [
        f"DELETE /api/v1/versions/{made.id}?force=false"
    ]


def test_retries_give_up_with_a_clear_error(
    fault_proxy: FaultProxy, client: RemoteRegistry
) -> None:
    fault_proxy.inject("GET", "/api/v1/models", "refuse-503", times=10)
    with pytest.raises(errors.DatabaseError):
        client.list_models()
