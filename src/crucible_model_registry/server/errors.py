"""HTTP statuses of the registry's errors, in one table, and the one JSON shape of an error.

Every error response is ``{"error": {"type": <class name>, "message": str, "details": {...}}}``
(``wire.error_to_json``), so a client raises the same class with the same attributes.
Failures that are not registry errors (an unknown route, a wrong method, a malformed body)
get the same shape with a class a client knows: ``NotFoundError`` or ``ValidationError``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from crucible_model_registry import errors
from crucible_model_registry.wire import error_to_json

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import JSONResponse

__all__ = ["STATUS", "error_response", "status_of"]

_log = logging.getLogger("crucible_model_registry.server")

STATUS: dict[type[errors.RegistryError], int] = {
    errors.ValidationError: 422,
    errors.AuthenticationError: 401,
    errors.PermissionDeniedError: 403,
    errors.PromotionDeniedError: 403,
    errors.NotFoundError: 404,
    errors.DuplicateVersionError: 409,
    errors.DuplicateConfigError: 409,
    errors.DuplicateModelError: 409,
    errors.LineageCycleError: 409,
    errors.ConstraintViolationError: 409,
    errors.StageFailedError: 422,
    errors.ChecksumMismatchError: 502,
    errors.StorageError: 502,
    errors.SchemaNotReadyError: 503,
    errors.DatabaseError: 503,
    errors.ConfigurationError: 500,
    errors.RegistryError: 500,
}
"""Error class -> HTTP status; a subclass not listed takes its nearest listed base's."""


def status_of(error: errors.RegistryError) -> int:
    """The HTTP status of ``error``: its class's, else its nearest listed base class's."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(error: errors.RegistryError, *, status: int | None = None) -> JSONResponse:
    """The JSON response for ``error`` (``status`` overrides the table, e.g. 400 for bad JSON)."""
    from starlette.responses import JSONResponse

    code = status if status is not None else status_of(error)
    if code == 500:
        # The message never holds secrets (errors.py's rule); the traceback stays in the log.
        _log.error("%s: %s", type(error).__name__, error, exc_info=error)
    elif code > 500:
        _log.warning("%s: %s", type(error).__name__, error)
    return JSONResponse(error_to_json(error), status_code=code)


async def registry_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette exception handler for every :class:`RegistryError`."""
    assert isinstance(exc, errors.RegistryError)
    return error_response(exc)
