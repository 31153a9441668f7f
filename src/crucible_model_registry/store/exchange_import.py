"""Writing one model's export lines into a registry: all of it in one transaction, or none.

:func:`import_bundle` maps the bundle's names to this database's ids, skips what is here
already with the same content, and refuses the whole model on any conflict (see
``domain.exchange`` for what "same content" means). Versions, metrics, tags, artifacts and
history rows go in with one multi-row statement per table. Lineage edges whose parent
belongs to a model not imported yet, or that would attach an existing version to another
parent, come back as deferred: :func:`import_edge` applies each with the cycle check once
every model is in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import JSON, Connection, Double, Table, cast, func, insert, select, true, update
from sqlalchemy.exc import IntegrityError

from crucible_model_registry.domain.audit import Attribution
from crucible_model_registry.domain.enums import ArtifactType, Relationship, Stage
from crucible_model_registry.domain.exchange import (
    BundleOutcome,
    ImportConflict,
    ModelBundle,
    ReportCounter,
    parse_time,
    version_differences,
)
from crucible_model_registry.domain.rules import check_metrics, check_model_name
from crucible_model_registry.errors import LineageCycleError, RegistryError
from crucible_model_registry.store import audit
from crucible_model_registry.store._records import IN_CHUNK
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.exchange import extra_kind, extra_line, extra_tables

# The cycle check and the lock of add_lineage, so that imported edges obey the same rule.
from crucible_model_registry.store.lineage import _check as check_edge
from crucible_model_registry.store.lineage import _lock_lineage as lock_lineage
from crucible_model_registry.store.models import lock_model
from crucible_model_registry.store.tables import (
    ALIAS_CHANGES,
    ALIASES,
    ARTIFACTS,
    EDGES,
    METRICS,
    MODEL_TAGS,
    MODELS,
    POLICIES,
    TRANSITIONS,
    VERSION_TAGS,
    VERSIONS,
    UTCDateTime,
)

__all__ = [
    "artifact_checksums",
    "import_bundle",
    "import_edge",
    "version_exists",
]

V = VERSIONS.c
M = MODELS.c

_COPY_FROM = 50  # rows: below this, COPY's set-up costs more than it saves


class _RefusedError(Exception):
    def __init__(self, conflicts: list[ImportConflict]) -> None:
        super().__init__(conflicts[0].reason)
        self.conflicts = conflicts


class _DryRunError(Exception):
    """Raised at the end of a dry run's transaction so that it rolls back."""


def import_bundle(
    db: Database, bundle: ModelBundle, *, by: Attribution, dry_run: bool = False
) -> BundleOutcome:
    """Apply one model's lines in one transaction; a conflict or a bad line refuses them all.

    With ``dry_run`` the transaction is rolled back at the end, so the counts are exactly
    what a real import would do at this moment. A model that gains anything gets one audit
    entry (``import``: the counts of what was imported, the new versions) in the same
    transaction.
    """
    counter = ReportCounter()
    deferred: list[dict[str, Any]] = []
    name = bundle.name
    if bundle.problems:
        counter.refused_models.append(name)
        for problem in bundle.problems:
            counter.refuse(ImportConflict("lines", name, name, problem))
        return BundleOutcome(counter, [])
    try:
        try:
            with db.write() as conn:
                _Importer(db, conn, bundle, counter, deferred).run(dry_run=dry_run, by=by)
        except _DryRunError:
            pass
        except (KeyError, TypeError, ValueError) as exc:  # ValidationError is a ValueError
            conflict = ImportConflict("lines", name, name, f"invalid line: {exc}")
            raise _RefusedError([conflict]) from exc
        except RegistryError as exc:  # a constraint a racing writer won, a bad stored value
            raise _RefusedError([ImportConflict("lines", name, name, str(exc))]) from exc
    except _RefusedError as refused:
        counter = ReportCounter()
        for conflict in refused.conflicts:
            counter.refuse(conflict)
        counter.refused_models.append(name)
        return BundleOutcome(counter, [])
    return BundleOutcome(counter, deferred)


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), IN_CHUNK):
        yield items[start : start + IN_CHUNK]


def _orphan_id(line: dict[str, Any]) -> int | None:
    """The id a history row of a deleted version keeps: negative, so no version has it."""
    old = line.get("deleted_version_id")
    return None if old is None else -abs(int(old))


class _Importer:
    """One model's import inside one write transaction."""

    def __init__(
        self,
        db: Database,
        conn: Connection,
        bundle: ModelBundle,
        counter: ReportCounter,
        deferred: list[dict[str, Any]],
    ) -> None:
        self.db, self.conn, self.bundle = db, conn, bundle
        self.counter, self.deferred = counter, deferred
        self.name = check_model_name(bundle.model["name"], field="models.name")
        self.version_ids: dict[str, int] = {}  # version string -> id here
        self.new_versions: set[str] = set()
        self.conflicts: list[ImportConflict] = []
        self.new_model = False  # created by this import: nothing of it to compare with

    def run(self, *, dry_run: bool, by: Attribution) -> None:
        self.model_id = self._model()
        self._versions()
        if self.conflicts:
            raise _RefusedError(self.conflicts)
        self._artifacts()
        self._transitions()
        self._aliases()
        self._alias_changes()
        self._policies()
        self._edges()
        for table in extra_tables():
            self._extra(table)
        if self.conflicts:
            raise _RefusedError(self.conflicts)
        if self.counter.imported:
            details = {
                "imported": dict(self.counter.imported),
                "versions": sorted(self.new_versions),
            }
            audit.write(self.conn, by, "import", self.name, details)
        if dry_run:
            raise _DryRunError

    def _conflict(self, kind: str, ref: str, reason: str) -> None:
        self.conflicts.append(ImportConflict(kind, self.name, ref, reason))

    def _id_of(self, line: dict[str, Any]) -> int | None:
        version = line.get("version")
        if version is None:
            return _orphan_id(line)
        return self.version_ids[version]

    # -- model and versions ------------------------------------------------------------

    def _model(self) -> int:
        line = self.bundle.model
        row = self.conn.execute(select(M.id, M.version_seq).where(M.name == self.name)).first()
        if row is None:
            tags = list(line.get("tags") or [])
            model_id = int(
                self.conn.execute(
                    insert(MODELS).returning(M.id),
                    {
                        "name": self.name,
                        "description": line.get("description"),
                        "tags": tags,
                        "metadata": dict(line.get("metadata") or {}),
                        "version_seq": int(line.get("version_seq") or 0),
                        "created_at": parse_time(line["created_at"]),
                        "updated_at": parse_time(line["updated_at"]),
                    },
                ).scalar_one()
            )
            if tags:
                self.conn.execute(
                    insert(MODEL_TAGS), [{"model_id": model_id, "tag": t} for t in tags]
                )
            self.counter.add("imported", "models")
            self.new_model = True
            return model_id
        model_id = int(row.id)
        lock_model(self.db, self.conn, model_id)
        # Numbering continues after the highest number either registry handed out.
        if int(line.get("version_seq") or 0) > row.version_seq:
            self.conn.execute(
                update(MODELS).where(M.id == model_id).values(version_seq=line["version_seq"])
            )
        self.counter.add("skipped", "models")
        return model_id

    def _versions(self) -> None:
        lines = self.bundle.of("versions")
        existing: dict[str, Any] = {}
        for chunk in _chunks([] if self.new_model else [line["version"] for line in lines]):
            rows = self.conn.execute(
                select(VERSIONS).where(V.model_id == self.model_id, V.version.in_(chunk))
            )
            existing.update({row.version: row for row in rows})
        fresh = []
        for line in lines:
            row = existing.get(line["version"])
            if row is None:
                fresh.append(line)
                continue
            self.version_ids[row.version] = row.id
            here = {
                "recipe": row.recipe,
                "base_model": row.base_model,
                "config_hash": row.config_hash,
                "description": row.description,
                "metrics": row.metrics,
                "tags": row.tags,
                "created_at": row.created_at.isoformat(),
            }
            differ = version_differences(here, line)
            if differ:
                ref = f"{self.name}@{row.version}"
                self._conflict("versions", ref, f"differs from the registry's in {differ}")
            else:
                self.counter.add("skipped", "versions")
        if not fresh or self.conflicts:
            return
        new_rows = [self._version_row(line) for line in fresh]
        integrity_error = self.db.engine.dialect.loaded_dbapi.IntegrityError
        try:
            with self.conn.begin_nested():
                ids = self._insert_versions(new_rows)
        except (IntegrityError, integrity_error):
            # The one constraint a fresh version can break: its training run is registered
            # here already (one run, one version). Say where; anything else is an error.
            self._refuse_same_runs(fresh)
            if self.conflicts:
                return
            raise
        for version_id, new in zip(ids, new_rows, strict=True):
            self.version_ids[new["version"]] = version_id
            self.new_versions.add(new["version"])
        # The metric and tag index rows, derived by the database from the rows just written:
        # the model's versions from the first new id on are this import's (its lock is held,
        # and ids only grow).
        first = min(ids)
        self.conn.execute(_derived_metrics(self.db.is_postgres, self.model_id, first))
        self.conn.execute(_derived_tags(self.db.is_postgres, self.model_id, first))
        self.counter.add("imported", "versions", len(new_rows))

    def _insert_versions(self, rows: list[dict[str, Any]]) -> list[int]:
        """Insert new versions; their ids, in order."""
        if not self._copies():
            statement = insert(VERSIONS).returning(V.id, sort_by_parameter_order=True)
            return list(self.conn.execute(statement, rows).scalars())
        self._bulk(VERSIONS, rows)
        # COPY returns nothing: read the ids back (the model's row lock is held).
        found = {
            r.version: r.id
            for r in self.conn.execute(select(V.version, V.id).where(V.model_id == self.model_id))
        }
        return [int(found[row["version"]]) for row in rows]

    def _copies(self) -> bool:
        return self.db.is_postgres and self.db.engine.dialect.driver == "psycopg"

    def _bulk(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert rows with one statement: COPY on PostgreSQL (psycopg 3), else executemany.

        COPY moves ~10x more rows per second than a multi-row INSERT through psycopg, whose
        per-row parameter conversion dominated an import (bench/move.py).
        """
        if not rows:
            return
        if not self._copies() or len(rows) < _COPY_FROM:
            self.conn.execute(insert(table), rows)
            return
        columns = list(rows[0])
        as_json = [isinstance(table.c[c].type, JSON) for c in columns]
        names = ", ".join(f'"{c}"' for c in columns)
        raw = self.conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(
                    [
                        json.dumps(row[c]) if j and row[c] is not None else row[c]
                        for c, j in zip(columns, as_json, strict=True)
                    ]
                )

    def _version_row(self, line: dict[str, Any]) -> dict[str, Any]:
        version = line["version"]
        if not isinstance(version, str) or not version:
            raise ValueError(f"version string {version!r}")
        config_hash = str(line["config_hash"])
        if len(config_hash) != 64:
            raise ValueError(f"config hash {config_hash!r} of {self.name}@{version}")
        return {
            "model_id": self.model_id,
            "version": version,
            "stage": Stage(line["stage"]).value,
            "recipe": str(line["recipe"]),
            "base_model": str(line["base_model"]),
            "config_hash": config_hash,
            "training_config": dict(line["training_config"]),
            "metrics": check_metrics(line.get("metrics") or {}, field=f"{version}.metrics"),
            "tags": list(dict.fromkeys(line.get("tags") or [])),
            "description": line.get("description"),
            "metadata": dict(line.get("metadata") or {}),
            "created_at": parse_time(line["created_at"]),
            "updated_at": parse_time(line["updated_at"]),
            "registered_by": _text_or_none(line.get("registered_by")),
        }

    def _refuse_same_runs(self, fresh: list[dict[str, Any]]) -> None:
        # One training run, one version (a constraint): a run registered here under
        # another name is a conflict, not something to overwrite.
        wanted = {(ln["base_model"], ln["recipe"], ln["config_hash"]): ln for ln in fresh}
        hashes = sorted({key[2] for key in wanted})
        for chunk in _chunks(hashes):
            rows = self.conn.execute(
                select(V.base_model, V.recipe, V.config_hash, V.version, M.name)
                .join_from(VERSIONS, MODELS, V.model_id == M.id)
                .where(V.config_hash.in_(chunk))
            )
            for row in rows:
                line = wanted.get((row.base_model, row.recipe, row.config_hash))
                if line is not None:
                    self._conflict(
                        "versions",
                        f"{self.name}@{line['version']}",
                        f"the same training run is registered here as {row.name}@{row.version}",
                    )

    # -- artifacts ---------------------------------------------------------------------

    def _artifacts(self) -> None:
        lines = self.bundle.of("artifacts")
        old = [ln for ln in lines if ln["version"] not in self.new_versions]
        have: dict[tuple[int, str, str], str | None] = {}
        old_ids = sorted({self.version_ids[ln["version"]] for ln in old})
        for chunk in _chunks(old_ids):
            rows = self.conn.execute(select(ARTIFACTS).where(ARTIFACTS.c.version_id.in_(chunk)))
            for row in rows:
                have[(row.version_id, row.type, _file_name(row.storage_path))] = row.checksum
        rows_out = []
        for line in lines:
            version_id = self.version_ids[line["version"]]
            key = (version_id, ArtifactType(line["type"]).value, _file_name(line["storage_path"]))
            if key in have:
                if have[key] == line.get("checksum"):
                    self.counter.add("skipped", "artifacts")
                else:
                    ref = f"{self.name}@{line['version']}"
                    self._conflict(
                        "artifacts", ref, f"its {key[1]} {key[2]!r} has another checksum here"
                    )
                continue
            rows_out.append(
                {
                    "version_id": version_id,
                    "type": key[1],
                    "storage_backend": str(line["storage_backend"]),
                    "storage_path": str(line["storage_path"]),
                    "checksum": line.get("checksum"),
                    "size_bytes": line.get("size_bytes"),
                    "manifest": line.get("manifest"),
                    "created_at": parse_time(line["created_at"]),
                }
            )
        if rows_out:
            self._bulk(ARTIFACTS, rows_out)
            self.counter.add("imported", "artifacts", len(rows_out))

    # -- history -----------------------------------------------------------------------

    def _history_keys(self, table: Table, fields: Sequence[str]) -> set[tuple[Any, ...]]:
        rows = self.conn.execute(select(table).where(table.c.model_id == self.model_id))
        return {tuple(getattr(row, f) for f in fields) for row in rows}

    def _transitions(self) -> None:
        lines = self.bundle.of("stage_transitions")
        # A version already here keeps its own history; rows of deleted versions are
        # matched one by one, so a second import adds none of them again.
        orphans = [ln for ln in lines if ln.get("version") is None]
        fields = ("version_id", "to_stage", "at")
        seen = self._history_keys(TRANSITIONS, fields) if orphans else set()
        rows = []
        for line in lines:
            version = line.get("version")
            if version is not None and version not in self.new_versions:
                self.counter.add("skipped", "stage_transitions")
                continue
            row = {
                "model_id": self.model_id,
                "version_id": self._id_of(line),
                "from_stage": None
                if line.get("from_stage") is None
                else Stage(line["from_stage"]).value,
                "to_stage": Stage(line["to_stage"]).value,
                "reason": line.get("reason"),
                "actor": line.get("actor"),
                "at": parse_time(line["at"]),
            }
            if row["version_id"] is None:
                raise ValueError("a stage transition names no version")
            if version is None and (row["version_id"], row["to_stage"], row["at"]) in seen:
                self.counter.add("skipped", "stage_transitions")
                continue
            rows.append(row)
        if rows:
            self._bulk(TRANSITIONS, rows)
            self.counter.add("imported", "stage_transitions", len(rows))

    def _aliases(self) -> None:
        here = {
            row.alias: row.version_id
            for row in self.conn.execute(
                select(ALIASES.c.alias, ALIASES.c.version_id).where(
                    ALIASES.c.model_id == self.model_id
                )
            )
        }
        rows = []
        for line in self.bundle.of("aliases"):
            alias, version_id = str(line["alias"]), self.version_ids[line["version"]]
            if alias not in here:
                rows.append(
                    {
                        "model_id": self.model_id,
                        "alias": alias,
                        "version_id": version_id,
                        "updated_at": parse_time(line["updated_at"]),
                    }
                )
            elif here[alias] == version_id:
                self.counter.add("skipped", "aliases")
            else:
                self._conflict(
                    "aliases",
                    f"{self.name}@{alias}",
                    f"points at another version here, not at {line['version']!r}",
                )
        if rows:
            self._bulk(ALIASES, rows)
            self.counter.add("imported", "aliases", len(rows))

    def _alias_changes(self) -> None:
        lines = self.bundle.of("alias_changes")
        if not lines:
            return
        seen = self._history_keys(ALIAS_CHANGES, ("alias", "version_id", "at"))
        rows = []
        for line in lines:
            version = line.get("version")
            version_id = self.version_ids[version] if version is not None else _orphan_id(line)
            row = {
                "model_id": self.model_id,
                "alias": str(line["alias"]),
                "version_id": version_id,
                "reason": line.get("reason"),
                "actor": line.get("actor"),
                "at": parse_time(line["at"]),
            }
            if (row["alias"], version_id, row["at"]) in seen:
                self.counter.add("skipped", "alias_changes")
            else:
                rows.append(row)
        if rows:
            self._bulk(ALIAS_CHANGES, rows)
            self.counter.add("imported", "alias_changes", len(rows))

    def _policies(self) -> None:
        for line in self.bundle.of("promotion_policies"):
            here = self.conn.execute(
                select(POLICIES.c.policy).where(POLICIES.c.model_id == self.model_id)
            ).first()
            if here is None:
                self.conn.execute(
                    insert(POLICIES),
                    {
                        "model_id": self.model_id,
                        "policy": dict(line["policy"]),
                        "updated_at": parse_time(line["updated_at"]),
                    },
                )
                self.counter.add("imported", "promotion_policies")
            elif here.policy == line["policy"]:
                self.counter.add("skipped", "promotion_policies")
            else:
                self._conflict("promotion_policies", self.name, "the model has another policy here")

    # -- lineage -----------------------------------------------------------------------

    def _edges(self) -> None:
        rows = []
        for line in self.bundle.of("lineage_edges"):
            child = line["version"]
            Relationship(line["relationship"])
            parent_model, parent_version = line["parent_model"], line["parent_version"]
            parent_id = (
                self.version_ids.get(parent_version)
                if parent_model == self.name
                else version_exists(self.conn, parent_model, parent_version)
            )
            # An edge into a new version cannot close a cycle (registration relies on the
            # same fact); anything else waits for import_edge and its cycle check.
            if parent_id is None or child not in self.new_versions:
                self.deferred.append(line)
                continue
            rows.append(_edge_row(parent_id, self.version_ids[child], line))
        if rows:
            self._bulk(EDGES, rows)
            self.counter.add("imported", "lineage_edges", len(rows))

    # -- extra history tables ----------------------------------------------------------

    def _extra(self, table: Table) -> None:
        kind = extra_kind(table)
        lines = self.bundle.of(kind)
        if not lines:
            return
        here = [
            extra_line(table, self.name, row)
            for row in self.conn.execute(_extra_rows(table, self.model_id))
        ]
        seen = [_comparable(line) for line in here]
        rows = []
        for line in lines:
            if _comparable(line) in seen:
                self.counter.add("skipped", kind)
                continue
            row: dict[str, Any] = {"model_id": self.model_id}
            for column in table.c:
                if column.name in ("model_id", "id") and column.name not in line:
                    continue
                if column.name == "version_id":
                    row["version_id"] = self._id_of(line)
                elif isinstance(column.type, UTCDateTime) and line.get(column.name) is not None:
                    row[column.name] = parse_time(line[column.name])
                elif column.name in line:
                    row[column.name] = line[column.name]
            rows.append(row)
        if rows:
            self._bulk(table, rows)
            self.counter.add("imported", kind, len(rows))


def _extra_rows(table: Table, model_id: int) -> Any:
    if "version_id" in table.c:
        version = VERSIONS.alias("of_version")
        return (
            select(table, version.c.version.label("version_string"))
            .outerjoin_from(table, version, table.c.version_id == version.c.id)
            .where(table.c.model_id == model_id)
        )
    return select(table).where(table.c.model_id == model_id)


def _derived_metrics(postgres: bool, model_id: int, first_id: int) -> Any:
    """INSERT the metric rows of the model's versions from ``first_id`` on, from their JSON."""
    if postgres:
        pairs = func.json_each_text(V.metrics).table_valued("key", "value")
    else:
        pairs = func.json_each(V.metrics).table_valued("key", "value")
    rows = (
        select(V.id, pairs.c.key, cast(pairs.c.value, Double))
        .select_from(VERSIONS.join(pairs, true()))
        .where(V.model_id == model_id, V.id >= first_id)
    )
    return insert(METRICS).from_select(["version_id", "name", "value"], rows)


def _derived_tags(postgres: bool, model_id: int, first_id: int) -> Any:
    """INSERT the tag rows of the model's versions from ``first_id`` on, from their JSON."""
    if postgres:
        tags = func.json_array_elements_text(V.tags).table_valued("value")
    else:
        tags = func.json_each(V.tags).table_valued("value")
    rows = (
        select(V.id, tags.c.value)
        .select_from(VERSIONS.join(tags, true()))
        .where(V.model_id == model_id, V.id >= first_id)
    )
    return insert(VERSION_TAGS).from_select(["version_id", "tag"], rows)


def _text_or_none(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"expected a string or null, got {value!r}")


def _comparable(line: dict[str, Any]) -> str:
    return json.dumps(line, sort_keys=True, default=str)


def _file_name(storage_path: str) -> str:
    return storage_path.rstrip("/").rsplit("/", 1)[-1]


def _edge_row(parent_id: int, child_id: int, line: dict[str, Any]) -> dict[str, Any]:
    return {
        "source_version_id": parent_id,
        "target_version_id": child_id,
        "relationship": Relationship(line["relationship"]).value,
        "metadata": dict(line.get("metadata") or {}),
        "created_at": parse_time(line["created_at"]),
    }


def version_exists(conn: Connection, model: str, version: str) -> int | None:
    """The id of ``model@version`` here, if there is one."""
    found = conn.execute(
        select(V.id).join_from(VERSIONS, MODELS).where(M.name == model, V.version == version)
    ).scalar()
    return None if found is None else int(found)


def _edge_line_problem(line: dict[str, Any]) -> str | None:
    """Why a deferred edge line (from a request, so from anyone) cannot be applied, if so."""
    for key in ("model", "version", "parent_model", "parent_version", "relationship"):
        if not isinstance(line.get(key), str):
            return f"the edge line's {key!r} must be a string"
    metadata = line.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return "the edge line's 'metadata' must be an object"
    try:
        Relationship(line["relationship"])
        parse_time(line.get("created_at"))
    except (TypeError, ValueError) as exc:
        return f"the edge line is malformed: {exc}"
    return None


def import_edge(
    db: Database, line: dict[str, Any], *, by: Attribution, dry_run: bool = False
) -> str | None:
    """Apply a deferred lineage edge with the cycle check (one transaction), audited.

    Returns:
        None if imported, ``"skipped"`` if the edge is here already, else why it was refused.
    """
    problem = _edge_line_problem(line)
    if problem is not None:
        return problem
    child_ref = f"{line['model']}@{line['version']}"
    parent_ref = f"{line['parent_model']}@{line['parent_version']}"
    with db.write() as conn:
        # The lineage lock first, as add_lineage takes it: it serialises cycle checks.
        lock_lineage(db, conn)
        child_id = version_exists(conn, line["model"], line["version"])
        parent_id = version_exists(conn, line["parent_model"], line["parent_version"])
        if child_id is None:
            return f"{child_ref} is not in the registry"
        if parent_id is None:
            return f"its parent {parent_ref} is neither in the export nor in the registry"
        linked, closes_cycle = check_edge(conn, parent_id, child_id)
        if linked:
            return "skipped"
        if closes_cycle:
            error = LineageCycleError(parent_id, child_id)
            return f"it would close a cycle ({error})"
        if not dry_run:
            conn.execute(insert(EDGES), _edge_row(parent_id, child_id, line))
            details = {"imported": {"lineage_edges": 1}, "parent": parent_ref}
            audit.write(conn, by, "import", child_ref, details)
    return None


def artifact_checksums(db: Database, model: str) -> dict[tuple[str, str, str], str | None]:
    """The model's artifacts here: (version, type, file name) -> checksum."""
    with db.read() as conn:
        rows = conn.execute(
            select(V.version, ARTIFACTS.c.type, ARTIFACTS.c.storage_path, ARTIFACTS.c.checksum)
            .join_from(ARTIFACTS, VERSIONS, ARTIFACTS.c.version_id == V.id)
            .join(MODELS, V.model_id == M.id)
            .where(M.name == model)
        )
        return {(r.version, r.type, _file_name(r.storage_path)): r.checksum for r in rows}
