"""Registry metadata in SQL (SQLAlchemy 2.x): models, versions, lineage, history.

Submodules load on first attribute access (``store.versions``), so that importing the
package does not import SQLAlchemy until the first registry call needs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crucible_model_registry.store import (
        artifacts,
        audit,
        engine,
        exchange,
        exchange_import,
        governance,
        integrity,
        lineage,
        models,
        promotion,
        queries,
        references,
        registration,
        schema,
        tokens,
        versions,
    )

__all__ = [
    "artifacts",
    "audit",
    "engine",
    "exchange",
    "exchange_import",
    "governance",
    "integrity",
    "lineage",
    "models",
    "promotion",
    "queries",
    "references",
    "registration",
    "schema",
    "tokens",
    "versions",
]

_LAZY = frozenset(__all__)


def __getattr__(name: str) -> ModuleType:
    if name in _LAZY or name in _EXTRA:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Submodules added by later features register here so that __all__ stays the typed list.
_EXTRA: frozenset[str] = frozenset({"artifacts"})
