"""Streaming, parallel file digests: each file read once, in fixed-size blocks, across threads.

The digest algorithms a bundle may name live in one table, :data:`ALGORITHMS` (``sha256``,
``blake3``); every reader and writer dispatches through :func:`algorithm`, which refuses a name
it does not know. hashlib and blake3 both release the GIL while they hash a block, so a thread
pool scales to the number of cores without extra processes; memory is ``workers × block``
whatever the file size. An interrupt (Ctrl-C) stops every worker at its next block
(:func:`run_parallel`), so a command stops at once instead of finishing the queued work.
"""

from __future__ import annotations

import contextvars
import hashlib
import io
import os
import threading
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import blake3

from .config import settings
from .errors import FormatError
from .filemodes import publish_mode
from .regular import open_regular

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "Algorithm",
    "DataChecksums",
    "FileDigest",
    "HashingReader",
    "UnknownAlgorithmError",
    "algorithm",
    "copy_and_hash",
    "data_checksums",
    "default_workers",
    "hash_file",
    "hash_files",
    "map_files",
    "run_parallel",
    "sha256_bytes",
]

T = TypeVar("T")
R = TypeVar("R")
_BLOCK = 1 << 20  # 1 MiB: large enough to amortise syscalls, small enough to bound memory
_POLL = 0.05  # s: how often a thread waiting on a pool wakes to see a Ctrl-C (run_parallel)


class Hasher(Protocol):
    """What a streaming hash object offers (hashlib's and blake3's both do)."""

    def update(self, data: memoryview | bytes, /) -> object: ...

    def hexdigest(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Algorithm:
    """One digest algorithm a manifest may name: its name (as in ``hashing.algorithm``, the file
    entries' digest member and OMS resource descriptors) and a constructor of a streaming hasher.
    Every registered algorithm gives 32-byte digests, written as 64 lowercase hex digits."""

    name: str
    new: Callable[[], Hasher]
    summary: str

    def hex(self, data: bytes) -> str:
        """Hex digest of an in-memory byte string."""
        h = self.new()
        h.update(data)
        return h.hexdigest()


def _new_blake3() -> Hasher:
    # single-threaded per file: map_files already spreads files across the cores, and BLAKE3's
    # own threads would only contend with it (tools/bench/verify.py measures both)
    return blake3.blake3()


#: the digest algorithms of the bundle format (bundle-spec/README.md, "Digest algorithms");
#: a new algorithm is one entry here plus one row in the spec table
ALGORITHMS: dict[str, Algorithm] = {
    "sha256": Algorithm("sha256", hashlib.sha256, "SHA-256 (FIPS 180-4)"),
    "blake3": Algorithm("blake3", _new_blake3, "BLAKE3, unkeyed hash mode, 32-byte output"),
}
#: what new bundles use (docs/performance.md: BLAKE3 is faster on every CPU measured)
DEFAULT_ALGORITHM = "blake3"


class UnknownAlgorithmError(FormatError):
    """A manifest, signature or option names a digest algorithm this hepbundle does not know."""


def algorithm(name: str | Algorithm) -> Algorithm:
    """The :class:`Algorithm` called ``name``; :class:`UnknownAlgorithmError` if there is none."""
    if isinstance(name, Algorithm):
        return name
    try:
        return ALGORITHMS[name]
    except (KeyError, TypeError):
        raise UnknownAlgorithmError(
            f"unsupported digest algorithm {name!r}; this hepbundle knows {', '.join(ALGORITHMS)}",
            hint="a newer hepbundle may know it",
        ) from None


@dataclass(frozen=True, slots=True)
class FileDigest:
    """Size and digest (hex, in ``algorithm``) of one file as read."""

    size: int
    digest: str
    algorithm: str = "sha256"

    @property
    def sha256(self) -> str:
        """The hex SHA-256 (for data files, which are always SHA-256); asserts the algorithm."""
        if self.algorithm != "sha256":
            raise ValueError(f"this digest is {self.algorithm}, not sha256")
        return self.digest


def default_workers() -> int:
    """Threads to hash with: ``HEPBUNDLE_HASH_THREADS`` or the CPUs this process may use."""
    threads = settings().hash_threads
    if threads is not None:
        return threads
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of an in-memory byte string."""
    return hashlib.sha256(data).hexdigest()


_local = threading.local()


def _buffer() -> tuple[bytearray, memoryview]:
    """This thread's 1 MiB read buffer: allocated once per thread, not once per file (zeroing
    1 MiB costs more than hashing a small file)."""
    buf = getattr(_local, "buf", None)
    if buf is None:
        b = bytearray(_BLOCK)
        buf = _local.buf = (b, memoryview(b))
    return buf


#: set by :func:`run_parallel` when the thread waiting for its workers is interrupted; every
#: worker (and the pools it runs in turn, which share it through the copied context) checks it
#: at each block and raises KeyboardInterrupt
_stop: ContextVar[threading.Event | None] = ContextVar("hepbundle_stop", default=None)


def _check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise KeyboardInterrupt


def run_parallel(
    fn: Callable[[T], R], items: Sequence[T], workers: int, name: str
) -> list[R | BaseException]:
    """``fn(item)`` for each item on up to ``workers`` threads (named ``name``), each in a copy
    of the caller's context (so :func:`~hepbundle._base.deferred_sync` reaches them); the
    results, or the exception each call raised, in input order.

    When the waiting thread is interrupted (KeyboardInterrupt, SystemExit), the queued calls
    are cancelled, the running ones stop at their next block (:func:`hash_file`,
    :func:`copy_and_hash` and :func:`data_checksums` check between blocks), and once every
    worker has stopped the interrupt is re-raised: the caller's clean-up runs on work that no
    thread still writes, and the command ends in milliseconds, not when the queue is done."""
    stop = _stop.get() or threading.Event()

    def call(item: T) -> R:
        _stop.set(stop)
        return fn(item)

    futures: list[Future[R]] = []
    out: list[R | BaseException] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        try:  # (an interrupt may come while the calls are still being queued)
            for item in items:
                futures.append(pool.submit(contextvars.copy_context().run, call, item))
            for f in futures:
                # a bounded wait, again and again: CPython loses a signal that arrives just
                # before a blocking lock wait begins (the handler runs, the wait sleeps on), so
                # an unbounded f.result() could sleep through Ctrl-C until the queue is done
                while not f.done():
                    wait((f,), timeout=_POLL)
                e = f.exception()
                if e is None:
                    out.append(f.result())
                elif isinstance(e, Exception):
                    out.append(e)
                else:
                    raise e  # a worker stopped by an enclosing pool's interrupt
        except BaseException:
            stop.set()
            for f in futures:
                f.cancel()
            raise  # leaving the pool waits for the running calls, which stop at a block
    return out


def _reporter() -> Callable[[int], None] | None:
    """The progress callback :func:`map_files` set for this worker thread, if any."""
    return getattr(_local, "report", None)


def hash_file(path: str | os.PathLike[str], alg: str | Algorithm = "sha256") -> FileDigest:
    """Digest (default SHA-256) and size of one file, streamed in 1 MiB blocks through a
    per-thread buffer."""
    a = algorithm(alg)
    h = a.new()
    buf, view = _buffer()
    report = _reporter()
    stop = _stop.get()
    size = 0
    with open_regular(path) as f:
        while n := f.readinto(buf):
            _check_stop(stop)
            h.update(view[:n])
            size += n
            if report:
                report(n)
    return FileDigest(size, h.hexdigest(), a.name)


def copy_and_hash(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    alg: str | Algorithm = "sha256",
    *,
    written: Callable[[os.stat_result], None] | None = None,
) -> FileDigest:
    """Copy ``src`` to a new file ``dst`` and hash the bytes as they pass: one read per file.

    The digest is of the bytes read from ``src`` and handed to ``write``, i.e. of the bytes the
    new file holds (the caller owns ``dst``, created here exclusively). ``written`` receives the
    ``fstat`` of ``dst`` after the last write, once the file has its public mode
    (:func:`~hepbundle.filemodes.publish_mode`, set through the descriptor): the identity a
    later check compares with, which no later step of the caller moves."""
    a = algorithm(alg)
    h = a.new()
    buf, view = _buffer()
    report = _reporter()
    stop = _stop.get()
    size = 0
    with open_regular(src) as fin, open(dst, "xb", buffering=0) as fout:
        while n := fin.readinto(buf):
            _check_stop(stop)
            h.update(view[:n])
            done = 0
            while done < n:  # a raw write may be short: the file must hold every hashed byte
                done += fout.write(view[done:n]) or 0
            size += n
            if report:
                report(n)
        if written is not None:
            publish_mode(dst, fd=fout.fileno())
            written(os.fstat(fout.fileno()))
    return FileDigest(size, h.hexdigest(), a.name)


class HashingReader:
    """A file read through a hash, for a consumer that pulls the bytes itself (``tarfile``):
    ``read`` is the file's, :meth:`digest` is of every byte it returned. Closes the file."""

    def __init__(
        self,
        raw: io.FileIO,
        alg: str | Algorithm = "sha256",
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.raw = raw
        self._alg = algorithm(alg)
        self._h = self._alg.new()
        self._progress = progress
        self._size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n) or b""
        self._h.update(data)
        self._size += len(data)
        if self._progress is not None and data:
            self._progress(len(data))
        return data

    def digest(self) -> FileDigest:
        return FileDigest(self._size, self._h.hexdigest(), self._alg.name)

    def __enter__(self) -> HashingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.raw.close()


@dataclass(frozen=True, slots=True)
class DataChecksums:
    """Size, SHA-256 and the checksums grid storage uses (adler32, optionally MD5) of one file.

    Data files stay SHA-256 + adler32 whatever a bundle's own algorithm is: adler32 (and MD5) is
    what Rucio and XRootD store and compare, and SHA-256 is what data catalogues and the data
    references of earlier bundles record."""

    size: int
    sha256: str
    adler32: str
    md5: str | None = None


def data_checksums(path: str | os.PathLike[str], *, md5: bool = False) -> DataChecksums:
    """SHA-256, adler32 (8 hex digits, as Rucio and XRootD print it) and optionally MD5 of a
    data file in one read: data references are compared with what Rucio stores."""
    h = hashlib.sha256()
    m = hashlib.md5(usedforsecurity=False) if md5 else None
    adler = 1
    buf, view = _buffer()
    size = 0
    stop = _stop.get()
    with open_regular(path) as f:
        while n := f.readinto(buf):
            _check_stop(stop)
            h.update(view[:n])
            adler = zlib.adler32(view[:n], adler)
            if m is not None:
                m.update(view[:n])
            size += n
    return DataChecksums(size, h.hexdigest(), f"{adler:08x}", m.hexdigest() if m else None)


def hash_files(
    paths: Sequence[str | os.PathLike[str]],
    alg: str | Algorithm = "sha256",
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[FileDigest]:
    """Hash ``paths`` in parallel; results in input order. ``progress(bytes)`` after each batch."""
    a = algorithm(alg)
    return map_files(
        lambda p: hash_file(p, a),
        paths,
        [_size(p) for p in paths],
        workers=workers,
        progress=progress,
    )


def map_files(
    fn: Callable[[T], FileDigest],
    items: Sequence[T],
    sizes: Sequence[int],
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[FileDigest]:
    """Apply a per-file digest function across a thread pool; results in input order.

    Items go to the pool in batches of about 8 MiB, so large files spread across threads while
    many small files do not each pay for a future (the per-file overhead stays microseconds).
    ``progress(bytes)`` is called per 1 MiB block read by :func:`hash_file`/:func:`copy_and_hash`
    (serialised, so a progress bar is never updated from two threads at once).
    """
    lock = threading.Lock()

    def report(nbytes: int) -> None:
        assert progress is not None
        with lock:
            progress(nbytes)

    def run(batch: Sequence[T]) -> list[FileDigest]:
        _local.report = report if progress else None
        try:
            return [fn(item) for item in batch]
        finally:
            _local.report = None

    batches = list(_batches(items, sizes))
    n = 1 if len(batches) <= 1 else workers or default_workers()  # a small bundle: no pool
    if n == 1:
        return [d for b in batches for d in run(b)]
    out: list[FileDigest] = []
    for r in run_parallel(run, batches, n, "hepbundle-hash"):
        if isinstance(r, BaseException):
            raise r
        out.extend(r)
    return out


def _size(p: str | os.PathLike[str]) -> int:
    try:
        return Path(p).stat().st_size
    except OSError:
        return 0  # the worker raises the real error


def _batches(items: Sequence[T], sizes: Sequence[int]) -> Iterable[Sequence[T]]:
    target = 8 * _BLOCK
    batch: list[T] = []
    acc = 0
    for item, size in zip(items, sizes, strict=True):
        if batch and acc + size > target:
            yield batch
            batch, acc = [], 0
        batch.append(item)
        acc += size
    if batch:
        yield batch
