"""Copying while hashing, temporary files renamed atomically into place, and root confinement."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Protocol

from crucible_model_registry.errors import ChecksumMismatchError, StorageError, ValidationError
from crucible_model_registry.storage.base import ProgressCallback, check_remote_path

__all__ = [
    "CHUNK_SIZE",
    "PIPELINE_CHUNK_SIZE",
    "AtomicFile",
    "BackgroundHasher",
    "HashingReader",
    "HashingWriter",
    "check_sha256",
    "confine",
    "copy_hashing",
    "file_mode",
    "fsync_dir",
    "hash_file",
    "open_source_file",
    "os_errors_as_storage_error",
    "probe_file",
    "spare_core",
]

# 1 MiB: large enough that per-call overhead vanishes, small enough to stay in L2/L3 while
# sha256 reads it right after the read; 256 KiB-8 MiB measure the same here.
CHUNK_SIZE = 1 << 20


class _ReadInto(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


# Pipelined copies move bigger chunks: each one costs two queue hand-offs and a thread
# wake-up (tens of microseconds), which 4 MiB chunks make negligible at ~1 GiB/s.
PIPELINE_CHUNK_SIZE = 4 << 20
_PIPELINE_DEPTH = 4  # buffers in flight: 16 MiB of memory at most


def spare_core() -> bool:
    """Is a core free for a hashing thread (the 1-minute load average below the cores - 1/2)?

    A second thread pays only when it gets a core of its own: on a machine already busy
    (measured on this project's shared 2-core machines at a load of 8-20) the hand-offs
    between the threads cost more than the overlap gains, and the one-pass loop is faster
    (issue 21). Read from /proc/loadavg: about a microsecond.
    """
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available: assume a quiet machine
        return cores >= 2
    return cores >= 2 and load < cores - 0.5


class BackgroundHasher:
    """SHA-256 computed on a thread of its own, so hashing runs beside reading and writing.

    hashlib releases the GIL while it hashes a buffer of more than 2 KiB, and so do file
    and socket reads and writes: with the hash on a second core, a transfer takes about
    as long as the slower of the two instead of their sum (issue 21). Chunks are hashed in
    the order :meth:`update` receives them; at most ``depth`` wait, so a slow hasher holds
    the producer back instead of letting memory grow.

    Without a spare core (:func:`spare_core`) it hashes inline, in the caller's thread.

    Args:
        depth: chunks that may wait to be hashed.
        threaded: None decides by :func:`spare_core`; True or False forces it.
    """

    def __init__(self, *, depth: int = _PIPELINE_DEPTH, threaded: bool | None = None) -> None:
        self._digest = hashlib.sha256()
        self._queue: queue.Queue[tuple[memoryview | bytes, Callable[[], None] | None] | None]
        self._queue = queue.Queue(maxsize=depth)
        self._thread: threading.Thread | None = None
        if spare_core() if threaded is None else threaded:
            self._thread = threading.Thread(target=self._run, name="cmr-sha256", daemon=True)
            self._thread.start()
        self._closed = False

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            data, done = item
            self._digest.update(data)
            if done is not None:
                done()

    def update(self, data: memoryview | bytes, done: Callable[[], None] | None = None) -> None:
        """Queue ``data`` for hashing; ``done`` is called (on the hasher's thread) after it.

        ``data`` must not change until ``done`` is called: pass immutable ``bytes``, or a
        buffer the caller reuses only after ``done``.
        """
        if self._thread is None:
            self._digest.update(data)
            if done is not None:
                done()
            return
        self._queue.put((data, done))

    def close(self) -> None:
        """Hash what is queued and stop the thread (idempotent; also after an error)."""
        if not self._closed:
            self._closed = True
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()

    def hexdigest(self) -> str:
        """The SHA-256 of every chunk given so far (stops the thread)."""
        self.close()
        return self._digest.hexdigest()


def copy_hashing(
    src: _ReadInto,
    write: Callable[[memoryview], object] | None,
    *,
    progress: ProgressCallback | None = None,
    chunk_size: int = PIPELINE_CHUNK_SIZE,
    pipelined: bool | None = None,
) -> tuple[int, str]:
    """Stream ``src`` to ``write``, hashing each chunk on a second thread meanwhile.

    The first chunk is hashed inline: a file that fits in it (most configs, tokenizers,
    manifests) never starts a thread, and neither does a copy on a machine with no core
    to spare (:func:`spare_core`), where the one-pass loop is faster. From the second
    chunk on, a ring of
    ``_PIPELINE_DEPTH`` buffers circulates: this thread reads a chunk into a free buffer,
    hands it to the :class:`BackgroundHasher` and writes it while the hasher reads the
    same (unchanging) buffer; the hasher gives the buffer back when it is done.

    Args:
        src: read with ``readinto`` (an unbuffered file avoids a second copy).
        write: receives each chunk in order and must consume all of it; None only hashes.
        progress: called with each chunk's length.
        chunk_size: the buffer size.
        pipelined: None decides by :func:`spare_core`; True or False forces it.

    Returns:
        The number of bytes and their lowercase hex SHA-256.
    """
    first = bytearray(chunk_size)
    view = memoryview(first)
    n = src.readinto(view) or 0
    if n < chunk_size or not (spare_core() if pipelined is None else pipelined):
        return _copy_hashing_inline(src, write, view, n, progress)
    free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
    for _ in range(_PIPELINE_DEPTH - 1):
        free.put(bytearray(chunk_size))
    hasher = BackgroundHasher(depth=_PIPELINE_DEPTH, threaded=True)
    total = 0
    buffer = first
    try:
        while n:
            chunk = memoryview(buffer)[:n]
            hasher.update(chunk, functools.partial(free.put, buffer))
            if write is not None:
                write(chunk)
            total += n
            if progress is not None:
                progress(n)
            buffer = free.get()
            n = src.readinto(memoryview(buffer)) or 0
        return total, hasher.hexdigest()
    finally:
        hasher.close()


def _copy_hashing_inline(
    src: _ReadInto,
    write: Callable[[memoryview], object] | None,
    view: memoryview,
    n: int,
    progress: ProgressCallback | None,
) -> tuple[int, str]:
    """The one-thread loop, starting from a chunk already read into ``view``."""
    digest = hashlib.sha256()
    total = 0
    while n:
        chunk = view[:n]
        digest.update(chunk)
        if write is not None:
            write(chunk)
        total += n
        if progress is not None:
            progress(n)
        n = src.readinto(view) or 0
    return total, digest.hexdigest()


def hash_file(
    path: str | os.PathLike[str], *, progress: ProgressCallback | None = None
) -> tuple[int, str]:
    """Size and SHA-256 of a local file, read in bounded memory."""
    with open_source_file(path) as src:
        return copy_hashing(src, None, progress=progress)


_PROBE_BLOCKS = 16
_PROBE_BLOCK = 4096


def probe_file(path: str | os.PathLike[str]) -> str:
    """A cheap fingerprint of a file: SHA-256 of its size and 16 blocks of 4 KiB spread over it.

    Not an identity (files equal there may differ elsewhere): a filter that lets an upload
    skip hashing a file before sending it when no stored blob can be the same bytes, which
    matters because the shards of fine-tunes of one architecture all have the same sizes.
    Files up to 64 KiB are read whole.
    """
    digest = hashlib.sha256()
    with open_source_file(path) as src:
        size = os.fstat(src.fileno()).st_size
        digest.update(size.to_bytes(8, "big"))
        if size <= _PROBE_BLOCKS * _PROBE_BLOCK:
            digest.update(src.readall())
        else:
            step = (size - _PROBE_BLOCK) // (_PROBE_BLOCKS - 1)
            for i in range(_PROBE_BLOCKS):
                digest.update(os.pread(src.fileno(), _PROBE_BLOCK, i * step))
    return digest.hexdigest()


def open_source_file(path: str | os.PathLike[str], *, field: str = "local_path") -> io.FileIO:
    """Open a local regular file for an unbuffered sequential read.

    Raises:
        ValidationError: the path is missing, a directory, or not a regular file.
    """
    p = Path(path)
    try:
        if not p.is_file():
            what = "a directory" if p.is_dir() else "missing or not a regular file"
            raise ValidationError.single(field, f"{str(p)!r} is {what}; a file is needed")
        f = io.FileIO(p, "rb")
    except OSError as exc:
        raise ValidationError.single(field, f"cannot read {str(p)!r}: {exc.strerror}") from exc
    with contextlib.suppress(AttributeError, OSError):
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
    return f


_umask_lock = threading.Lock()


def file_mode() -> int:
    """The mode ``open()`` gives a new file: ``0o666`` less the process umask, as ``cp`` does.

    Temporary files are created ``0o600`` (``mkstemp``); they get this mode before they are
    renamed into place, so stored artifacts and downloads are as readable as any other file
    the user creates (teammates on a shared filesystem included).
    """
    try:
        # Linux >= 4.7 reports the umask without changing it (os.umask can only set it).
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:  # elsewhere: set and restore, serialised against our own threads
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicFile:
    """A temporary file beside ``destination`` that replaces it only on :meth:`commit`.

    Used as a context manager: leaving the block without committing (an error, a checksum
    mismatch) removes the temporary file and leaves the destination as it was.

    Every ``FLUSH_EVERY`` bytes a background ``fdatasync`` starts (one at a time): the
    kernel would otherwise hold the whole file dirty until the final ``fsync`` and write it
    all then, while reading and hashing sit idle. Overlapping the two makes the final
    ``fsync`` short; the thread only waits on the disk, so it costs no CPU.
    """

    FLUSH_EVERY = 32 << 20

    def __init__(self, destination: Path) -> None:
        self.destination = destination
        self._fd = -1
        self._tmp: Path | None = None
        self._unflushed = 0
        self._flusher: threading.Thread | None = None
        self._flush_error: OSError | None = None

    def __enter__(self) -> AtomicFile:
        self.destination.parent.mkdir(parents=True, exist_ok=True)
        # Same directory as the destination, so the final rename never crosses filesystems.
        self._fd, tmp = tempfile.mkstemp(
            prefix=f".{self.destination.name[:64]}.", suffix=".cmr-tmp", dir=self.destination.parent
        )
        self._tmp = Path(tmp)
        return self

    def write(self, chunk: memoryview | bytes) -> None:
        """Write all of ``chunk``."""
        view = memoryview(chunk)
        self._unflushed += len(view)
        while view:
            view = view[os.write(self._fd, view) :]
        if self._unflushed >= self.FLUSH_EVERY and not (
            self._flusher is not None and self._flusher.is_alive()
        ):
            self._unflushed = 0
            self._flusher = threading.Thread(target=self._flush, name="cmr-flush", daemon=True)
            self._flusher.start()

    def _flush(self) -> None:
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            # Linux reports a write-back error to one fsync only: keep it for commit().
            self._flush_error = exc

    def _join_flusher(self) -> None:
        # Join before the descriptor is closed, or a late fdatasync could hit a reused fd.
        if self._flusher is not None:
            self._flusher.join()
            self._flusher = None

    def commit(self) -> None:
        """Flush to disk and rename over the destination."""
        assert self._tmp is not None, "commit() outside the with block"
        self._join_flusher()
        if self._flush_error is not None:
            raise self._flush_error
        os.fchmod(self._fd, file_mode())
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        # Rename only after the bytes are on disk, so a reader never sees a half-written file.
        os.replace(self._tmp, self.destination)
        self._tmp = None
        fsync_dir(self.destination.parent)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._join_flusher()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            self._tmp = None


def check_sha256(actual: str, expected: str | None, *, backend: str, path: str) -> None:
    """Raise ``ChecksumMismatchError`` unless ``expected`` is None or equals ``actual``."""
    if expected is not None and expected.lower() != actual:
        raise ChecksumMismatchError(backend=backend, path=path, expected=expected, actual=actual)


def confine(root: Path, remote_path: str, *, field: str = "remote_path") -> Path:
    """The local path of ``remote_path`` under ``root``, refusing anything that leaves it.

    ``root`` must already be resolved. Symlinks inside the root that lead outside it are
    refused too; the check resolves the deepest existing ancestor of the target.

    Raises:
        ValidationError: the path is malformed or resolves outside ``root``.
    """
    rel = check_remote_path(remote_path, field=field)
    target = root.joinpath(*rel.split("/"))
    # Resolve the target itself if it exists (a symlinked file), else its nearest existing
    # ancestor: a symlinked directory would otherwise carry a later mkdir outside the root.
    probe = target
    while not probe.exists() and not probe.is_symlink() and probe != root:
        probe = probe.parent
    resolved = probe.resolve()
    if resolved != root and root not in resolved.parents:
        raise ValidationError.single(field, f"{rel!r} leads outside the storage root")
    return target


@contextlib.contextmanager
def os_errors_as_storage_error(backend: str, action: str) -> Iterator[None]:
    """Turn an ``OSError`` raised inside the block into ``StorageError``."""
    try:
        yield
    except OSError as exc:
        detail = exc.strerror or type(exc).__name__
        raise StorageError(f"could not {action}: {detail}", backend=backend) from exc


class HashingReader:
    """A read-only file wrapper that hashes each byte once, in order, as a consumer reads it.

    SDKs may seek back and read again (retries, checksums computed before sending); only
    bytes past the furthest contiguous position already hashed extend the digest. If a
    consumer ever skips ahead, :attr:`complete` turns False and the caller must hash the
    source again.
    """

    def __init__(
        self, raw: io.RawIOBase | io.BufferedIOBase, *, progress: ProgressCallback | None = None
    ) -> None:
        self._raw = raw
        # Hashed on a second thread while the SDK's thread reads on and sends (issue 21).
        self._hasher = BackgroundHasher()
        self._hashed = 0  # bytes [0, _hashed) are in the digest
        self._gap = False
        self._progress = progress

    def read(self, size: int | None = -1) -> bytes:
        """Read like ``io.RawIOBase.read`` and feed new bytes to the digest."""
        pos = self._raw.tell()
        data = self._raw.read(-1 if size is None else size)
        self._account(pos, memoryview(data))
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:
        """Read into ``buffer`` and feed new bytes to the digest."""
        pos = self._raw.tell()
        n = self._raw.readinto(buffer) or 0
        # The caller reuses its buffer: the hasher gets a copy it can read later.
        self._account(pos, memoryview(bytes(memoryview(buffer)[:n])))
        return int(n)

    def _account(self, pos: int, data: memoryview) -> None:
        end = pos + len(data)
        if pos > self._hashed:
            self._gap = True
        elif end > self._hashed:
            fresh = data[self._hashed - pos :]  # a view of immutable bytes: safe to queue
            self._hasher.update(fresh)
            self._hashed = end
            if self._progress is not None:
                self._progress(len(fresh))

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Reposition the underlying file."""
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        """The underlying file's position."""
        return self._raw.tell()

    def seekable(self) -> bool:
        """Always True: seeking back never corrupts the digest."""
        return True

    def readable(self) -> bool:
        """Always True."""
        return True

    def close(self) -> None:
        """Leave the underlying file to its owner."""

    def finish(self) -> None:
        """Stop the hashing thread (after the transfer, successful or not; idempotent)."""
        self._hasher.close()

    @property
    def complete(self) -> bool:
        """Whether every byte up to the furthest read was hashed exactly once, in order."""
        return not self._gap

    @property
    def size(self) -> int:
        """Bytes hashed so far."""
        return self._hashed

    def hexdigest(self) -> str:
        """The SHA-256 of the bytes hashed so far (stops the hashing thread)."""
        return self._hasher.hexdigest()


class HashingWriter:
    """A write-only, non-seekable sink that hashes chunks and hands them to ``write``.

    Being non-seekable makes SDK transfer managers (s3transfer) deliver ranged parts in order.
    """

    def __init__(
        self, write: Callable[[memoryview], None], *, progress: ProgressCallback | None = None
    ) -> None:
        self._write = write
        # Hashed on a second thread while this one writes and the SDK receives (issue 21).
        self._hasher = BackgroundHasher()
        self._size = 0
        self._progress = progress

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Hash and write all of ``data``."""
        # The hasher reads it later: it gets immutable bytes (s3transfer's already are).
        view = memoryview(data if isinstance(data, bytes) else bytes(data))
        n = len(view)
        self._hasher.update(view)
        self._write(view)
        self._size += n
        if self._progress is not None:
            self._progress(n)
        return n

    def seekable(self) -> bool:
        """Always False, so writes arrive in order."""
        return False

    def writable(self) -> bool:
        """Always True."""
        return True

    def flush(self) -> None:
        """Nothing is buffered."""

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    def finish(self) -> None:
        """Stop the hashing thread (after the transfer, successful or not; idempotent)."""
        self._hasher.close()

    def hexdigest(self) -> str:
        """The SHA-256 of the bytes written so far (stops the hashing thread)."""
        return self._hasher.hexdigest()
