"""CMR_TEST_DB_PREFIX: the test suite's PostgreSQL databases carry a prefix one can choose."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url
from tests.pg_names import DEFAULT_PREFIX, database_name, database_prefix


def test_names_default_to_cmr_test(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CMR_TEST_DB_PREFIX", raising=False)
    assert database_name("empty").startswith("cmr_test_empty_")
    assert database_name() != database_name()


def test_the_prefix_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CMR_TEST_DB_PREFIX", "alice_")
    assert database_name().startswith("alice_")
    assert database_name("cli").startswith("alice_cli_")


@pytest.mark.parametrize("prefix", ['x"; DROP', "Alice", "1abc", "a" * 41])
def test_a_prefix_that_is_not_a_plain_identifier_is_refused(monkeypatch, prefix):
    monkeypatch.setenv("CMR_TEST_DB_PREFIX", prefix)
    with pytest.raises(ValueError, match="CMR_TEST_DB_PREFIX"):
        database_prefix()


@pytest.mark.postgres
def test_this_runs_database_carries_the_prefix(postgres_url: str):
    assert make_url(postgres_url).database.startswith(database_prefix() or DEFAULT_PREFIX)
