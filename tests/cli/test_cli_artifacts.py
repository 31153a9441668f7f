"""``cmr upload``, ``download``, ``url`` and ``verify`` on the embedded local storage."""

from __future__ import annotations

import hashlib
import os
import pty
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.cli.runner import CMR, Runner, assert_user_error

from crucible_model_registry import Registry


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
