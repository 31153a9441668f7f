"""Hostile or broken input at the command line: bounded parsing, positions, no secrets shown.

Issue 14 findings 5 and 9, issue 20 items 11 and 12, through the real ``cmr`` executable.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
from tests.cli.runner import CMR, Result, Runner, assert_user_error
from tests.servers.hub import HubDouble, hub_repo, hub_server
from tests.servers.s3 import MotoServer, s3_bucket, s3_server

from crucible_model_registry import Registry

__all__ = ["hub_repo", "hub_server", "s3_bucket", "s3_server"]

SECRET = "SuperSecretKey123"

# 342 bytes: nine levels of nine aliases, 9**9 "lol"s (about 1.3 GB of YAML) once expanded.
ALIAS_BOMB = "".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n',
        *(
            f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]\n"
            for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
)


def _registered(registry: Registry) -> int:
    return sum(1 for _ in registry.query())


@pytest.fixture
def one(home_registry: Registry) -> Registry:
    home_registry.register(model_name="m", recipe="r", base_model="b", training_config={})
    return home_registry


# --------------------------------------------------------------------------- files


def test_a_yaml_alias_bomb_is_refused_by_register_and_policy_set(
    cmr: Runner, one: Registry, tmp_path: Path
) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB.encode()) < 400
    result = cmr("register", "m", "-r", "r2", "-b", "b", "-c", str(bomb))
    assert_user_error(result)
    assert "4 MiB" in result.stderr
    assert_user_error(cmr("policy", "set", "m", str(bomb)))
    assert _registered(one) == 1
    assert one.get_promotion_policy("m") is None


def test_a_yaml_file_of_harmless_aliases_is_read(
    cmr: Runner, one: Registry, tmp_path: Path
) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("base: &base {lr: 0.001, epochs: 3}\nsft: *base\n")
    result = cmr("register", "m", "-r", "r2", "-b", "b", "-c", str(config), "--json")
    assert result.code == 0, result.stderr
    assert result.json()["training_config"]["sft"] == {"lr": 0.001, "epochs": 3}


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("train.yaml", "lr: 0.1\nlayers: [1, 2\nepochs: 3\n", "line 3, column 7"),
        ("train.yaml", "lr: 0.1\n  epochs: 3\n", "line 2, column 9"),
        ("train.toml", "lr = 0.1\nepochs = \n", "line 2, column 10"),
        ("train.json", '{"lr": 0.1,\n "epochs": }', "line 2, column 12"),
    ],
)
def test_a_config_that_does_not_parse_names_line_and_column(
    cmr: Runner, one: Registry, tmp_path: Path, name: str, text: str, where: str
) -> None:
    config = tmp_path / name
    config.write_text(text)
    result = cmr("register", "m", "-r", "r2", "-b", "b", "-c", str(config))
    assert_user_error(result)
    assert where in result.stderr
    assert _registered(one) == 1


def test_a_policy_file_that_does_not_parse_names_line_and_column(
    cmr: Runner, one: Registry, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('exclusive = ["production"]\n[allowed\nproduction = ["staging"]\n')
    result = cmr("policy", "set", "m", str(policy))
    assert_user_error(result)
    assert "line 2, column" in result.stderr
    assert one.get_promotion_policy("m") is None


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.yaml", "a: " + "[" * 2000 + "]" * 2000),
        ("deep.json", '{"a": ' + "[" * 2000 + "]" * 2000 + "}"),
        ("deep.toml", "a = " + "[" * 2000 + "]" * 2000),
        ("deep-but-parseable.json", '{"a": ' + "[" * 500 + "]" * 500 + "}"),
    ],
)
def test_a_config_nested_too_deep_is_a_user_error(
    cmr: Runner, one: Registry, tmp_path: Path, name: str, text: str
) -> None:
    config = tmp_path / name
    config.write_text(text)
    assert_user_error(cmr("register", "m", "-r", "r2", "-b", "b", "-c", str(config)))
    assert _registered(one) == 1


@pytest.mark.parametrize("levels", [2000, 500])
def test_a_set_value_nested_too_deep_is_a_user_error(
    cmr: Runner, one: Registry, levels: int
) -> None:
    value = "[" * levels + "]" * levels
    assert_user_error(cmr("register", "m", "-r", "r2", "-b", "b", "-s", f"deep={value}"))
    assert _registered(one) == 1


def test_a_config_file_over_8_mib_is_refused(cmr: Runner, one: Registry, tmp_path: Path) -> None:
    config = tmp_path / "huge.yaml"
    config.write_text("# " + "x" * (8 * 1024 * 1024) + "\nlr: 0.1\n")
    result = cmr("register", "m", "-r", "r2", "-b", "b", "-c", str(config))
    assert_user_error(result)
    assert "8 MiB" in result.stderr
    assert _registered(one) == 1


# --------------------------------------------------------------------------- secrets


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "endpoint",
    [
        f"http://minio:{SECRET}@bad host:9000",
        f"http://minio:{SECRET}@127.0.0.1:{_closed_port()}",
    ],
    ids=["malformed", "unreachable"],
)
@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_an_s3_endpoint_password_never_shows(
    cmr: Runner, one: Registry, tmp_path: Path, endpoint: str, debug: bool
) -> None:
    options = {
        "bucket": "models",
        "endpoint_url": endpoint,
        "region": "us-east-1",
        "access_key_id": "AKID",
        "secret_access_key": SECRET,
        "max_attempts": 1,
        "connect_timeout": 1,
    }
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights")
    env = {"CMR_STORAGE_BACKEND": "s3", "CMR_STORAGE_OPTIONS": json.dumps(options)}
    args = ["--debug"] if debug else []
    result = cmr(*args, "upload", "m@1", "checkpoint", str(src), env=env)
    assert result.code == 1, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: ")
    assert one.get_version("m@1").artifacts == []


def _cmr_in_env(*args: str, env: dict[str, str]) -> Result:
    done = subprocess.run(
        [*CMR, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    return Result(done.returncode, done.stdout, done.stderr)


def _env_without_credentials(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "HF_", "HUGGING_FACE_", "CMR_DEBUG"))
    }
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_DISABLE_XET="1",
        COLUMNS="200",
    )
    return env


def test_s3_without_credentials_says_what_to_set(
    one: Registry, tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights")
    env = _env_without_credentials(tmp_path)
    env["CMR_STORAGE_BACKEND"] = "s3"
    env["CMR_STORAGE_OPTIONS"] = json.dumps(
        {"bucket": s3_bucket, "endpoint_url": s3_server.endpoint_url, "region": "us-east-1"}
    )
    result = _cmr_in_env("upload", "m@1", "checkpoint", str(src), env=env)
    assert_user_error(result)
    for hint in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "access_key_id"):
        assert hint in result.stderr
    assert one.get_version("m@1").artifacts == []


@pytest.mark.parametrize("token", ["hf_wrongToken_abcdefghijklmnopqrstuvwxyz", None])
def test_a_hub_401_says_to_set_hf_token(
    one: Registry, tmp_path: Path, hub_server: HubDouble, hub_repo: str, token: str | None
) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights")
    env = _env_without_credentials(tmp_path)
    env["CMR_STORAGE_BACKEND"] = "huggingface"
    options = {"repo_id": hub_repo, "endpoint": hub_server.endpoint}
    if token is not None:
        options["token"] = token
    env["CMR_STORAGE_OPTIONS"] = json.dumps(options)
    result = _cmr_in_env("upload", "m@1", "checkpoint", str(src), env=env)
    assert_user_error(result)
    assert "HF_TOKEN" in result.stderr
    assert "token option" in result.stderr
    assert "HTTPStatusError" not in result.stderr
    if token is not None:
        assert token not in result.stderr
    assert one.get_version("m@1").artifacts == []
