"""LineageGraph and LineageHit, and the graph's DOT, Mermaid, dict and text-tree renderings."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Any, Literal

from crucible_model_registry.domain.config_hash import JSONValue, canonical_json, normalize_config
from crucible_model_registry.domain.enums import Relationship
from crucible_model_registry.domain.records import LineageEdge, ModelVersion, to_jsonable
from crucible_model_registry.domain.rules import MAX_DEPTH, check_whole_number, short_repr
from crucible_model_registry.errors import ValidationError

__all__ = [
    "BASE_MODEL_EDGE",
    "Direction",
    "LineageGraph",
    "LineageHit",
    "check_direction",
    "check_edge_metadata",
    "check_max_depth",
]

Direction = Literal["up", "down", "both"]
"""Which way to walk from a version: to its ancestors, its descendants, or both."""

BASE_MODEL_EDGE = "base_model"
"""The label of the drawn edge from an external base model to a root version."""

_DIRECTIONS: tuple[Direction, ...] = ("up", "down", "both")


def check_max_depth(value: object, *, field: str = "max_depth") -> int | None:
    """None (no limit) or a whole number of edges ≥ 1.

    Raises:
        ValidationError: for anything else.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError.single(
            field, f"{short_repr(value)} must be None or a whole number >= 1"
        )
    return check_whole_number(value, field=field, minimum=1, maximum=MAX_DEPTH)


def check_direction(value: object, *, field: str = "direction") -> Direction:
    """``"up"`` (ancestors), ``"down"`` (descendants) or ``"both"``.

    Raises:
        ValidationError: for anything else.
    """
    for direction in _DIRECTIONS:
        if value == direction:
            return direction
    raise ValidationError.single(field, f"{value!r} is not one of up, down, both")


def check_edge_metadata(value: object) -> dict[str, JSONValue]:
    """A lineage edge's metadata as plain JSON (None means empty).

    Raises:
        ValidationError: it is not a mapping or holds a value with no JSON form.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError.single("metadata", "must be a mapping (JSON object)")
    normalised = normalize_config(value, path="metadata")
    assert isinstance(normalised, dict)
    try:
        canonical_json(normalised)
    except ValidationError as exc:
        messages = [m for found in exc.errors.values() for m in found]
        raise ValidationError({"metadata": messages}) from exc
    return normalised


@dataclasses.dataclass(frozen=True, slots=True)
class LineageHit:
    """A version found by walking lineage edges from another one.

    Attributes:
        version: the version found.
        distance: edges on the shortest path from the starting version (1 = parent/child).
        relationship: the label of the last edge on a shortest path, the one that reached
            ``version`` (when several shortest paths end in different labels, the
            alphabetically first).
    """

    version: ModelVersion
    distance: int
    relationship: Relationship

    def to_dict(self) -> dict[str, Any]:
        """This hit as plain JSON values."""
        result: dict[str, Any] = to_jsonable(self)
        return result


@dataclasses.dataclass(frozen=True)
class LineageGraph:
    """A version with its ancestors and descendants (not its siblings), and their edges.

    Versions without parents in the graph are its roots; their ``base_model`` strings
    (external models such as ``meta-llama/Llama-3.1-8B``) are drawn as root nodes above them.

    Attributes:
        focus: the version the graph was drawn around.
        ancestors: versions it descends from, nearest first.
        descendants: versions made from it, nearest first.
        edges: every lineage edge between two versions of the graph.
    """

    focus: ModelVersion
    ancestors: tuple[LineageHit, ...] = ()
    descendants: tuple[LineageHit, ...] = ()
    edges: tuple[LineageEdge, ...] = ()

    # ------------------------------------------------------------------ structure

    @property
    def versions(self) -> list[ModelVersion]:
        """Every version of the graph: the focus, then ancestors, then descendants."""
        return [
            self.focus,
            *(h.version for h in self.ancestors),
            *(h.version for h in self.descendants),
        ]

    @cached_property
    def _by_id(self) -> dict[int, ModelVersion]:
        return {v.id: v for v in self.versions}

    @cached_property
    def _parents(self) -> dict[int, list[LineageEdge]]:
        found: dict[int, list[LineageEdge]] = defaultdict(list)
        for edge in sorted(self.edges, key=lambda e: e.source_version_id):
            found[edge.target_version_id].append(edge)
        return found

    @cached_property
    def _children(self) -> dict[int, list[LineageEdge]]:
        found: dict[int, list[LineageEdge]] = defaultdict(list)
        for edge in sorted(self.edges, key=lambda e: e.target_version_id):
            found[edge.source_version_id].append(edge)
        return found

    def version(self, version_id: int) -> ModelVersion:
        """The version of the graph with this id.

        Raises:
            KeyError: it is not in the graph.
        """
        return self._by_id[version_id]

    def parents(self, version_id: int) -> list[tuple[LineageEdge, ModelVersion]]:
        """The edges into a version from its parents in the graph, with those parents."""
        return [(e, self._by_id[e.source_version_id]) for e in self._parents.get(version_id, [])]

    def children(self, version_id: int) -> list[tuple[LineageEdge, ModelVersion]]:
        """The edges from a version to its children in the graph, with those children."""
        return [(e, self._by_id[e.target_version_id]) for e in self._children.get(version_id, [])]

    @property
    def roots(self) -> list[ModelVersion]:
        """Versions of the graph with no parent in it, by id."""
        return sorted((v for v in self.versions if not self._parents.get(v.id)), key=lambda v: v.id)

    @property
    def base_models(self) -> dict[str, list[int]]:
        """Each external base model (a root version's ``base_model``) → those roots' ids."""
        found: dict[str, list[int]] = {}
        for root in self.roots:
            found.setdefault(root.base_model, []).append(root.id)
        return dict(sorted(found.items()))

    def _roles(self) -> Iterator[tuple[ModelVersion, str, int]]:
        yield self.focus, "focus", 0
        for hit in self.ancestors:
            yield hit.version, "ancestor", hit.distance
        for hit in self.descendants:
            yield hit.version, "descendant", hit.distance

    def _base_ids(self) -> dict[str, str]:
        return {name: f"b{i}" for i, name in enumerate(self.base_models)}

    # ------------------------------------------------------------------ renderings

    def to_dict(self) -> dict[str, Any]:
        """The graph as plain JSON values: ``focus``, ``nodes`` and ``edges``.

        Version nodes have ids ``v<version id>``, base-model nodes ``b<n>``; the same ids
        are used by :meth:`to_dot` and :meth:`to_mermaid`. An edge from a base model to a
        root version has the relationship ``"base_model"``.
        """
        base_ids = self._base_ids()
        nodes: list[dict[str, Any]] = [
            {"id": node_id, "kind": "base_model", "name": name}
            for name, node_id in base_ids.items()
        ]
        for version, role, distance in self._roles():
            nodes.append(
                {
                    "id": f"v{version.id}",
                    "kind": "version",
                    "role": role,
                    "distance": distance,
                    "version_id": version.id,
                    "ref": version.ref,
                    "model_name": version.model_name,
                    "version": version.version,
                    "stage": version.stage.value,
                    "recipe": version.recipe,
                    "base_model": version.base_model,
                }
            )
        edges: list[dict[str, Any]] = [
            {"source": base_ids[name], "target": f"v{root}", "relationship": BASE_MODEL_EDGE}
            for name, roots in self.base_models.items()
            for root in roots
        ]
        for edge in sorted(self.edges, key=lambda e: e.id):
            edges.append(
                {
                    "id": edge.id,
                    "source": f"v{edge.source_version_id}",
                    "target": f"v{edge.target_version_id}",
                    "relationship": edge.relationship.value,
                    "metadata": to_jsonable(edge.metadata),
                    "created_at": edge.created_at.isoformat(),
                }
            )
        return {"focus": f"v{self.focus.id}", "nodes": nodes, "edges": edges}

    def to_dot(self) -> str:
        """The graph in Graphviz DOT (``dot -Tsvg``), parents above children."""
        lines = [
            "digraph lineage {",
            "  rankdir=TB;",
            '  node [shape=box, fontname="Helvetica"];',
            '  edge [fontname="Helvetica", fontsize=10];',
        ]
        base_ids = self._base_ids()
        for name, node_id in base_ids.items():
            lines.append(f"  {node_id} [label={_dot_quote(name)}, shape=ellipse, style=dashed];")
        for version, role, _ in self._roles():
            label = _dot_quote(f"{version.ref}\nid {version.id}, {version.stage.value}")
            extra = ", style=bold, penwidth=2" if role == "focus" else ""
            lines.append(f"  v{version.id} [label={label}{extra}];")
        for name, roots in self.base_models.items():
            for root in roots:
                lines.append(f"  {base_ids[name]} -> v{root} [style=dashed];")
        for edge in sorted(self.edges, key=lambda e: e.id):
            lines.append(
                f"  v{edge.source_version_id} -> v{edge.target_version_id} "
                f"[label={_dot_quote(edge.relationship.value)}];"
            )
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart (GitHub and most Markdown viewers draw it)."""
        lines = ["flowchart TD"]
        base_ids = self._base_ids()
        for name, node_id in base_ids.items():
            lines.append(f'  {node_id}(["{_mermaid_text(name)}"])')
        for version, _, _ in self._roles():
            text = _mermaid_text(f"{version.ref} (id {version.id}, {version.stage.value})")
            lines.append(f'  v{version.id}["{text}"]')
        for name, roots in self.base_models.items():
            for root in roots:
                lines.append(f"  {base_ids[name]} -.-> v{root}")
        for edge in sorted(self.edges, key=lambda e: e.id):
            lines.append(
                f"  v{edge.source_version_id} -->|{edge.relationship.value}| "
                f"v{edge.target_version_id}"
            )
        lines.append("  classDef focus stroke-width:3px;")
        lines.append(f"  class v{self.focus.id} focus;")
        return "\n".join(lines) + "\n"

    def to_tree(self, direction: Direction = "both") -> str:
        """The graph as indented text trees for a terminal, rooted at the focus version.

        ``up`` lists each version's parents under it (ending at the external base model),
        ``down`` its children; ``both`` prints the two trees one after the other. A version
        reached a second time (after a merge) is marked ``(see above)`` instead of being
        expanded again.
        """
        direction = check_direction(direction)
        parts = []
        if direction in ("up", "both"):
            parts.append(self._tree("up"))
        if direction in ("down", "both"):
            parts.append(self._tree("down"))
        return "\n".join(parts)

    def _tree(self, direction: Literal["up", "down"]) -> str:
        title = "ancestors (parents under each version)"
        if direction == "down":
            title = "descendants (children under each version)"
        lines = [title, _tree_label(self.focus)]
        seen = {self.focus.id}
        # Depth first with an explicit stack, not recursion: a chain can be thousands deep.
        # Each frame: the items still to draw under one version, and the indent to use.
        stack = [(list(reversed(self._tree_items(direction, self.focus.id))), "")]
        while stack:
            items, indent = stack[-1]
            if not items:
                stack.pop()
                continue
            relationship, text, node = items.pop()
            last = not items
            repeat = node is not None and node in seen
            suffix = " (see above)" if repeat else ""
            lines.append(f"{indent}{'└── ' if last else '├── '}[{relationship}] {text}{suffix}")
            if node is None or repeat:
                continue
            seen.add(node)
            below = self._tree_items(direction, node)
            if below:
                stack.append((list(reversed(below)), indent + ("    " if last else "│   ")))
        if len(lines) == 2:
            lines.append("└── (none)")
        return "\n".join(lines) + "\n"

    def _tree_items(
        self, direction: Literal["up", "down"], version_id: int
    ) -> list[tuple[str, str, int | None]]:
        if direction == "down":
            return [
                (e.relationship.value, _tree_label(v), v.id) for e, v in self.children(version_id)
            ]
        parents = self.parents(version_id)
        if not parents:
            return [(BASE_MODEL_EDGE, self._by_id[version_id].base_model, None)]
        return [(e.relationship.value, _tree_label(v), v.id) for e, v in parents]


def _tree_label(version: ModelVersion) -> str:
    return f"{version.ref} (id {version.id}, {version.stage.value})"


def _dot_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _mermaid_text(text: str) -> str:
    # Mermaid takes HTML entity codes as #name; inside quotes only these characters matter.
    return (
        text.replace("#", "#35;")
        .replace('"', "#quot;")
        .replace("<", "#lt;")
        .replace(">", "#gt;")
        .replace("\n", " ")
    )
