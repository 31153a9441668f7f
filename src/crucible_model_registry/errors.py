"""The registry's error types: every failure a caller can act on is one of these.

```
RegistryError
├── ValidationError        .errors: field -> messages; nothing was written
├── NotFoundError          .kind, .ref
├── DuplicateVersionError  .model_name, .version
├── DuplicateModelError    .model_name: a model of that name exists already
├── DuplicateConfigError   .existing: the earlier ModelVersion
├── LineageCycleError      .parent_id, .child_id
├── StorageError           .backend   (ChecksumMismatchError: .path, .expected, .actual)
├── PromotionDeniedError   .version_ref, .target, .unmet: every failed condition
├── SchemaNotReadyError    .command: what to run
├── ConfigurationError     unknown backend, missing extra, bad settings
├── DatabaseError          the database failed (unreachable, lock timeout): not the input's fault
│   └── ConstraintViolationError  a uniqueness or foreign-key rule refused a write
├── StageFailedError       .stage, .index, .error: a pipeline stage raised
├── AuthenticationError    no valid credentials (a server's 401)
└── PermissionDeniedError  .permission, .model: the principal may not do this (403)
```

Identifiers travel as attributes so that nobody has to parse a message; the message says
what to do next. Every class has a stable ``code`` (``"not_found"``) and names the
attributes that identify the failure in ``detail_fields``: ``details()`` gives them and
``restore()`` rebuilds the same error from a message and those details, so that an error
raised behind a server is raised again, as the same class with the same attributes, by its
client (``wire.py`` holds their JSON forms).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar, Self

if TYPE_CHECKING:
    from crucible_model_registry.domain.records import ModelVersion

__all__ = [
    "AuthenticationError",
    "ChecksumMismatchError",
    "ConfigurationError",
    "ConstraintViolationError",
    "DatabaseError",
    "DuplicateConfigError",
    "DuplicateModelError",
    "DuplicateVersionError",
    "LineageCycleError",
    "NotFoundError",
    "PermissionDeniedError",
    "PromotionDeniedError",
    "RegistryError",
    "SchemaNotReadyError",
    "StageFailedError",
    "StorageError",
    "ValidationError",
]


class RegistryError(Exception):
    """Base class of every error the registry raises on purpose.

    Attributes:
        code: a stable snake_case name of the failure, one per class (for servers,
            scripts and logs; it never changes when a message is reworded).
        detail_fields: the attributes that identify the failure, as :meth:`details` gives.
    """

    code: ClassVar[str] = "registry_error"
    detail_fields: ClassVar[tuple[str, ...]] = ()

    def details(self) -> dict[str, object]:
        """The identifying attributes by name (plain values, or records for some fields)."""
        return {name: getattr(self, name) for name in self.detail_fields}

    @classmethod
    def restore(cls, message: str, details: Mapping[str, object]) -> Self:
        """This error as raised elsewhere: the same message and :meth:`details`.

        The caller checks the details' values (``wire.error_from_json`` does); the message
        is kept as it was written, not composed again.
        """
        error = cls.__new__(cls)
        Exception.__init__(error, message)
        for name in cls.detail_fields:
            setattr(error, name, details[name])
        return error


class ValidationError(RegistryError, ValueError):
    """Input was rejected before anything was written.

    Attributes:
        errors: each offending field mapped to what is wrong with it.
    """

    code = "invalid_input"
    detail_fields = ("errors",)

    def __init__(self, errors: Mapping[str, Sequence[str] | str]) -> None:
        self.errors: dict[str, list[str]] = {
            field: [msgs] if isinstance(msgs, str) else list(msgs) for field, msgs in errors.items()
        }
        parts = [_field_says(field, msgs) for field, msgs in self.errors.items()]
        super().__init__("invalid input: " + " | ".join(parts))

    @classmethod
    def single(cls, field: str, message: str) -> ValidationError:
        """One field, one message."""
        return cls({field: [message]})


# Messages that finish a sentence about the field ("is required", "must be a mapping") read
# "recipe is required"; any other message follows "recipe: ".
_PREDICATES = ("is ", "are ", "must ", "may ", "has ", "holds ", "cannot ", "should ")


def _field_says(field: str, messages: Sequence[str]) -> str:
    first, *rest = messages or ["is invalid"]
    joiner = " " if first.startswith(_PREDICATES) else ": "
    return f"{field}{joiner}{'; '.join([first, *rest])}"


class NotFoundError(RegistryError, LookupError):
    """A model, version, artifact, alias or policy does not exist.

    Attributes:
        kind: what was looked for (``"model"``, ``"version"``, ...).
        ref: the reference that did not resolve.
    """

    code = "not_found"
    detail_fields = ("kind", "ref")

    def __init__(self, kind: str, ref: object, hint: str | None = None) -> None:
        self.kind = kind
        self.ref = ref
        message = f"{kind} {ref!r} not found"
        if hint is None and kind == "version" and isinstance(ref, str) and "@" in ref:
            model = ref.rpartition("@")[0]
            hint = f"`cmr query --model {model}` lists its versions"
        if hint:
            message += f"; {hint}"
        super().__init__(message)


class DuplicateVersionError(RegistryError):
    """The model already has a version with this version string."""

    code = "duplicate_version"
    detail_fields = ("model_name", "version")

    def __init__(self, model_name: str, version: str) -> None:
        self.model_name = model_name
        self.version = version
        super().__init__(
            f"model {model_name!r} already has version {version!r}; "
            "choose another version string or omit it to get the next number"
        )


class DuplicateModelError(RegistryError):
    """A model of this name exists already (creating or renaming a model)."""

    code = "duplicate_model"
    detail_fields = ("model_name",)

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        super().__init__(
            f"a model called {model_name!r} exists already; choose another name "
            "(or register versions into it)"
        )


class DuplicateConfigError(RegistryError):
    """The same training run (base model, recipe, config hash) is already registered.

    Attributes:
        existing: the version registered earlier for this training run.
    """

    code = "duplicate_config"
    detail_fields = ("existing",)

    def __init__(self, existing: ModelVersion) -> None:
        self.existing = existing
        super().__init__(
            f"this training run is already registered as {existing.model_name}@"
            f"{existing.version} (id {existing.id}, config hash {existing.config_hash[:12]}); "
            "pass on_duplicate='return' to get that version instead"
        )


class LineageCycleError(RegistryError):
    """The lineage edge would make a version its own ancestor."""

    code = "lineage_cycle"
    detail_fields = ("parent_id", "child_id")

    def __init__(self, parent_id: int, child_id: int) -> None:
        self.parent_id = parent_id
        self.child_id = child_id
        if parent_id == child_id:
            message = f"version {child_id} cannot be its own parent (a lineage edge needs two)"
        else:
            message = (
                f"version {child_id} is already an ancestor of version {parent_id}: "
                f"an edge {parent_id} -> {child_id} would close a cycle"
            )
        super().__init__(message)


class StorageError(RegistryError):
    """A storage backend failed to store, fetch or delete artifact bytes.

    Attributes:
        backend: the backend's settings name (``local``, ``s3``, ...).
    """

    code = "storage_error"
    detail_fields: ClassVar[tuple[str, ...]] = ("backend",)

    def __init__(self, message: str, *, backend: str) -> None:
        self.backend = backend
        super().__init__(f"[{backend}] {message}")


class ChecksumMismatchError(StorageError):
    """Bytes read back do not match the SHA-256 recorded for the artifact."""

    code = "checksum_mismatch"
    detail_fields = ("backend", "path", "expected", "actual")

    def __init__(self, *, backend: str, path: str, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        self.path = path
        super().__init__(
            f"checksum mismatch for {path}: recorded sha256 {expected}, got {actual}; "
            "the stored copy is corrupt, nothing was written at the destination",
            backend=backend,
        )


class PromotionDeniedError(RegistryError):
    """The model's promotion policy forbids this stage change.

    Attributes:
        version_ref: the version, as ``model@version``.
        target: the stage it was to enter.
        unmet: every condition that failed, as readable sentences.
    """

    code = "promotion_denied"
    detail_fields = ("version_ref", "target", "unmet")

    def __init__(self, version_ref: str, target: str, unmet: Sequence[str]) -> None:
        self.version_ref = version_ref
        self.target = target
        self.unmet = list(unmet)
        super().__init__(
            f"promotion of {version_ref} to {target} denied by the model's policy: "
            + "; ".join(self.unmet)
        )


class SchemaNotReadyError(RegistryError):
    """The database has no registry schema, or an outdated one.

    Attributes:
        command: what to run to bring the schema up to date.
    """

    code = "schema_not_ready"
    detail_fields = ("command",)

    def __init__(self, detail: str, *, command: str = "cmr db upgrade") -> None:
        self.command = command
        super().__init__(f"{detail}; run `{command}` (or registry.migrate()) first")


class ConfigurationError(RegistryError):
    """Settings are wrong: unknown backend, missing optional extra, bad option."""

    code = "configuration_error"


class DatabaseError(RegistryError):
    """The database failed in a way the caller cannot fix by changing the input."""

    code = "database_error"


class ConstraintViolationError(DatabaseError):
    """A uniqueness or foreign-key rule refused a write; the store says which rule it was."""

    code = "constraint_violation"


class StageFailedError(RegistryError):
    """A pipeline stage raised; the pipeline stopped there.

    Attributes:
        stage: the failing stage's name (from its ``describe()``).
        index: its position in the pipeline, from 0.
        error: what it raised (also the ``__cause__``).
    """

    code = "stage_failed"
    detail_fields = ("stage", "index", "error")

    def __init__(self, stage: str, index: int, error: Exception) -> None:
        self.stage = stage
        self.index = index
        self.error = error
        super().__init__(
            f"pipeline stage {index} ({stage}) failed with {type(error).__name__}: {error}; "
            "the stages before it have run"
        )


class AuthenticationError(RegistryError):
    """No valid credentials: a missing, unknown, expired or revoked token."""

    code = "authentication_failed"


class PermissionDeniedError(RegistryError):
    """The authenticated principal's role or model grants do not allow this operation.

    Attributes:
        permission: the role the operation needs (``read``, ``write``, ``promote``,
            ``admin``).
        model: the model it was on, or None for an operation spanning every model.
    """

    code = "permission_denied"
    detail_fields = ("permission", "model")

    def __init__(self, permission: str, model: str | None, *, principal: str | None = None) -> None:
        self.permission = permission
        self.model = model
        who = f"{principal!r} " if principal else ""
        where = f"on model {model!r}" if model is not None else "on every model"
        super().__init__(
            f"permission denied: {who}needs the {permission} role {where}; "
            "ask an admin for a token that grants it"
        )
