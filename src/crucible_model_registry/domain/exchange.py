"""The export format of a registry (API.md §15), one model's bundle of lines, and import reports.

An export is a directory::

    manifest.json              format, format version, counts, SHA-256 and size of every file
    models.jsonl               one line per model
    versions.jsonl             versions with metrics and tags
    artifacts.jsonl            artifact records (with directory manifests)
    lineage_edges.jsonl        parent -> child, both named model@version
    stage_transitions.jsonl    the stage history
    aliases.jsonl              where each alias points now
    alias_changes.jsonl        the alias history
    promotion_policies.jsonl   stored promotion policies
    <table>.jsonl              any other per-model history table of the schema
    artifacts/<storage path>   the artifact bytes (``--with-artifacts``), in the local layout

Every line names its model (``"model"``) and versions by their version strings, never by
database ids, so that an import can map them to ids of its own. Every file lists its models
in the same order (the order of ``models.jsonl``), which lets an import read one model's
lines from every file at once in constant memory. Times are ISO 8601 UTC strings with
microseconds.

"Same content" (what makes a version already there a skip rather than a conflict): the
model name and version string match, and so do ``recipe``, ``base_model``, ``config_hash``,
``metrics`` (same names, equal values), ``tags`` (as a set), ``description`` and
``created_at``. A version's stage, ``updated_at`` and history are its state, not its
content: a version already present keeps its own. An artifact is the same when a version's
artifact of the same type and file name has the same checksum; an alias or a promotion
policy conflicts when it exists with another target or other rules.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from crucible_model_registry.domain.records import to_jsonable

__all__ = [
    "ARTIFACTS_DIR",
    "CORE_KINDS",
    "BundleOutcome",
    "ExportBundle",
    "ExportPlan",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "ExportResult",
    "ImportConflict",
    "ImportReport",
    "ModelBundle",
    "ReportCounter",
    "file_name",
    "format_time",
    "parse_time",
    "version_differences",
]

FORMAT = "crucible-model-registry/export"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
ARTIFACTS_DIR = "artifacts"

CORE_KINDS: tuple[str, ...] = (
    "models",
    "versions",
    "artifacts",
    "lineage_edges",
    "stage_transitions",
    "aliases",
    "alias_changes",
    "promotion_policies",
)
"""The kinds every export has, in the order an import applies them."""


def file_name(kind: str) -> str:
    """The JSON Lines file of a kind of line (``versions`` -> ``versions.jsonl``)."""
    return f"{kind}.jsonl"


def format_time(value: datetime) -> str:
    """An aware datetime as the export writes it: ISO 8601 in UTC with microseconds."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_time(value: object) -> datetime:
    """A time of an export line back to an aware UTC datetime.

    Raises:
        TypeError: not a string.
        ValueError: not an ISO 8601 time with a UTC offset.
    """
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 time, got {value!r}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"time {value!r} has no UTC offset")
    return parsed.astimezone(UTC)


@dataclasses.dataclass
class ModelBundle:
    """One model's lines of every kind: the unit an import applies all or nothing.

    ``lines`` maps a kind (``versions``, ``aliases``, an extra table's name...) to its lines
    in export order; ``problems`` holds what made lines of this model unreadable.
    """

    model: dict[str, Any]
    lines: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        """The model's name."""
        return str(self.model.get("name"))

    def of(self, kind: str) -> list[dict[str, Any]]:
        """This model's lines of ``kind`` (empty if none)."""
        return self.lines.get(kind, [])


def _same_number(a: object, b: object) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=0.0, abs_tol=0.0)
    return False


def version_differences(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    """The content fields (see the module docstring) in which two version lines differ.

    Both are lines in the export form (times as ISO strings).
    """
    differ: list[str] = []
    for name in ("recipe", "base_model", "config_hash", "description"):
        if ours.get(name) != theirs.get(name):
            differ.append(name)
    a, b = ours.get("metrics") or {}, theirs.get("metrics") or {}
    if set(a) != set(b) or any(not _same_number(a[k], b[k]) for k in a):
        differ.append("metrics")
    if set(ours.get("tags") or []) != set(theirs.get("tags") or []):
        differ.append("tags")
    try:
        if parse_time(ours.get("created_at")) != parse_time(theirs.get("created_at")):
            differ.append("created_at")
    except (TypeError, ValueError):
        differ.append("created_at")
    return differ


@dataclasses.dataclass(frozen=True, slots=True)
class ImportConflict:
    """Why an import refused something: a model, or a line it could not apply."""

    kind: str
    """What was refused: ``versions``, ``artifacts``, ``aliases``, ``lineage_edges``,
    ``promotion_policies``, ``lines`` (unreadable or invalid lines) or ``artifact_bytes``."""
    model: str
    ref: str
    """The item: ``model@version``, ``model@alias``, ``parent -> child``, or the model."""
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """This conflict as plain JSON values."""
        result: dict[str, Any] = to_jsonable(self)
        return result


@dataclasses.dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did (or, with ``dry_run``, would do), per kind of line.

    ``imported`` counts what was written, ``skipped`` what was there already with the same
    content, ``conflicts`` what was refused; ``refused`` says why, and ``refused_models``
    names the models of which nothing was imported.
    """

    imported: dict[str, int]
    skipped: dict[str, int]
    conflicts: dict[str, int]
    refused: list[ImportConflict]
    refused_models: list[str]
    dry_run: bool
    changed: bool
    """Did (would) the import write anything? False for a repeated import."""

    def to_dict(self) -> dict[str, Any]:
        """This report as plain JSON values."""
        result: dict[str, Any] = to_jsonable(self)
        return result


class ReportCounter:
    """Accumulates an :class:`ImportReport` while an import runs."""

    def __init__(self) -> None:
        self.imported: dict[str, int] = {}
        self.skipped: dict[str, int] = {}
        self.conflicts: dict[str, int] = {}
        self.refused: list[ImportConflict] = []
        self.refused_models: list[str] = []

    def add(self, bucket: str, kind: str, n: int = 1) -> None:
        """Count ``n`` lines of ``kind`` as ``imported``, ``skipped`` or ``conflicts``."""
        counts: dict[str, int] = getattr(self, bucket)
        counts[kind] = counts.get(kind, 0) + n

    def refuse(self, conflict: ImportConflict) -> None:
        """Record why something was refused (and count it)."""
        self.refused.append(conflict)
        self.add("conflicts", conflict.kind)

    def merge(self, other: ReportCounter) -> None:
        """Add another counter's counts (a model's, once its transaction committed)."""
        for bucket in ("imported", "skipped", "conflicts"):
            for kind, n in getattr(other, bucket).items():
                self.add(bucket, kind, n)
        self.refused.extend(other.refused)
        self.refused_models.extend(other.refused_models)

    def report(self, *, dry_run: bool, kinds: Sequence[str]) -> ImportReport:
        """The frozen report, with a zero for every kind of the export."""

        def full(counts: dict[str, int]) -> dict[str, int]:
            return {kind: counts.get(kind, 0) for kind in dict.fromkeys([*kinds, *counts])}

        return ImportReport(
            imported=full(self.imported),
            skipped=full(self.skipped),
            conflicts=full(self.conflicts),
            refused=list(self.refused),
            refused_models=list(self.refused_models),
            dry_run=dry_run,
            changed=any(self.imported.values()),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ExportResult:
    """What an export wrote: where, how many lines of each kind, and the artifact bytes."""

    path: str
    counts: dict[str, int]
    files: int
    artifact_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """This result as plain JSON values."""
        result: dict[str, Any] = to_jsonable(self)
        return result


@dataclasses.dataclass
class ExportBundle:
    """One model's export lines of every kind as JSON text, ready to write as JSON Lines.

    ``lines["models"]`` holds the model's own line; the other kinds follow in export order.
    The text is what the backend produced (the database renders it where it can), so an
    export moves rows to disk without building records; :meth:`parsed` decodes it for an
    import or a copy.
    """

    name: str
    lines: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def count(self, kind: str) -> int:
        """How many lines of ``kind`` the bundle holds."""
        return len(self.lines.get(kind, ()))

    def parsed(self) -> ModelBundle:
        """The same lines decoded, as an import applies them."""
        (model,) = (json.loads(raw) for raw in self.lines["models"])
        bundle = ModelBundle(model)
        for kind, raws in self.lines.items():
            if kind != "models":
                bundle.lines[kind] = [json.loads(raw) for raw in raws]
        return bundle


@dataclasses.dataclass(frozen=True, slots=True)
class ExportPlan:
    """What an export of a backend holds before it starts: for progress and the manifest."""

    versions: int
    """How many versions the export will hold."""
    kinds: list[str]
    """Every kind of line, core kinds first, then the schema's extra history tables."""
    source_dialect: str
    """Where the rows come from (``sqlite``, ``postgresql``), for the manifest."""

    def to_dict(self) -> dict[str, Any]:
        """This plan as plain JSON values."""
        return {"versions": self.versions, "kinds": list(self.kinds), "source": self.source_dialect}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExportPlan:
        """The plan :meth:`to_dict` wrote."""
        return cls(int(data["versions"]), [str(k) for k in data["kinds"]], str(data["source"]))


@dataclasses.dataclass
class BundleOutcome:
    """What importing one model did: its counts, and the lineage edges left for afterwards
    (their parent is in a model not imported yet, or they link existing versions)."""

    counter: ReportCounter
    deferred_edges: list[dict[str, Any]]

    @property
    def refused(self) -> bool:
        """Was the whole model refused?"""
        return bool(self.counter.refused_models)

    def to_dict(self) -> dict[str, Any]:
        """This outcome as plain JSON values (how a server answers an import)."""
        c = self.counter
        return {
            "imported": c.imported,
            "skipped": c.skipped,
            "conflicts": c.conflicts,
            "refused": [r.to_dict() for r in c.refused],
            "refused_models": c.refused_models,
            "deferred_edges": self.deferred_edges,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BundleOutcome:
        """The outcome :meth:`to_dict` wrote."""
        counter = ReportCounter()
        for bucket in ("imported", "skipped", "conflicts"):
            for kind, n in dict(data[bucket]).items():
                counter.add(bucket, str(kind), int(n))
        counter.refused = [ImportConflict(**dict(r)) for r in data["refused"]]
        counter.refused_models = [str(m) for m in data["refused_models"]]
        return cls(counter, [dict(e) for e in data["deferred_edges"]])
