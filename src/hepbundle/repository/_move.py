"""``publish --move``: a bundle directory renamed into the repository's staging area, not copied.

A bundle built into ``dist/`` on the repository's file system need not be written a second time:
:func:`move_in` renames its directory into a publish work directory (one ``rename(2)``; never a
hard link, whose shared inode would let a later edit of ``dist/`` change a published version)
and the publisher then checks the moved tree where it now lies, before the batch's sync and the
rename into place (:mod:`.tree`):

* the tree holds exactly what a copy would have copied (payload, manifest, signature files and
  their directories), each a regular file with a single link that no process holds open for
  writing (:func:`check_sole`: a read lease, ``F_SETLEASE``, is refused while any writer
  exists; no new writer can reach the files by their old path once they are moved);
* every payload file is the one verified: the build's records in the node cache vouch for a
  file whose identity (inode, size, mtime, ctime) is unchanged since it was hashed, any other
  file is hashed once (the staged copy of a copying publish is checked the same way, as it is
  written); ``hepbundle.json`` and each signature file hash to the bytes that were verified.

The origin is written into the work directory (and made durable) before the move; every way
out that publishes nothing puts the directory back (:func:`give_back`), :func:`~.tree.recover`
after a crash included. On another file system the move is refused with a one-line error
(:func:`check_movable`), not turned into a copy: ``--move`` promises one write and no source
left behind, and a script relying on that should hear that it did not happen.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
from pathlib import Path

from .._base import fsync_dir, fsync_file
from ..bundle import Bundle
from ..cache import VerificationCache, default_cache
from ..errors import IntegrityError, RepositoryError
from ..filemodes import make_dirs
from .layout import CVMFS_CATALOG_MARKER

__all__ = ["MOVED_FROM", "check_movable", "check_sole", "give_back", "move_in", "still_holds"]

#: the file of a work directory naming where its ``bundle`` was moved from
MOVED_FROM = "moved-from.json"

_HINT = "publish without --move to copy it"


def _device_of(path: Path) -> int:
    """``st_dev`` of ``path``, or of its nearest existing ancestor (a repository not made yet)."""
    p = path.absolute()
    while True:
        try:
            return os.stat(p).st_dev
        except FileNotFoundError:
            if p.parent == p:
                raise
            p = p.parent


def check_movable(bundle: Bundle, root: Path) -> None:
    """Refuse (RepositoryError) a bundle ``--move`` cannot publish into the repository at
    ``root``: not a directory of its own (a symlink would be moved, not the bundle), inside the
    repository, or on another file system than the repository."""
    src = bundle.root
    st = os.lstat(src)
    if not stat.S_ISDIR(st.st_mode):
        raise RepositoryError(
            f"{bundle.ref}: {src} is a symlink; --move moves a bundle directory", hint=_HINT
        )
    real, repo = os.path.realpath(src), os.path.realpath(root)
    if real == repo or real.startswith(repo.rstrip("/") + "/"):
        raise RepositoryError(f"{bundle.ref}: {src} is inside the repository {root}")
    dev = _device_of(root)
    if st.st_dev != dev:
        raise RepositoryError(
            f"{bundle.ref}: --move needs the bundle on the repository's file system "
            f"({src} is on device {os.major(st.st_dev)}:{os.minor(st.st_dev)}, {root} on "
            f"{os.major(dev)}:{os.minor(dev)})",
            hint=_HINT,
        )


def move_in(bundle: Bundle, work: Path) -> Bundle:
    """Rename ``bundle``'s directory to ``work/bundle`` (origin recorded first, durably) and
    return the bundle opened there: same manifest, same checked signature files, the node
    cache (its records hold file identities, which a rename of the directory keeps)."""
    src = bundle.root
    record = work / MOVED_FROM
    marker = os.path.lexists(src / CVMFS_CATALOG_MARKER)  # the publisher adds one if not
    record.write_text(json.dumps({"path": str(src), "marker": marker}), encoding="utf-8")
    fsync_file(record)
    fsync_dir(work)  # the origin is on the disk before the bundle leaves it
    try:
        os.rename(src, work / "bundle")
    except OSError as e:
        if e.errno == errno.EXDEV:  # an overlay's lower directory, a bind mount
            raise RepositoryError(
                f"{bundle.ref}: {src} cannot be moved into the repository (another file system)",
                hint=_HINT,
            ) from None
        raise RepositoryError(f"{bundle.ref}: cannot move {src}: {e.strerror}") from None
    moved = bundle.relocated(work / "bundle")
    moved.cache = bundle.cache or default_cache() or VerificationCache(None)
    return moved


def give_back(work: Path) -> str | None:
    """Put a bundle moved into ``work`` back where it came from (``<origin>.unpublished-<hex>``
    beside it when that place has been taken since; its parent directories made again if they
    are gone); what was done, or None (nothing moved in, or it went on into place). When even
    that fails the bundle stays in ``work`` and :func:`still_holds` says so: the caller must not
    remove it."""
    try:
        record = json.loads((work / MOVED_FROM).read_text(encoding="utf-8"))
        origin = Path(record["path"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    stage = work / "bundle"
    if not stage.is_dir() or stage.is_symlink():
        return None
    if not record.get("marker"):  # the one file the publisher added
        (stage / CVMFS_CATALOG_MARKER).unlink(missing_ok=True)
    target = origin
    while os.path.lexists(target):
        target = origin.with_name(f"{origin.name}.unpublished-{os.urandom(3).hex()}")
    try:
        make_dirs(target.parent)
        os.rename(stage, target)
    except OSError as e:
        return f"left the moved bundle in {stage}: cannot put it back in {target}: {e.strerror}"
    fsync_dir(target.parent)
    taken = "" if target == origin else f", its old place {origin} being taken"
    return f"put the bundle back in {target}{taken} (nothing was published)"


def still_holds(work: Path) -> bool:
    """Whether ``work`` still holds a moved bundle (:func:`give_back` could not return it)."""
    return (work / MOVED_FROM).is_file() and (work / "bundle").is_dir()


def check_sole(bundle: Bundle, names: list[str]) -> None:
    """Refuse (IntegrityError) the moved tree unless it holds exactly ``names`` (what a copy
    copies) and their directories, each a regular file with one link that no process has open
    for writing (module docstring). Without lease support the move is refused (nothing proves
    the absence of a writer); a copying publish needs none. A CVMFS catalogue marker (the
    publisher's own empty file) may be there too, under the same conditions."""
    root = bundle.root
    wanted = set(names)
    dirs = {str(p) for n in names for p in Path(n).parents}  # each name's directories, "." too
    if os.path.lexists(root / CVMFS_CATALOG_MARKER):  # of a bundle copied out of a repository
        _sole(bundle.ref, root / CVMFS_CATALOG_MARKER, CVMFS_CATALOG_MARKER)
        if os.lstat(root / CVMFS_CATALOG_MARKER).st_size:
            raise IntegrityError(
                f"{bundle.ref}: {CVMFS_CATALOG_MARKER} is not empty (nothing was published)"
            )
        wanted.add(CVMFS_CATALOG_MARKER)
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for n in dirnames:
            r = n if rel == "." else f"{rel}/{n}"
            if r not in dirs or os.path.islink(os.path.join(dirpath, n)):
                raise _not_part(bundle.ref, r)
        for n in filenames:
            r = n if rel == "." else f"{rel}/{n}"
            if r not in wanted:
                raise _not_part(bundle.ref, r)
    for n in names:
        _sole(bundle.ref, root / n, n)


def _not_part(ref: str, rel: str) -> IntegrityError:
    return IntegrityError(
        f"{ref}: {rel} is not part of the bundle; --move publishes exactly the bundle's files "
        "(nothing was published)"
    )


def _sole(ref: str, path: Path, rel: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        raise IntegrityError(f"{ref}: {rel} cannot be opened: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IntegrityError(f"{ref}: {rel} is not a regular file (nothing was published)")
        if st.st_nlink != 1:
            raise IntegrityError(
                f"{ref}: {rel} has {st.st_nlink} links: another name could change it after "
                "publishing (nothing was published)",
                hint=_HINT,
            )
        try:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EBUSY):
                raise IntegrityError(
                    f"{ref}: {rel} is open for writing by a process (nothing was published)",
                    hint="let it finish, or publish without --move to copy the bytes as they are",
                ) from None
            raise RepositoryError(
                f"{ref}: cannot make sure no process writes {rel} (file lease: "
                f"{e.strerror}); --move needs that",
                hint=_HINT,
            ) from None
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    finally:
        os.close(fd)
