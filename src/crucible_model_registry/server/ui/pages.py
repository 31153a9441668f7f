"""The UI's pages (GET): models, model, version, lineage, compare, query, audit, promote.

Each page reads through the served Registry's public methods, the same ones the REST API
calls; nothing here decides what is allowed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse

from crucible_model_registry.domain.enums import Stage
from crucible_model_registry.domain.query_filters import parse_metric_condition
from crucible_model_registry.domain.query_spec import QuerySpec, spec_of
from crucible_model_registry.errors import ValidationError
from crucible_model_registry.query import Query
from crucible_model_registry.server.routes._common import registry_of
from crucible_model_registry.server.ui._render import UiRoute, page, require_viewer
from crucible_model_registry.server.ui.lineage_svg import draw_lineage

if TYPE_CHECKING:
    from crucible_model_registry.domain.records import AliasChange, ModelVersion
    from crucible_model_registry.registry import Registry

__all__ = ["router"]

router = APIRouter(route_class=UiRoute, include_in_schema=False)

PAGE_SIZE = 25
MODELS_PAGE_SIZE = 20
HOLDER_STAGES = (Stage.PRODUCTION, Stage.STAGING)
VERSION_PAGE_DEPTH = 3


def current_aliases(history: Sequence[AliasChange]) -> dict[int, list[str]]:
    """Version id -> the aliases pointing at it now, replayed from the alias history."""
    now: dict[str, int | None] = {}
    for change in history:
        now[change.alias] = change.version_id
    held: dict[int, list[str]] = {}
    for alias, version_id in sorted(now.items()):
        if version_id is not None:
            held.setdefault(version_id, []).append(alias)
    return held


@router.get("/")
def models_page(request: Request) -> HTMLResponse:
    """Every model: search, tags, latest version, who holds production and staging; paged."""
    viewer = require_viewer(request)
    registry = registry_of(request)
    search = request.query_params.get("q", "").strip()
    number = _int_param(request, "page", 1)
    found = registry.list_models()
    if search:
        needle = search.lower()
        found = [
            m
            for m in found
            if needle in m.name.lower()
            or needle in (m.description or "").lower()
            or any(needle in t.lower() for t in m.tags)
        ]
    start = (number - 1) * MODELS_PAGE_SIZE
    shown = found[start : start + MODELS_PAGE_SIZE]
    rows = []
    for model in shown:
        latest = Query(registry).where_model_name(model.name).order_by("created_at", "desc")
        holders = latest.where_stage(list(HOLDER_STAGES)).limit(6).execute()
        rows.append(
            {
                "model": model,
                "latest": latest.first(),
                "holders": {s.value: [v for v in holders if v.stage is s] for s in HOLDER_STAGES},
            }
        )
    return page(
        request,
        "models.html",
        viewer=viewer,
        rows=rows,
        search=search,
        number=number,
        more=start + MODELS_PAGE_SIZE < len(found),
        total=len(found),
    )


def _int_param(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or int(text) < 1:
        raise ValidationError.single(name, f"{text!r} must be a whole number of at least 1")
    return int(text)


def model_query(registry: Registry, name: str, params: Any) -> tuple[Query, dict[str, Any]]:
    """The versions-table query from the page's filters and sort, and the filters as given."""
    query = Query(registry).where_model_name(name)
    stages = [s for s in params.getlist("stage") if s]
    tag = params.get("tag", "").strip()
    metric = params.get("metric", "").strip()
    sort = params.get("sort", "created_at")
    direction = params.get("dir", "desc")
    if stages:
        query = query.where_stage(stages)
    if tag:
        query = query.where_tag(tag)
    if metric:
        condition = parse_metric_condition(metric)
        query = query.where_metric(condition.name, condition.op, condition.value)
    if sort.startswith("metric:"):
        query = query.order_by_metric(sort.removeprefix("metric:"), direction)
    else:
        query = query.order_by(sort, direction)
    given = {"stage": stages, "tag": tag, "metric": metric, "sort": sort, "dir": direction}
    return query, given


@router.get("/history/{name:path}")
def model_history_page(request: Request, name: str) -> HTMLResponse:
    """A model's alias history, and the stage history of its versions in production/staging.

    Its own page (the model page loads it when scrolled into view, or links to it without
    JavaScript), so the versions table does not wait for a history query per version. Not
    under ``/models/``: a model may be named ``x/history``.
    """
    viewer = require_viewer(request)
    registry = registry_of(request)
    model = registry.get_model(name)
    history = registry.alias_history(name)
    holders = Query(registry).where_model_name(name).where_stage(list(HOLDER_STAGES))
    transitions = [
        (v, t)
        for v in holders.order_by("updated_at", "desc").limit(5).execute()
        for t in registry.stage_history(v)
    ]
    transitions.sort(key=lambda pair: pair[1].at, reverse=True)
    return page(
        request,
        "model_history.html",
        viewer=viewer,
        model=model,
        alias_history=list(reversed(history))[:50],
        transitions=transitions[:50],
    )


@router.get("/models/{name:path}")
def model_page(request: Request, name: str) -> HTMLResponse:
    """A model's versions table (sortable metric columns, filters, keyset pages), histories."""
    viewer = require_viewer(request)
    registry = registry_of(request)
    model = registry.get_model(name)
    query, given = model_query(registry, name, request.query_params)
    cursor = request.query_params.get("cursor") or None
    found = query.page(PAGE_SIZE, cursor)
    metric_names = sorted({k for v in found.items for k in v.metrics})
    if given["sort"].startswith("metric:"):
        sorted_metric = given["sort"].removeprefix("metric:")
        if sorted_metric not in metric_names:
            metric_names.append(sorted_metric)
    aliases = current_aliases(registry.alias_history(name))
    base = f"/models/{quote(name)}"

    def make_url(sort: str, direction: str, cursor: str | None = None) -> str:
        pairs = [("stage", s) for s in given["stage"]]
        pairs += [(k, given[k]) for k in ("tag", "metric") if given[k]]
        pairs += [("sort", sort), ("dir", direction)]
        if cursor:
            pairs.append(("cursor", cursor))
        return f"{base}?{urlencode(pairs)}"

    return page(
        request,
        "model.html",
        viewer=viewer,
        model=model,
        versions=found.items,
        next_cursor=found.next_cursor,
        metric_names=metric_names,
        given=given,
        stages=[s.value for s in Stage],
        aliases=aliases,
        make_url=make_url,
    )


def _timeline(registry: Registry, version: ModelVersion) -> list[dict[str, Any]]:
    """The version's stage changes and the alias moves onto and off it, oldest first."""
    events: list[dict[str, Any]] = [
        {
            "at": t.at,
            "what": f"stage {t.from_stage.value} → {t.to_stage.value}"
            if t.from_stage is not None
            else f"registered in {t.to_stage.value}",
            "actor": t.actor,
            "reason": t.reason,
            "kind": "stage",
        }
        for t in registry.stage_history(version)
    ]
    holder: dict[str, int | None] = {}
    for change in registry.alias_history(version.model_name):
        before = holder.get(change.alias)
        holder[change.alias] = change.version_id
        if change.version_id == version.id and before != version.id:
            what = f"alias {change.alias} set here"
        elif before == version.id and change.version_id != version.id:
            what = (
                f"alias {change.alias} deleted"
                if change.version_id is None
                else f"alias {change.alias} moved to another version"
            )
        else:
            continue
        events.append(
            {
                "at": change.at,
                "what": what,
                "actor": change.actor,
                "reason": change.reason,
                "kind": "alias",
            }
        )
    events.sort(key=lambda e: e["at"])
    return events


@router.get("/versions/{ref:path}/lineage")
def lineage_page(request: Request, ref: str) -> HTMLResponse:
    """The version's ancestors and descendants, drawn."""
    viewer = require_viewer(request)
    registry = registry_of(request)
    version = registry.get_version(ref)
    depth = _int_param(request, "depth", 0) or None
    graph = registry.get_lineage(version, max_depth=depth)
    return page(
        request,
        "lineage.html",
        viewer=viewer,
        version=version,
        picture=draw_lineage(graph),
        depth=depth,
    )


@router.get("/versions/{ref:path}/promote")
def promote_page(request: Request, ref: str) -> HTMLResponse:
    """Each policy condition on promoting to the chosen stage, met or not, then the button."""
    viewer = require_viewer(request)
    registry = registry_of(request)
    version = registry.get_version(ref)
    stage = request.query_params.get("stage") or _next_stage(version.stage).value
    archive = request.query_params.get("archive_existing") == "on"
    check = registry.check_promotion(version, stage, archive_existing=archive)
    return page(
        request,
        "promote.html",
        viewer=viewer,
        version=version,
        check=check,
        stages=[s.value for s in Stage],
        archive=archive,
        denied=None,
        reason="",
    )


def _next_stage(stage: Stage) -> Stage:
    return {
        Stage.EXPERIMENT: Stage.STAGING,
        Stage.STAGING: Stage.PRODUCTION,
        Stage.PRODUCTION: Stage.ARCHIVED,
    }.get(stage, Stage.STAGING)


@router.get("/versions/{ref:path}")
def version_page(request: Request, ref: str) -> HTMLResponse:
    """Everything about one version, with its lineage picture and the actions its viewer has."""
    viewer = require_viewer(request)
    registry = registry_of(request)
    version = registry.get_version(ref)
    # The nearest generations only: a long line of continued training would otherwise put
    # thousands of boxes on every version's page (the lineage page draws them all).
    graph = registry.get_lineage(version, max_depth=VERSION_PAGE_DEPTH)
    aliases = current_aliases(registry.alias_history(version.model_name)).get(version.id, [])
    return page(
        request,
        "version.html",
        viewer=viewer,
        version=version,
        aliases=aliases,
        timeline=_timeline(registry, version),
        parents=graph.parents(version.id),
        children=graph.children(version.id),
        picture=draw_lineage(graph),
        depth=VERSION_PAGE_DEPTH,
        stages=[s.value for s in Stage],
    )


@router.get("/compare")
def compare_page(request: Request) -> HTMLResponse:
    """Two to four versions side by side: config diff, metrics with deltas, lineage relation."""
    viewer = require_viewer(request)
    registry = registry_of(request)
    refs = [r.strip() for r in request.query_params.getlist("v") if r.strip()]
    if not refs:
        return page(request, "compare.html", viewer=viewer, refs=[], versions=[], diffs=[])
    if not 2 <= len(refs) <= 4:
        raise ValidationError.single("v", f"compare two to four versions, not {len(refs)}")
    versions = [registry.get_version(r) for r in refs]
    base = versions[0]
    diffs = [registry.diff(base, other) for other in versions[1:]]
    changed = {c.path for d in diffs for c in d.config.changed}
    changed |= {k for d in diffs for k in (*d.config.added, *d.config.removed)}
    config_keys = sorted({k for v in versions for k in _flatten(v.training_config)})
    flat = [_flatten(v.training_config) for v in versions]
    metric_names = sorted({k for v in versions for k in v.metrics})
    return page(
        request,
        "compare.html",
        viewer=viewer,
        refs=refs,
        versions=versions,
        diffs=diffs,
        changed=changed,
        config_keys=config_keys,
        flat=flat,
        metric_names=metric_names,
    )


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys (the paths ``domain.diff`` names its changes with)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


@router.get("/query")
def query_page(request: Request) -> HTMLResponse:
    """A filter map or a query spec (JSON) and the matching versions."""
    viewer = require_viewer(request)
    registry = registry_of(request)
    text = request.query_params.get("q", "").strip()
    results: list[ModelVersion] | None = None
    next_cursor = None
    if text:
        spec = _spec_from_text(text)
        found = Query(registry, spec=spec).page(PAGE_SIZE, request.query_params.get("cursor"))
        results, next_cursor = found.items, found.next_cursor
    metric_names = sorted({k for v in results or () for k in v.metrics})
    return page(
        request,
        "query.html",
        viewer=viewer,
        text=text,
        results=results,
        next_cursor=next_cursor,
        metric_names=metric_names,
    )


def _spec_from_text(text: str) -> QuerySpec:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError.single(
            "q", f"is not JSON ({exc.msg} at character {exc.pos}): write a filter map"
        ) from None
    if isinstance(data, dict) and "where" in data and "version" in data:
        return QuerySpec.from_json(data)
    return spec_of(data)


@router.get("/audit")
def audit_page(request: Request) -> HTMLResponse:
    """The audit log, newest first, filtered by actor, action and time (admins)."""
    viewer = require_viewer(request)
    filters = {k: request.query_params.get(k) or None for k in ("actor", "action", "since")}
    since = None
    if filters["since"]:
        try:
            since = datetime.fromisoformat(filters["since"])
        except ValueError:
            raise ValidationError.single(
                "since", "must be an ISO 8601 time with an offset, e.g. 2026-12-01T00:00:00+00:00"
            ) from None
    # The registry checks the admin role (on every model) and audits a refusal.
    entries = registry_of(request).audit_log(
        since=since, actor=filters["actor"], action=filters["action"], limit=200
    )
    return page(request, "audit.html", viewer=viewer, entries=entries, filters=filters)
