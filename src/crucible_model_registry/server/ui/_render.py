"""Rendering for the UI: the Jinja2 environment, the page response, and errors as pages."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from crucible_model_registry.errors import RegistryError
from crucible_model_registry.server.errors import status_of
from crucible_model_registry.server.ui.session import (
    CSRF_COOKIE,
    Viewer,
    set_session_cookie,
    viewer_of,
)

__all__ = ["TEMPLATES", "UiRoute", "page", "render", "require_viewer"]

TEMPLATES = Path(__file__).parent / "templates"


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _number(value: object) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.6g}"
    return "" if value is None else str(value)


def _size(value: int | None) -> str:
    if value is None:
        return "?"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"


def _pretty(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every value is text unless a template marks it safe (only our SVG)
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(when=_when, number=_number, size=_size, pretty=_pretty)


def render(template: str, **context: Any) -> str:
    """A template as HTML: every value is escaped unless the template marks it safe."""
    return _env.get_template(template).render(**context)


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """The template rendered for the request's viewer."""
    viewer = context.pop("viewer", None) or viewer_of(request)
    html = render(template, request=request, viewer=viewer, **context)
    return HTMLResponse(html, status_code=status)


class LoginRequiredError(Exception):
    """Raised by :func:`require_viewer`; the route answers with a redirect to the login."""


def require_viewer(request: Request) -> Viewer:
    """The viewer, or a redirect to the login page (via :class:`LoginRequiredError`)."""
    viewer = viewer_of(request)
    if viewer is None:
        raise LoginRequiredError
    return viewer


SECURITY_HEADERS = {
    # Our own files only, no inline script, and no framing: the promote button cannot be
    # overlaid by another site's page (clickjacking).
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


class UiRoute(APIRoute):
    """A route whose registry errors become an HTML page with the error's HTTP status.

    It also sets the CSRF cookie a page's forms were drawn with, when the viewer had none.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginRequiredError:
                target = request.url.path
                response = RedirectResponse(f"/login?next={target}", status_code=303)
            except RegistryError as exc:
                response = page(
                    request,
                    "error.html",
                    status=status_of(exc),
                    error=exc,
                    kind=type(exc).__name__,
                    unmet=getattr(exc, "unmet", None),
                )
            response.headers.update(SECURITY_HEADERS)
            key = getattr(request.state, "new_csrf_key", None)
            if key is not None:
                set_session_cookie(request, response, CSRF_COOKIE, key)
            return response

        return handle
