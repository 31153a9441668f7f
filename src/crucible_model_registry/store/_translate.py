"""Driver exceptions turned into the registry's errors, in one context manager."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError

from crucible_model_registry.errors import (
    ConstraintViolationError,
    DatabaseError,
    RegistryError,
    SchemaNotReadyError,
)

__all__ = ["ConstraintViolationError", "translate_errors"]


_MISSING_TABLE_MARKERS = ("no such table", "does not exist", "doesn't exist", "undefinedtable")


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Let registry errors through; turn driver errors into registry errors.

    Constraint violations that mean something (duplicates, dedup) are caught closer to
    where they happen, with the context to say which rule was broken; what reaches this
    point is a missing schema or an infrastructure failure.
    """
    try:
        yield
    except RegistryError:
        raise
    except IntegrityError as exc:
        raise ConstraintViolationError(
            f"database constraint refused the write: {_first_line(exc)}"
        ) from exc
    except (ProgrammingError, OperationalError) as exc:
        text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
        if "cmr_" in text and any(m in text for m in _MISSING_TABLE_MARKERS):
            raise SchemaNotReadyError("the registry tables are missing in this database") from exc
        raise DatabaseError(f"database error: {_first_line(exc)}") from exc
    except DBAPIError as exc:
        raise DatabaseError(f"database error: {_first_line(exc)}") from exc


def _first_line(exc: DBAPIError) -> str:
    # The driver's own message only: SQLAlchemy's str() appends the SQL and parameters.
    orig = exc.orig if exc.orig is not None else exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
