"""Fixtures for the UI tests: a seeded ``cmr serve`` on loopback and a headless Chromium.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``) driven by Playwright's Python
package; no browser is ever downloaded. Without it the browser tests skip with a message,
except under ``CI=true`` (``.ci/run`` installs it), where that fails.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.servers.registry_server import RegistryServer, start_registry_server
from tests.ui.seed import Seeded, seed

from crucible_model_registry.registry import RemoteRegistry

CHROMIUM = Path(os.environ.get("CMR_TEST_CHROMIUM", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parents[2]
TOKENS = {"tok-read-0123456789": ["rita", "read"], "tok-promote-0123456789": ["pat", "promote"]}
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")


@dataclass
class UiServer:
    """A running server with the seeded registry, and a client of it."""

    server: RegistryServer
    registry: RemoteRegistry
    seeded: Seeded

    @property
    def url(self) -> str:
        return self.server.url


def _start(tmp: Path, template: Path, **options: Any) -> UiServer:
    database = tmp / "registry.db"
    shutil.copyfile(template, database)
    server = start_registry_server(f"sqlite:///{database}", tmp, **options)
    registry = RemoteRegistry(server.url)
    return UiServer(server, registry, seed(registry, tmp / "files"))


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[UiServer]:
    """``cmr serve --no-auth`` over a seeded SQLite registry (one per test module)."""
    started = _start(tmp_path_factory.mktemp("ui"), sqlite_template, extra_args=("--no-auth",))
    yield started
    started.registry.close()
    started.server.stop()


@pytest.fixture(scope="module")
def ui_auth(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[UiServer]:
    """The app with authentication on, its token check a stand-in (tests/servers/ui_server.py)."""
    started = _start(
        tmp_path_factory.mktemp("ui-auth"),
        sqlite_template,
        command=(sys.executable, "-m", "tests.servers.ui_server"),
        extra_env={"CMR_UI_TEST_TOKENS": json.dumps(TOKENS), "PYTHONPATH": str(REPO)},
    )
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
    """``cmr serve`` as it starts by default: authentication on, no token check configured."""
    workdir = tmp_path_factory.mktemp("ui-plain")
    database = workdir / "registry.db"
    shutil.copyfile(sqlite_template, database)
    server = start_registry_server(f"sqlite:///{database}", workdir)
    yield server
    server.stop()
