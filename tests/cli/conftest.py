"""Fixtures for the command-line tests: the real ``cmr`` executable in a subprocess.

Each test has its own ``CMR_HOME`` (the autouse fixture of ``tests/conftest.py``); the
subprocess inherits it. ``seeded_home`` copies the migrated SQLite template there so that
a test does not pay for a migration.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cli.runner import Runner, run_cmr

from crucible_model_registry import Registry


@pytest.fixture
def cmr() -> Runner:
    """Run ``cmr`` in a subprocess: ``cmr("query", "--json")``."""
    return run_cmr


@pytest.fixture
def home(_isolated_home: Path) -> Path:
    """This test's CMR_HOME (empty: no registry yet)."""
    return _isolated_home


@pytest.fixture
def seeded_home(_isolated_home: Path, sqlite_template: Path) -> Path:
    """CMR_HOME holding an empty, migrated embedded registry."""
    shutil.copyfile(sqlite_template, _isolated_home / "registry.db")
    return _isolated_home


@pytest.fixture
def home_registry(seeded_home: Path) -> Iterator[Registry]:
    """The embedded registry under CMR_HOME, in this process, to set up and inspect state."""
    registry = Registry.from_url(f"sqlite:///{seeded_home / 'registry.db'}")
    yield registry
    registry.close()
