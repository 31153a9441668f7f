"""Fixtures for the UI tests: a seeded ``cmr serve`` on loopback and a headless Chromium.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``) driven by Playwright's Python
package; no browser is ever downloaded. Without it the browser tests skip with a message,
except under ``CI=true`` (``.ci/run`` installs it), where that fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.servers.registry_server import RegistryServer, start_registry_server
from tests.ui.seed import Seeded, seed

from crucible_model_registry.registry import Registry, RemoteRegistry

CHROMIUM = Path(os.environ.get("CMR_TEST_CHROMIUM", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROLES = {"rita": "read", "pat": "promote", "ada": "admin"}
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")


@dataclass
class UiServer:
    """A running server with the seeded registry, and a client of it."""

    server: RegistryServer
    registry: RemoteRegistry
    seeded: Seeded
    tokens: dict[str, str]  # principal name -> token (with authentication)

    @property
    def url(self) -> str:
        return self.server.url


def _start(tmp: Path, template: Path, *, auth: bool) -> UiServer:
    database = tmp / "registry.db"
    shutil.copyfile(template, database)
    tokens: dict[str, str] = {}
    if auth:  # tokens made on the database, as an operator makes the first admin's
        local = Registry.from_url(f"sqlite:///{database}")
        tokens = {name: local.create_token(name, role=role).token for name, role in ROLES.items()}
        local.close()
    extra = () if auth else ("--no-auth",)
    server = start_registry_server(f"sqlite:///{database}", tmp, extra_args=extra)
    registry = RemoteRegistry(server.url, token=tokens.get("ada"))
    return UiServer(server, registry, seed(registry, tmp / "files"), tokens)


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[UiServer]:
    """``cmr serve --no-auth`` over a seeded SQLite registry (one per test module)."""
    started = _start(tmp_path_factory.mktemp("ui"), sqlite_template, auth=False)
    yield started
    started.registry.close()
    started.server.stop()


@pytest.fixture(scope="module")
def ui_auth(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[UiServer]:
    """``cmr serve`` as it starts by default (tokens required), with a token per role."""
    started = _start(tmp_path_factory.mktemp("ui-auth"), sqlite_template, auth=True)
    yield started
    started.registry.close()
    started.server.stop()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """A headless Chromium from ``/usr/bin/chromium``, through Playwright."""
    if not CHROMIUM.exists():
        message = (
            f"browser tests need Debian's chromium at {CHROMIUM}: apt-get install -y chromium "
            "(Playwright launches it; no browser is downloaded)"
        )
        if IN_CI:
            pytest.fail("CI=true but " + message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests save a screenshot of each page (``CMR_UI_SCREENSHOTS`` to choose)."""
    chosen = os.environ.get("CMR_UI_SCREENSHOTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("ui-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page, 1280 px wide."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield page
    context.close()
    # The pages' Content-Security-Policy must not block anything they need (htmx included).
    assert not [e for e in errors if "Content Security Policy" in e]


@pytest.fixture(scope="module")
def plain_server(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[RegistryServer]:
    """``cmr serve`` as it starts by default (tokens required) on a database with none yet."""
    workdir = tmp_path_factory.mktemp("ui-plain")
    database = workdir / "registry.db"
    shutil.copyfile(sqlite_template, database)
    server = start_registry_server(f"sqlite:///{database}", workdir)
    yield server
    server.stop()
