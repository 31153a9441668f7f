"""The UI's forms (POST): login, logout, promote, aliases and tags, each CSRF-checked.

Each action calls the same Registry method as its REST route, so the policy, the
permissions and the audit log judge a click exactly as they judge an API call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from urllib.parse import parse_qs, quote

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from crucible_model_registry.domain.enums import Stage
from crucible_model_registry.errors import (
    AuthenticationError,
    PromotionDeniedError,
    ValidationError,
)
from crucible_model_registry.server.routes._common import registry_of
from crucible_model_registry.server.ui._render import UiRoute, page, require_viewer
from crucible_model_registry.server.ui.session import (
    SESSION_COOKIE,
    RefusedFormError,
    Viewer,
    check_csrf,
    principal_of_token,
    set_session_cookie,
    viewer_of,
)

__all__ = ["router"]

router = APIRouter(route_class=UiRoute, include_in_schema=False)
MAX_FORM_BYTES = 64 * 1024
T = TypeVar("T")


class Form:
    """A url-encoded form's fields (the UI's forms post nothing else)."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self._fields = fields

    def get(self, name: str, default: str = "") -> str:
        values = self._fields.get(name)
        return values[0] if values else default

    def getlist(self, name: str) -> list[str]:
        return list(self._fields.get(name, []))


async def _form(request: Request) -> Form:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ValidationError.single("form", f"is larger than {MAX_FORM_BYTES} bytes")
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise ValidationError.single("form", "is not UTF-8") from None
    return Form(parse_qs(text, keep_blank_values=True))


async def _checked(request: Request) -> tuple[Viewer, Form]:
    """The viewer and the form, after the CSRF check every POST makes first."""
    viewer = require_viewer(request)
    form = await _form(request)
    check_csrf(request, viewer, form.get("csrf"))
    return viewer, form


async def _as_viewer(viewer: Viewer, call: Callable[[], T]) -> T:
    """Run a registry call in the thread pool, as the request's principal (set by the Edge)."""
    return await run_in_threadpool(call)


def _back_to(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _version_path(version_id: int) -> str:
    return f"/versions/{version_id}"


@router.get("/login")
def login_page(request: Request) -> Response:
    """The token form (without authentication there is nothing to log in to)."""
    if not request.app.state.auth:
        return _back_to("/")
    return page(
        request,
        "login.html",
        viewer=viewer_of(request),
        next=_safe_next(request.query_params.get("next")),
        failure=None,
    )


def _safe_next(target: str | None) -> str:
    # Only a path on this server: never "//host", "/\\host" (browsers read it as "//host")
    # or "https://...", an open redirect.
    if not target or not target.startswith("/") or target[1:2] in ("/", "\\"):
        return "/"
    if any(c in target for c in "\\\r\n"):
        return "/"
    return target


def _same_origin(request: Request) -> bool:
    """Does the request come from a page of this server (when the browser says where from)?

    Login has no session to derive a CSRF value from, so another site could post its own
    token and log a visitor in as someone else; browsers send ``Origin`` with every POST.
    """
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return origin == f"{request.url.scheme}://{request.url.netloc}"


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the token; on success set ``cmr_session`` to it and go where the user was going."""
    if not request.app.state.auth:
        return _back_to("/")
    if not _same_origin(request):
        raise RefusedFormError("log in from this server's own login page")
    form = await _form(request)
    token = form.get("token").strip() or "-"  # an empty one fails like any unknown token
    target = _safe_next(form.get("next"))
    try:
        await run_in_threadpool(principal_of_token, request, token)
    except AuthenticationError as exc:
        return page(request, "login.html", status=401, viewer=None, next=target, failure=exc)
    response = _back_to(target)
    set_session_cookie(request, response, SESSION_COOKIE, token)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Forget the session cookie (an open path: an expired session may log out too)."""
    response = _back_to("/login" if request.app.state.auth else "/")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/versions/{ref:path}/promote")
async def promote(request: Request, ref: str) -> Response:
    """Promote; a denial redraws the promote page listing every unmet condition (403)."""
    viewer, form = await _checked(request)
    registry = registry_of(request)
    stage = form.get("stage")
    reason = form.get("reason").strip() or None
    archive = form.get("archive_existing") == "on"
    version = await _as_viewer(viewer, lambda: registry.get_version(ref))
    try:
        moved = await _as_viewer(
            viewer,
            lambda: registry.promote(version, stage, reason=reason, archive_existing=archive),
        )
    except PromotionDeniedError as denied:
        check = await _as_viewer(
            viewer, lambda: registry.check_promotion(version, stage, archive_existing=archive)
        )
        return page(
            request,
            "promote.html",
            status=403,
            viewer=viewer,
            version=version,
            check=check,
            stages=[s.value for s in Stage],
            archive=archive,
            denied=denied,
            reason=reason or "",
        )
    return _back_to(_version_path(moved.id) + "#timeline")


@router.post("/versions/{ref:path}/tags")
async def change_tags(request: Request, ref: str) -> Response:
    """Add the tags in ``add`` (comma-separated) or remove the one in ``remove``."""
    viewer, form = await _checked(request)
    registry = registry_of(request)
    add = [t.strip() for t in form.get("add").split(",") if t.strip()]
    remove = [t for t in form.getlist("remove") if t]
    if not add and not remove:
        raise ValidationError.single("tags", "give a tag to add or one to remove")
    version = await _as_viewer(viewer, lambda: registry.get_version(ref))
    if add:
        await _as_viewer(viewer, lambda: registry.add_tags(version, add))
    if remove:
        await _as_viewer(viewer, lambda: registry.remove_tags(version, remove))
    return _back_to(_version_path(version.id))


@router.post("/versions/{ref:path}/alias")
async def set_alias(request: Request, ref: str) -> Response:
    """Point an alias at this version (moving it if another version holds it)."""
    viewer, form = await _checked(request)
    registry = registry_of(request)
    alias = form.get("alias").strip()
    reason = form.get("reason").strip() or None
    version = await _as_viewer(viewer, lambda: registry.set_alias(ref, alias, reason=reason))
    return _back_to(_version_path(version.id))


@router.post("/models/{name:path}/aliases/delete")
async def delete_alias(request: Request, name: str) -> Response:
    """Delete an alias of the model."""
    viewer, form = await _checked(request)
    registry = registry_of(request)
    alias = form.get("alias")
    reason = form.get("reason").strip() or None
    await _as_viewer(viewer, lambda: registry.delete_alias(name, alias, reason=reason))
    back = form.get("back")
    return _back_to(_safe_next(back) if back else f"/models/{quote(name)}")
