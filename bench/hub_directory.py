"""A sharded checkpoint to the Hugging Face Hub: one commit per directory against one per file.

Runs the real ``huggingface_hub`` client against the test suite's Hub double on loopback
(``tests/servers/hub.py``: the same endpoints the Hub serves, classic LFS, no Xet), so the
numbers count requests and commits and show the client's own overhead; a real Hub adds
network time per request and rate-limits commits, which makes the difference larger.

For each checkpoint shape, two contenders upload the same directory and delete it again:

- ``file by file``: the generic path every backend gets (one ``upload`` per file, then the
  manifest; one ``delete`` per file), which ``HuggingFaceStorage`` used before;
- ``one commit``: ``HuggingFaceStorage`` as shipped (``CommitsFilesTogether``).

    .venv/bin/python bench/hub_directory.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.servers

import huggingface_hub.constants
from huggingface_hub.utils import disable_progress_bars

from crucible_model_registry.storage.huggingface import HuggingFaceStorage
from crucible_model_registry.storage.manifest import (
    delete_artifact_files,
    upload_directory,
)

MiB = 1024 * 1024
SHAPES = [  # (label, number of shards, shard size)
    ("5 shards x 4 MiB + config + tokenizer", 5, 4 * MiB),
    ("20 shards x 1 MiB + config + tokenizer", 20, MiB),
    ("50 shards x 64 KiB + config + tokenizer", 50, 64 * 1024),
]


class FileByFile:
    """A HuggingFaceStorage seen through the plain StorageBackend methods only."""

    def __init__(self, inner: HuggingFaceStorage) -> None:
        self.inner = inner
        self.name = inner.name

    def __getattr__(self, attr: str) -> Any:
        if attr in ("upload", "download", "delete", "exists", "url"):
            return getattr(self.inner, attr)
        raise AttributeError(attr)


def make_checkpoint(root: Path, shards: int, size: int) -> None:
    root.mkdir(parents=True)
    for i in range(1, shards + 1):
        (root / f"model-{i:05d}-of-{shards:05d}.safetensors").write_bytes(os.urandom(size))
    (root / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (root / "tokenizer").mkdir()
    (root / "tokenizer" / "tokenizer.json").write_bytes(os.urandom(300_000))


def run(hub: Any, backend: Any, source: Path, base: str) -> tuple[float, int, float, int]:
    """Upload then delete; (upload s, upload commits, delete s, delete commits).

    Every run writes new shard bytes first: the Hub skips LFS objects it already holds.
    """
    shards = sorted(source.glob("model-*.safetensors"))
    for shard in shards:
        shard.write_bytes(os.urandom(shard.stat().st_size))
    hub.requests.clear()
    start = time.perf_counter()
    result = upload_directory(backend, source, base)
    up = time.perf_counter() - start
    up_commits = len(hub.requests_matching("POST", "/commit/"))
    hub.requests.clear()
    start = time.perf_counter()
    delete_artifact_files(backend, result.storage_path)
    down = time.perf_counter() - start
    return up, up_commits, down, len(hub.requests_matching("POST", "/commit/"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median shown)")
    repeat = parser.parse_args().repeat

    from tests.servers.hub import HubDouble

    huggingface_hub.constants.HF_HUB_DISABLE_XET = True  # the double speaks LFS only
    disable_progress_bars()
    rows = []
    with HubDouble(token="hf_benchToken0123456789") as hub, tempfile.TemporaryDirectory() as tmp:
        storage = HuggingFaceStorage("bench/checkpoints", token=hub.token, endpoint=hub.endpoint)
        for n, (label, shards, size) in enumerate(SHAPES):
            source = Path(tmp, f"ckpt-{n}")
            make_checkpoint(source, shards, size)
            for contender, backend in (
                ("file by file", FileByFile(storage)),
                ("one commit", storage),
            ):
                runs = [
                    run(
                        hub,
                        backend,
                        source,
                        f"llama/{n}/checkpoint/{contender.replace(' ', '-')}-{i}",
                    )
                    for i in range(repeat)
                ]
                rows.append((
                    label if contender == "file by file" else "",
                    contender,
                    statistics.median(r[0] for r in runs),
                    runs[0][1],
                    statistics.median(r[2] for r in runs),
                    runs[0][3],
                ))  # fmt: skip

    load = os.getloadavg()[0]
    print(f"directory artifact on the Hub double, median of {repeat}, load average {load:.2f}")
    print(f"{'checkpoint':<42} {'contender':<13} {'upload':>8} {'commits':>8} "
          f"{'delete':>8} {'commits':>8}")  # fmt: skip
    for label, contender, up, up_commits, down, down_commits in rows:
        print(f"{label:<42} {contender:<13} {up:>7.2f}s {up_commits:>8} {down:>7.2f}s "
              f"{down_commits:>8}")  # fmt: skip


if __name__ == "__main__":
    main()
