"""Two ``cmr serve`` processes over one PostgreSQL database: nothing in a server is state.

Clients in threads write through both replicas at once; the database, not a process,
decides: one version per training run, numbers 1..N without gaps or duplicates, and an
exclusive stage never held by two versions (sampled while the promotions run).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from tests.servers.registry_server import RegistryServer, start_registry_server

import crucible_model_registry as cmr
from crucible_model_registry import errors
from crucible_model_registry.registry import RemoteRegistry

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

FIELDS = {"model_name": "m", "recipe": "sft", "base_model": "base"}


@pytest.fixture
def replicas(
    remote_server_postgres: RegistryServer, tmp_path: Path
) -> Iterator[list[RegistryServer]]:
    remote_server_postgres.reset()
    second = start_registry_server(
        remote_server_postgres.database_url,
        tmp_path / "second",
        storage_dir=remote_server_postgres.storage_dir,
        token=remote_server_postgres.token,
    )
    yield [remote_server_postgres, second]
    second.stop()


@pytest.fixture
def clients() -> Iterator[Callable[[list[RegistryServer], int], list[RemoteRegistry]]]:
    """``clients(servers, n)``: n remote registries spread over the servers, closed after."""
    made: list[RemoteRegistry] = []

    def spread(servers: list[RegistryServer], n: int) -> list[RemoteRegistry]:
        made.extend(
            RemoteRegistry(s.url, token=s.token)
            for s in itertools.islice(itertools.cycle(servers), n)
        )
        return made[-n:]

    yield spread
    for remote in made:
        remote.close()


Clients = Callable[[list[RegistryServer], int], list[RemoteRegistry]]


def test_identical_registrations_through_two_replicas_make_one_version(
    replicas: list[RegistryServer], clients: Clients
) -> None:
    remotes = clients(replicas, 16)
    barrier = threading.Barrier(len(remotes))

    def register(remote: RemoteRegistry) -> object:
        barrier.wait()
        try:
            return remote.register({**FIELDS, "training_config": {"lr": 0.1}})
        except errors.DuplicateConfigError as exc:
            return exc

    with ThreadPoolExecutor(len(remotes)) as pool:
        results = list(pool.map(register, remotes))
    made = [r for r in results if isinstance(r, cmr.ModelVersion)]
    refused = [r for r in results if isinstance(r, errors.DuplicateConfigError)]
    assert len(made) == 1
    assert len(refused) == 15
    assert {e.existing.id for e in refused} == {made[0].id}
    assert [v.id for v in remotes[1].query({"model_name": "m"})] == [made[0].id]


def test_auto_numbering_through_two_replicas_has_no_gaps_or_duplicates(
    replicas: list[RegistryServer], clients: Clients
) -> None:
    remotes = clients(replicas, 8)
    barrier = threading.Barrier(len(remotes))

    def register_five(args: tuple[int, RemoteRegistry]) -> list[str]:
        n, remote = args
        barrier.wait()
        return [
            remote.register({**FIELDS, "training_config": {"run": n * 100 + k}}).version
            for k in range(5)
        ]

    with ThreadPoolExecutor(len(remotes)) as pool:
        versions = [v for batch in pool.map(register_five, enumerate(remotes)) for v in batch]
    assert sorted(int(v) for v in versions) == list(range(1, 41))


def test_an_exclusive_stage_is_never_held_by_two_versions(
    replicas: list[RegistryServer], clients: Clients
) -> None:
    [setup] = clients(replicas[:1], 1)
    ids = [setup.register({**FIELDS, "training_config": {"run": n}}).id for n in range(12)]
    setup.set_promotion_policy("m", {"exclusive": ["production"]})
    remotes = clients(replicas, len(ids))
    barrier = threading.Barrier(len(remotes))
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        engine = create_engine(replicas[0].database_url, isolation_level="AUTOCOMMIT")
        query = text("SELECT count(*) FROM cmr_model_versions WHERE stage = 'production'")
        with engine.connect() as conn:
            while not done.wait(0.002):
                samples.append(conn.execute(query).scalar_one())
        engine.dispose()

    def promote(args: tuple[int, RemoteRegistry]) -> str:
        version_id, remote = args
        barrier.wait()
        try:
            remote.promote(version_id, "production")
        except errors.RegistryError as exc:
            return type(exc).__name__
        return "promoted"

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with ThreadPoolExecutor(len(remotes)) as pool:
            outcomes = list(pool.map(promote, zip(ids, remotes, strict=True)))
    finally:
        done.set()
        sampler.join()
    assert "promoted" in outcomes
    assert samples
    assert max(samples) <= 1
    assert len(setup.query({"stage": "production"})) == 1
