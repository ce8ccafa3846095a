"""The import driver: build, check and sign every planned bundle, then publish them all at once.

For each :class:`~.base.PlannedBundle`, in plan order:

* already published (the catalogue has the version): compare the source files with the
  published manifest — from this node's records of the sources where their identity is
  unchanged since they were hashed, else by hashing them; identical is ``unchanged`` (a no-op),
  anything else is a ``conflict``, reported and never overwritten;
* otherwise build it — local backend: in a :class:`~hepbundle.repository.tree.LiveWorkDir` of
  the repository's staging area, without fsyncs; cvmfs: in a private work directory — (the
  build hashes every byte as it copies it), abort if any source file's identity (inode, size,
  mtime, ctime) differs from before the build (the store changed under the import), and sign
  it over the digests the build just computed.

With ``keep_going``, a version that fails there, or that publishing would refuse on its own
(:func:`~hepbundle.repository.publish.check_publishable`: the policy refusing its signer, its
version in the repository with other content), is ``failed`` and left out of the batch.

Then the new bundles are published in chunks, each ONE :func:`~hepbundle.repository.publish_many`
with the chosen backend, signatures and policy verified, each bundle's aliases pointed at it in
the same step; all or nothing per chunk. Local: a chunk is published every
``publish_every`` new versions (1000) and once ``publish_seconds`` (30 s) have passed since its
first one was built, then the rest at the end; each bundle is checked against the build's
records and moved into place (one read and one write of each byte in all), the chunk made
durable by one sync before the renames. cvmfs: one chunk, i.e. one ``cvmfs_server
transaction`` and one ``publish`` for the whole import, every byte hashed again as it is copied
in (docs/design.md). An unchanged version whose alias points elsewhere gets it moved afterwards.

A run killed half-way keeps the chunks it published (local; cvmfs: nothing, the transaction is
aborted whole) and nothing of the chunk it was building or publishing (the staging area or the
work directory needs room for one chunk); running it again finds what an earlier run published
``unchanged`` without reading it (from this node's records of the sources), builds the rest,
and removes the work directories the killed run left (they are flock-held while a run lives).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._base import deferred_sync
from ..builder import BuildOptions, build_from_spec
from ..bundle import Bundle
from ..cache import VerificationCache, default_cache
from ..digest import FileDigest, hash_file, map_files
from ..errors import HepbundleError, IntegrityError, SpecError
from ..manifest import Manifest
from ..policy import TrustPolicy
from ..repository import make_publisher
from ..repository._crash import crash_point
from ..repository.catalog import read_name_catalog
from ..repository.layout import bundle_dir, is_repository
from ..repository.lock import LOCK_FILENAME, repository_lock
from ..repository.operations import set_alias
from ..repository.publish import check_publishable, publish_many
from ..repository.tree import LiveWorkDir, recover
from ..signing import Signer, sign
from .base import ImportPlan, PlannedBundle, safe_name
from .legacy import write_alias_links, write_compat_tree

__all__ = ["FAILED", "METADATA_CHANGED", "ImportOptions", "ImportReport", "Outcome", "run_import"]

#: the status of a version that could not be built with ``keep_going`` (a file unreadable or
#: changed during the import, a git object missing…): not published, the others are
FAILED = "failed"

#: the status of a version whose files are as published but whose metadata in the store
#: (an MLflow description, run tags or params, …) changed since: nothing is written
METADATA_CHANGED = "metadata-changed"

log = logging.getLogger("hepbundle")

#: the private work areas of imports (``$TMPDIR`` or ``--work-dir``); a killed run's is removed
#: by the next import (:meth:`LiveWorkDir.remove_stale`)
_WORK_PREFIX = "hepbundle-import-"
#: the node records of source files are kept under this prefix + the manifest digest
_SOURCE_KEY = "source:"


@dataclass(frozen=True)
class ImportOptions:
    """Where to publish and how: the repository (a directory for the local backend, a
    repository name for cvmfs), the backend, the signer and trust policy, where a private work
    directory is made (default: ``$TMPDIR``; the local backend builds in the repository's
    staging area instead), and an optional compat tree (local backend) and its layout."""

    repo: Path
    backend: str = "local"
    signer: Signer | None = None
    #: the role of the migration signature (None: the bundle's own ``hepbundle.sig``; else the
    #: co-signature ``hepbundle.<role>.sig``, which a policy signer with that ``role`` accepts)
    role: str | None = None
    policy: TrustPolicy | None = None
    allow_unsigned: bool = False
    work_dir: Path | None = None
    compat_tree: Path | None = None
    #: a version that fails to build or check is reported ``failed`` and the others are
    #: published (False: the first failure stops the import, nothing more is published)
    keep_going: bool = False
    #: ``latest`` or ``per-version`` (:data:`.legacy.COMPAT_LAYOUTS`)
    compat_layout: str = "latest"
    #: called with the number of source bytes handled (progress bars)
    progress: Callable[[int], None] | None = None
    #: local backend: publish what was built every this many new versions, and once this many
    #: seconds have passed since the first one of a chunk was built, so that a killed import
    #: keeps what it published (cvmfs: one transaction for the whole import)
    publish_every: int = 1000
    publish_seconds: float = 30.0


@dataclass(frozen=True)
class Outcome:
    """What happened to one planned bundle: ``published``, ``unchanged``, ``conflict``,
    ``metadata-changed`` (files as published, metadata not: reported, nothing written) or
    ``failed`` (with ``keep_going``: it could not be built; ``detail`` says why)."""

    ref: str
    origin: str
    status: str
    files: int
    size: int
    detail: str = ""
    aliases: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "origin": self.origin,
            "status": self.status,
            "files": self.files,
            "size": self.size,
            "detail": self.detail,
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True)
class ImportReport:
    """Every bundle's outcome, the compat links written, and the wall time."""

    plan: ImportPlan
    outcomes: tuple[Outcome, ...]
    compat_links: int
    seconds: float

    @property
    def conflicts(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "conflict")

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.plan.kind,
            "source": self.plan.source,
            "outcomes": [o.to_json() for o in self.outcomes],
            "published": self.count("published"),
            "unchanged": self.count("unchanged"),
            "conflicts": self.count("conflict"),
            "failed": self.count(FAILED),
            "metadataChanged": self.count(METADATA_CHANGED),
            "refused": [{"what": r.what, "reason": r.reason} for r in self.plan.refused],
            # entries of the store per verdict (the plan's inventory; None: no tree scanned)
            "inventory": self.plan.inventory_counts() or None,
            "compat_links": self.compat_links,
            "seconds": round(self.seconds, 3),
        }


def run_import(plan: ImportPlan, opts: ImportOptions) -> ImportReport:
    """Carry out ``plan`` into ``opts.repo`` (see the module docstring). A planned bundle
    without files is refused before anything is written (``plan_import`` moves such bundles to
    ``plan.refused``; a hand-made plan may still hold one)."""
    empty = [b for b in plan.bundles if not b.files]
    if empty:
        raise SpecError(
            f"{empty[0].ref} [{empty[0].origin}]: no file to import; an empty bundle is never "
            "published (nothing was written)",
            hint="plan with hepbundle.importers.plan_import, which lists such versions as refused",
        )
    if opts.backend not in ("local", "cvmfs"):
        raise SpecError(
            f"an import publishes with the local or the cvmfs backend, not {opts.backend}"
        )
    start = time.monotonic()
    local = opts.backend == "local"
    target: str | Path = opts.repo.absolute() if local else str(opts.repo)
    repo = make_publisher(opts.backend, target).root  # the tree the catalogue is read from
    if local and is_repository(repo):
        # finish a publish an earlier (killed) run left half-done, so the version counts as
        # published below instead of being rebuilt with a new manifest and refused; work
        # directories of a killed run (not held by a live process) are removed with it
        with repository_lock(repo / LOCK_FILENAME):
            recover(repo)
    scratch = Path(opts.work_dir or tempfile.gettempdir())
    for name in LiveWorkDir.remove_stale(scratch, _WORK_PREFIX):
        log.info("removed %s/%s, left by an import that did not finish", scratch, name)
    # local: each new bundle is built in the repository's own staging area and moved into place
    # (one copy of each byte); cvmfs: built in a private work area, then copied in (the mount
    # is written only inside the transaction)
    work = LiveWorkDir(scratch, _WORK_PREFIX)
    held: list[LiveWorkDir] = [work]
    outcomes: list[Outcome | None] = []
    built: list[tuple[int, PlannedBundle, Bundle]] = []
    existing: list[PlannedBundle] = []
    since = time.monotonic()  # when the first version of the chunk ``built`` was built
    try:
        for pb in plan.bundles:
            if local and _chunk_due(built, since, opts):
                _publish_chunk(built, outcomes, target, opts)
                for w in held[1:]:
                    w.close()  # their bundles were moved into place
                del held[1:]
                built.clear()
            published = _published(repo, pb)
            place = None
            if local and published is None:
                place = LiveWorkDir.in_staging(repo, pb.spec.namespace, safe_name(pb.ref))
                held.append(place)
            try:
                if place is not None:
                    done = _prepare(pb, published, place.path, opts, in_place=True)
                else:
                    done = _prepare(pb, published, work.path / safe_name(pb.ref), opts)
            except (HepbundleError, OSError) as e:
                if not opts.keep_going:
                    raise
                log.error("%s [%s]: not published: %s", pb.ref, pb.origin, e)
                if place is not None:
                    place.close()  # what this version's build left
                shutil.rmtree(work.path / safe_name(pb.ref), ignore_errors=True)
                done = _outcome(pb, FAILED, str(e))
            if isinstance(done, Outcome):
                outcomes.append(done)
                if done.status in ("unchanged", METADATA_CHANGED):
                    existing.append(pb)
            else:
                if not built:
                    since = time.monotonic()
                built.append((len(outcomes), done[0], done[1]))
                outcomes.append(None)
        _publish_chunk(built, outcomes, target, opts)
    finally:
        for w in held:
            w.close()
    for pb in existing:
        _point_aliases(pb, repo, target, opts.backend)
    links = 0
    if opts.compat_tree is not None and is_repository(repo):
        namespaces = {b.spec.namespace for b in plan.bundles}
        links = write_compat_tree(repo, opts.compat_tree, namespaces, layout=opts.compat_layout)
        if opts.compat_layout == "latest":  # the store's directory links, as aliases
            links += write_alias_links(opts.compat_tree, plan.legacy_aliases, repo=repo)
    done_all = tuple(o for o in outcomes if o is not None)
    return ImportReport(plan, done_all, links, time.monotonic() - start)


def _chunk_due(built: list[Any], since: float, opts: ImportOptions) -> bool:
    """Whether the versions ``built`` since ``since`` (monotonic) are a chunk to publish now."""
    return bool(built) and (
        len(built) >= opts.publish_every or time.monotonic() - since >= opts.publish_seconds
    )


def _publish_chunk(
    built: list[tuple[int, PlannedBundle, Bundle]],
    outcomes: list[Outcome | None],
    target: str | Path,
    opts: ImportOptions,
) -> None:
    """Publish the versions ``built`` (index in ``outcomes``, plan, signed bundle) in ONE
    :func:`~hepbundle.repository.publish_many`, all or nothing, and set their outcomes; with
    ``keep_going``, what the batch would refuse of a bundle on its own (the policy refusing its
    signer, its version published meanwhile with other content, …) fails that bundle only."""
    if built and opts.keep_going:
        refusals = check_publishable([b for _, _, b in built], target, **_how(built, opts))
        for (i, pb, _), err in zip(built, refusals, strict=True):
            if err is not None:
                log.error("%s [%s]: not published: %s", pb.ref, pb.origin, err)
                outcomes[i] = _outcome(pb, FAILED, str(err))
        built = [b for b, err in zip(built, refusals, strict=True) if err is None]
    if built:
        results = publish_many([b for _, _, b in built], target, **_how(built, opts))
        for (i, pb, _), res in zip(built, results, strict=True):
            outcomes[i] = _outcome(pb, res.status)
        crash_point("import-chunk-published")


def _how(built: list[tuple[int, PlannedBundle, Bundle]], opts: ImportOptions) -> dict[str, Any]:
    """How the signed bundles of ``built`` are published (and checked by
    :func:`check_publishable` first): under the import's policy, each with its aliases, local
    ones moved into place from the staging area they were built in (``adopt``)."""
    return {
        "backend": opts.backend,
        "policy": opts.policy,
        "allow_unsigned": opts.allow_unsigned and opts.signer is None,
        "aliases": [pb.aliases for _, pb, _ in built],
        "adopt": opts.backend == "local",
    }


def _prepare(
    pb: PlannedBundle,
    published: Bundle | None,
    work: Path,
    opts: ImportOptions,
    *,
    in_place: bool = False,
) -> Outcome | tuple[PlannedBundle, Bundle]:
    """The outcome of a version already ``published``, or the new version built and signed.
    ``in_place``: ``work`` is a :class:`LiveWorkDir` in the repository's staging area, whose
    one sync before publishing makes the build durable (no fsync here)."""
    if pb.materialize is not None:
        pb = pb.with_root(pb.materialize(work / "source"))
    if published is not None:
        digests = _source_digests(pb, published, opts.progress)
        problems = _compare(pb, digests, published.manifest)
        if problems:
            log.info("%s: conflict: %s", pb.ref, "; ".join(problems))
            return _outcome(pb, "conflict", "; ".join(problems))
        changed = pb.metadata_changes(published.manifest.meta)
        if changed:
            return _outcome(
                pb,
                METADATA_CHANGED,
                f"the store's {', '.join(changed)} changed since it was published; the "
                "published version keeps what it had (versions are immutable)",
            )
        return _outcome(pb, "unchanged")
    out = work / "bundle"
    before = _source_identities(pb)
    with deferred_sync() if in_place else contextlib.nullcontext():
        bundle = build_from_spec(
            pb.spec,
            BuildOptions(
                out=out,
                extra_meta=pb.extra_meta,
                legacy_paths=pb.legacy_paths,
                progress=opts.progress,
            ),
        )
        _check_unchanged(pb, before)
        if opts.signer is not None:
            # the build's own records: no payload byte is read again
            sign(bundle, opts.signer, role=opts.role)
    _remember_sources(pb, bundle.manifest_digest, bundle.manifest, before)
    crash_point("import-built")
    if pb.materialize is not None:
        shutil.rmtree(work / "source", ignore_errors=True)  # only the built bundle waits
    # the Bundle the build returned carries its records (a file it wrote and hashed is not
    # read again when the publisher checks it); a fresh load when it is copied
    return pb, bundle if in_place else Bundle.load(out)


def _outcome(pb: PlannedBundle, status: str, detail: str = "") -> Outcome:
    return Outcome(pb.ref, pb.origin, status, len(pb.files), pb.size, detail, pb.aliases)


def _published(repo: Path, pb: PlannedBundle) -> Bundle | None:
    if not is_repository(repo):
        return None
    cat = read_name_catalog(repo, pb.spec.name, missing_ok=True)
    if pb.spec.version not in cat.versions:
        return None
    return Bundle.load(bundle_dir(repo, pb.spec.name, pb.spec.version))


def _source_records() -> VerificationCache | None:
    return default_cache()


def _source_digests(
    pb: PlannedBundle, published: Bundle, progress: Callable[[int], None] | None = None
) -> list[FileDigest]:
    """The digest of each source file in the published manifest's algorithm: from this node's
    records of the import that published it (or of an earlier comparison) while the file's
    identity (device, inode, size, mtime, ctime) is unchanged, else by hashing it (and then
    recorded). A re-run over an unchanged store reads nothing (docs/migration.md)."""
    assert pb.source_root is not None
    root = pb.source_root
    alg = published.algorithm
    cache = _source_records()
    key = _SOURCE_KEY + published.manifest_digest
    have = published.manifest.by_path
    known: dict[int, FileDigest] = {}
    todo: list[int] = []
    stats: dict[int, os.stat_result] = {}
    for i, f in enumerate(pb.files):
        entry = have.get(f.dest)
        try:
            st = (root / f.source).stat()
        except OSError:
            todo.append(i)  # hash_file reports it
            continue
        stats[i] = st
        if (
            cache is not None
            and entry is not None
            and cache.is_verified(key, f.dest, entry.digest, root / f.source, st)
        ):
            known[i] = FileDigest(st.st_size, entry.digest, alg)
            if progress is not None:
                progress(st.st_size)
        else:
            todo.append(i)
    hashed = map_files(
        lambda i: hash_file(root / pb.files[i].source, alg),
        todo,
        [pb.files[i].size for i in todo],
        progress=progress,
    )
    if cache is not None:
        cache.record(
            key,
            [
                (pb.files[i].dest, d.digest, root / pb.files[i].source, stats[i])
                for i, d in zip(todo, hashed, strict=True)
                if i in stats and have.get(pb.files[i].dest) is not None
            ],
        )
    known.update(zip(todo, hashed, strict=True))
    return [known[i] for i in range(len(pb.files))]


def _remember_sources(
    pb: PlannedBundle, manifest_digest: str, manifest: Manifest, before: list[os.stat_result | None]
) -> None:
    """Record, on this node, that each source file (with the identity it had before the build,
    equal to the one after it: :func:`_check_unchanged`) has the digest the build computed, under
    the new manifest's digest: a later run comparing the store with this version, once
    published, reads none of it. Harmless if the version is never published (no published
    manifest has that digest)."""
    cache = _source_records()
    if cache is None:
        return
    assert pb.source_root is not None
    have = manifest.by_path
    cache.record(
        _SOURCE_KEY + manifest_digest,
        [
            (f.dest, have[f.dest].digest, pb.source_root / f.source, st)
            for f, st in zip(pb.files, before, strict=True)
            if st is not None and f.dest in have
        ],
    )


def _compare(pb: PlannedBundle, digests: list[FileDigest], published: Manifest) -> list[str]:
    """How the store differs from the published version (empty: identical)."""
    have = published.by_path
    problems = []
    for f, d in zip(pb.files, digests, strict=True):
        entry = have.get(f.dest)
        if entry is None:
            problems.append(f"{f.legacy or f.source} is new")
        elif entry.digest != d.digest:
            problems.append(
                f"{f.legacy or f.source} changed ({d.algorithm} {d.digest[:12]}… ≠ "
                f"published {entry.digest[:12]}…)"
            )
    planned = {f.dest for f in pb.files}
    problems += [
        f"{e.legacy_path} was removed"
        for e in published.files
        if e.legacy_path and e.path not in planned
    ]
    return problems


def _source_identities(pb: PlannedBundle) -> list[os.stat_result | None]:
    """What the kernel says about each source file (None: it cannot be stat'ed)."""
    assert pb.source_root is not None
    out: list[os.stat_result | None] = []
    for f in pb.files:
        try:
            out.append((pb.source_root / f.source).stat())
        except OSError:
            out.append(None)  # the build reports the missing file
    return out


def _identity(st: os.stat_result | None) -> tuple[int, int, int, int, int] | None:
    """Device, inode, size, mtime and ctime (ns): what a write to the file changes."""
    if st is None:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _check_unchanged(pb: PlannedBundle, before: list[os.stat_result | None]) -> None:
    """Every source file must still be what was packed: its identity after the build equals the
    one before it (any write in between moves its ctime, which no unprivileged user can set
    back; the same evidence the node verification cache relies on), so the build's copy — hashed
    as it was written — is of one consistent state of the store, without reading it again."""
    after = _source_identities(pb)
    changed = [
        f.legacy or f.source
        for f, b, a in zip(pb.files, before, after, strict=True)
        if b is None or _identity(b) != _identity(a)
    ]
    if changed:
        raise IntegrityError(
            f"{pb.ref}: {changed[0]} changed while it was imported (modified during the copy)"
            + (f" and {len(changed) - 1} more" if len(changed) > 1 else ""),
            hint="nothing of this version was published; re-run once the store is quiet",
        )


def _point_aliases(pb: PlannedBundle, repo: Path, target: str | Path, backend: str) -> None:
    """Point the aliases of an already published version at it, where they point elsewhere
    (nothing is written, and no transaction opened, for an alias already in place)."""
    current = read_name_catalog(repo, pb.spec.name).aliases
    for alias in pb.aliases:
        if current.get(alias) != pb.spec.version:
            set_alias(pb.ref, alias, target, backend=backend)
