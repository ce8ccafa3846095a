"""Open only regular files: a FIFO, a device node (``/dev/zero``, ``/dev/null``), a socket or a
directory where a file is expected is refused with one clear error, never read (a FIFO would block
forever, ``/dev/zero`` never ends, ``/dev/null`` reads as an empty file).

The check is race-free: the file is opened non-blocking (opening a FIFO then returns at once), its
type is taken from the open descriptor (``fstat``), and only a regular file is handed back, with
blocking mode restored. Every place hepbundle reads a file it was given — verification, build,
import, publish, the readers of manifests, catalogues, specs and policies — goes through here.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from .errors import HepbundleError

__all__ = ["NotRegularFileError", "describe_mode", "open_regular", "read_regular"]


class NotRegularFileError(HepbundleError, OSError):
    """A path names something other than a regular file (also an ``OSError``, so callers that
    report unreadable files report this one the same way)."""

    def __init__(self, path: str | os.PathLike[str], kind: str) -> None:
        HepbundleError.__init__(
            self,
            f"{os.fspath(path)} is {kind}, not a regular file",
            hint="replace it with the real file",
        )
        self.filename = os.fspath(path)
        self.strerror = f"{kind}, not a regular file"
        self.errno = None


def describe_mode(mode: int) -> str:
    """``a FIFO``, ``a character device``… for the type bits of ``mode``."""
    for test, what in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return what
    return "a special file"


def open_regular(path: str | os.PathLike[str], *, follow_symlinks: bool = True) -> io.FileIO:
    """``open(path, "rb", buffering=0)`` for a regular file; :class:`NotRegularFileError` for
    anything else (``OSError`` as usual when it cannot be opened)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if not follow_symlinks and os.path.islink(path):
            raise NotRegularFileError(path, "a symbolic link") from None
        raise e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(path, describe_mode(st.st_mode))
        os.set_blocking(fd, True)
        return io.FileIO(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], *, limit: int | None = None) -> bytes:
    """All bytes of the regular file ``path``; with ``limit``, refuse a file larger than that
    many bytes before reading it (:class:`HepbundleError` naming the limit)."""
    with open_regular(path) as f:
        if limit is not None:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise HepbundleError(
                    f"{os.fspath(path)} is {size:,} bytes, over the limit of {limit:,}",
                    hint="see docs/reference/errors.md § Limits",
                )
            data = f.read(limit + 1)
            if len(data) > limit:  # grew while we read it
                raise HepbundleError(f"{os.fspath(path)} is over the limit of {limit:,} bytes")
            return data
        return f.read()


def is_regular(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` (following symlinks) is a regular file; no exception."""
    try:
        return stat.S_ISREG(Path(path).stat().st_mode)
    except OSError:
        return False
