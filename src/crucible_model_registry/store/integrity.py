"""``check()``: the invariants the registry keeps, verified against the stored rows.

Every write keeps these in one transaction; the check finds what a bug, a crash of a
non-transactional tool or a hand-written SQL statement left behind. It reads in one
transaction (a snapshot on PostgreSQL per statement, the whole check on SQLite) and writes
nothing. It loads every version's JSON columns, so it is a maintenance command, not a
hot path.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, func, select

from crucible_model_registry.domain.integrity import IntegrityReport, Violation
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.tables import (
    ALIASES,
    ARTIFACTS,
    EDGES,
    METRICS,
    MODELS,
    PENDING_UPLOADS,
    TRANSITIONS,
    VERSION_TAGS,
    VERSIONS,
)

__all__ = ["check"]

V = VERSIONS.c
T = TRANSITIONS.c


def check(db: Database) -> IntegrityReport:
    """Every violation of the invariants listed in ``domain.integrity.INVARIANTS``."""
    with db.read() as conn:
        versions = {
            int(r.id): r
            for r in conn.execute(
                select(V.id, V.model_id, V.version, V.stage, V.metrics, V.tags, MODELS.c.name)
                .join_from(VERSIONS, MODELS, MODELS.c.id == V.model_id, isouter=True)
                .order_by(V.id)
            )
        }
        found = [
            *_stage_history(conn, versions),
            *_metrics(conn, versions),
            *_tags(conn, versions),
            *_orphans(conn, versions),
            *_counters(conn),
        ]
    return IntegrityReport(tuple(found))


def _name(row: Any) -> str:
    return f"version {row.id} ({row.name}@{row.version})"


def _stage_history(conn: Connection, versions: dict[int, Any]) -> list[Violation]:
    last = select(func.max(T.id)).group_by(T.version_id)
    to_stage = {
        int(vid): stage
        for vid, stage in conn.execute(select(T.version_id, T.to_stage).where(T.id.in_(last)))
    }
    out = []
    for vid, row in versions.items():
        recorded = to_stage.get(vid)
        if recorded is None:
            out.append(Violation("stage_history", _name(row), "has no stage-history row"))
        elif recorded != row.stage:
            out.append(
                Violation(
                    "stage_history",
                    _name(row),
                    f"is in {row.stage} but its last stage-history row moved it to {recorded}",
                )
            )
    return out


def _metrics(conn: Connection, versions: dict[int, Any]) -> list[Violation]:
    rows: dict[int, dict[str, float]] = defaultdict(dict)
    for vid, name, value in conn.execute(
        select(METRICS.c.version_id, METRICS.c.name, METRICS.c.value)
    ):
        rows[int(vid)][name] = float(value)
    out = []
    for vid, row in versions.items():
        stored = {str(k): float(v) for k, v in (row.metrics or {}).items()}
        table = rows.get(vid, {})
        if set(stored) != set(table) or any(
            not math.isclose(stored[k], table[k], rel_tol=1e-12, abs_tol=0.0) for k in stored
        ):
            out.append(
                Violation(
                    "metrics",
                    _name(row),
                    f"metrics JSON {stored!r} differs from the metrics table {table!r}",
                )
            )
    return out


def _tags(conn: Connection, versions: dict[int, Any]) -> list[Violation]:
    rows: dict[int, set[str]] = defaultdict(set)
    for vid, tag in conn.execute(select(VERSION_TAGS.c.version_id, VERSION_TAGS.c.tag)):
        rows[int(vid)].add(tag)
    out = []
    for vid, row in versions.items():
        stored = set(row.tags or [])
        table = rows.get(vid, set())
        if stored != table:
            out.append(
                Violation(
                    "tags",
                    _name(row),
                    f"tags JSON {sorted(stored)!r} differs from the tags table {sorted(table)!r}",
                )
            )
    return out


def _orphans(conn: Connection, versions: dict[int, Any]) -> list[Violation]:
    out = []
    e = EDGES.c
    for edge_id, source, target in conn.execute(
        select(e.id, e.source_version_id, e.target_version_id).order_by(e.id)
    ):
        missing = [str(v) for v in (source, target) if v not in versions]
        if missing:
            out.append(
                Violation(
                    "orphan_edge",
                    f"lineage edge {edge_id} ({source} -> {target})",
                    f"names missing version(s) {', '.join(missing)}",
                )
            )
    a = ALIASES.c
    for model_id, alias, vid in conn.execute(
        select(a.model_id, a.alias, a.version_id).order_by(a.model_id, a.alias)
    ):
        row = versions.get(vid)
        if row is None:
            out.append(
                Violation(
                    "orphan_alias",
                    f"alias {alias!r} of model {model_id}",
                    f"points at missing version {vid}",
                )
            )
        elif row.model_id != model_id:
            out.append(
                Violation(
                    "orphan_alias",
                    f"alias {alias!r} of model {model_id}",
                    f"points at {_name(row)} of another model",
                )
            )
    p = PENDING_UPLOADS.c
    for backend, path, vid in conn.execute(
        select(p.storage_backend, p.storage_path, p.version_id).order_by(p.storage_path)
    ):
        if vid not in versions:
            out.append(
                Violation(
                    "orphan_claim",
                    f"upload claim on {path!r} in {backend}",
                    f"names missing version {vid}",
                )
            )
    ar = ARTIFACTS.c
    for artifact_id, vid in conn.execute(select(ar.id, ar.version_id).order_by(ar.id)):
        if vid not in versions:
            out.append(
                Violation(
                    "orphan_artifact",
                    f"artifact {artifact_id}",
                    f"belongs to missing version {vid}",
                )
            )
    return out


def _counters(conn: Connection) -> list[Violation]:
    highest: dict[int, int] = {}
    for model_id, version in conn.execute(select(V.model_id, V.version)):
        # Only canonical numbers: "007" or "1.0" can never be an auto-assigned number.
        if version.isdigit() and version.isascii() and str(int(version)) == version:
            highest[model_id] = max(highest.get(model_id, 0), int(version))
    out = []
    for model_id, name, seq in conn.execute(
        select(MODELS.c.id, MODELS.c.name, MODELS.c.version_seq).order_by(MODELS.c.id)
    ):
        top = highest.get(model_id, 0)
        if seq < top:
            out.append(
                Violation(
                    "version_counter",
                    f"model {name!r}",
                    f"its version counter is {seq} but version {top} exists",
                )
            )
    return out
