"""``cmr`` itself, ``init``, ``db upgrade``, global options and the error contract."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.cli.runner import CMR, Runner, assert_user_error
from tests.pg_names import database_name

from crucible_model_registry import Registry
from crucible_model_registry.store.schema import HEAD_REVISION, current_revision


def test_help_lists_every_command(cmr: Runner):
    result = cmr("--help")
    assert result.code == 0
    for command in (
        "init", "db", "register", "query", "list", "show", "promote", "history", "lineage",
        "upload", "download", "url", "verify", "models", "alias", "policy", "metrics", "tag",
        "delete", "demo", "diff",
    ):  # fmt: skip
        assert f" {command} " in result.stdout, command


def test_no_arguments_shows_help(cmr: Runner):
    result = cmr()
    assert result.code == 0
    assert "Usage" in result.stdout


def test_version(cmr: Runner):
    from crucible_model_registry import __version__

    result = cmr("--version")
    assert result.code == 0
    assert __version__ in result.stdout


def test_unknown_command_is_a_user_error(cmr: Runner):
    assert_user_error(cmr("frobnicate"))


def test_unknown_option_is_a_user_error(cmr: Runner):
    assert_user_error(cmr("query", "--no-such-option"))


def test_init_creates_the_embedded_registry(cmr: Runner, home: Path):
    result = cmr("init", "--json")
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["embedded"] is True
    assert report["revision_before"] is None
    assert report["revision"] == HEAD_REVISION
    assert report["storage_backend"] == "local"
    engine = create_engine(f"sqlite:///{home / 'registry.db'}")
    try:
        assert current_revision(engine) == HEAD_REVISION
    finally:
        engine.dispose()

    again = cmr("init")
    assert again.code == 0
    assert "already" in again.stdout


def test_db_upgrade_migrates_the_given_sqlite_url(cmr: Runner, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    result = cmr("db", "upgrade", "--url", url, "--json")
    assert result.code == 0, result.stderr
    assert result.json()["revision"] == HEAD_REVISION
    engine = create_engine(url)
    try:
        assert current_revision(engine) == HEAD_REVISION
    finally:
        engine.dispose()


def test_db_upgrade_with_a_bad_url_is_a_user_error(cmr: Runner):
    assert_user_error(cmr("db", "upgrade", "--url", "nosuchdriver://x/y"))


@pytest.mark.postgres
def test_db_upgrade_on_postgresql_then_use_it(cmr: Runner, postgres_server: str):
    name = database_name("cli")
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    try:
        unmigrated = cmr("--database-url", url, "query")
        assert_user_error(unmigrated)
        assert "cmr db upgrade" in unmigrated.stderr

        assert cmr("db", "upgrade", "--url", url).code == 0
        registered = cmr(
            "--database-url", url, "-q", "register", "pg-model", "-r", "sft", "-b", "base"
        )
        assert registered.code == 0, registered.stderr
        found = cmr("--database-url", url, "query", "--json").json()
        assert [v["model_name"] for v in found] == ["pg-model"]
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_unmigrated_database_names_the_command_to_run(cmr: Runner, tmp_path: Path):
    (tmp_path / "empty.db").touch()  # an empty SQLite database: it exists, without schema
    result = cmr("--database-url", f"sqlite:///{tmp_path / 'empty.db'}", "models")
    assert_user_error(result)
    assert "cmr db upgrade" in result.stderr


def test_debug_shows_the_traceback(cmr: Runner, seeded_home: Path):
    for args in (("--debug", "show", "999"), ("show", "999", "--debug")):
        debug = cmr(*args)
        assert debug.code == 1
        assert "Traceback" in debug.stderr
        assert debug.stderr.splitlines()[-1].startswith("error: ")


def test_bad_settings_are_a_user_error(cmr: Runner, seeded_home: Path):
    result = cmr("models", env={"CMR_STORAGE_OPTIONS": "not json"})
    assert_user_error(result)


def test_quiet_after_the_command(cmr: Runner, seeded_home: Path):
    after = cmr("register", "m", "-r", "dpo", "-b", "base", "-q")
    assert after.code == 0
    assert after.stdout == "1\n"


def test_init_on_a_bad_database_url_is_a_user_error(cmr: Runner, home: Path):
    assert_user_error(cmr("--database-url", "nosuchdriver://x/y", "init"))


def test_demo_on_an_unmigrated_database_is_a_user_error(cmr: Runner, tmp_path: Path):
    (tmp_path / "empty.db").touch()  # an empty SQLite database: it exists, without schema
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = cmr("--database-url", url, "demo")
    assert_user_error(result)
    assert "cmr db upgrade" in result.stderr


def test_storage_option_picks_the_backend(cmr: Runner, home_registry: Registry, tmp_path: Path):
    home_registry.register(model_name="m", recipe="sft", base_model="base", training_config={})
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"abc")
    assert_user_error(cmr("--storage", "nosuch", "upload", "m@1", "checkpoint", str(weights)))
    uploaded = cmr("--storage", "noop", "upload", "m@1", "checkpoint", str(weights), "--json")
    assert uploaded.code == 0, uploaded.stderr
    assert uploaded.json()["storage_backend"] == "noop"


def test_shell_completion(cmr: Runner, home: Path):
    # `--show-completion` names no shell: typer finds it among the process's ancestors, as it
    # does when a person types it. Run it from bash, so it does not depend on how pytest started.
    script = subprocess.run(
        ["bash", "-c", '"$@"; exit $?', "bash", *CMR, "--show-completion"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert script.returncode == 0, script.stderr
    assert "_CMR_COMPLETE" in script.stdout
    stages = cmr(env={"_CMR_COMPLETE": "complete_bash", "COMP_WORDS": "cmr promote x ",
                      "COMP_CWORD": "3"})  # fmt: skip
    assert stages.stdout.split() == ["experiment", "staging", "production", "archived"]


def test_every_noun_module_lists_its_commands():
    """`run` builds only the module a command lives in: the table must match the modules."""
    import importlib

    from crucible_model_registry.cli import _NOUNS

    for noun, listed in _NOUNS.items():
        app = importlib.import_module(f"crucible_model_registry.cli.{noun}").app
        names = {info.name or info.callback.__name__ for info in app.registered_commands}
        names |= {info.name for info in app.registered_groups}
        assert names == set(listed), noun
