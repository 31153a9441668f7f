"""What downloading into a user's folder safely costs: staging, collision checks, moving in.

A folder artifact (``--files`` files totalling ``--size``) is downloaded into a folder that
already holds unrelated files, through ``download_artifact_files`` (stage and verify every
file, check collisions twice, hard-link each into place), next to the bare reference: the
backend's own verified ``download`` of each file straight to its final path, which is what
a folder download cost before it stopped replacing the destination wholesale.

    python bench/download_placement.py                      # 64 files, 512 MiB
    python bench/download_placement.py --files 2000 --size 64M
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from crucible_model_registry.storage.local import LocalStorage
from crucible_model_registry.storage.manifest import (
    DirectoryTransferResult,
    download_artifact_files,
    upload_artifact_files,
)


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].isalpha() else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--size", type=_size, default=512 << 20, help="total, e.g. 512M")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cmr-bench-place-") as tmp:
        work = Path(tmp)
        source = work / "ckpt"
        per_file = max(1, args.size // args.files)
        for i in range(args.files):
            path = source / f"shard-{i // 16}" / f"part-{i:05d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(per_file))
        store = LocalStorage(work / "store")
        up = upload_artifact_files(store, source, "m/1/checkpoint/ckpt")
        assert isinstance(up, DirectoryTransferResult)
        manifest = up.manifest

        def placed() -> None:
            dest = work / "project"
            dest.mkdir()
            (dest / "notes.txt").write_text("mine")
            download_artifact_files(store, up.storage_path, dest, expected_sha256=up.sha256)

        def bare() -> None:
            dest = work / "project"
            for entry in manifest.files:
                store.download(
                    up.storage_path + entry.path, dest / entry.path, expected_sha256=entry.sha256
                )

        cases = {"bare per-file downloads": bare, "download_artifact_files": placed}
        times: dict[str, list[float]] = {label: [] for label in cases}
        for _ in range(args.repeat):  # interleaved, so that a busy moment hits both
            for label, case in cases.items():
                shutil.rmtree(work / "project", ignore_errors=True)
                start = time.perf_counter()
                case()
                times[label].append(time.perf_counter() - start)
        results = {label: statistics.median(seconds) for label, seconds in times.items()}
        base = results["bare per-file downloads"]
        print(f"{args.files} files, {args.size / (1 << 20):.0f} MiB, median of {args.repeat}")
        for label, seconds in results.items():
            rate = args.size / (1 << 20) / seconds
            print(f"  {label:26s} {seconds:7.3f} s  {rate:7.1f} MiB/s  {seconds / base:5.2f}x")


if __name__ == "__main__":
    main()
