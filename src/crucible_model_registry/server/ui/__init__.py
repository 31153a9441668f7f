"""The web UI at ``/``: server-rendered pages over the served Registry (API.md §14).

Jinja2 templates, one stylesheet and a vendored htmx (``static/``): nothing is fetched at
run time, and every page reads and works with JavaScript disabled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["STATIC", "install_ui"]

STATIC = Path(__file__).parent / "static"


def install_ui(app: Any) -> None:
    """Add the UI's pages, forms and ``/static`` files to a FastAPI app (after its API)."""
    from starlette.staticfiles import StaticFiles

    from crucible_model_registry.server._edge import OPEN_PATHS
    from crucible_model_registry.server.ui import actions, pages

    # Reached without a token: the login form, its stylesheet and script, and logging out.
    OPEN_PATHS.update({"/login", "/logout", *(f"/static/{f.name}" for f in STATIC.iterdir())})
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(actions.router)
    app.include_router(pages.router)
