"""The seam's modules stay light: the wire form and the backends load no database library."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = {"sqlalchemy", "pydantic", "pydantic_settings", "alembic", "typer", "rich", "httpx"}


@pytest.mark.parametrize(
    "module",
    [
        "crucible_model_registry.wire",
        "crucible_model_registry.backends.base",
        "crucible_model_registry.backends.sql",
        "crucible_model_registry.registry_api",
        "crucible_model_registry._context",
    ],
)
def test_importing_it_loads_nothing_heavy(module: str) -> None:
    script = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout
    assert {m.split(".")[0] for m in json.loads(out)} & HEAVY == set()
