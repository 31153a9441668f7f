"""The lineage picture: a LineageGraph laid out in layers, drawn as SVG.

A Sugiyama-style layout, small enough to read: each node's layer is its longest path from
a root (base models are the roots), the nodes of a layer are ordered by the mean position
of their neighbours over a few down-and-up sweeps (the barycentre heuristic, which
removes most crossings in lineage graphs: mostly trees with some merges), and each layer
is centred. Layers run top to bottom while the widest holds a few nodes, else left to
right, so that a broad graph (200 fine-tunes of one version) scrolls down a page of
readable boxes instead of along a strip kilometres wide. Written here rather than taken
from a library: grandalf, the pure-Python option, has had no release since 2023, and
Graphviz needs a binary. At 200 nodes the layout takes a few milliseconds.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from html import escape

from crucible_model_registry.domain.lineage import LineageGraph

__all__ = ["LineagePicture", "draw_lineage"]

NODE_W = 210
NODE_H = 42
GAP_X = 120  # left to right: room for an edge label between layers
GAP_Y = 18
LAYER_GAP_Y = 64  # top to bottom: room for an edge label between layers
NODE_GAP_X = 24
WIDE_LAYER = 5  # a layer wider than this turns the picture left to right
DUMMY = 24  # the room a long edge's bend takes in a layer it crosses
MARGIN = 16
SWEEPS = 4
MAX_LABEL = 30


@dataclasses.dataclass(frozen=True, slots=True)
class _Node:
    key: str
    title: str
    subtitle: str
    href: str | None
    kind: str  # "version", "base" or "focus"


@dataclasses.dataclass(frozen=True, slots=True)
class LineagePicture:
    """An SVG document and what it shows (the counts tests compare with the registry)."""

    svg: str
    versions: int
    base_models: int
    lineage_edges: int
    width: int
    height: int


def draw_lineage(graph: LineageGraph, *, href: str = "/versions/{id}") -> LineagePicture:
    """The graph as an SVG: versions link to ``href`` (``{id}`` is filled in), focus marked.

    Edges between versions carry their relationship; each root version gets an edge from
    its base model, drawn as an external root.
    """
    nodes: dict[str, _Node] = {}
    edges: list[tuple[str, str, str, str]] = []  # source, target, label, css class
    base_keys = {name: f"b{i}" for i, name in enumerate(graph.base_models)}
    for name, key in base_keys.items():
        nodes[key] = _Node(key, name, "base model", None, "base")
    for version in graph.versions:
        key = f"v{version.id}"
        kind = "focus" if version.id == graph.focus.id else "version"
        link = href.format(id=version.id)
        nodes[key] = _Node(key, version.ref, version.stage.value, link, kind)
    for name, root_ids in graph.base_models.items():
        for root_id in root_ids:
            edges.append((base_keys[name], f"v{root_id}", "base model", "edge base"))
    for edge in sorted(graph.edges, key=lambda e: e.id):
        edges.append(
            (
                f"v{edge.source_version_id}",
                f"v{edge.target_version_id}",
                edge.relationship.value,
                "edge lineage",
            )
        )
    layout = _layout(list(nodes), [(s, t) for s, t, _, _ in edges])
    width, height = layout.size
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="lineage of {escape(graph.focus.ref)}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
        'class="arrowhead"/></marker></defs>',
    ]
    for (_, _, label, css), route in zip(edges, layout.routes, strict=True):
        parts.append(_edge_svg(route, label, css, across=layout.across))
    for key, node in nodes.items():
        parts.append(_node_svg(node, layout.positions[key]))
    parts.append("</svg>")
    return LineagePicture(
        svg="".join(parts),
        versions=len(graph.versions),
        base_models=len(base_keys),
        lineage_edges=len(graph.edges),
        width=width,
        height=height,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _Layout:
    positions: dict[str, tuple[int, int]]  # each node's top-left corner
    routes: list[list[tuple[int, int]]]  # each edge's points: parent, bends, child
    across: bool  # layers run left to right
    size: tuple[int, int]


def _layout(keys: list[str], edges: list[tuple[str, str]]) -> _Layout:
    parents: dict[str, list[str]] = defaultdict(list)
    children: dict[str, list[str]] = defaultdict(list)
    for source, target in edges:
        parents[target].append(source)
        children[source].append(target)
    # Longest path from a root, in topological order (Kahn); lineage is acyclic.
    indegree = {k: len(parents[k]) for k in keys}
    ready = [k for k in keys if indegree[k] == 0]
    layer = dict.fromkeys(keys, 0)
    while ready:
        key = ready.pop()
        for child in children[key]:
            layer[child] = max(layer[child], layer[key] + 1)
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    layers: dict[int, list[str]] = defaultdict(list)
    for key in keys:  # the given order first: base models, focus, ancestors, descendants
        layers[layer[key]].append(key)
    # An edge spanning several layers bends through a point in each layer between (a
    # "dummy" node), so the ordering keeps it clear of the boxes it passes.
    up: dict[str, list[str]] = defaultdict(list)
    down: dict[str, list[str]] = defaultdict(list)
    chains: list[list[str]] = []
    for number, (source, target) in enumerate(edges):
        chain = [source]
        for depth in range(layer[source] + 1, layer[target]):
            dummy = f"~{number}.{depth}"
            layers[depth].append(dummy)
            chain.append(dummy)
        chain.append(target)
        for a, b in itertools.pairwise(chain):
            down[a].append(b)
            up[b].append(a)
        chains.append(chain)
    depth_count = max(layers, default=-1) + 1
    rank = {k: i for members in layers.values() for i, k in enumerate(members)}

    def sweep(span: range, neighbours: dict[str, list[str]]) -> None:
        for index in span:
            members = layers[index]

            def centre(key: str) -> float:
                near = neighbours[key]
                return sum(rank[n] for n in near) / len(near) if near else rank[key]

            members.sort(key=centre)
            for i, key in enumerate(members):
                rank[key] = i

    for _ in range(SWEEPS):
        sweep(range(1, depth_count), up)
        sweep(range(depth_count - 2, -1, -1), down)

    def extent(key: str) -> int:  # a box's room along its layer; a bend's is small
        if key.startswith("~"):
            return DUMMY
        return NODE_H + GAP_Y if across else NODE_W + NODE_GAP_X

    widest = max((sum(1 for k in m if not k.startswith("~")) for m in layers.values()), default=0)
    across = widest > WIDE_LAYER
    longest = max((sum(map(extent, m)) for m in layers.values()), default=0)
    positions: dict[str, tuple[int, int]] = {}
    for index, members in layers.items():
        # Top to bottom, layers are centred; left to right they start at the top, so a
        # broad graph's first screen shows its roots rather than a column's empty half.
        along = MARGIN + (0 if across else (longest - sum(map(extent, members))) // 2)
        step = index * (NODE_W + GAP_X) if across else index * (NODE_H + LAYER_GAP_Y)
        for key in members:
            positions[key] = (MARGIN + step, along) if across else (along, MARGIN + step)
            along += extent(key)
    routes = [[positions[k] for k in chain] for chain in chains]
    real = [positions[k] for k in keys]
    width = max((x for x, _ in real), default=0) + NODE_W + 2 * MARGIN
    height = max((y for _, y in real), default=0) + NODE_H + 2 * MARGIN
    return _Layout({k: positions[k] for k in keys}, routes, across, (width, height))


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _node_svg(node: _Node, at: tuple[int, int]) -> str:
    x, y = at
    body = (
        f'<g class="node {node.kind}" data-key="{node.key}">'
        f"<title>{escape(node.title)} ({escape(node.subtitle)})</title>"
        f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
        f'<text x="{x + 10}" y="{y + 17}" class="title">{escape(_short(node.title))}</text>'
        f'<text x="{x + 10}" y="{y + 33}" class="sub">{escape(node.subtitle)}</text></g>'
    )
    if node.href is None:
        return body
    return f'<a href="{escape(node.href)}">{body}</a>'


def _edge_svg(route: list[tuple[int, int]], label: str, css: str, *, across: bool) -> str:
    # Points where the edge leaves the parent, passes each bend, and enters the child.
    if across:  # from the right side of the parent to the left side of the child
        points = [(route[0][0] + NODE_W, route[0][1] + NODE_H // 2)]
        points += [(x, y + DUMMY // 2) for x, y in route[1:-1]]
        points += [(x + NODE_W, y + DUMMY // 2) for x, y in route[1:-1]]
        points.sort()
        points.append((route[-1][0], route[-1][1] + NODE_H // 2))
    else:  # from the bottom of the parent to the top of the child
        points = [(route[0][0] + NODE_W // 2, route[0][1] + NODE_H)]
        points += [(x + DUMMY // 2, y) for x, y in route[1:-1]]
        points += [(x + DUMMY // 2, y + NODE_H) for x, y in route[1:-1]]
        points.sort(key=lambda p: p[1])
        points.append((route[-1][0] + NODE_W // 2, route[-1][1]))
    path = [f"M{points[0][0]},{points[0][1]}"]
    for (x1, y1), (x2, y2) in itertools.pairwise(points):
        if across:
            bend = (x2 - x1) // 2
            path.append(f"C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}")
        else:
            bend = (y2 - y1) // 2
            path.append(f"C{x1},{y1 + bend} {x2},{y2 - bend} {x2},{y2}")
    # Label the middle gap of the route (merges' labels then stand apart, as do a fan-out's),
    # where each cubic's symmetric control points put its midpoint halfway between its ends.
    middle = (len(points) - 1) // 2
    (x1, y1), (x2, y2) = points[middle], points[middle + 1]
    return (
        f'<g class="{css}"><path d="{" ".join(path)}" marker-end="url(#arrow)"/>'
        f'<text x="{(x1 + x2) // 2}" y="{(y1 + y2) // 2 + 4}" text-anchor="middle">'
        f"{escape(label)}</text></g>"
    )
