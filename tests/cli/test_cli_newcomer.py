"""What a new user stumbled on (issue 20): the messages and behaviour that now guide them.

Each test runs the real ``cmr`` and asserts the words the issue asked for, because here the
message is the feature.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cli.runner import Runner, assert_user_error

from crucible_model_registry import Registry


def _register(registry: Registry, name: str = "m", **fields):
    defaults = {"recipe": "sft", "base_model": "base", "training_config": {}}
    return registry.register(model_name=name, **{**defaults, **fields})


# ------------------------------------------------------------------ 7: --database-url foo


def test_a_malformed_database_url_is_shown_with_an_example(cmr: Runner, home: Path):
    result = cmr("--database-url", "foo", "query")
    assert_user_error(result)
    assert "'foo'" in result.stderr
    assert "sqlite:////" in result.stderr
    assert "postgresql://" in result.stderr


def test_a_malformed_database_url_never_shows_its_password(cmr: Runner, home: Path):
    result = cmr("--database-url", "postgres//alice:s3cret@db/registry", "query")
    assert_user_error(result)
    assert "s3cret" not in result.stderr
    assert "alice:***@db/registry" in result.stderr


# ------------------------------------------------------------------ 8: CMR_HOME unusable


def test_an_unusable_cmr_home_is_named_with_what_to_do(cmr: Runner, tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = cmr("query", env={"CMR_HOME": str(blocker / "home")})
    assert_user_error(result)
    assert f"CMR_HOME='{blocker / 'home'}'" in result.stderr
    assert "set CMR_HOME to a directory you can write" in result.stderr


# ------------------------------------------------------------------ 14: no database by typo


@pytest.mark.parametrize("command", [("query",), ("show", "m@1"), ("models",), ("history", "m")])
def test_reading_commands_do_not_create_a_missing_sqlite_file(
    cmr: Runner, home: Path, tmp_path: Path, command: tuple[str, ...]
):
    typo = tmp_path / "typo.db"
    result = cmr("--database-url", f"sqlite:///{typo}", *command)
    assert_user_error(result)
    assert str(typo) in result.stderr
    assert "cmr init" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_relative_sqlite_path_says_how_to_write_an_absolute_one(cmr: Runner, tmp_path: Path):
    result = cmr("--database-url", "sqlite:///work/typo.db", "query", cwd=tmp_path)
    assert_user_error(result)
    assert f"no registry database at {tmp_path / 'work' / 'typo.db'}" in result.stderr
    assert f"sqlite:///{tmp_path / 'work' / 'typo.db'}" in result.stderr
    assert not (tmp_path / "work").exists()


def test_init_and_db_upgrade_still_create_the_file(cmr: Runner, tmp_path: Path):
    for command in (("init",), ("db", "upgrade")):
        path = tmp_path / f"{command[-1]}.db"
        created = cmr("--database-url", f"sqlite:///{path}", *command)
        assert created.code == 0, created.stderr
        assert cmr("--database-url", f"sqlite:///{path}", "query", "--json").json() == []


def test_the_embedded_default_still_creates_itself(cmr: Runner, home: Path):
    result = cmr("query", "--json")
    assert result.code == 0, result.stderr
    assert (home / "registry.db").exists()


# ------------------------------------------------------------------ 10: suggestions


def test_a_stage_alias_is_not_listed_as_a_stage_and_the_nearest_is_suggested(
    cmr: Runner, home_registry: Registry
):
    v = _register(home_registry)
    result = cmr("promote", v.ref, "prod")
    assert_user_error(result)
    assert "did you mean production?" in result.stderr
    listed = result.stderr.split("choose one of ", 1)[1]
    assert listed.startswith("experiment, staging, production, archived (")
    assert "development is accepted for experiment" in listed
    assert home_registry.get_version(v.id).stage.value == "experiment"


@pytest.mark.parametrize(
    ("args", "suggestion"),
    [
        (("register", "m", "-r", "sft", "-b", "base", "-p", "m@1", "-l", "finetuned"),
         "fine_tuned_from"),
        (("upload", "m@1", "chekpoint", "README.md"), "checkpoint"),
        (("query", "--stage", "stagin"), "staging"),
    ],
)  # fmt: skip
def test_relationships_artifact_types_and_stages_suggest_the_nearest(
    cmr: Runner, home_registry: Registry, args: tuple[str, ...], suggestion: str
):
    _register(home_registry)
    result = cmr(*args)
    assert_user_error(result)
    assert f"did you mean {suggestion}?" in result.stderr
    assert [v.version for v in home_registry.query({"model_name": "m"})] == ["1"]


def test_no_suggestion_for_input_that_resembles_nothing(cmr: Runner, home_registry: Registry):
    v = _register(home_registry)
    result = cmr("promote", v.ref, "heaven")
    assert_user_error(result)
    assert "did you mean" not in result.stderr
