"""The pipelined copy: the hash on a second thread gives the same bytes and digest as one pass,
whatever the size, and leaves no thread behind when the consumer fails."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

import pytest

from crucible_model_registry.storage._streaming import (
    PIPELINE_CHUNK_SIZE,
    BackgroundHasher,
    HashingReader,
    HashingWriter,
    copy_hashing,
    probe_file,
)

C = PIPELINE_CHUNK_SIZE


def hasher_threads() -> int:
    return sum(t.name == "cmr-sha256" for t in threading.enumerate())


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "one-pass"])
@pytest.mark.parametrize(
    "size", [0, 1, C - 1, C, C + 1, 3 * C, 5 * C + 12345], ids=lambda s: f"{s}B"
)
def test_copy_hashing_matches_one_pass(size: int, pipelined: bool) -> None:
    data = os.urandom(size)
    out = bytearray()
    seen: list[int] = []

    n, digest = copy_hashing(
        io.BytesIO(data), out.extend, progress=seen.append, pipelined=pipelined
    )

    assert (n, digest) == (size, hashlib.sha256(data).hexdigest())
    assert bytes(out) == data
    assert sum(seen) == size
    assert hasher_threads() == 0


def test_hash_only_matches_one_pass() -> None:
    data = os.urandom(2 * C + 7)
    expected = (len(data), hashlib.sha256(data).hexdigest())
    assert copy_hashing(io.BytesIO(data), None, pipelined=True) == expected
    assert copy_hashing(io.BytesIO(data), None, pipelined=False) == expected


class Refused(Exception):
    pass


def test_a_failing_writer_stops_the_hasher() -> None:
    calls = []

    def write(chunk: memoryview) -> None:
        calls.append(len(chunk))
        if len(calls) == 2:
            raise Refused

    with pytest.raises(Refused):
        copy_hashing(io.BytesIO(os.urandom(4 * C)), write, pipelined=True)
    assert hasher_threads() == 0


@pytest.mark.parametrize("threaded", [True, False], ids=["threaded", "inline"])
def test_a_background_hasher_hashes_in_order_and_calls_back(threaded: bool) -> None:
    hasher = BackgroundHasher(depth=2, threaded=threaded)
    done: list[int] = []
    parts = [os.urandom(3000) for _ in range(10)]
    for i, part in enumerate(parts):
        hasher.update(part, lambda i=i: done.append(i))
    assert hasher.hexdigest() == hashlib.sha256(b"".join(parts)).hexdigest()
    assert done == list(range(10))
    hasher.close()  # idempotent
    assert hasher_threads() == 0


def test_a_reader_read_again_after_a_seek_back_hashes_each_byte_once() -> None:
    data = os.urandom(3 * 1024 * 1024)
    reader = HashingReader(io.BytesIO(data))
    try:
        reader.read(1024 * 1024)
        reader.seek(0)
        buf = bytearray(2 * 1024 * 1024)
        reader.readinto(memoryview(buf))
        buf[:] = b"\0" * len(buf)  # the caller reuses its buffer: the hash must not see it
        reader.read()
        assert reader.complete
        assert reader.hexdigest() == hashlib.sha256(data).hexdigest()
    finally:
        reader.finish()


def test_a_writer_hashes_what_it_writes() -> None:
    out = bytearray()
    writer = HashingWriter(out.extend)
    try:
        chunk = bytearray(os.urandom(5000))
        writer.write(chunk)
        chunk[:] = b"\0" * len(chunk)  # reused by the SDK: the hasher had its own copy
        writer.write(b"tail")
        assert writer.hexdigest() == hashlib.sha256(bytes(out)).hexdigest()
        assert writer.size == 5004
    finally:
        writer.finish()


def test_a_probe_tells_files_of_one_size_apart(tmp_path: Path) -> None:
    data = os.urandom(1 << 20)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    a.write_bytes(data)
    b.write_bytes(data)
    c.write_bytes(os.urandom(1 << 20))  # same size, other bytes (a fine-tune's own shard)
    small = tmp_path / "small"
    small.write_bytes(b"x" * 100)

    assert probe_file(a) == probe_file(b)
    assert probe_file(a) != probe_file(c)
    assert probe_file(small) != probe_file(a)
    assert len(probe_file(small)) == 64
