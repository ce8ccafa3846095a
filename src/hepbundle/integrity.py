"""Integrity verification: compare a bundle directory with its manifest, file by file.

Reports every problem at once (missing, extra, modified, path-rule violations) rather than the
first, so a person sees the whole damage in one run.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .cache import VerificationCache
from .digest import FileDigest, hash_file, map_files
from .errors import IntegrityError, PathError
from .manifest import FileEntry, Manifest
from .paths import Resolver, check_relpath, is_reserved, resolve_inside
from .regular import describe_mode

__all__ = ["IntegrityReport", "Problem", "check_entry", "check_layout", "check_tree"]

ProblemKind = Literal["missing", "extra", "modified", "path"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One integrity problem of one path."""

    kind: ProblemKind
    path: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.path}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class IntegrityReport:
    """What a verification checked and what it found."""

    checked: int
    bytes: int
    problems: tuple[Problem, ...] = field(default=())
    #: files vouched for by the node-local verification cache (not hashed again)
    cached: int = 0

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    @property
    def ok(self) -> bool:
        return not self.problems

    def of_kind(self, kind: ProblemKind) -> list[str]:
        return [p.path for p in self.problems if p.kind == kind]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "bytes": self.bytes,
            "cached": self.cached,
            "missing": self.of_kind("missing"),
            "extra": self.of_kind("extra"),
            "modified": self.of_kind("modified"),
            "path_violations": [
                {"path": p.path, "detail": p.detail} for p in self.problems if p.kind == "path"
            ],
        }

    def raise_for_problems(self, what: str = "bundle") -> None:
        """Raise :class:`IntegrityError` listing every problem in one line."""
        if self.problems:
            listed = "; ".join(str(p) for p in self.problems[:20])
            more = f"; … and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
            raise IntegrityError(
                f"{what} failed integrity verification: {listed}{more}", ref=what, report=self
            )


def _precheck(resolve: Resolver, entry: FileEntry) -> Problem | tuple[Path, os.stat_result]:
    """The cheap checks (path rules, presence, not a symlink, size); the path to hash if they pass."""
    try:
        p = resolve(entry.path)
        st = os.stat(p, follow_symlinks=False)
    except PathError as e:
        return Problem("path", entry.path, str(e))
    except FileNotFoundError:
        return Problem("missing", entry.path)
    except OSError as e:
        return Problem("missing", entry.path, f"unreadable: {e.strerror}")
    if stat.S_ISLNK(st.st_mode):
        where = "outside the bundle" if resolve.escapes(entry.path) else "inside the bundle"
        return Problem(
            "path", entry.path, f"is a symlink pointing {where}; bundles hold regular files only"
        )
    if not stat.S_ISREG(st.st_mode):
        # a FIFO would block the reader forever, /dev/zero never ends, /dev/null reads as empty
        return Problem(
            "path", entry.path, f"is {describe_mode(st.st_mode)}; bundles hold regular files only"
        )
    if st.st_size != entry.size:
        return Problem("modified", entry.path, f"size {st.st_size} != {entry.size}")
    return p, st


def check_entry(
    root: Path,
    entry: FileEntry,
    *,
    cache: VerificationCache | None = None,
    manifest_digest: str = "",
) -> Problem | None:
    """Check one manifest entry against the file on disk (size first, then its digest)."""
    problems, _, _ = _check_entries(root, [entry], None, None, cache, manifest_digest)
    return problems[0] if problems else None


def check_tree(
    root: Path,
    manifest: Manifest,
    *,
    files: Sequence[str] | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    cache: VerificationCache | None = None,
    manifest_digest: str = "",
) -> IntegrityReport:
    """Verify ``files`` (all payload files if None, plus a scan for extra files) under ``root``.

    With a ``cache`` (and the bundle's ``manifest_digest``), files this node verified before and
    that provably did not change since are not hashed again; newly verified ones are recorded."""
    by_path = manifest.by_path
    problems: list[Problem] = []
    if files is None:
        wanted = list(manifest.files)
        problems.extend(_scan_extra(root, by_path))
    else:
        wanted = []
        for f in files:
            if f in by_path:
                wanted.append(by_path[f])
            else:
                problems.append(Problem("extra", f, "not listed in the manifest"))
    found, hashed, cached = _check_entries(root, wanted, workers, progress, cache, manifest_digest)
    problems.extend(found)
    problems.sort(key=lambda p: (p.kind, p.path))
    return IntegrityReport(
        checked=len(wanted), bytes=hashed, problems=tuple(problems), cached=cached
    )


def check_layout(root: Path, manifest: Manifest) -> IntegrityReport:
    """Every check of :func:`check_tree` that needs no file content: path rules, missing and
    extra files, symlinks, sizes. A publisher that hashes each byte as it copies it (and refuses
    a mismatch) runs this first instead of a full verification (docs/design.md)."""
    problems: list[Problem] = list(_scan_extra(root, manifest.by_path))
    resolve = Resolver(root)
    for e in manifest.files:
        pre = _precheck(resolve, e)
        if isinstance(pre, Problem):
            problems.append(pre)
    problems.sort(key=lambda p: (p.kind, p.path))
    return IntegrityReport(checked=len(manifest.files), bytes=0, problems=tuple(problems))


def _check_entries(
    root: Path,
    wanted: Sequence[FileEntry],
    workers: int | None,
    progress: Callable[[int], None] | None,
    cache: VerificationCache | None,
    manifest_digest: str,
) -> tuple[list[Problem], int, int]:
    """Problems among ``wanted``, bytes hashed, and files vouched for by the cache."""
    problems: list[Problem] = []
    # cheap checks first, in this thread; hashing of the survivors in parallel
    to_hash: list[tuple[FileEntry, Path, os.stat_result]] = []
    resolve = Resolver(root)
    cached = 0
    for e in wanted:
        pre = _precheck(resolve, e)
        if isinstance(pre, Problem):
            problems.append(pre)
        elif cache is not None and cache.is_verified(manifest_digest, e.path, e.digest, *pre):
            cached += 1
        else:
            to_hash.append((e, *pre))
    digests: list[FileDigest] = map_files(
        lambda item: hash_file(item[1], item[0].algorithm),
        to_hash,
        [e.size for e, _, _ in to_hash],
        workers=workers,
        progress=progress,
    )
    good = []
    for (e, p, st), d in zip(to_hash, digests, strict=True):
        if d.digest != e.digest:
            problems.append(Problem("modified", e.path, f"{e.algorithm} differs"))
        else:
            good.append((e.path, e.digest, p, st))
    if cache is not None:
        cache.record(manifest_digest, good)
    return problems, sum(e.size for e, _, _ in to_hash), cached


def _scan_extra(root: Path, listed: dict[str, FileEntry]) -> Iterable[Problem]:
    """Files on disk that the manifest does not list, and path-rule violations among them:
    everything under ``root`` but directories (files, links of any kind, other nodes), each
    typed by the directory listing (no ``stat`` per entry)."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            listing = os.scandir(os.path.join(root, rel_dir) if rel_dir else root)
        except OSError:
            continue  # as os.walk: an unreadable directory hides nothing listed (those are checked)
        with listing:
            entries = sorted(listing, key=lambda e: e.name)
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                real_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                real_dir = False
            if real_dir:
                stack.append(rel)
                continue
            if (not rel_dir and is_reserved(rel)) or rel in listed:
                continue
            try:
                check_relpath(rel)
            except PathError as e:
                yield Problem("path", rel, str(e))
                continue
            if entry.is_symlink():
                try:
                    resolve_inside(root, rel)
                except PathError as e:
                    yield Problem("path", rel, str(e))
                    continue
            yield Problem("extra", rel, "not listed in the manifest")
