"""Server-side rendering: text from the registry is escaped everywhere; the lineage picture."""

from __future__ import annotations

import dataclasses
import itertools
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from tests.ui.seed import HOSTILE

from crucible_model_registry import Stage
from crucible_model_registry.domain.access import Role
from crucible_model_registry.domain.enums import Relationship
from crucible_model_registry.domain.lineage import LineageGraph, LineageHit
from crucible_model_registry.domain.records import LineageEdge, ModelVersion
from crucible_model_registry.server.ui._render import render
from crucible_model_registry.server.ui.lineage_svg import NODE_H, NODE_W, draw_lineage
from crucible_model_registry.server.ui.session import Viewer, csrf_value

NOW = datetime(2026, 12, 4, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def version(id_: int, name: str = "m", **changes: object) -> ModelVersion:
    record = ModelVersion(
        id=id_,
        model_id=1,
        model_name=name,
        version=str(id_),
        stage=Stage.EXPERIMENT,
        recipe="sl_basic",
        base_model="org/base",
        config_hash="0" * 64,
        training_config={"lr": 0.1},
        metrics={"accuracy": 0.5},
        tags=[],
        description=None,
        artifacts=[],
        created_at=NOW,
        updated_at=NOW,
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(html: str) -> Elements:
    found = Elements()
    found.feed(html)
    return found


VIEWER = Viewer("admin", Role.ADMIN, csrf_value("k"), authenticated=False)


def test_a_hostile_version_renders_as_text() -> None:
    hostile = version(
        7,
        name=HOSTILE,
        recipe=HOSTILE,
        base_model=HOSTILE,
        description=HOSTILE,
        tags=[HOSTILE],
        metrics={HOSTILE: 1.0},
        training_config={HOSTILE: HOSTILE},
        metadata={HOSTILE: HOSTILE},
    )
    graph = LineageGraph(focus=hostile)
    html = render(
        "version.html",
        request=None,
        viewer=VIEWER,
        version=hostile,
        aliases=[],
        timeline=[
            {"at": NOW, "what": "stage", "actor": HOSTILE, "reason": HOSTILE, "kind": "stage"}
        ],
        parents=[],
        children=[],
        picture=draw_lineage(graph),
        depth=3,
        stages=[s.value for s in Stage],
    )
    elements = parsed(html)
    assert elements.tags.count("script") == 1  # the vendored htmx, nothing else
    assert "<script>alert" not in html
    assert sum(HOSTILE in t for t in elements.text) >= 9  # shown as text, each place


def test_a_hostile_model_name_in_the_models_table_is_text() -> None:
    hostile = version(3, name=HOSTILE)
    html = render(
        "_versions_table.html",
        versions=[hostile],
        metric_names=[HOSTILE],
        aliases={3: [HOSTILE]},
        show_model=True,
    )
    assert "<script" not in html
    assert parsed(html).text.count(HOSTILE) >= 3


def test_a_hostile_error_message_is_text() -> None:
    from crucible_model_registry.errors import PromotionDeniedError

    error = PromotionDeniedError(f"{HOSTILE}@1", "production", [HOSTILE])
    html = render(
        "error.html",
        request=None,
        viewer=None,
        error=error,
        kind="PromotionDeniedError",
        unmet=error.unmet,
    )
    assert parsed(html).tags.count("script") == 1
    assert HOSTILE in parsed(html).text


def test_the_lineage_svg_escapes_names_and_is_well_formed() -> None:
    child = version(2, name=HOSTILE)
    parent = version(1, base_model=HOSTILE)
    edge = LineageEdge(1, 1, 2, Relationship.FINE_TUNED_FROM, {}, NOW)
    graph = LineageGraph(
        focus=child,
        ancestors=(LineageHit(parent, 1, Relationship.FINE_TUNED_FROM),),
        edges=(edge,),
    )
    root = ET.fromstring(draw_lineage(graph).svg)
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert any(HOSTILE in (t or "") for t in titles)
    assert not list(root.iter(f"{SVG}script"))


def two_hundred_nodes() -> LineageGraph:
    """A root with 3 fine-tunes, each with a chain and a fan of 15, with merges across."""
    versions = [version(i) for i in range(1, 201)]
    edges = []
    number = itertools.count(1)
    for child in range(2, 201):
        parent = 1 if child <= 4 else (child - 2) // 3 + 1 if child <= 50 else (child % 49) + 2
        edges.append(
            LineageEdge(next(number), parent, child, Relationship.FINE_TUNED_FROM, {}, NOW)
        )
    for child in range(120, 200, 10):  # merges: a second parent far away
        edges.append(
            LineageEdge(next(number), child - 60, child, Relationship.MERGED_FROM, {}, NOW)
        )
    hits = tuple(LineageHit(v, 1, Relationship.FINE_TUNED_FROM) for v in versions[1:])
    return LineageGraph(focus=versions[0], descendants=hits, edges=tuple(edges))


@pytest.mark.parametrize("graph", [two_hundred_nodes()], ids=["200 nodes"])
def test_two_hundred_nodes_lay_out_without_overlaps(graph: LineageGraph) -> None:
    picture = draw_lineage(graph)
    root = ET.fromstring(picture.svg)
    groups = list(root.iter(f"{SVG}g"))
    nodes = [g for g in groups if "node" in g.get("class", "").split()]
    edges = [g for g in groups if "lineage" in g.get("class", "").split()]
    assert len(nodes) == 200 + len(graph.base_models)
    assert len(edges) == len(graph.edges)
    boxes = [(int(r.get("x", 0)), int(r.get("y", 0))) for n in nodes for r in n.iter(f"{SVG}rect")]
    assert len(set(boxes)) == len(boxes)
    for (x1, y1), (x2, y2) in itertools.combinations(boxes, 2):
        assert abs(x1 - x2) >= NODE_W or abs(y1 - y2) >= NODE_H
    assert all(x + NODE_W <= picture.width and y + NODE_H <= picture.height for x, y in boxes)
    focus = [n for n in nodes if "focus" in n.get("class", "")]
    assert [n.get("data-key") for n in focus] == ["v1"]
