"""Permission bits of everything hepbundle publishes: readable by every user, by construction.

A bundle or a repository is written by one account (a CVMFS release manager, a CI runner) and
read by others (grid jobs under pool accounts). A CVMFS client enforces the published permission
bits, and ``tempfile.mkstemp``/``mkdtemp`` create 0600/0700 whatever the umask, so every file a
build or a publisher makes visible is set explicitly: directories and executables 0755, other
files 0644. The publisher's umask does not matter.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["DIR_MODE", "EXEC_MODE", "FILE_MODE", "make_dirs", "publish_mode", "publish_tree"]

DIR_MODE = 0o755
FILE_MODE = 0o644
EXEC_MODE = 0o755


def publish_mode(path: str | os.PathLike[str], *, fd: int | None = None) -> None:
    """Set ``path`` (a directory, or a regular file; through ``fd`` if open) to its public mode:
    0755 for directories and files the owner may execute, 0644 for other files."""
    st = os.fstat(fd) if fd is not None else os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return
    mode = DIR_MODE if stat.S_ISDIR(st.st_mode) or st.st_mode & stat.S_IXUSR else FILE_MODE
    if stat.S_IMODE(st.st_mode) != mode:
        if fd is not None:
            os.fchmod(fd, mode)
        else:
            os.chmod(path, mode)


def publish_tree(root: str | os.PathLike[str]) -> None:
    """:func:`publish_mode` on ``root`` and everything under it (symlinks are left alone)."""
    publish_mode(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for n in (*dirnames, *filenames):
            publish_mode(os.path.join(dirpath, n))


def make_dirs(path: str | os.PathLike[str]) -> Path:
    """``mkdir -p`` whose every newly created level is 0755 whatever the umask."""
    p = Path(path)
    missing = []
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue
        os.chmod(d, DIR_MODE)
    return Path(path)
