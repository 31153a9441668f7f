"""What the route modules share: the served registry, the JSON reply, strict bodies, refs."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from crucible_model_registry.domain.specs import ref_of
from crucible_model_registry.errors import ValidationError
from crucible_model_registry.wire import to_json

if TYPE_CHECKING:
    from crucible_model_registry.registry import Registry

__all__ = [
    "RouteTable",
    "allowed_methods",
    "fields_of",
    "not_a_subresource",
    "ref",
    "registry_of",
    "reply",
]


def registry_of(request: Request) -> Registry:
    """The registry the app serves."""
    registry: Registry = request.app.state.registry
    return registry


def reply(value: object, *, status: int = 200) -> JSONResponse:
    """``value`` in its wire form (``wire.to_json``)."""
    return JSONResponse(to_json(value), status_code=status)


def fields_of(
    body: object, *, allowed: Collection[str], required: Collection[str] = ()
) -> dict[str, Any]:
    """The body as a mapping holding only ``allowed`` keys: nothing is silently ignored.

    Raises:
        ValidationError: not an object, an unknown key, or a missing required one.
    """
    if not isinstance(body, Mapping):
        raise ValidationError.single("body", "must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ValidationError.single(
            "body", f"unknown key(s) {unknown}; allowed: {sorted(allowed)}"
        )
    missing = sorted(set(required) - set(body))
    if missing:
        raise ValidationError({key: ["is required"] for key in missing})
    return dict(body)


def ref(text: str, *, field: str = "version") -> str:
    """A version reference from a path segment (an id, ``model@version``, ``model@stage``...).

    Raises:
        ValidationError: ``text`` is no reference (named as ``field``).
    """
    ref_of(text, field=field)
    return text


class RouteTable:
    """Every route's path pattern and methods, to answer which methods a path allows.

    A model name or a version ref may hold '/', so ``/versions/{version:path}`` also matches
    ``/versions/3/metrics``: where a route of its own matches a path, only such routes count,
    as their sub-resource is what the path names.
    """

    def __init__(self, routers: Iterable[Any]) -> None:
        from starlette.routing import compile_path

        self._entries = [
            (
                compile_path(route.path)[0],
                frozenset(route.methods),
                route.path.endswith(":path}"),
            )
            for router in routers
            for route in router.routes
            if getattr(route, "methods", None)
        ]

    def allowed(self, path: str) -> list[str]:
        """The methods answered at ``path``, sorted, HEAD with GET (an ``Allow`` value)."""
        specific: set[str] = set()
        catch_all: set[str] = set()
        for regex, methods, is_catch_all in self._entries:
            if regex.match(path):
                (catch_all if is_catch_all else specific).update(methods)
        found = specific or catch_all
        if "GET" in found:
            found.add("HEAD")
        return sorted(found)


def allowed_methods(app: Any, path: str) -> list[str]:
    """The methods ``app`` (made by ``create_app``) answers at ``path``, sorted."""
    table: RouteTable = app.state.route_table
    return table.allowed(path)


async def not_a_subresource(request: Request) -> None:
    """A dependency of the ``{...:path}`` routes: 405 where the path names a sub-resource.

    ``GET /versions/3/metrics`` is not version ``3/metrics`` (no ref ends so) but the
    metrics of version 3, which answer PATCH only: the answer is 405 with their ``Allow``.

    Raises:
        HTTPException: 405, with the sub-resource's methods in ``Allow``.
    """
    path: str = request.scope["path"]
    if path.count("/") <= 4:  # /api/v1/versions/<ref>: a ref without '/' names no sub-resource
        return
    methods = allowed_methods(request.app, path)
    if request.method not in methods:
        raise HTTPException(405, headers={"Allow": ", ".join(methods)})
