"""The bottom of the package: the version, UTC timestamps, the atomic file write and fsync.

Every layer may import this module; it imports nothing of hepbundle but :mod:`.errors` and :mod:`.filemodes`.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from .config import settings
from .errors import BuildError
from .filemodes import make_dirs, publish_mode

__all__ = [
    "TIME_FORMAT",
    "__version__",
    "created_timestamp",
    "deferred_sync",
    "fsync_dir",
    "fsync_file",
    "sync_filesystem",
    "syncing",
    "utc_timestamp",
    "write_atomic",
]

__version__ = "0.1.0"

#: the one timestamp form hepbundle writes (manifests, catalogues, records, signatures)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_timestamp(t: float | None = None) -> str:
    """``t`` (seconds since the epoch; default now) as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC."""
    return time.strftime(TIME_FORMAT, time.gmtime(t))


def created_timestamp() -> str:
    """UTC build time, or ``SOURCE_DATE_EPOCH`` when set (reproducible builds)."""
    sde = settings().source_date_epoch
    if sde is None:
        return utc_timestamp(int(time.time()))
    try:
        return utc_timestamp(int(sde))
    except ValueError:
        raise BuildError(f"SOURCE_DATE_EPOCH={sde!r} is not an integer") from None


_SYNC: ContextVar[bool] = ContextVar("hepbundle_sync", default=True)


def syncing() -> bool:
    """False inside :func:`deferred_sync`: writes need not reach the disk one by one."""
    return _SYNC.get()


@contextmanager
def deferred_sync() -> Iterator[None]:
    """Skip every fsync (files, directories, SQLite's) inside: for writes whose durability point
    is a later step, i.e. a ``cvmfs_server transaction``, made durable as a whole by
    ``cvmfs_server publish`` (and thrown away whole by ``abort``: a crash inside the transaction
    leaves it open, and the operator aborts it). The renames keep their order, so readers of the
    transaction's overlay still see old bytes or new ones."""
    token = _SYNC.set(False)
    try:
        yield
    finally:
        _SYNC.reset(token)


def write_atomic(path: Path, data: bytes, *, tmp_dir: Path | None = None) -> None:
    """Write-new + fsync + rename: readers see the old bytes or the new ones, never a mix.

    The new file is written in ``tmp_dir`` (a publisher's staging area on the same file system)
    or, by default, as a hidden ``.<name>.tmp-*`` beside ``path``; a crash leaves it there, where
    no reader looks and the next writer cleans up. The file is world-readable (0644, see
    :mod:`.filemodes`), and the rename is made durable by syncing the directory.
    """
    make_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=tmp_dir or path.parent)
    try:
        publish_mode(tmp, fd=fd)  # mkstemp makes 0600: every user must read what is published
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if syncing():
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename or create inside ``path`` durable (POSIX needs the directory synced too);
    nothing inside :func:`deferred_sync`."""
    if not syncing():
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush the file at ``path`` to the disk; nothing inside :func:`deferred_sync`."""
    if not syncing():
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_SYNCFS: list[Callable[[int], int] | None] = []


def _syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs`` (Linux), looked up once; None where the C library has none."""
    if not _SYNCFS:
        import ctypes

        try:
            fn = ctypes.CDLL(None, use_errno=True).syncfs
            fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
            _SYNCFS.append(fn)
        except (OSError, AttributeError):
            _SYNCFS.append(None)
    return _SYNCFS[0]


def sync_filesystem(path: Path) -> None:
    """Make every write so far to the file system holding the directory ``path`` durable, at
    once: one ``syncfs(2)`` (else ``sync()``) instead of an fsync per file and directory. A
    batch writer writes all its new files, calls this once, and only then renames them into
    view (docs/design.md, "Durability"). Raises OSError if the kernel reports a write-back
    error (nothing may be made visible then); nothing inside :func:`deferred_sync`."""
    if not syncing():
        return
    import ctypes

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fn = _syncfs()
        if fn is None:
            os.sync()
        elif fn(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs of {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def lazy_exports(
    package: str, table: Mapping[str, str], exported: list[str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` (PEP 562) that import each name of ``table``
    (name -> submodule) on first use, so importing the package loads none of them."""
    import importlib

    def getattr_(name: str) -> object:
        if name in table:
            return getattr(importlib.import_module(f".{table[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        module = importlib.import_module(package)
        return sorted({*vars(module), *exported})

    return getattr_, dir_
