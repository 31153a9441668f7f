"""Artifact transfer throughput and client memory, next to reference loops run alongside.

Local storage is compared with loops measured in the same run on the same files:
SHA-256 alone, a plain copy, and the one-pass ``readinto -> sha256.update -> write ->
fsync`` loop (the floor). Transfers hash on a second thread while the first reads and
writes (``storage/_streaming.py: copy_hashing``), so the target is >= 1.3x the one-pass
loop for upload, verified download and verify (issue 21); the bare two-thread loop
(``copy_hashing(pipelined=True)`` + fsync, no registry code) is printed too. The backends
use the second thread only while the load average leaves a core to spare
(``spare_core``), else the one-pass loop: on a busy machine the hand-offs cost more than
the overlap gains. Each group prints the load average after it.
S3 is measured through a moto server subprocess (it keeps objects in memory, so one
object of 1 GiB costs it about 3 GiB) next to raw boto3 ``upload_file``/``download_file``
with the same transfer settings (target: >= 0.9x). moto copies the whole object for every
ranged GET, so a download's time grows with size x parts: a 1 GiB download with 8 MiB
parts takes minutes for both contenders; ``--s3-part-size`` trades that for client memory.
For every case the client's peak resident memory above its baseline just before the case
is reported (Linux: VmHWM reset through /proc/self/clear_refs; target: < 150 MiB).

    python bench/transfer.py                        # 1 GiB and 4 GiB local, 1 GiB S3
    python bench/transfer.py --local-sizes 1G --s3-size 256M --repeat 1
    python bench/transfer.py --s3-size 0            # local only

The page cache is not dropped (that needs root and a quiet machine): every case, the
references included, reads files that were just written, so the comparison is fair but
absolute numbers are those of a warm cache. Big files live in --workdir and are deleted.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import multiprocessing as mp
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crucible_model_registry.storage._streaming import CHUNK_SIZE, copy_hashing
from crucible_model_registry.storage.local import LocalStorage
from crucible_model_registry.storage.manifest import verify_artifact_files

MiB = 1 << 20
GiB = 1 << 30


# -- measuring ------------------------------------------------------------------------------


def _proc_status(field: str) -> int:
    """A ``/proc/self/status`` memory field in bytes (0 where unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        return False
    return True


@dataclass
class Sample:
    seconds: float
    peak_rss_above_baseline: int | None


def _measure_in_child(prepare: str, kwargs: dict[str, object]) -> Sample:
    """In a fresh process: set the case up, then time it and record its peak RSS.

    The baseline is the RSS after imports and set-up (clients built), right before the
    transfer; VmHWM after it is the peak. A fresh process per case keeps memory that one
    case left in the allocator from hiding (or inflating) another's.
    """
    run = PREPARE[prepare](**kwargs)
    can_reset = _reset_peak_rss()
    baseline = _proc_status("VmRSS")
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    peak = _proc_status("VmHWM") - baseline if can_reset else None
    return Sample(seconds, peak)


def measure(prepare: str, **kwargs: object) -> Sample:
    """Run one case in a freshly spawned process (start-up is not timed)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_measure_in_child, prepare, kwargs).result()


@dataclass
class Row:
    group: str
    case: str
    size: int
    samples: list[Sample]
    reference: Row | None = None

    @property
    def best(self) -> float:
        return min(s.seconds for s in self.samples)

    @property
    def throughput(self) -> float:
        return self.size / MiB / self.best

    @property
    def peak(self) -> int | None:
        peaks = [s.peak_rss_above_baseline for s in self.samples]
        return None if any(p is None for p in peaks) else max(p or 0 for p in peaks)


# -- reference loops ------------------------------------------------------------------------


def ref_sha256(src: Path) -> None:
    digest = hashlib.sha256()
    buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    with open(src, "rb", buffering=0) as f:
        while n := f.readinto(view):
            digest.update(view[:n])


def ref_copy(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)


def ref_copy_sha256_fsync(src: Path, dst: Path) -> None:
    digest = hashlib.sha256()
    buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    with open(src, "rb", buffering=0) as fin, open(dst, "wb", buffering=0) as fout:
        while n := fin.readinto(view):
            digest.update(view[:n])
            fout.write(view[:n])
        os.fsync(fout.fileno())


def pipelined_copy_fsync(src: Path, dst: Path) -> None:
    # Forced onto two threads, whatever the load: what the pipeline gives on this machine now.
    with open(src, "rb", buffering=0) as fin, open(dst, "wb", buffering=0) as fout:
        copy_hashing(fin, fout.write, pipelined=True)
        os.fsync(fout.fileno())


# -- the cases, each set up in the measuring process -----------------------------------------


def prepare_pipelined(src: Path, dst: Path) -> Callable[[], object]:
    return functools.partial(pipelined_copy_fsync, src, dst)


def prepare_local_verify(root: Path, remote: str, sha256: str) -> Callable[[], object]:
    return functools.partial(verify_artifact_files, LocalStorage(root), remote, sha256)


def prepare_sha256(src: Path) -> Callable[[], object]:
    return functools.partial(ref_sha256, src)


def prepare_copy(src: Path, dst: Path) -> Callable[[], object]:
    return functools.partial(ref_copy, src, dst)


def prepare_bare(src: Path, dst: Path) -> Callable[[], object]:
    return functools.partial(ref_copy_sha256_fsync, src, dst)


def prepare_local_upload(root: Path, src: Path, remote: str) -> Callable[[], object]:
    return functools.partial(LocalStorage(root).upload, src, remote)


def prepare_local_download(root: Path, remote: str, dst: Path, sha256: str) -> Callable[[], object]:
    return functools.partial(LocalStorage(root).download, remote, dst, expected_sha256=sha256)


def _boto3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
    )


def _transfer_config(part_size: int) -> Any:
    from boto3.s3.transfer import TransferConfig

    # The same part size and concurrency as the backend, so only the code path differs.
    return TransferConfig(
        multipart_threshold=part_size,
        multipart_chunksize=part_size,
        max_concurrency=4,
        preferred_transfer_client="classic",
    )


def _s3_storage(endpoint: str, bucket: str, part_size: int) -> Any:
    from crucible_model_registry.storage.s3 import S3Storage

    storage = S3Storage(
        bucket,
        region="us-east-1",
        endpoint_url=endpoint,
        access_key_id="bench",
        secret_access_key="bench-secret",
        multipart_threshold=part_size,
        multipart_chunksize=part_size,
        max_concurrency=4,
    )
    storage.exists("warm-up")  # builds the client (and its connection pool) before timing
    return storage


def prepare_s3_raw_upload(
    endpoint: str, bucket: str, part_size: int, src: Path, key: str
) -> Callable[[], object]:
    client = _boto3_client(endpoint)
    client.head_bucket(Bucket=bucket)
    return functools.partial(
        client.upload_file, str(src), bucket, key, Config=_transfer_config(part_size)
    )


def prepare_s3_upload(
    endpoint: str, bucket: str, part_size: int, src: Path, remote: str
) -> Callable[[], object]:
    return functools.partial(_s3_storage(endpoint, bucket, part_size).upload, src, remote)


def prepare_s3_raw_download(
    endpoint: str, bucket: str, part_size: int, key: str, dst: Path
) -> Callable[[], object]:
    client = _boto3_client(endpoint)
    client.head_bucket(Bucket=bucket)
    return functools.partial(
        client.download_file, bucket, key, str(dst), Config=_transfer_config(part_size)
    )


def prepare_s3_download(
    endpoint: str, bucket: str, part_size: int, remote: str, dst: Path, sha256: str
) -> Callable[[], object]:
    storage = _s3_storage(endpoint, bucket, part_size)
    return functools.partial(storage.download, remote, dst, expected_sha256=sha256)


PREPARE: dict[str, Callable[..., Callable[[], object]]] = {
    "sha256": prepare_sha256,
    "copy": prepare_copy,
    "bare": prepare_bare,
    "pipelined": prepare_pipelined,
    "local_verify": prepare_local_verify,
    "local_upload": prepare_local_upload,
    "local_download": prepare_local_download,
    "s3_raw_upload": prepare_s3_raw_upload,
    "s3_upload": prepare_s3_upload,
    "s3_raw_download": prepare_s3_raw_download,
    "s3_download": prepare_s3_download,
}


# -- files and servers ----------------------------------------------------------------------


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": MiB, "G": GiB}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def human(size: int) -> str:
    for unit, factor in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def make_file(path: Path, size: int) -> Path:
    """Incompressible bytes: a random 16 MiB block, its first 8 bytes a block counter."""
    block = bytearray(os.urandom(16 * MiB))
    with open(path, "wb", buffering=0) as f:
        left, counter = size, 0
        while left > 0:
            block[:8] = counter.to_bytes(8, "big")
            n = min(left, len(block))
            f.write(memoryview(block)[:n])
            left -= n
            counter += 1
        os.fsync(f.fileno())
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 server in a subprocess, so its memory does not count as the client's."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from moto.server import main; main()",
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# -- the runs -------------------------------------------------------------------------------


@dataclass
class Case:
    row: Row
    prepare: str
    kwargs: dict[str, Any]
    cleanup: Callable[[], object] = lambda: None


def run_cases(cases: list[Case], repeat: int, settle: float) -> None:
    """Each repetition runs the cases in a new order, each after ``sync`` and a pause.

    fsync-heavy cases slow whatever follows them while the (virtual) disk drains its
    write-back; shuffling the order and settling first keeps that off any single case.
    """
    for rep in range(repeat):
        order = list(cases)
        random.Random(rep).shuffle(order)
        for case in order:
            os.sync()
            time.sleep(settle)
            case.row.samples.append(measure(case.prepare, **case.kwargs))
            case.cleanup()


def _unlink(path: Path) -> Callable[[], None]:
    return functools.partial(path.unlink, missing_ok=True)


def run_local(workdir: Path, size: int, repeat: int, settle: float) -> list[Row]:
    src = make_file(workdir / f"src-{size}.bin", size)
    root = workdir / "store"
    store = LocalStorage(root)
    out = workdir / "out"
    out.mkdir(exist_ok=True)
    stored = store.upload(src, "bench/1/checkpoint/stored.bin")  # what downloads fetch
    label = f"local {human(size)}"
    bare = Row(label, "floor: one-pass read+sha+write+fsync", size, [])
    remote = "bench/1/checkpoint/model.bin"
    cases = [
        Case(Row(label, "ref: SHA-256 alone", size, []), "sha256", {"src": src}),
        Case(
            Row(label, "ref: plain copy (copyfile)", size, []),
            "copy",
            {"src": src, "dst": out / "copy.bin"},
            _unlink(out / "copy.bin"),
        ),
        Case(bare, "bare", {"src": src, "dst": out / "bare.bin"}, _unlink(out / "bare.bin")),
        Case(
            Row(label, "two threads forced: copy_hashing+fsync", size, [], reference=bare),
            "pipelined",
            {"src": src, "dst": out / "pipe.bin"},
            _unlink(out / "pipe.bin"),
        ),
        Case(
            Row(label, "LocalStorage.upload", size, [], reference=bare),
            "local_upload",
            {"root": root, "src": src, "remote": remote},
            functools.partial(store.delete, remote),
        ),
        Case(
            Row(label, "LocalStorage.download (verified)", size, [], reference=bare),
            "local_download",
            {
                "root": root,
                "remote": stored.storage_path,
                "dst": out / "down.bin",
                "sha256": stored.sha256,
            },
            _unlink(out / "down.bin"),
        ),
        Case(
            Row(label, "verify_artifact (local)", size, [], reference=bare),
            "local_verify",
            {"root": root, "remote": stored.storage_path, "sha256": stored.sha256},
        ),
    ]
    try:
        run_cases(cases, repeat, settle)
    finally:
        src.unlink()
        store.delete(stored.storage_path)
    return [case.row for case in cases]


def run_s3(
    workdir: Path, size: int, repeat: int, settle: float, endpoint: str, *, part_size: int
) -> list[Row]:
    src = make_file(workdir / f"s3-src-{size}.bin", size)
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    client = _boto3_client(endpoint)
    client.create_bucket(Bucket=bucket)
    storage = _s3_storage(endpoint, bucket, part_size)
    stored = storage.upload(src, "bench/1/checkpoint/stored.bin")  # what downloads fetch
    stored_key = stored.storage_path.removeprefix(f"s3://{bucket}/")
    common = {"endpoint": endpoint, "bucket": bucket, "part_size": part_size}
    out = workdir / "s3-out.bin"
    label = f"s3 (moto) {human(size)}"
    raw_up = Row(label, "ref: boto3 upload_file", size, [])
    raw_down = Row(label, "ref: boto3 download_file", size, [])
    remote = "bench/1/checkpoint/model.bin"
    cases = [
        Case(
            raw_up,
            "s3_raw_upload",
            {**common, "src": src, "key": "raw.bin"},
            functools.partial(client.delete_object, Bucket=bucket, Key="raw.bin"),
        ),
        Case(
            Row(label, "S3Storage.upload (+SHA-256)", size, [], reference=raw_up),
            "s3_upload",
            {**common, "src": src, "remote": remote},
            functools.partial(storage.delete, remote),
        ),
        Case(
            raw_down,
            "s3_raw_download",
            {**common, "key": stored_key, "dst": out},
            _unlink(out),
        ),
        Case(
            Row(label, "S3Storage.download (verified, fsync)", size, [], reference=raw_down),
            "s3_download",
            {**common, "remote": stored.storage_path, "dst": out, "sha256": stored.sha256},
            _unlink(out),
        ),
    ]
    try:
        run_cases(cases, repeat, settle)
    finally:
        src.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
        storage.delete(stored.storage_path)
    return [case.row for case in cases]


_COLUMNS = f"{'group':<18} {'case':<38} {'best s':>8} {'MiB/s':>8} {'ratio':>7} {'peak RSS':>10}"


def uptime() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def print_header() -> None:
    print(f"load average at the start: {uptime()}")
    print(_COLUMNS)
    print("-" * len(_COLUMNS), flush=True)


def print_rows(rows: list[Row]) -> None:
    """One group's rows, printed as soon as it is measured, after the load during it."""
    print(f"  (load average after the group: {uptime()})", flush=True)
    for row in rows:
        ratio = "" if row.reference is None else f"{row.reference.best / row.best:.2f}x"
        peak = "n/a" if row.peak is None else f"{row.peak / MiB:.1f} MiB"
        print(
            f"{row.group:<18} {row.case:<38} {row.best:>8.2f} {row.throughput:>8.0f} "
            f"{ratio:>7} {peak:>10}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--local-sizes", default="1G,4G", help="comma-separated local file sizes (default 1G,4G)"
    )
    parser.add_argument(
        "--s3-size",
        default="1G",
        help="file size through the moto S3 server; 0 skips S3 (default 1G)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="runs per case; the best time and the highest peak are kept",
    )
    parser.add_argument(
        "--s3-repeat",
        type=int,
        default=1,
        help="runs per S3 case (default 1: moto is slow with big objects)",
    )
    parser.add_argument(
        "--s3-part-size",
        default="8M",
        help="multipart part size for S3, both ours and raw boto3 (default 8M, the backend's)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="seconds to pause after sync before each timed case (default 1)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the big temporary files go (default: the temp dir)",
    )
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="cmr-bench-", dir=args.workdir))
    print_header()
    try:
        for size in (parse_size(s) for s in args.local_sizes.split(",") if s.strip()):
            if size:
                print_rows(run_local(workdir, size, args.repeat, args.settle))
        s3_size = parse_size(args.s3_size)
        if s3_size:
            with moto_server() as endpoint:
                print_rows(
                    run_s3(
                        workdir,
                        s3_size,
                        args.s3_repeat,
                        args.settle,
                        endpoint,
                        part_size=parse_size(args.s3_part_size),
                    )
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        "\n" + "ratio: reference seconds / case seconds (local: vs the one-pass floor, "
        "target >= 1.30; S3: vs raw boto3, which hashes nothing, target >= 0.90); "
        "peak RSS: of a fresh client process, above its RSS after imports and set-up"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
