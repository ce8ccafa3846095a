"""Streaming, parallel SHA-256 of files: each file read once, in fixed-size blocks, across threads.

hashlib releases the GIL while it hashes a block larger than 2 KiB, so a thread pool scales to
the number of cores without extra processes; memory is ``workers × block`` whatever the file size.
"""

from __future__ import annotations

import hashlib
import os
import threading
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .regular import open_regular

__all__ = [
    "ALGORITHM",
    "DataChecksums",
    "FileDigest",
    "copy_and_hash",
    "data_checksums",
    "default_workers",
    "hash_file",
    "hash_files",
    "map_files",
    "sha256_bytes",
]

ALGORITHM = "sha256"
T = TypeVar("T")
_BLOCK = 1 << 20  # 1 MiB: large enough to amortise syscalls, small enough to bound memory


@dataclass(frozen=True, slots=True)
class FileDigest:
    """Size and SHA-256 of one file as read."""

    size: int
    sha256: str


def default_workers() -> int:
    """Threads to hash with: ``HEPBUNDLE_HASH_THREADS`` or the CPUs this process may use."""
    env = os.environ.get("HEPBUNDLE_HASH_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
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


def _reporter() -> Callable[[int], None] | None:
    """The progress callback :func:`map_files` set for this worker thread, if any."""
    return getattr(_local, "report", None)


def hash_file(path: str | os.PathLike[str]) -> FileDigest:
    """SHA-256 and size of one file, streamed in 1 MiB blocks through a per-thread buffer."""
    h = hashlib.sha256()
    buf, view = _buffer()
    report = _reporter()
    size = 0
    with open_regular(path) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
            size += n
            if report:
                report(n)
    return FileDigest(size=size, sha256=h.hexdigest())


def copy_and_hash(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> FileDigest:
    """Copy ``src`` to a new file ``dst`` and hash the bytes as they pass: one read per file."""
    h = hashlib.sha256()
    buf, view = _buffer()
    report = _reporter()
    size = 0
    with open_regular(src) as fin, open(dst, "xb", buffering=0) as fout:
        while n := fin.readinto(buf):
            h.update(view[:n])
            fout.write(view[:n])
            size += n
            if report:
                report(n)
    return FileDigest(size=size, sha256=h.hexdigest())


@dataclass(frozen=True, slots=True)
class DataChecksums:
    """Size, SHA-256 and the checksums grid storage uses (adler32, optionally MD5) of one file."""

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
    with open_regular(path) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
            adler = zlib.adler32(view[:n], adler)
            if m is not None:
                m.update(view[:n])
            size += n
    return DataChecksums(size, h.hexdigest(), f"{adler:08x}", m.hexdigest() if m else None)


def hash_files(
    paths: Sequence[str | os.PathLike[str]],
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[FileDigest]:
    """Hash ``paths`` in parallel; results in input order. ``progress(bytes)`` after each batch."""
    return map_files(
        hash_file, paths, [_size(p) for p in paths], workers=workers, progress=progress
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
    n = workers or default_workers()
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
    if n == 1 or len(batches) <= 1:
        return [d for b in batches for d in run(b)]
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="hepbundle-hash") as pool:
        return [d for res in pool.map(run, batches) for d in res]


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
