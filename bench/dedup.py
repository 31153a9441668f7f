"""Content-addressed artifact bytes: disk saved on a family of fine-tunes, upload time when
the bytes are already stored (issue 21, item 4).

A family of ``--family`` fine-tunes of one base is uploaded, each a folder: a tokenizer
shared by all, a config of its own, and ``--shards`` weight shards of which the first half
are the base's (frozen layers, shared) and the rest its own. Every shard has the same size,
as real shards of one architecture do, so size alone never tells shared from new. The same
family goes into a plain store (``content_addressed=False``, the floor: every byte stored and
sent again) and a content-addressed one, and the script prints for each: the artifacts'
logical size, what the store really holds (distinct inodes on disk / objects in S3) and the
bytes that were not sent.

Then one fine-tune is uploaded again to a new version (every byte already stored) and a new
tree of the same size (no byte stored) is uploaded, on both stores, next to SHA-256 alone
over the same tree (the floor of an upload that must hash before it can skip). Best of
``--repeat``; the load average is printed beside the numbers.

    python bench/dedup.py                                # local disk, 10 x (4 x 64 MiB + 8 MiB)
    python bench/dedup.py --shard-size 16M --s3          # also through a moto S3 server
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crucible_model_registry import Registry, telemetry
from crucible_model_registry.storage.base import StorageBackend
from crucible_model_registry.storage.local import LocalStorage

# The sibling script's file sizes and moto server, without making bench/ a package.
sys.path.insert(0, str(Path(__file__).parent))
_transfer = importlib.import_module("transfer")
human, moto_server, parse_size = _transfer.human, _transfer.moto_server, _transfer.parse_size

MiB = 1 << 20


def load() -> str:
    return os.getloadavg().__repr__()


def write_random(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb", buffering=0) as f:
        left = size
        while left > 0:
            n = min(left, 8 * MiB)
            f.write(os.urandom(n))
            left -= n
    return path


def link_or_write(shared: Path, path: Path) -> None:
    """The source trees share files by hard links too, so the bench's own disk stays small."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.link(shared, path)


def make_family(root: Path, *, family: int, shards: int, shard_size: int, tok: int) -> list[Path]:
    base = root / "base"
    write_random(base / "tokenizer.json", tok)
    half = shards // 2
    for i in range(half):
        write_random(base / f"model-{i:05d}.safetensors", shard_size)
    trees = []
    for f in range(family):
        tree = root / f"ft-{f}"
        link_or_write(base / "tokenizer.json", tree / "tokenizer.json")
        (tree / "config.json").write_text(f'{{"finetune": {f}, "lr": {1e-4 * (f + 1)}}}\n')
        for i in range(shards):
            name = f"model-{i:05d}.safetensors"
            if i < half:
                link_or_write(base / name, tree / name)
            else:
                write_random(tree / name, shard_size)
        trees.append(tree)
    return trees


def logical_size(tree: Path) -> int:
    return sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())


def disk_bytes(root: Path) -> int:
    """What the store holds on disk: each inode once, however many names link it."""
    seen: dict[tuple[int, int], int] = {}
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            seen[(st.st_dev, st.st_ino)] = st.st_size
    return sum(seen.values())


def s3_bytes(storage: Any) -> int:
    client = storage._client
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=storage.bucket)
    return sum(obj["Size"] for page in pages for obj in page.get("Contents", []))


class Reused:
    """Sums the ``reused_bytes`` of upload events (bytes not sent)."""

    def __init__(self) -> None:
        self.total = 0
        self.id = f"bench-{uuid.uuid4().hex[:8]}"
        telemetry.attach(self.id, ("crucible_model_registry", "upload"), self)

    def __call__(self, event: Any, measurements: dict[str, float], metadata: Any) -> None:
        self.total += int(measurements.get("reused_bytes", 0))

    def close(self) -> None:
        telemetry.detach(self.id)


def sha256_tree(tree: Path) -> None:
    for p in sorted(tree.rglob("*")):
        if p.is_file():
            digest = hashlib.sha256()
            with open(p, "rb", buffering=0) as f:
                while chunk := f.read(4 * MiB):
                    digest.update(chunk)


def best(repeat: int, run: Callable[[int], object]) -> float:
    times = []
    for i in range(repeat):
        os.sync()
        t = time.perf_counter()
        run(i)
        times.append(time.perf_counter() - t)
    return min(times)


def register(reg: Registry, version: str) -> int:
    v = reg.register(
        model_name="org/family",
        version=version,
        recipe="sft",
        base_model="meta-llama/Llama-3.1-8B",
        training_config={"run": uuid.uuid4().hex},
    )
    return v.id


def run_store(
    label: str,
    make_storage: Callable[[bool], StorageBackend],
    stored_bytes: Callable[[StorageBackend], int],
    work: Path,
    trees: list[Path],
    fresh: list[Path],
    repeat: int,
) -> list[str]:
    rows = []
    logical = sum(logical_size(t) for t in trees)
    timing: dict[bool, tuple[float, float]] = {}
    for cas in (False, True):
        storage = make_storage(cas)
        db = work / f"{label}-{cas}.db"
        reg = Registry.from_url(f"sqlite:///{db}", storage=storage, auto_migrate=True)
        reused = Reused()
        try:
            t = time.perf_counter()
            for i, tree in enumerate(trees):
                reg.upload_artifact(register(reg, f"ft-{i}"), "checkpoint", tree)
            family_s = time.perf_counter() - t
            held = stored_bytes(storage)
            kind = "content-addressed" if cas else "plain (floor)"
            rows.append(
                f"{label:<6} {kind:<18} {human_b(logical):>10} {human_b(held):>10} "
                f"{human_b(logical - held):>10} {100 * (logical - held) / logical:>6.1f}% "
                f"{human_b(reused.total):>10} {family_s:>8.2f}"
            )
            again = best(
                repeat,
                lambda i, reg=reg: reg.upload_artifact(
                    register(reg, f"again-{i}"), "checkpoint", trees[0]
                ),
            )
            new = best(
                repeat,
                lambda i, reg=reg: reg.upload_artifact(
                    register(reg, f"new-{i}"), "checkpoint", fresh[i]
                ),
            )
            timing[cas] = (again, new)
        finally:
            reused.close()
            reg.close()
    hash_floor = best(repeat, lambda i: sha256_tree(trees[0]))
    size = logical_size(trees[0])
    rows.append("")
    rows.append(
        f"{label}: upload of one fine-tune ({human_b(size)}) to a new version, best of {repeat}:"
    )
    rows.append(f"  SHA-256 alone over the tree (floor of hash-then-skip)   {hash_floor:8.2f} s")
    for cas, name in ((False, "plain"), (True, "content-addressed")):
        again, new = timing[cas]
        rows.append(
            f"  {name:<18} bytes already stored {again:8.2f} s   no byte stored {new:8.2f} s"
            f"   ({size / MiB / again:6.0f} / {size / MiB / new:6.0f} MiB/s)"
        )
    rows.append(
        f"  content-addressed vs plain when the bytes are there: "
        f"{timing[False][0] / timing[True][0]:.1f}x faster; vs the SHA-256 floor: "
        f"{hash_floor / timing[True][0]:.2f}x"
    )
    return rows


def human_b(n: int) -> str:
    return f"{n / MiB:.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", type=int, default=10)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--shard-size", default="64M")
    parser.add_argument("--tokenizer-size", default="8M")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--s3", action="store_true", help="also through a moto S3 server")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    shard_size, tok = parse_size(args.shard_size), parse_size(args.tokenizer_size)

    work = Path(tempfile.mkdtemp(prefix="cmr-dedup-", dir=args.workdir))
    try:
        trees = make_family(
            work / "src", family=args.family, shards=args.shards, shard_size=shard_size, tok=tok
        )
        # Trees of the same shape with bytes never stored: the cost of a real upload.
        fresh = [
            make_family(
                work / f"fresh-{i}", family=1, shards=args.shards, shard_size=shard_size, tok=tok
            )[0]
            for i in range(args.repeat)
        ]
        for tree in fresh:  # new bytes in every file but the config: nothing stored anywhere
            for p in tree.iterdir():
                if p.name != "config.json":
                    size = p.stat().st_size
                    p.unlink()
                    write_random(p, size)
        print(f"uptime load {load()}")
        print(
            f"family: {args.family} fine-tunes x ({args.shards} shards of "
            f"{human(shard_size)}, half shared; a {human(tok)} tokenizer shared; own config)\n"
        )
        header = (
            f"{'store':<6} {'kind':<18} {'logical':>10} {'stored':>10} {'saved':>10} "
            f"{'saved':>7} {'not sent':>10} {'family s':>8}"
        )
        print(header)
        print("-" * len(header))
        rows = run_store(
            "local",
            lambda cas: LocalStorage(work / f"store-{cas}", content_addressed=cas),
            lambda s: disk_bytes(s.base_path),  # type: ignore[attr-defined]
            work,
            trees,
            fresh,
            args.repeat,
        )
        print("\n".join(rows), flush=True)
        if args.s3:
            from crucible_model_registry.storage.s3 import S3Storage

            with moto_server() as endpoint:
                import boto3

                client = boto3.client(
                    "s3",
                    endpoint_url=endpoint,
                    region_name="us-east-1",
                    aws_access_key_id="bench",
                    aws_secret_access_key="bench-secret",
                )

                def make(cas: bool) -> StorageBackend:
                    bucket = f"dedup-{cas}-{uuid.uuid4().hex[:6]}".lower()
                    client.create_bucket(Bucket=bucket)
                    return S3Storage(
                        bucket,
                        region="us-east-1",
                        endpoint_url=endpoint,
                        access_key_id="bench",
                        secret_access_key="bench-secret",
                        content_addressed=cas,
                    )

                print()
                rows = run_store("s3", make, s3_bytes, work, trees, fresh, args.repeat)
                print("\n".join(rows), flush=True)
        print(f"\nuptime load {load()}")
        print(
            "stored: distinct inodes on disk (hard links count once) / every object in S3, "
            "blobs included; not sent: bytes linked or copied from a blob instead of uploaded"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
