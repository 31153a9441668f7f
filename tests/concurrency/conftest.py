"""After every concurrency test, the database it raced on still keeps every invariant."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crucible_model_registry import Registry


@pytest.fixture(autouse=True)
def _integrity_checked_afterwards(request: pytest.FixtureRequest) -> Iterator[None]:
    if "db_url" not in request.fixturenames:
        yield
        return
    url = str(request.getfixturevalue("db_url"))
    yield
    registry = Registry.from_url(url)
    try:
        report = registry.check()
    finally:
        registry.close()
    assert report.ok, "\n".join(map(str, report.violations))
