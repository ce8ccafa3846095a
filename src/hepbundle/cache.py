"""Node-local cache of file verifications, so repeat verification does not cost O(bytes).

A worker node opens the same bundle in many jobs. Each successful digest check is remembered
under a key that changes whenever the file's content could have changed:

* the bundle's **manifest digest** and the file's **expected digest** (in the manifest's
  algorithm; a new bundle version, or a manifest listing another digest, never matches an old
  entry);
* the file's **identity as the kernel reports it**: device, inode, size, mtime and ctime in
  nanoseconds. Writing a file changes mtime and ctime; resetting mtime with ``utime`` still moves
  ctime, which no unprivileged user can set back;
* on a **CernVM-FS mount** (checked in ``/proc/self/mountinfo``: a client's ``fuse`` from
  ``cvmfs2``, or a Stratum-0's read-only overlay over the repository's FUSE mount, see
  :func:`parse_mountinfo`; never trusted elsewhere), also the repository name and revision and the file's
  content hash from CVMFS's extended attributes (``user.fqrn``, ``user.revision``, ``user.hash``
  or, for chunked files, ``user.chunk_list``). The CVMFS client checks every object against these
  hashes and the catalogs that carry them are signed by the repository key, so an unchanged hash
  means unchanged content for this repository. On any other file system ``user.*`` attributes are
  writable by the file's owner and prove nothing; they are ignored.

The cache lives in ``$HEPBUNDLE_CACHE_DIR`` or ``$XDG_CACHE_HOME/hepbundle`` (``~/.cache``),
one JSON file per manifest digest, in a directory only the user can write (0700). A missing,
corrupt or unwritable cache falls back to hashing; ``HEPBUNDLE_NO_CACHE=1`` turns it off.
Limits are spelled out in ``docs/verification-cache.md``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import settings

__all__ = [
    "VerificationCache",
    "cache_directory",
    "cvmfs_mount_of",
    "default_cache",
    "parse_mountinfo",
]

log = logging.getLogger("hepbundle")

_XATTRS = ("user.fqrn", "user.revision", "user.hash", "user.chunk_list")


@functools.cache
def _cvmfs_mounts() -> tuple[str, ...]:
    """Mount points of CernVM-FS file systems, longest first (read once per process: a
    transaction opened later on a Stratum-0 is not seen, the overlay's files then change and
    their ctime with them, so entries stop matching anyway)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            return parse_mountinfo(f.read())
    except OSError:
        return ()


def parse_mountinfo(text: str) -> tuple[str, ...]:
    """CernVM-FS mount points in a ``/proc/<pid>/mountinfo`` text, longest first.

    Two layouts are recognised (CVMFS notes):

    * a **client** mount: file system ``fuse`` (or ``fuse.cvmfs2``) from source ``cvmfs2``;
    * a **Stratum-0**: the repository's FUSE mount at ``/var/spool/cvmfs/<R>/rdonly`` whose source
      is the repository name ``<R>`` (not ``cvmfs2``), and ``/cvmfs/<R>`` an ``overlay`` with that
      FUSE mount as ``lowerdir``. The overlay counts only while it is mounted read-only, i.e. no
      transaction is open: inside one, changed files live in the writable upper directory on a
      local file system, whose ``user.*`` attributes prove nothing.
    """
    mounts: list[str] = []
    overlays: list[tuple[str, str]] = []
    for line in text.splitlines():
        # <id> <parent> <maj:min> <root> <mount point> <opts> [tags…] - <fstype> <source> <superopts>
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 6 or len(rfields) < 2:
            continue
        point = fields[4].replace("\\040", " ")
        fstype, source = rfields[0], rfields[1]
        if fstype in ("fuse", "fuse.cvmfs2") and (
            source == "cvmfs2" or point.endswith(f"/cvmfs/{source}/rdonly")
        ):
            mounts.append(point)
        elif fstype == "overlay" and "ro" in fields[5].split(",") and len(rfields) >= 3:
            opts = dict(o.partition("=")[::2] for o in rfields[2].split(","))
            overlays.append((point, opts.get("lowerdir", "")))
    mounts += [point for point, lower in overlays if lower in mounts]
    return tuple(sorted(mounts, key=len, reverse=True))


def cvmfs_mount_of(path: str) -> str | None:
    """The cvmfs2 FUSE mount point holding ``path`` (resolved), or None."""
    mounts = _cvmfs_mounts()
    if not mounts:
        return None  # no CernVM-FS on this node: nothing to resolve
    real = os.path.realpath(path)
    for m in mounts:
        if real == m or real.startswith(m.rstrip("/") + "/"):
            return m
    return None


def _cvmfs_key(path: str) -> list[str] | None:
    """The CVMFS attributes that pin the content of ``path``, or None if not on cvmfs2 or the
    attributes cannot be read (then the file is hashed)."""
    if cvmfs_mount_of(path) is None:
        return None
    out = []
    try:
        for name in _XATTRS:
            try:
                out.append(os.getxattr(path, name).decode("utf-8", "replace"))
            except OSError:
                out.append("")
    except AttributeError:  # pragma: no cover - no xattr support on this platform
        return None
    fqrn, revision, hash_, chunks = out
    if not fqrn or not revision or not (hash_ or chunks):
        return None
    return out


@dataclass(frozen=True, slots=True)
class _Identity:
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> _Identity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class VerificationCache:
    """Remembers successful file verifications of bundles on this node (see module docstring).

    ``directory=None`` keeps the records in memory only: what a build hands to the
    :class:`~hepbundle.bundle.Bundle` it returns when the node cache is off."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._loaded: dict[str, dict[str, Any]] = {}

    def _file(self, manifest_digest: str) -> Path:
        assert self.directory is not None
        return self.directory / "verified" / manifest_digest[:2] / f"{manifest_digest}.json"

    def _entries(self, manifest_digest: str) -> dict[str, Any]:
        if manifest_digest not in self._loaded and self.directory is None:
            self._loaded[manifest_digest] = {}
        if manifest_digest not in self._loaded:
            path = self._file(manifest_digest)
            try:
                st = path.stat()
                # only trust a cache file this user wrote and nobody else can write
                if st.st_uid != os.getuid() or st.st_mode & 0o022:
                    raise ValueError(f"{path} is not private to this user")
                data = json.loads(path.read_bytes())
                if not isinstance(data, dict):
                    raise ValueError("not an object")
            except FileNotFoundError:
                data = {}
            except (OSError, ValueError) as e:
                log.debug("verification cache unreadable (%s); hashing instead", e)
                data = {}
            self._loaded[manifest_digest] = data
        return self._loaded[manifest_digest]

    @staticmethod
    def _key(digest: str, path: Path, st: os.stat_result) -> list[Any]:
        ident = _Identity.of(st)
        return [
            digest,
            ident.dev,
            ident.ino,
            ident.size,
            ident.mtime_ns,
            ident.ctime_ns,
            _cvmfs_key(str(path)),
        ]

    def is_verified(
        self, manifest_digest: str, relpath: str, digest: str, path: Path, st: os.stat_result
    ) -> bool:
        """True if this exact file (same identity, same CVMFS content hash) verified before."""
        with self._lock:
            entry = self._entries(manifest_digest).get(relpath)
        return entry is not None and entry == self._key(digest, path, st)

    def record(
        self, manifest_digest: str, items: list[tuple[str, str, Path, os.stat_result]]
    ) -> None:
        """Remember verified files ``(relpath, digest, path, stat)`` and persist.

        The stat is taken *before* hashing when a file is verified (if it changed while it was
        hashed, its ctime moved and the entry will not match next time), and *after the last
        write* when a build wrote it (the digest is of the bytes written; any later write moves
        ctime)."""
        if not items:
            return
        with self._lock:
            entries = self._entries(manifest_digest)
            for relpath, digest, path, st in items:
                entries[relpath] = self._key(digest, path, st)
            self._persist(manifest_digest, entries)

    def _persist(self, manifest_digest: str, entries: dict[str, Any]) -> None:
        if self.directory is None:
            return
        target = self._file(manifest_digest)
        try:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.directory, 0o700)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
            # json.dumps, not json.dump: only the one-shot form uses the C encoder (an import
            # writes this file for every bundle it builds)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(entries, separators=(",", ":")))
            os.replace(tmp, target)
        except OSError as e:
            log.debug("verification cache not writable (%s); continuing without it", e)


def default_cache() -> VerificationCache | None:
    """The user's cache, or None when ``HEPBUNDLE_NO_CACHE`` is set."""
    s = settings()
    return None if s.no_cache else VerificationCache(s.cache_dir)


def cache_directory() -> Path:
    """The node cache directory (also holds the accepted trust roots and the catalogue state)."""
    return Path(settings().cache_dir)
