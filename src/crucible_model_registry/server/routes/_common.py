"""What the route modules share: the served registry, the JSON reply, strict bodies, refs."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from crucible_model_registry.domain.specs import ref_of
from crucible_model_registry.errors import ValidationError
from crucible_model_registry.wire import to_json

if TYPE_CHECKING:
    from crucible_model_registry.registry import Registry

__all__ = ["fields_of", "ref", "registry_of", "reply"]


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
