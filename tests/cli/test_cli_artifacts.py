"""``cmr upload``, ``download``, ``url`` and ``verify`` on the embedded local storage."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.cli.runner import CMR, Result, Runner, assert_user_error
from tests.servers.s3 import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    MotoServer,
    s3_bucket,
    s3_server,
)
from tests.storage.contract import snapshot

from crucible_model_registry import Registry
from crucible_model_registry.storage.s3 import S3Storage

__all__ = ["s3_bucket", "s3_server"]  # fixtures


@pytest.fixture
def version(home_registry: Registry):
    return home_registry.register(
        model_name="m", recipe="sft", base_model="base", training_config={}
    )


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "model.bin"
    path.write_bytes(os.urandom(300_000))
    return path


def _stored(home: Path, artifact: dict[str, Any]) -> Path:
    return home / "artifacts" / str(artifact["storage_path"])


def test_upload_download_url_verify_round_trip(
    cmr: Runner, version, weights: Path, seeded_home: Path, tmp_path: Path
):
    uploaded = cmr("upload", version.ref, "checkpoint", str(weights), "--json")
    assert uploaded.code == 0, uploaded.stderr
    artifact = uploaded.json()
    assert artifact["checksum"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert artifact["size_bytes"] == weights.stat().st_size
    assert artifact["storage_backend"] == "local"
    assert _stored(seeded_home, artifact).read_bytes() == weights.read_bytes()

    dest = tmp_path / "out" / "copy.bin"
    downloaded = cmr(
        "download", version.ref, str(dest), "--type", "checkpoint", "--parents", "--json"
    )
    assert downloaded.code == 0, downloaded.stderr
    assert downloaded.json()["path"] == str(dest)
    assert dest.read_bytes() == weights.read_bytes()

    url = cmr("url", version.ref)
    assert url.code == 0
    assert url.stdout.strip().startswith("file://")
    assert url.stdout.strip().endswith("model.bin")

    verified = cmr("verify", version.ref, "--json")
    assert verified.code == 0, verified.stderr
    assert verified.json() == [
        {"artifact_id": artifact["id"], "type": "checkpoint", "ok": True, "error": None}
    ]


def test_corrupt_bytes_fail_verify_and_download(
    cmr: Runner, version, weights: Path, seeded_home: Path, tmp_path: Path
):
    artifact = cmr("upload", version.ref, "checkpoint", str(weights), "--json").json()
    stored = _stored(seeded_home, artifact)
    stored.write_bytes(b"corrupted" + stored.read_bytes()[9:])

    failed = cmr("verify", version.ref, "--artifact-id", str(artifact["id"]))
    assert failed.code == 1
    assert "MISMATCH" in failed.stdout
    assert failed.stderr.startswith("error: ")
    assert len(failed.stderr.splitlines()) == 1

    dest = tmp_path / "copy.bin"
    dest.write_bytes(b"keep me")
    assert_user_error(cmr("download", version.ref, str(dest)))
    assert dest.read_bytes() == b"keep me"


def test_upload_a_directory_and_download_it(
    cmr: Runner, version, tmp_path: Path, seeded_home: Path
):
    tree = tmp_path / "tokenizer"
    (tree / "sub").mkdir(parents=True)
    (tree / "vocab.json").write_text('{"a": 1}')
    (tree / "sub" / "merges.txt").write_text("a b\n")
    assert cmr("-q", "upload", version.ref, "tokenizer", str(tree)).code == 0
    dest = tmp_path / "restored"
    result = cmr("download", version.ref, str(dest), "-t", "tokenizer")
    assert result.code == 0, result.stderr
    assert (dest / "vocab.json").read_text() == '{"a": 1}'
    assert (dest / "sub" / "merges.txt").read_text() == "a b\n"


def test_artifact_commands_reject_bad_input(
    cmr: Runner, home_registry: Registry, version, weights: Path, tmp_path: Path
):
    assert_user_error(cmr("upload", version.ref, "checkpoint", str(tmp_path / "missing")))
    assert_user_error(cmr("upload", version.ref, "weights", str(weights)))  # unknown type
    assert_user_error(cmr("upload", "nosuch@1", "checkpoint", str(weights)))
    assert home_registry.get_version(version.id).artifacts == []

    assert_user_error(cmr("download", version.ref, str(tmp_path / "x")))  # no artifacts
    assert cmr("-q", "upload", version.ref, "checkpoint", str(weights)).code == 0
    assert cmr("-q", "upload", version.ref, "config", str(weights)).code == 0
    ambiguous = cmr("download", version.ref, str(tmp_path / "x"))
    assert_user_error(ambiguous)
    assert "--type" in ambiguous.stderr
    assert_user_error(cmr("url", version.ref, "--type", "gguf"))
    assert_user_error(cmr("verify", version.ref, "--artifact-id", "999"))


def test_by_reference_artifacts_have_nothing_to_verify(cmr: Runner, home_registry: Registry):
    v = home_registry.register(
        model_name="m", recipe="sft", base_model="b", training_config={},
        artifacts=[{"type": "checkpoint", "storage_backend": "s3", "storage_path": "s3://b/k"}],
    )  # fmt: skip
    assert_user_error(cmr("verify", v.ref))


def _on_a_terminal(*args: str) -> str:
    """Run ``cmr`` with a pseudo-terminal as stdout and stderr; what it showed there."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    with subprocess.Popen(
        [*CMR, *args],
        stdin=follower, stdout=follower, stderr=follower, env=env,
    ) as proc:  # fmt: skip
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=120) == 0
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_verify_shows_a_progress_bar_on_a_terminal(cmr: Runner, version, weights: Path):
    assert cmr("-q", "upload", version.ref, "checkpoint", str(weights)).code == 0
    output = _on_a_terminal("verify", version.ref)
    assert f"verify {version.ref}" in output
    assert "KiB" in output
    assert "ok " in output


def test_progress_bar_on_a_terminal(version, weights: Path, tmp_path: Path):
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    with subprocess.Popen(
        [*CMR, "upload", version.ref, "checkpoint", str(weights)],
        stdin=follower, stdout=follower, stderr=follower, env=env,
    ) as proc:  # fmt: skip
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=120) == 0
    os.close(leader)
    output = b"".join(chunks).decode(errors="replace")
    assert "upload model.bin" in output
    assert "KiB" in output
    assert "Uploaded checkpoint artifact" in output


# --------------------------------------------------------------------------- issue 13


def _cmr_in(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """``cmr`` run from the folder ``cwd`` (where ``.`` is)."""
    done = subprocess.run(
        [*CMR, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=120,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def _model_folder(root: Path) -> dict[str, bytes]:
    files = {
        "config.json": b'{"hidden_size": 384}',
        "model.safetensors": os.urandom(200_000),
        "tokenizer.json": b'{"version": "1.0"}',
        "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_the_trial_download_into_the_current_folder_keeps_the_users_files(
    cmr: Runner, version, tmp_path: Path
):
    # Issue 13's trial: `cmr download mymodel@1` into a project folder deleted notes.txt
    # and code/, then failed.
    model = _model_folder(tmp_path / "minilm-ft")
    assert cmr("-q", "upload", version.ref, "checkpoint", str(tmp_path / "minilm-ft")).code == 0
    proj = tmp_path / "proj"
    (proj / "code").mkdir(parents=True)
    (proj / "notes.txt").write_text("notes\n")
    (proj / "code" / "train.py").write_text("print(1)\n")
    before = snapshot(proj)

    result = _cmr_in(proj, "download", version.ref)

    assert result.code == 0, result.stderr
    after = snapshot(proj)
    assert {rel: after[rel] for rel in before} == before
    for rel, data in model.items():
        assert (proj / rel).read_bytes() == data
    assert set(after) == set(before) | set(model) | {"1_Pooling"}

    out = tmp_path / "out"  # an explicit destination that already holds a file
    (out / "keep.txt").parent.mkdir()
    (out / "keep.txt").write_text("keep")
    assert cmr("download", version.ref, str(out)).code == 0
    assert (out / "keep.txt").read_text() == "keep"

    again = _cmr_in(proj, "download", version.ref)  # every file collides now
    assert_user_error(again)
    assert "config.json" in again.stderr
    assert "--overwrite" in again.stderr
    assert snapshot(proj) == after


def test_download_onto_a_users_file_needs_overwrite(cmr: Runner, version, tmp_path: Path):
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "config.json").write_text('{"from": "the registry"}')
    assert (
        cmr("-q", "upload", version.ref, "tokenizer", str(tmp_path / "tok" / "config.json")).code
        == 0
    )
    mine = tmp_path / "minilm" / "config.json"
    mine.parent.mkdir()
    mine.write_text('{"my": "source file"}')

    refused = cmr("download", version.ref, str(mine), "-t", "tokenizer")
    assert_user_error(refused)
    assert str(mine) in refused.stderr
    assert mine.read_text() == '{"my": "source file"}'

    into_folder = cmr("download", version.ref, str(mine.parent), "-t", "tokenizer")
    assert_user_error(into_folder)
    assert mine.read_text() == '{"my": "source file"}'

    replaced = cmr("download", version.ref, str(mine), "-t", "tokenizer", "--overwrite")
    assert replaced.code == 0, replaced.stderr
    assert mine.read_text() == '{"from": "the registry"}'
    assert sorted(p.name for p in mine.parent.iterdir()) == ["config.json"]


def test_download_does_not_create_missing_parents_unless_asked(
    cmr: Runner, version, weights: Path, tmp_path: Path
):
    assert cmr("-q", "upload", version.ref, "checkpoint", str(weights)).code == 0
    assert_user_error(cmr("download", version.ref, str(tmp_path / "no" / "such" / "x.bin")))
    assert not (tmp_path / "no").exists()
    made = cmr("download", version.ref, str(tmp_path / "no" / "such" / "x.bin"), "--parents")
    assert made.code == 0, made.stderr
    assert (tmp_path / "no" / "such" / "x.bin").read_bytes() == weights.read_bytes()


def test_url_of_a_folder_is_its_manifest_or_one_file(cmr: Runner, version, tmp_path: Path):
    _model_folder(tmp_path / "minilm-ft")
    assert cmr("-q", "upload", version.ref, "checkpoint", str(tmp_path / "minilm-ft")).code == 0
    manifest = cmr("url", version.ref)
    assert manifest.code == 0, manifest.stderr
    assert manifest.stdout.strip().endswith("/checkpoint/minilm-ft/cmr-manifest.json")
    one = cmr("url", version.ref, "--file", "1_Pooling/config.json", "--json")
    assert one.code == 0, one.stderr
    assert one.json()["url"].endswith("/checkpoint/minilm-ft/1_Pooling/config.json")
    assert_user_error(cmr("url", version.ref, "--file", "nope.json"))


def test_delete_says_what_happened_to_the_bytes_and_gc_removes_them(
    cmr: Runner, home_registry: Registry, weights: Path, seeded_home: Path, tmp_path: Path
):
    v1 = home_registry.register(model_name="m", recipe="sft", base_model="b", training_config={})
    v2 = home_registry.register(
        model_name="m", recipe="sft", base_model="b", training_config={"lr": 1}
    )
    a1 = cmr("upload", v1.ref, "checkpoint", str(weights), "--json").json()
    a2 = cmr("upload", v2.ref, "checkpoint", str(weights), "--json").json()
    artifacts = seeded_home / "artifacts"

    deleted = cmr("delete", v1.ref)
    assert deleted.code == 0, deleted.stderr
    assert "kept" in deleted.stdout
    assert "cmr gc" in deleted.stdout
    assert (artifacts / a1["storage_path"]).exists()

    dry = cmr("gc", "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    assert [(i["kind"], i["path"]) for i in dry.json()["items"]] == [("orphan", a1["storage_path"])]
    assert (artifacts / a1["storage_path"]).exists()
    collected = cmr("gc")
    assert collected.code == 0, collected.stderr
    assert a1["storage_path"] in collected.stdout
    assert not (artifacts / a1["storage_path"]).exists()
    assert (artifacts / a2["storage_path"]).exists()

    removed = cmr("artifact", "delete", v2.ref, "-t", "checkpoint", "--json")
    assert removed.code == 0, removed.stderr
    assert (removed.json()["bytes_deleted"], removed.json()["artifact"]["id"]) == (True, a2["id"])
    assert not (artifacts / a2["storage_path"]).exists()
    assert home_registry.get_version(v2.id).artifacts == []
    assert_user_error(cmr("gc", "--older-than", "soon"))


def test_an_ambiguous_type_lists_the_candidates(cmr: Runner, version, tmp_path: Path):
    (tmp_path / "a.bin").write_bytes(b"x" * 2048)
    _model_folder(tmp_path / "minilm-ft")
    first = cmr("upload", version.ref, "checkpoint", str(tmp_path / "a.bin"), "--json").json()
    second = cmr("upload", version.ref, "checkpoint", str(tmp_path / "minilm-ft"), "--json").json()
    result = cmr("download", version.ref, str(tmp_path / "x"), "--type", "checkpoint")
    assert_user_error(result)
    for expected in (
        f"id {first['id']}",
        "a.bin (2.0 KiB)",
        f"id {second['id']}",
        "minilm-ft/",
        "--artifact-id",
    ):
        assert expected in result.stderr


@pytest.mark.s3
def test_reads_use_every_configured_backend(
    cmr: Runner,
    home_registry: Registry,
    seeded_home: Path,
    weights: Path,
    tmp_path: Path,
    s3_server: MotoServer,
    s3_bucket: str,
):
    # Issue 13.6 / 20.6: a version with artifacts on local disk and on S3.
    options = {
        "bucket": s3_bucket,
        "region": REGION,
        "endpoint_url": s3_server.endpoint_url,
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
    }
    both = Registry.from_url(
        f"sqlite:///{seeded_home / 'registry.db'}", storages=[S3Storage(**options)]
    )
    try:
        v = both.register(model_name="m", recipe="sft", base_model="b", training_config={})
        on_disk = both.upload_artifact(v, "checkpoint", weights)
        on_s3 = both.upload_artifact(v, "gguf", weights, storage="s3")
    finally:
        both.close()
    env = {"CMR_STORAGES": json.dumps({"s3": options})}

    verified = cmr("verify", v.ref, "--json", env=env)
    assert verified.code == 0, verified.stderr
    assert [(r["artifact_id"], r["ok"]) for r in verified.json()] == [
        (on_disk.id, True),
        (on_s3.id, True),
    ]
    got = cmr("download", v.ref, str(tmp_path / "got.gguf"), "-t", "gguf", env=env)
    assert got.code == 0, got.stderr
    assert (tmp_path / "got.gguf").read_bytes() == weights.read_bytes()

    # Without the S3 backend: what can be reached is verified, the rest reported.
    partial = cmr("verify", v.ref)
    assert partial.code == 1
    assert f"ok          checkpoint artifact {on_disk.id}" in partial.stdout
    assert f"UNREACHABLE gguf artifact {on_s3.id}" in partial.stdout
    assert "CMR_STORAGES" in partial.stderr

    # S3 as the default backend still reads the local artifact under CMR_HOME.
    s3_default = {"CMR_STORAGE_BACKEND": "s3", "CMR_STORAGE_OPTIONS": json.dumps(options)}
    assert cmr("verify", v.ref, env=s3_default).code == 0
