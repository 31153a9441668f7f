"""``cmr`` against the Hub double: huggingface_hub's own output stays off ours (issue 20.5)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.cli.runner import Runner
from tests.servers.hub import HubDouble, hub_repo, hub_server

from crucible_model_registry import Registry

__all__ = ["hub_repo", "hub_server"]  # fixtures

pytestmark = [
    pytest.mark.hf,
    pytest.mark.filterwarnings(
        "ignore:Use 'content=<...>' to upload raw bytes/text content.:DeprecationWarning"
    ),
]


@pytest.mark.parametrize("mode", [["--json"], ["-q"]])
def test_hub_transfers_print_nothing_of_huggingface_hubs_own(
    cmr: Runner,
    home_registry: Registry,
    hub_server: HubDouble,
    hub_repo: str,
    tmp_path: Path,
    mode: list[str],
):
    v = home_registry.register(model_name="m", recipe="sft", base_model="b", training_config={})
    big = tmp_path / "model.safetensors"
    big.write_bytes(os.urandom(11 << 20))  # over the Hub's LFS threshold: a progress bar
    env = {
        "CMR_STORAGE_BACKEND": "huggingface",
        "CMR_STORAGE_OPTIONS": json.dumps(
            {"repo_id": hub_repo, "endpoint": hub_server.endpoint, "token": hub_server.token}
        ),
        "HF_HUB_DISABLE_XET": "1",
    }
    global_flags = mode if mode == ["-q"] else []
    command_flags = mode if mode == ["--json"] else []
    uploaded = cmr(*global_flags, "upload", v.ref, "checkpoint", str(big), *command_flags, env=env)
    assert uploaded.code == 0, uploaded.stderr
    downloaded = cmr(
        *global_flags, "download", v.ref, str(tmp_path / "got.bin"), *command_flags, env=env
    )
    assert downloaded.code == 0, downloaded.stderr
    verified = cmr(*global_flags, "verify", v.ref, *command_flags, env=env)
    assert verified.code == 0, verified.stderr
    for result in (uploaded, downloaded, verified):
        assert result.stderr == ""
