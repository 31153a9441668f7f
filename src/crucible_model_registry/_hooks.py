"""What the package root lends to the layers below it, so that they never import upward.

``Query`` sits beside ``Registry`` and below the default registry (``_default``); a Query
built without a registry finds the default one through ``default_registry``, which the
package's ``__init__`` fills in when it is imported, before any submodule can run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["default_registry"]

default_registry: list[Callable[[], Any]] = []
"""At most one function: returns the default registry (created on first use)."""
