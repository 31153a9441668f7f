"""The lineage methods of ``Registry``: record edges, walk ancestors and descendants."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, overload

from crucible_model_registry._registry_base import RegistryBase, VersionLike
from crucible_model_registry.domain.enums import Relationship, parse_enum
from crucible_model_registry.domain.lineage import (
    Direction,
    LineageGraph,
    LineageHit,
    check_direction,
    check_edge_metadata,
    check_max_depth,
)
from crucible_model_registry.domain.records import LineageEdge, ModelVersion
from crucible_model_registry.domain.specs import ref_of

__all__ = ["LineageMethods"]


class LineageMethods(RegistryBase):
    """Lineage between versions (API.md §5); part of ``Registry``."""

    def add_lineage(
        self,
        parent: VersionLike,
        child: VersionLike,
        relationship: Relationship | str = Relationship.FINE_TUNED_FROM,
        metadata: Mapping[str, Any] | None = None,
    ) -> LineageEdge:
        """Record that ``child`` was made from ``parent`` (versions of any models).

        The cycle check and the insert are one transaction, safe against concurrent
        calls that would close a cycle together.

        Args:
            relationship: how (``fine_tuned_from``, ``merge``, ``dpo``, ...).
            metadata: JSON-serialisable details of the edge.

        Raises:
            LineageCycleError: ``child`` is ``parent`` or one of its ancestors.
            NotFoundError: either version does not exist.
            ValidationError: unknown relationship, bad metadata, or the two versions are
                linked already (field ``edge``).
        """
        label = parse_enum(Relationship, relationship, field="relationship")
        return self._backend.add_edge(
            ref_of(parent, field="parent"),
            ref_of(child, field="child"),
            relationship=label,
            metadata=check_edge_metadata(metadata),
        )

    @overload
    def get_ancestors(
        self,
        version: VersionLike,
        max_depth: int | None = None,
        *,
        with_distance: Literal[False] = False,
    ) -> list[ModelVersion]: ...

    @overload
    def get_ancestors(
        self, version: VersionLike, max_depth: int | None = None, *, with_distance: Literal[True]
    ) -> list[LineageHit]: ...

    def get_ancestors(
        self, version: VersionLike, max_depth: int | None = None, *, with_distance: bool = False
    ) -> list[ModelVersion] | list[LineageHit]:
        """The versions ``version`` was made from, nearest first, each once.

        Args:
            max_depth: follow at most this many edges (None: all the way to the roots).
            with_distance: return :class:`LineageHit` values (version, distance, and the
                relationship that reached it) instead of bare versions.

        Raises:
            NotFoundError: the version does not exist.
            ValidationError: ``max_depth`` is not None or a whole number >= 1.
        """
        depth = check_max_depth(max_depth)
        hits = self._backend.ancestors(ref_of(version, field="version"), depth)
        return hits if with_distance else [h.version for h in hits]

    @overload
    def get_descendants(
        self,
        version: VersionLike,
        max_depth: int | None = None,
        *,
        with_distance: Literal[False] = False,
    ) -> list[ModelVersion]: ...

    @overload
    def get_descendants(
        self, version: VersionLike, max_depth: int | None = None, *, with_distance: Literal[True]
    ) -> list[LineageHit]: ...

    def get_descendants(
        self, version: VersionLike, max_depth: int | None = None, *, with_distance: bool = False
    ) -> list[ModelVersion] | list[LineageHit]:
        """The versions made from ``version``, directly or not, nearest first, each once.

        Args:
            max_depth: follow at most this many edges (None: all the way to the leaves).
            with_distance: return :class:`LineageHit` values instead of bare versions.

        Raises:
            NotFoundError: the version does not exist.
            ValidationError: ``max_depth`` is not None or a whole number >= 1.
        """
        depth = check_max_depth(max_depth)
        hits = self._backend.descendants(ref_of(version, field="version"), depth)
        return hits if with_distance else [h.version for h in hits]

    def get_lineage(
        self,
        version: VersionLike,
        *,
        direction: Direction = "both",
        max_depth: int | None = None,
    ) -> LineageGraph:
        """``version`` with its ancestors and descendants (not siblings) and their edges.

        Args:
            direction: ``up`` (ancestors only), ``down`` (descendants only) or ``both``.
            max_depth: follow at most this many edges each way.

        Raises:
            NotFoundError: the version does not exist.
            ValidationError: bad ``direction`` or ``max_depth``.
        """
        return self._backend.lineage(
            ref_of(version, field="version"),
            direction=check_direction(direction),
            max_depth=check_max_depth(max_depth),
        )

    def would_create_cycle(self, parent: VersionLike, child: VersionLike) -> bool:
        """Would :meth:`add_lineage` of ``parent -> child`` be refused as a cycle?

        Raises:
            NotFoundError: either version does not exist.
        """
        return self._backend.would_create_cycle(
            ref_of(parent, field="parent"), ref_of(child, field="child")
        )
