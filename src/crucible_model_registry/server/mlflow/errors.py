"""Our errors as MLflow's: ``{"error_code": ..., "message": ...}`` with MLflow's HTTP statuses.

The one table from our error classes to MLflow's error codes; MLflow's client raises
``RestException`` from these, and ``mlflow.register_model`` relies on
``RESOURCE_ALREADY_EXISTS`` (HTTP 400, not 409) for a model that exists.
"""

from __future__ import annotations

import logging
import re

from starlette.requests import Request
from starlette.responses import JSONResponse

from crucible_model_registry import errors

__all__ = [
    "CODES",
    "ENDPOINT_NOT_FOUND",
    "code_of",
    "is_mlflow_path",
    "mlflow_error",
    "mlflow_error_body",
    "mlflow_error_handler",
]

_log = logging.getLogger("crucible_model_registry.server")

CODES: dict[type[errors.RegistryError], tuple[str, int]] = {
    errors.ValidationError: ("INVALID_PARAMETER_VALUE", 400),
    errors.AuthenticationError: ("UNAUTHENTICATED", 401),
    errors.PermissionDeniedError: ("PERMISSION_DENIED", 403),
    errors.PromotionDeniedError: ("PERMISSION_DENIED", 403),
    errors.NotFoundError: ("RESOURCE_DOES_NOT_EXIST", 404),
    errors.DuplicateModelError: ("RESOURCE_ALREADY_EXISTS", 400),
    errors.DuplicateVersionError: ("RESOURCE_ALREADY_EXISTS", 400),
    errors.DuplicateConfigError: ("RESOURCE_ALREADY_EXISTS", 400),
    errors.LineageCycleError: ("INVALID_PARAMETER_VALUE", 400),
    errors.ConstraintViolationError: ("RESOURCE_CONFLICT", 409),
    errors.StageFailedError: ("INVALID_PARAMETER_VALUE", 400),
    errors.ChecksumMismatchError: ("DATA_LOSS", 500),
    errors.StorageError: ("INTERNAL_ERROR", 500),
    errors.SchemaNotReadyError: ("TEMPORARILY_UNAVAILABLE", 503),
    errors.DatabaseError: ("TEMPORARILY_UNAVAILABLE", 503),
    errors.ConfigurationError: ("INTERNAL_ERROR", 500),
    errors.RegistryError: ("INTERNAL_ERROR", 500),
}
"""Error class -> (MLflow error code, HTTP status); a subclass takes its nearest listed base's."""

ENDPOINT_NOT_FOUND = ("ENDPOINT_NOT_FOUND", 404)


def code_of(error: errors.RegistryError) -> tuple[str, int]:
    """MLflow's error code and HTTP status for ``error``."""
    for cls in type(error).__mro__:
        if cls in CODES:
            return CODES[cls]
    return CODES[errors.RegistryError]


# What MLflow's server adds to a client error (seen from mlflow server 3.17.2).
_ERROR_CLASS = {
    "RESOURCE_DOES_NOT_EXIST": "RESOURCE_NOT_FOUND",
    "ENDPOINT_NOT_FOUND": "RESOURCE_NOT_FOUND",
}
_CLIENT_SQLSTATE = "KAM00"


_PATH = re.compile(r"/(?:ajax-)?api/2\.0/mlflow(?:-artifacts)?/")


def is_mlflow_path(path: str) -> bool:
    """Is this request path one of MLflow's (whose errors must take MLflow's shape)?"""
    return _PATH.match(path) is not None


def _body(code: str, status: int, message: str) -> dict[str, str]:
    doc = {"error_code": code, "message": message}
    if status < 500:
        doc.update(sqlstate=_CLIENT_SQLSTATE, error_class=_ERROR_CLASS.get(code, code))
    return doc


def mlflow_error_body(error: errors.RegistryError) -> dict[str, str]:
    """``error`` as MLflow's JSON error body (for the server's middleware)."""
    code, status = code_of(error)
    return _body(code, status, str(error))


def mlflow_error(code: str, status: int, message: str) -> JSONResponse:
    """An error answer in MLflow's shape."""
    return JSONResponse(_body(code, status, message), status_code=status)


async def mlflow_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette exception handler for every :class:`RegistryError` on MLflow's routes."""
    assert isinstance(exc, errors.RegistryError)
    code, status = code_of(exc)
    if status >= 500:
        _log.error("%s: %s", type(exc).__name__, exc, exc_info=status == 500)
    return mlflow_error(code, status, str(exc))
