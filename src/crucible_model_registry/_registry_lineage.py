"""The lineage methods of ``Registry``: record edges, walk ancestors and descendants."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal, overload

from crucible_model_registry._context import current_principal
from crucible_model_registry._registry_base import RegistryBase, VersionLike
from crucible_model_registry.domain.access import Role
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
        parent_ref, child_ref = ref_of(parent, field="parent"), ref_of(child, field="child")
        self._authorize_ref(Role.READ, parent_ref, action="add_lineage")
        self._authorize_ref(Role.WRITE, child_ref, action="add_lineage")
        return self._backend.add_edge(
            parent_ref,
            child_ref,
            relationship=label,
            metadata=check_edge_metadata(metadata),
            by=self._by(),
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
        ref = ref_of(version, field="version")
        self._authorize_ref(Role.READ, ref, action="get_ancestors")
        hits = self._visible_hits(self._backend.ancestors(ref, depth))
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
        ref = ref_of(version, field="version")
        self._authorize_ref(Role.READ, ref, action="get_descendants")
        hits = self._visible_hits(self._backend.descendants(ref, depth))
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
        ref = ref_of(version, field="version")
        self._authorize_ref(Role.READ, ref, action="get_lineage")
        graph = self._backend.lineage(
            ref, direction=check_direction(direction), max_depth=check_max_depth(max_depth)
        )
        if current_principal() is None:
            return graph
        ancestors = tuple(self._visible_hits(list(graph.ancestors)))
        descendants = tuple(self._visible_hits(list(graph.descendants)))
        kept = {graph.focus.id, *(h.version.id for h in (*ancestors, *descendants))}
        edges = tuple(
            e for e in graph.edges if e.source_version_id in kept and e.target_version_id in kept
        )
        return dataclasses.replace(graph, ancestors=ancestors, descendants=descendants, edges=edges)

    def would_create_cycle(self, parent: VersionLike, child: VersionLike) -> bool:
        """Would :meth:`add_lineage` of ``parent -> child`` be refused as a cycle?

        Raises:
            NotFoundError: either version does not exist.
        """
        parent_ref, child_ref = ref_of(parent, field="parent"), ref_of(child, field="child")
        self._authorize_ref(Role.READ, parent_ref, action="would_create_cycle")
        self._authorize_ref(Role.READ, child_ref, action="would_create_cycle")
        return self._backend.would_create_cycle(parent_ref, child_ref)

    def _visible_hits(self, hits: list[LineageHit]) -> list[LineageHit]:
        """The hits on models the acting principal may read (all, with no principal)."""
        if current_principal() is None:
            return hits
        return [h for h in hits if self._visible(h.version.model_name)]
