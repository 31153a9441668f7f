"""What a new user stumbled on (issue 20): the messages and behaviour that now guide them.

Each test runs the real ``cmr`` and asserts the words the issue asked for, because here the
message is the feature.
"""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
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


# ------------------------------------------------------------------ 2: what was archived


def test_promote_archive_existing_says_which_versions_it_archived(
    cmr: Runner, home_registry: Registry
):
    old, older, new = (_register(home_registry, training_config={"n": n}) for n in (1, 2, 3))
    home_registry.promote(old, "production")
    home_registry.promote(older, "production")
    result = cmr("promote", new.ref, "production", "--archive-existing")
    assert result.code == 0, result.stderr
    assert "Archived m@1, m@2 (the model's other production versions)" in result.stdout
    assert {home_registry.get_version(v.id).stage.value for v in (old, older)} == {"archived"}


def test_promote_into_an_exclusive_stage_says_whom_it_archived_in_json(
    cmr: Runner, home_registry: Registry
):
    from crucible_model_registry import PromotionPolicy

    old, new = (_register(home_registry, training_config={"n": n}) for n in (1, 2))
    home_registry.set_promotion_policy("m", PromotionPolicy(exclusive=["production"]))
    home_registry.promote(old, "production")
    doc = cmr("promote", new.ref, "production", "--json").json()
    assert doc["stage"] == "production"
    assert doc["archived"] == [{"id": old.id, "ref": old.ref}]
    plain = cmr("promote", old.ref, "staging")
    assert "Archived" not in plain.stdout


# ------------------------------------------------------------------ 4: show --json shape


def test_show_json_puts_the_version_fields_at_the_top(cmr: Runner, home_registry: Registry):
    parent = _register(home_registry, "base", training_config={"n": 0})
    v = _register(home_registry, metrics={"accuracy": 0.9}, parents=[parent])
    doc = cmr("show", v.ref, "--json").json()
    assert (doc["id"], doc["version"], doc["stage"]) == (v.id, "1", "experiment")
    assert doc["metrics"]["accuracy"] == 0.9
    assert [p["ref"] for p in doc["lineage"]["parents"]] == ["base@1"]
    assert doc["lineage"]["children"] == []
    assert [t["to_stage"] for t in doc["stage_history"]] == ["experiment"]


# ------------------------------------------------------------------ 17: two in production


def test_show_warns_when_a_stage_ref_picks_one_of_several(cmr: Runner, home_registry: Registry):
    first, second = (_register(home_registry, training_config={"n": n}) for n in (1, 2))
    home_registry.promote(first, "production")
    home_registry.promote(second, "production")
    result = cmr("show", "m@production")
    assert result.code == 0, result.stderr
    assert result.stderr.startswith("warning: 2 versions of m are in production; ")
    assert "the most recently registered one, m@2 (also there: m@1)" in result.stderr
    assert "--archive-existing" in result.stderr
    doc = cmr("show", "m@production", "--json")
    assert doc.stderr == ""
    assert doc.json()["id"] == second.id
    assert "m@1" in doc.json()["warnings"][0]


def test_show_does_not_warn_for_one_holder_or_an_exact_ref(cmr: Runner, home_registry: Registry):
    first, second = (_register(home_registry, training_config={"n": n}) for n in (1, 2))
    home_registry.promote(first, "production")
    assert cmr("show", "m@production").stderr == ""
    home_registry.promote(second, "production")
    assert cmr("show", "m@2").stderr == ""


# ------------------------------------------------------------------ 3: tables at 80 columns


def _long_names(registry: Registry) -> None:
    registry.register(
        model_name="all-MiniLM-L6-v2-finetuned", version="1.0.0-rc.1",
        recipe="sentence-transformers-pretrained-contrastive",
        base_model="sentence-transformers/all-MiniLM-L6-v2", training_config={},
        metrics={"accuracy": 0.91, "recall_at_10": 0.76},
        tags=["pretrained-embeddings", "multilingual_retrieval"],
        artifacts=[{"type": "checkpoint", "storage_backend": "s3",
                    "storage_path": "s3://bucket/runs/2026-12-04/all-MiniLM-L6-v2/ckpt-final/"}],
    )  # fmt: skip
    registry.register(
        model_name="bge-small-en-v1.5-msmarco", recipe="sft", base_model="BAAI/bge-small-en-v1.5",
        training_config={}, metrics={"ndcg_at_10": 0.41}, tags=["retrieval"],
    )  # fmt: skip


@pytest.mark.parametrize("columns", [80, 120])
def test_query_tables_wrap_at_separators_and_keep_ids_and_versions_whole(
    cmr: Runner, home_registry: Registry, columns: int
):
    _long_names(home_registry)
    result = cmr("query", env={"COLUMNS": str(columns)})
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    words = result.stdout.split()
    # Every piece between separators arrives whole, on one line: nothing like "pretra" / "ined".
    for piece in ("sentence-", "transformers-", "pretrained-", "contrastive", "embeddings,",
                  "retrieval", "experiment", "1.0.0-rc.1", "accuracy=0.91"):  # fmt: skip
        assert any(piece in word for word in words), (piece, result.stdout)
    assert "…" not in result.stdout
    assert [line.split()[0] for line in lines[2:] if line[:5].strip().isdigit()] == ["1", "2"]


def test_a_table_too_wide_for_80_columns_truncates_words_but_keeps_versions_whole(
    cmr: Runner, home_registry: Registry
):
    _register(home_registry, "all-MiniLM-L6-v2-finetuned", version="2.0.0-rc.1+build.20261204",
              recipe="sentence-transformers-pretrained-contrastive", metrics={"recall_at_10": 1},
              tags=["pretrained-embeddings", "multilingual_retrieval"])  # fmt: skip
    result = cmr("query", env={"COLUMNS": "80"})
    assert result.code == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    words = result.stdout.split()
    assert "2.0.0-rc.1+build.20261204" in words
    assert "experiment" in words
    # A piece that does not fit ends in an ellipsis: no fragment such as "mers-" or "ive".
    pieces = (
        "sentence-",
        "transformers-",
        "pretrained-",
        "contrastive",
        "embeddings,",
        "multilingual_",
    )
    for word in words[words.index("tags") + 1 :]:
        if word.endswith("…"):
            assert any(p.startswith(word[:-1]) for p in pieces) or "@" in word, word


@pytest.mark.parametrize("columns", [80, 120])
def test_show_folds_an_artifact_path_at_slashes(cmr: Runner, home_registry: Registry, columns):
    _long_names(home_registry)
    result = cmr("show", "all-MiniLM-L6-v2-finetuned@latest", env={"COLUMNS": str(columns)})
    assert result.code == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= columns
    pieces = ("s3://", "bucket/", "runs/", "2026-12-04/", "ckpt-final/")
    words = result.stdout.split()
    for piece in pieces:
        assert any(piece in word for word in words), (piece, result.stdout)


# ------------------------------------------------------------------ 15: a complete policy file

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_block(language: str, containing: str) -> str:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)
    [block] = [b for b in blocks if containing in b]
    return str(block)


def test_the_readme_policy_files_parse_apply_and_agree(
    cmr: Runner, home_registry: Registry, tmp_path: Path
):
    from crucible_model_registry.cli.policy import EXAMPLE_TOML

    toml_text = _readme_block("toml", "[gates.production]")
    assert toml_text == EXAMPLE_TOML
    (tmp_path / "policy.toml").write_text(toml_text)
    (tmp_path / "policy.yaml").write_text(_readme_block("yaml", "gates:"))
    shown = []
    for model, file in (("a", "policy.toml"), ("b", "policy.yaml")):
        _register(home_registry, model, training_config={"model": model})
        stored = cmr("policy", "set", model, str(tmp_path / file), "--json")
        assert stored.code == 0, stored.stderr
        shown.append(stored.json()["policy"])
    assert shown[0] == shown[1]
    assert {"allowed", "gates", "exclusive"} <= set(shown[0])
    gate = shown[0]["gates"]["production"]["where"]["all"]
    ops = {c["metric"][1] for c in gate if "metric" in c}
    assert ops == {"gt", "gte", "lt", "lte", "eq", "ne"}

    v = _register(home_registry, "a", training_config={"try": 1}, metrics={"accuracy": 0.8})
    denied = cmr("promote", v.ref, "staging")
    assert_user_error(denied)
    assert "accuracy >= 0.85" in denied.stderr
    assert home_registry.get_version(v.id).stage.value == "experiment"


def test_policy_set_help_shows_the_complete_file(cmr: Runner):
    from crucible_model_registry.cli.policy import EXAMPLE_TOML

    result = cmr("policy", "set", "--help")
    assert result.code == 0
    shown = [line.strip() for line in result.stdout.splitlines()]
    for line in EXAMPLE_TOML.splitlines():
        assert line.strip() in shown, line


# ------------------------------------------------------------------ 16: the Hub double, one line


@pytest.mark.hf
def test_the_hub_double_runs_from_one_command_and_serves_cmr(
    cmr: Runner, seeded_home: Path, tmp_path: Path
):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "tests.servers.hub", "--port", str(port)]
    with subprocess.Popen(
        [*command, "--root", str(tmp_path / "hub")], cwd=root, stdout=subprocess.PIPE, text=True
    ) as hub:
        try:
            _use_the_printed_settings(cmr, hub, port, tmp_path)
        finally:
            hub.terminate()


def _use_the_printed_settings(cmr: Runner, hub: subprocess.Popen[str], port: int, tmp_path):
    """Run ``cmr`` with exactly the ``export`` lines the double printed."""
    assert hub.stdout is not None
    printed = [hub.stdout.readline() for _ in range(4)]
    env: dict[str, str] = {}
    for line in printed:
        if line.strip().startswith("export "):
            for word in shlex.split(line.strip().removeprefix("export ")):
                name, _, value = word.partition("=")
                env[name] = value
    assert env["HF_HUB_DISABLE_XET"] == "1"
    assert f"http://127.0.0.1:{port}" in env["CMR_STORAGE_OPTIONS"]
    blob = tmp_path / "weights.bin"
    blob.write_bytes(b"hub bytes")
    assert cmr("-q", "register", "m", "-r", "sft", "-b", "base", env=env).code == 0
    uploaded = cmr("upload", "m@1", "checkpoint", str(blob), "--json", env=env)
    assert uploaded.code == 0, uploaded.stderr
    assert uploaded.json()["storage_path"].startswith("hf://me/registry/")
    assert cmr("verify", "m@1", env=env).code == 0


# ------------------------------------------------------------------ 17: numbering after 1.0.0


def test_automatic_numbers_ignore_explicit_version_strings(cmr: Runner, home_registry: Registry):
    _register(home_registry, version="1.0.0", training_config={"n": 0})
    _register(home_registry, version="2", training_config={"n": 1})
    auto = [
        cmr("register", "m", "-r", "sft", "-b", "base", "-s", f"n={n}", "--json").json()["version"]
        for n in (2, 3)
    ]
    assert auto == ["1", "3"]  # the README's rule: count up, skip numbers taken explicitly


# ------------------------------------------------------------------ 13: messages read as sentences


def test_a_missing_field_reads_as_a_sentence(cmr: Runner, seeded_home: Path):
    result = cmr("register", "m", "--recipe", "", "--base-model", "base")
    assert_user_error(result)
    assert "recipe is required (a non-empty string)" in result.stderr
    assert "recipe: is" not in result.stderr


def test_an_unknown_version_of_a_known_model_says_how_to_list_them(
    cmr: Runner, home_registry: Registry
):
    _register(home_registry)
    result = cmr("show", "m@9")
    assert_user_error(result)
    assert "`cmr query --model m` lists its versions" in result.stderr
