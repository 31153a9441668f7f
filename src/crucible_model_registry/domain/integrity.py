"""The result of an integrity check: which of the registry's invariants a database breaks."""

from __future__ import annotations

import dataclasses
from typing import Literal

__all__ = ["INVARIANTS", "IntegrityReport", "Invariant", "Violation"]

Invariant = Literal[
    "stage_history",
    "metrics",
    "tags",
    "orphan_edge",
    "orphan_alias",
    "orphan_claim",
    "orphan_artifact",
    "version_counter",
]
INVARIANTS: tuple[Invariant, ...] = (
    "stage_history",
    "metrics",
    "tags",
    "orphan_edge",
    "orphan_alias",
    "orphan_claim",
    "orphan_artifact",
    "version_counter",
)
"""What ``check()`` verifies, in the order it reports.

* ``stage_history``: a version's stage is the target of its last stage-history row.
* ``metrics`` / ``tags``: a version's metrics (tags) JSON equals its metric (tag) rows.
* ``orphan_edge``, ``orphan_alias``, ``orphan_claim``, ``orphan_artifact``: every lineage
  edge, alias, upload claim and artifact points at an existing version (an alias at one of
  its own model).
* ``version_counter``: a model's version counter is not behind any of its version strings
  that is a number, so auto-numbering never has to skip a taken number. A number given
  explicitly as ``version=`` above the counter trips it too: the stored rows cannot tell
  it from an assigned one.
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant: which, about what, and what was found."""

    invariant: Invariant
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.subject}: {self.detail}"


@dataclasses.dataclass(frozen=True, slots=True)
class IntegrityReport:
    """Every violation found, in ``INVARIANTS`` order; empty when the database is sound."""

    violations: tuple[Violation, ...] = ()

    @property
    def ok(self) -> bool:
        """Does the database keep every invariant?"""
        return not self.violations

    def of(self, invariant: Invariant) -> tuple[Violation, ...]:
        """The violations of one invariant."""
        return tuple(v for v in self.violations if v.invariant == invariant)
