"""An exclusive ``fcntl`` lock that serialises the processes changing one repository.

``flock`` locks belong to the open file description, so they are released by the kernel when a
holder dies (even by SIGKILL): a crashed publisher never leaves a stale lock behind. The lock file
is never part of a release (hidden in the repository root for local repositories, outside the
tree for CVMFS, where ``cvmfs_server transaction`` is the real guard).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import RepositoryError

__all__ = ["LOCK_FILENAME", "repository_lock"]

LOCK_FILENAME = ".hepbundle.lock"
_POLL = 0.05


@contextmanager
def repository_lock(lock_path: Path, *, timeout: float | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (created if missing) for the ``with`` body.

    Waits for other holders; with ``timeout`` seconds raises :class:`RepositoryError` instead of
    waiting longer.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if deadline is not None else 0))
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EINTR):
                    raise
                if deadline is not None and time.monotonic() > deadline:
                    raise RepositoryError(
                        f"another publisher holds {lock_path} for more than {timeout:g} s",
                        hint="wait for it to finish, or find the process holding the lock",
                    ) from None
                time.sleep(_POLL)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
