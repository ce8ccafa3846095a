"""Bundle path rules: every path inside a bundle is relative, normalised, NFC, and stays inside.

The rules (normative text in ``bundle-spec/README.md`` § Paths):

* ``/``-separated, relative, no empty, ``.`` or ``..`` segments, no trailing slash;
* valid UTF-8, NFC-normalised Unicode, no NUL or other control characters, no backslash;
* at most 4096 bytes in UTF-8, each segment at most 255 bytes;
* no two paths of one bundle equal after NFC normalisation and case folding (so a bundle unpacks
  identically on case-insensitive file systems such as macOS and EOS FUSE views);
* no symlink whose target leaves the bundle (hepbundle itself copies link targets, never links).
"""

from __future__ import annotations

import functools
import os
import re
import stat
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from .errors import PathError

__all__ = ["RESERVED_NAMES", "check_collisions", "check_relpath", "is_reserved", "resolve_inside"]

#: top-level names a bundle reserves for itself; never payload files
RESERVED_NAMES = ("hepbundle.json", "hepbundle.sig", ".cvmfscatalog")
_RESERVED_SIG_PREFIX = "hepbundle."
_RESERVED_SIG_SUFFIX = ".sig"

_MAX_PATH_BYTES = 4096
_MAX_SEGMENT_BYTES = 255


def is_reserved(relpath: str) -> bool:
    """True for the manifest, signature files (``hepbundle.sig``, ``hepbundle.<who>.sig``) and
    the CVMFS nested-catalog marker: files that are never part of the payload."""
    if relpath in RESERVED_NAMES:
        return True
    return (
        "/" not in relpath
        and relpath.startswith(_RESERVED_SIG_PREFIX)
        and relpath.endswith(_RESERVED_SIG_SUFFIX)
    )


#: NUL, C0 controls and DEL (one regex search: this runs for every entry at every open)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# an import checks each path about a dozen times (plan, build, manifest reads, sign, publish,
# compat tree): a path that passed is remembered (bounded: 4096 paths of at most 4 KiB)
@functools.lru_cache(maxsize=4096)
def check_relpath(relpath: str) -> str:
    """Return ``relpath`` if it obeys the path rules, else raise :class:`PathError` naming the rule."""
    if not relpath:
        raise PathError("empty path")
    if _CONTROL.search(relpath):
        shown = relpath.encode("unicode_escape").decode("ascii")
        raise PathError(f"path {shown!r} contains a NUL or control character")
    if "\\" in relpath:
        raise PathError(f"path {relpath!r} contains a backslash; use '/' as separator")
    if relpath.startswith("/") or (len(relpath) > 1 and relpath[1] == ":"):
        raise PathError(f"path {relpath!r} is absolute; bundle paths are relative")
    if unicodedata.normalize("NFC", relpath) != relpath:
        raise PathError(f"path {relpath!r} is not NFC-normalised Unicode")
    try:
        size = len(relpath.encode("utf-8"))
    except UnicodeEncodeError:  # a file system name decoded with surrogate escapes
        shown = relpath.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise PathError(f"path '{shown}' is not valid UTF-8") from None
    if size > _MAX_PATH_BYTES:
        raise PathError(f"path {relpath[:40]!r}… is longer than {_MAX_PATH_BYTES} bytes")
    for seg in relpath.split("/"):
        if seg in ("", ".", ".."):
            raise PathError(
                f"path {relpath!r} has an empty, '.' or '..' segment; paths must stay inside "
                "the bundle"
            )
        if len(seg.encode("utf-8")) > _MAX_SEGMENT_BYTES:
            raise PathError(
                f"path {relpath!r} has a segment longer than {_MAX_SEGMENT_BYTES} bytes"
            )
    return relpath


def _fold(relpath: str) -> str:
    return unicodedata.normalize("NFC", relpath).casefold()


def check_collisions(relpaths: Iterable[str]) -> None:
    """Raise :class:`PathError` if two paths are equal after NFC normalisation and case folding."""
    seen: dict[str, str] = {}
    for p in relpaths:
        key = _fold(p)
        if key in seen and seen[key] != p:
            raise PathError(
                f"paths {seen[key]!r} and {p!r} collide after Unicode normalisation/case folding"
            )
        if key in seen:
            raise PathError(f"path {p!r} appears twice")
        seen[key] = p


class Resolver:
    """Joins bundle-relative paths to a root, refusing any whose parent directories resolve
    outside it. Each directory below the root is looked at once per resolver, with one
    ``lstat``: a real directory under a directory inside the root is inside it; only a symbolic
    link on the way costs a ``realpath`` (a file in a bundle of 5 directories costs no system
    call here after the first five)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root_text = str(root)
        self._real_root: str | None = None
        self._dirs: dict[str, bool] = {"": True}

    @property
    def real_root(self) -> str:
        if self._real_root is None:
            self._real_root = os.path.realpath(self.root)
        return self._real_root

    def inside(self, real: str) -> bool:
        return real == self.real_root or real.startswith(self.real_root + os.sep)

    def _dir_inside(self, parent: str) -> bool:
        ok = self._dirs.get(parent)
        if ok is not None:
            return ok
        todo = [parent]  # the directory and its unchecked ancestors, deepest first
        while True:
            up = todo[-1].rpartition("/")[0]
            ok = self._dirs.get(up)
            if ok is not None:
                break
            todo.append(up)
        for d in reversed(todo):  # from the highest unchecked one down (no recursion: a path
            if ok:  # may have 2,000 segments)
                try:
                    mode = os.lstat(os.path.join(self._root_text, d)).st_mode
                except OSError:
                    mode = 0  # missing: nothing is read through it (the file's stat says so)
                if stat.S_ISLNK(mode):
                    ok = self.inside(os.path.realpath(os.path.join(self._root_text, d)))
            self._dirs[d] = ok
        return ok

    def __call__(self, relpath: str) -> Path:
        check_relpath(relpath)
        if not self._dir_inside(relpath.rpartition("/")[0]):
            raise PathError(f"path {relpath!r} resolves outside the bundle (symlink escape)")
        return self.root / relpath

    def escapes(self, relpath: str) -> bool:
        """True if the final component is a symlink that points outside the root."""
        return not self.inside(os.path.realpath(self.root / relpath))


def resolve_inside(root: Path, relpath: str) -> Path:
    """Join ``relpath`` to ``root`` after checking the rules, and refuse symlinks that leave ``root``."""
    r = Resolver(root)
    candidate = r(relpath)
    if os.path.islink(candidate) and r.escapes(relpath):
        raise PathError(f"path {relpath!r} resolves outside the bundle (symlink escape)")
    return candidate
