"""Bad input gets a typed error and writes nothing; an unready schema says what to run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url
from tests.pg_names import database_name

from crucible_model_registry import (
    ConfigurationError,
    DuplicateConfigError,
    NotFoundError,
    Registry,
    SchemaNotReadyError,
    Stage,
    ValidationError,
)
from crucible_model_registry.store import schema
from crucible_model_registry.store.tables import VERSION_TABLE, metadata

MODEL = "llama-3.1-8b-sft"


def fields(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "model_name": MODEL,
        "recipe": "sl_basic",
        "base_model": "meta-llama/Llama-3.1-8B",
        "training_config": {"lr": 1e-4, "run": uuid.uuid4().hex},
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not _DROP}


_DROP: Any = object()


def snapshot(registry: Registry) -> dict[str, int]:
    """Row counts of every registry table."""
    with registry.engine.connect() as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in metadata.sorted_tables
        }


@pytest.fixture
def seeded(registry: Registry) -> Registry:
    """A registry holding one version (id 1, ``MODEL@1``) in staging."""
    v = registry.register(**fields(version="1", metrics={"accuracy": 0.5}))
    registry.promote(v, "staging")
    return registry


def refused(registry: Registry, error: type[Exception], call: Any) -> Any:
    """Run ``call``, expect ``error``, and check that no table changed."""
    before = snapshot(registry)
    with pytest.raises(error) as info:
        call()
    assert snapshot(registry) == before
    return info.value


# --------------------------------------------------------------------------- register


@pytest.mark.parametrize("missing", ["model_name", "recipe", "base_model", "training_config"])
def test_a_missing_required_field(seeded: Registry, missing: str) -> None:
    exc = refused(seeded, ValidationError, lambda: seeded.register(**fields(**{missing: _DROP})))
    assert missing in exc.errors


def test_every_missing_field_is_listed_at_once(seeded: Registry) -> None:
    exc = refused(seeded, ValidationError, lambda: seeded.register({}))
    assert {"model_name", "recipe", "base_model", "training_config"} <= set(exc.errors)


def test_an_unknown_field(seeded: Registry) -> None:
    exc = refused(seeded, ValidationError, lambda: seeded.register(fields(stage="production")))
    assert "fields" in exc.errors


BAD_METRICS = [float("nan"), float("inf"), float("-inf"), True, False, "0.9", None]


def test_a_bad_metric(seeded: Registry) -> None:
    for value in BAD_METRICS:
        exc = refused(
            seeded,
            ValidationError,
            lambda v=value: seeded.register(**fields(metrics={"accuracy": 0.9, "bad": v})),
        )
        assert list(exc.errors) == ["metrics.bad"], value


def test_a_bad_metric_update(seeded: Registry) -> None:
    for value in BAD_METRICS:
        exc = refused(
            seeded, ValidationError, lambda v=value: seeded.update_metrics(1, {"accuracy": v})
        )
        assert list(exc.errors) == ["metrics.accuracy"], value
    assert seeded.get_version(1).metrics == {"accuracy": 0.5}


def test_nan_in_the_config(seeded: Registry) -> None:
    for value in (float("nan"), float("inf"), float("-inf")):
        config = {"optimizer": {"lr": value}}
        exc = refused(
            seeded, ValidationError, lambda c=config: seeded.register(**fields(training_config=c))
        )
        assert list(exc.errors) == ["training_config.optimizer.lr"]


def test_a_config_value_with_no_json_form(seeded: Registry) -> None:
    for value in (object(), b"raw", 1j, {1, object()}, print):
        config = {"data": value}
        exc = refused(
            seeded, ValidationError, lambda c=config: seeded.register(**fields(training_config=c))
        )
        assert all(key.startswith("training_config") for key in exc.errors), value


def test_an_unsafe_integer_in_the_config(seeded: Registry) -> None:
    config = {"seed": 2**53}
    exc = refused(
        seeded, ValidationError, lambda: seeded.register(**fields(training_config=config))
    )
    assert list(exc.errors) == ["training_config"]


def test_a_config_that_is_not_a_mapping(seeded: Registry) -> None:
    exc = refused(
        seeded, ValidationError, lambda: seeded.register(**fields(training_config=[1, 2]))
    )
    assert list(exc.errors) == ["training_config"]


def test_a_bad_model_name(seeded: Registry) -> None:
    for name in ("", "x" * 201, "   ", "a b", "../etc", "a/../b", "tab\tname"):
        exc = refused(
            seeded, ValidationError, lambda n=name: seeded.register(**fields(model_name=n))
        )
        assert "model_name" in exc.errors, name


def test_a_bad_version_string(seeded: Registry) -> None:
    for version in ("1/2", "a/../b", "1..2", "..", " 1", "1 ", "1 0", "1\t0", "", "production"):
        exc = refused(
            seeded, ValidationError, lambda v=version: seeded.register(**fields(version=v))
        )
        assert list(exc.errors) == ["version"], version


@pytest.mark.parametrize(
    "given",
    [{"parents": [987654]}, {"parent_version_id": 987654}, {"parents": [f"{MODEL}@9.9"]}],
    ids=["parents", "parent_version_id", "ref"],
)
def test_an_unknown_parent(seeded: Registry, given: dict[str, Any]) -> None:
    exc = refused(seeded, NotFoundError, lambda: seeded.register(**fields(**given)))
    assert exc.kind == "version"


def test_an_unknown_parent_creates_no_model(seeded: Registry) -> None:
    refused(
        seeded,
        NotFoundError,
        lambda: seeded.register(**fields(model_name="brand-new", parents=[1, 987654])),
    )
    with pytest.raises(NotFoundError):
        seeded.get_model("brand-new")


def test_a_parent_of_an_unknown_model(seeded: Registry) -> None:
    exc = refused(seeded, NotFoundError, lambda: seeded.register(**fields(parents=["nobody@1"])))
    assert (exc.kind, exc.ref) == ("model", "nobody")


def test_a_parent_that_is_not_a_ref(seeded: Registry) -> None:
    for parent in ("no-at-sign", "@1", "m@", 0, -1, 1.5, True):
        exc = refused(
            seeded, ValidationError, lambda p=parent: seeded.register(**fields(parents=[p]))
        )
        assert list(exc.errors) == ["parents"], parent


OTHER_BAD_FIELDS = [
    ({"lineage_type": "cloned", "parents": [1]}, "lineage_type"),
    ({"on_duplicate": "ignore"}, "on_duplicate"),
    ({"tags": "sft"}, "tags"),
    ({"description": 5}, "description"),
    (
        {"artifacts": [{"type": "weights", "storage_backend": "s3", "storage_path": "p"}]},
        "artifacts[0].type",
    ),
    ({"artifacts": [{"type": "checkpoint", "storage_backend": "s3"}]}, "artifacts[0].storage_path"),
    (
        {
            "artifacts": [
                {"type": "other", "storage_backend": "s3", "storage_path": "p", "checksum": "abc"}
            ]
        },
        "artifacts[0].checksum",
    ),
]


def test_other_bad_fields(seeded: Registry) -> None:
    for given, field in OTHER_BAD_FIELDS:
        exc = refused(seeded, ValidationError, lambda g=given: seeded.register(**fields(**g)))
        assert field in exc.errors, given


# --------------------------------------------------------------------------- other operations


def test_an_unknown_stage(seeded: Registry) -> None:
    for stage in ("deployed", "", None, 3):
        exc = refused(seeded, ValidationError, lambda s=stage: seeded.promote(1, s))
        assert list(exc.errors) == ["stage"], stage
    assert seeded.get_version(1).stage is Stage.STAGING


def test_unknown_ref_syntax(seeded: Registry) -> None:
    for ref in ("no-at-sign", "@1", f"{MODEL}@", "bad name@1", 0, None, 2.5):
        exc = refused(seeded, ValidationError, lambda r=ref: seeded.get_version(r))
        assert list(exc.errors) == ["ref"], ref
        exc = refused(seeded, ValidationError, lambda r=ref: seeded.promote(r, "production"))
        assert list(exc.errors) == ["version"], ref


def test_promoting_an_unknown_version(seeded: Registry) -> None:
    exc = refused(seeded, NotFoundError, lambda: seeded.promote(f"{MODEL}@7", "production"))
    assert exc.kind == "version"


def test_bad_tags(seeded: Registry) -> None:
    exc = refused(seeded, ValidationError, lambda: seeded.add_tags(1, ["ok", ""]))
    assert list(exc.errors) == ["tags"]


# --------------------------------------------------------------------------- the schema


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database without the registry's schema."""
    if request.param == "sqlite":
        (tmp_path / "empty.db").touch()  # an empty file is an empty SQLite database
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server = str(request.getfixturevalue("postgres_server"))
    name = database_name("empty")
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_an_unmigrated_database_names_the_command(empty_db_url: str) -> None:
    registry = Registry.from_url(empty_db_url)
    try:
        with pytest.raises(SchemaNotReadyError) as info:
            registry.register(**fields())
        assert info.value.command == "cmr db upgrade"
        with pytest.raises(SchemaNotReadyError):
            registry.get_version("m@latest")
        assert inspect(registry.engine).get_table_names() == []
    finally:
        registry.close()


def test_a_schema_from_a_newer_release_says_to_upgrade_the_package(empty_db_url: str) -> None:
    # A revision this release does not know: migrating cannot help, upgrading the package can.
    setup = Registry.from_url(empty_db_url)
    setup.migrate()
    with setup.engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    setup.close()
    registry = Registry.from_url(empty_db_url)
    try:
        with pytest.raises(SchemaNotReadyError) as info:
            registry.list_models()
        assert info.value.command == "pip install -U crucible-model-registry"
    finally:
        registry.close()


def test_a_schema_from_an_older_release_names_the_command_then_upgrades(
    empty_db_url: str,
) -> None:
    setup = Registry.from_url(empty_db_url)
    schema.migrate(setup.engine, "0001")
    setup.close()
    registry = Registry.from_url(empty_db_url)
    try:
        with pytest.raises(SchemaNotReadyError) as info:
            registry.list_models()
        assert info.value.command == "cmr db upgrade"
        needs = f"needs {schema.HEAD_REVISION}"
        assert "at revision 0001, this version of crucible-model-registry " + needs in str(
            info.value
        )
        assert "cmr_pending_uploads" not in inspect(registry.engine).get_table_names()

        registry.migrate()
        assert registry.register(**fields()).version == "1"
        assert "cmr_pending_uploads" in inspect(registry.engine).get_table_names()
    finally:
        registry.close()


def test_auto_migrate_brings_an_older_schema_to_the_head(empty_db_url: str) -> None:
    # What the embedded default does for a registry.db made by the previous release.
    setup = Registry.from_url(empty_db_url)
    schema.migrate(setup.engine, "0001")
    setup.close()
    registry = Registry.from_url(empty_db_url, auto_migrate=True)
    try:
        assert registry.register(**fields()).version == "1"
        assert schema.current_revision(registry.engine) == schema.HEAD_REVISION
    finally:
        registry.close()


def test_migrate_then_use(empty_db_url: str) -> None:
    registry = Registry.from_url(empty_db_url)
    try:
        registry.migrate()
        registry.migrate()  # idempotent
        assert registry.register(**fields()).version == "1"
    finally:
        registry.close()


_FIRST_USE = """
import json, crucible_model_registry as cmr
v = cmr.register(model_name="demo", recipe="sft", base_model="org/base",
                 training_config={"lr": 1e-4}, metrics={"accuracy": 0.9})
print(json.dumps({"id": v.id, "version": v.version, "n": len(cmr.list_models())}))
"""


def test_the_embedded_default_needs_no_set_up(tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    env["CMR_HOME"] = str(home)
    first = subprocess.run(
        [sys.executable, "-c", _FIRST_USE], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(first.stdout) == {"id": 1, "version": "1", "n": 1}
    assert (home / "registry.db").is_file()
    second = subprocess.run(
        [sys.executable, "-c", _FIRST_USE.replace('{"lr": 1e-4}', '{"lr": 2e-4}')],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(second.stdout) == {"id": 2, "version": "2", "n": 1}


# --------------------------------------------------------------------------- hostile input
# Issue 14 (findings 7, 8, 12): every database accepts and refuses the same input, decided
# in domain/ before any SQL; before, SQLite stored what PostgreSQL refused with a raw
# DatabaseError, and some input raised OverflowError, UnicodeEncodeError or RecursionError.

ART = {"type": "other", "storage_backend": "s3", "storage_path": "s3://b/k"}


def _text_inputs(bad: str) -> list[tuple[str, str, Any]]:
    """(label, field, call) for every text input of the public API, given ``bad`` text."""
    return [
        ("recipe", "recipe", lambda r: r.register(**fields(recipe=f"r{bad}"))),
        ("base_model", "base_model", lambda r: r.register(**fields(base_model=f"b{bad}"))),
        ("description", "description", lambda r: r.register(**fields(description=f"d{bad}"))),
        ("tags", "tags", lambda r: r.register(**fields(tags=[f"t{bad}"]))),
        ("metric", "metrics", lambda r: r.register(**fields(metrics={f"m{bad}": 1.0}))),
        (
            "storage_path",
            "artifacts[0].storage_path",
            lambda r: r.register(**fields(artifacts=[{**ART, "storage_path": f"p{bad}"}])),
        ),
        (
            "storage_backend",
            "artifacts[0].storage_backend",
            lambda r: r.register(**fields(artifacts=[{**ART, "storage_backend": f"s{bad}"}])),
        ),
        ("parent ref", "parents", lambda r: r.register(**fields(parents=[f"{MODEL}@1{bad}"]))),
        ("model description", "description", lambda r: r.update_model(MODEL, description=bad)),
        ("model tags", "tags", lambda r: r.update_model(MODEL, tags=[f"t{bad}"])),
        ("ref", "ref", lambda r: r.get_version(f"{MODEL}@1{bad}")),
        ("promote ref", "version", lambda r: r.promote(f"{MODEL}@1{bad}", "production")),
        ("promote reason", "reason", lambda r: r.promote(1, "production", reason=f"x{bad}")),
        ("alias reason", "reason", lambda r: r.set_alias(1, "champion", reason=f"x{bad}")),
        ("alias", "alias", lambda r: r.set_alias(1, f"champion{bad}")),
        ("delete alias reason", "reason", lambda r: r.delete_alias(MODEL, "a", reason=bad)),
        ("add tags", "tags", lambda r: r.add_tags(1, [f"t{bad}"])),
        ("remove tags", "tags", lambda r: r.remove_tags(1, [f"t{bad}"])),
        ("update metrics", "metrics", lambda r: r.update_metrics(1, {f"m{bad}": 1.0})),
        ("lineage parent", "parent", lambda r: r.add_lineage(f"{MODEL}@1{bad}", 1)),
        ("query recipe", "recipe", lambda r: r.query({"recipe": f"r{bad}"})),
        ("query tag", "tag", lambda r: r.query({"tag": f"t{bad}"})),
        ("query metric", "metric.name", lambda r: r.query({"metric": (f"m{bad}", ">", 0)})),
        ("model name", "name", lambda r: r.get_model(f"m{bad}")),
    ]


@pytest.mark.parametrize("bad", ["\x00", "\x1b[31m", "\u202e", "\ud800"], ids=repr)
def test_nul_control_characters_and_lone_surrogates_are_refused_everywhere(
    seeded: Registry, bad: str
) -> None:
    for label, field, call in _text_inputs(bad):
        exc = refused(seeded, ValidationError, lambda c=call: c(seeded))
        assert field in exc.errors, (label, exc.errors)
        str(exc).encode("utf-8")  # the message itself is printable
    assert seeded.get_version(1).stage is Stage.STAGING


def test_lone_surrogates_in_configs_and_metadata_are_refused(seeded: Registry) -> None:
    exc = refused(
        seeded, ValidationError, lambda: seeded.register(**fields(training_config={"k": "\udcff"}))
    )
    assert list(exc.errors) == ["training_config.k"]
    exc = refused(
        seeded, ValidationError, lambda: seeded.update_model(MODEL, metadata={"\udcff": 1})
    )
    assert [k.startswith("metadata.") for k in exc.errors] == [True]
    str(exc).encode("utf-8")
    assert seeded.get_model(MODEL).metadata == {}


LIMITS = [
    ("recipe", 255, lambda r, t: r.register(**fields(recipe=t))),
    ("base_model", 512, lambda r, t: r.register(**fields(base_model=t))),
    ("description", 10_000, lambda r, t: r.register(**fields(description=t))),
    ("tags", 100, lambda r, t: r.register(**fields(tags=[t]))),
    ("metrics", 255, lambda r, t: r.register(**fields(metrics={t: 1.0}))),
    (
        "artifacts[0].storage_path",
        2048,
        lambda r, t: r.register(**fields(artifacts=[{**ART, "storage_path": t}])),
    ),
    ("description", 10_000, lambda r, t: r.update_model(MODEL, description=t)),
    ("reason", 10_000, lambda r, t: r.promote(1, "production", reason=t)),
]


@pytest.mark.parametrize(("field", "limit", "call"), LIMITS, ids=[f[0] for f in LIMITS])
def test_text_up_to_its_column_size_is_accepted_and_one_more_character_refused(
    seeded: Registry, field: str, limit: int, call: Any
) -> None:
    exc = refused(seeded, ValidationError, lambda: call(seeded, "x" * (limit + 1)))
    assert field in exc.errors
    call(seeded, "x" * limit)  # the longest accepted text fits the column on every database


def test_register_and_update_model_agree_on_line_breaks(seeded: Registry) -> None:
    text_with_breaks = "first line\nsecond line\r\n\tindented"
    v = seeded.register(**fields(description=text_with_breaks))
    assert v.description == text_with_breaks
    assert seeded.update_model(MODEL, description=text_with_breaks).description == (
        text_with_breaks
    )
    for call in (
        lambda: seeded.register(**fields(description="bell\x07")),
        lambda: seeded.update_model(MODEL, description="bell\x07"),
    ):
        assert list(refused(seeded, ValidationError, call).errors) == ["description"]


HUGE = 10**30


@pytest.mark.parametrize(
    ("field", "call"),
    [
        ("ref", lambda r: r.get_version(HUGE)),
        ("ref", lambda r: r.get_version(str(HUGE))),
        ("version", lambda r: r.promote(HUGE, "production")),
        ("parents", lambda r: r.register(**fields(parents=[HUGE]))),
        ("parent_version_id", lambda r: r.register(**fields(parent_version_id=HUGE))),
        ("artifact", lambda r: r.verify_artifact(HUGE)),
        ("artifact", lambda r: r.delete_artifact(HUGE)),
        ("max_depth", lambda r: r.get_ancestors(1, max_depth=HUGE)),
        ("max_depth", lambda r: r.get_lineage(1, max_depth=2**31)),
        (
            "artifacts[0].size_bytes",
            lambda r: r.register(**fields(artifacts=[{**ART, "size_bytes": HUGE}])),
        ),
        ("metrics.m", lambda r: r.update_metrics(1, {"m": 10**400})),
        ("metrics.m", lambda r: r.register(**fields(metrics={"m": 10**400}))),
        ("metric.value", lambda r: r.query({"metric": ("accuracy", ">", 10**400)})),
    ],
)
def test_numbers_beyond_the_database_integers_are_refused(
    seeded: Registry, field: str, call: Any
) -> None:
    exc = refused(seeded, ValidationError, lambda: call(seeded))
    assert list(exc.errors) == [field]


def test_query_limits_beyond_the_database_integers_are_refused(seeded: Registry) -> None:
    from crucible_model_registry import Query

    for field, make in (
        ("limit", lambda: Query().limit(HUGE)),
        ("offset", lambda: Query().offset(HUGE)),
        ("size", lambda: Query().page(HUGE)),
        ("max_depth", lambda: Query().where_descendant_of(1, max_depth=HUGE)),
    ):
        with pytest.raises(ValidationError) as info:
            make()
        assert list(info.value.errors) == [field]


def _nested(levels: int) -> dict[str, Any]:
    config: dict[str, Any] = {}
    node = config
    for _ in range(levels):
        node["a"] = {}
        node = node["a"]
    return config


def test_a_config_nested_too_deep_is_refused(seeded: Registry) -> None:
    for config in (_nested(2000), _nested(101)):
        exc = refused(
            seeded, ValidationError, lambda c=config: seeded.register(**fields(training_config=c))
        )
        assert list(exc.errors) == ["training_config"]
    assert seeded.register(**fields(training_config=_nested(99))).version == "2"


def test_metadata_nested_too_deep_is_refused(seeded: Registry) -> None:
    exc = refused(
        seeded, ValidationError, lambda: seeded.update_model(MODEL, metadata=_nested(2000))
    )
    assert list(exc.errors) == ["metadata"]
    child = seeded.register(**fields())
    exc = refused(
        seeded, ValidationError, lambda: seeded.add_lineage(1, child, metadata=_nested(2000))
    )
    assert list(exc.errors) == ["metadata"]


def test_a_config_that_contains_itself_is_refused(seeded: Registry) -> None:
    config: dict[str, Any] = {"lr": 1e-4}
    config["self"] = config
    exc = refused(
        seeded, ValidationError, lambda: seeded.register(**fields(training_config=config))
    )
    assert list(exc.errors) == ["training_config"]


@pytest.mark.timeout(120)
def test_a_config_of_shared_references_is_refused_without_expanding_it(seeded: Registry) -> None:
    # Nine levels of nine references to one list: 9**9 leaves (387 million), a few objects.
    bomb: Any = ["lol"]
    for _ in range(9):
        bomb = [bomb] * 9
    exc = refused(
        seeded, ValidationError, lambda: seeded.register(**fields(training_config={"x": bomb}))
    )
    assert list(exc.errors) == ["training_config"]


def test_a_config_over_4_mib_is_refused(seeded: Registry) -> None:
    config = {"files": ["f" * 1000 + str(i) for i in range(4200)]}
    exc = refused(
        seeded, ValidationError, lambda: seeded.register(**fields(training_config=config))
    )
    assert list(exc.errors) == ["training_config"]


# --------------------------------------------------------------------------- Unicode NFC

CAFE_NFC = "caf\u00e9"
CAFE_NFD = "cafe\u0301"


def test_nfc_and_nfd_spellings_are_one_training_run(seeded: Registry) -> None:
    nfd = seeded.register(
        **fields(
            recipe=f"{CAFE_NFD}-sft",
            base_model=f"org/{CAFE_NFD}",
            training_config={f"cl{CAFE_NFD}": CAFE_NFD},
            tags=[CAFE_NFD],
            metrics={f"{CAFE_NFD}_acc": 0.5},
            description=CAFE_NFD,
        )
    )
    assert (nfd.recipe, nfd.base_model) == (f"{CAFE_NFC}-sft", f"org/{CAFE_NFC}")
    assert nfd.training_config == {f"cl{CAFE_NFC}": CAFE_NFC}
    assert (nfd.tags, list(nfd.metrics), nfd.description) == (
        [CAFE_NFC],
        [f"{CAFE_NFC}_acc"],
        CAFE_NFC,
    )
    exc = refused(
        seeded,
        DuplicateConfigError,
        lambda: seeded.register(
            **fields(
                recipe=f"{CAFE_NFC}-sft",
                base_model=f"org/{CAFE_NFC}",
                training_config={f"cl{CAFE_NFC}": CAFE_NFC},
            )
        ),
    )
    assert exc.existing.id == nfd.id
    assert [v.id for v in seeded.query({"recipe": f"{CAFE_NFD}-sft", "tag": CAFE_NFC})] == [nfd.id]


def test_two_spellings_of_one_key_in_a_config_are_refused(seeded: Registry) -> None:
    config = {f"cl{CAFE_NFC}": 1, f"cl{CAFE_NFD}": 2}
    exc = refused(
        seeded, ValidationError, lambda: seeded.register(**fields(training_config=config))
    )
    assert all(key.startswith("training_config.") for key in exc.errors)


@pytest.mark.parametrize("actor", ["a" * 256, "bad\udcffbyte", "tab\there"], ids=repr)
def test_an_unstorable_cmr_actor_is_a_configuration_error(
    seeded: Registry, monkeypatch: pytest.MonkeyPatch, actor: str
) -> None:
    monkeypatch.setenv("CMR_ACTOR", actor)
    for call in (
        lambda: seeded.register(**fields()),
        lambda: seeded.promote(1, "production"),
        lambda: seeded.set_alias(1, "champion"),
    ):
        exc = refused(seeded, ConfigurationError, call)
        assert "CMR_ACTOR" in str(exc)
        str(exc).encode("utf-8")
    assert seeded.get_version(1).stage is Stage.STAGING


def test_artifact_paths_and_names_no_file_system_or_database_can_hold(
    seeded: Registry, tmp_path: Path
) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights")
    undecodable = Path(os.fsdecode(bytes(tmp_path) + b"/w\xff.bin"))  # a real file name
    undecodable.write_bytes(b"weights")
    for field, call in (
        ("name", lambda: seeded.upload_artifact(1, "other", src, name="a\ud800")),
        ("name", lambda: seeded.upload_artifact(1, "other", src, name="a\x00")),
        ("name", lambda: seeded.upload_artifact(1, "other", undecodable)),
        ("path", lambda: seeded.upload_artifact(1, "other", f"{src}\x00")),
        ("path", lambda: seeded.upload_artifact(1, "other", f"{src}\ud800")),
        ("storage", lambda: seeded.upload_artifact(1, "other", src, storage="s3\ud800")),
    ):
        exc = refused(seeded, ValidationError, call)
        assert list(exc.errors) == [field]
        str(exc).encode("utf-8")
    artifact = seeded.upload_artifact(1, "other", undecodable, name="w.bin")
    for dest in (tmp_path / "out\x00.bin", f"{tmp_path}/out\ud800.bin"):
        exc = refused(seeded, ValidationError, lambda d=dest: seeded.download_artifact(artifact, d))
        assert list(exc.errors) == ["dest"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("out")]
