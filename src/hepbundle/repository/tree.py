"""The crash-safe changes of a repository tree, shared by the local and the CVMFS publishers.

Publishing one version (the caller holds the repository lock):

1. copy the bundle into ``.hepbundle-staging/<work>/bundle``, hashing each byte as it is
   written and comparing every payload digest with the manifest, ``hepbundle.json`` with the
   manifest digest read at open and every signature file with the bytes whose signature was
   checked (this comparison *is* the verification of the published copy: the staged file
   holds exactly the bytes hashed, in a directory only the publisher writes) — or, with
   ``move`` (:mod:`._move`), rename the bundle directory there and check it where it landed;
2. write ``intent.json`` (name, version record, aliases) into the work directory;
   then, once for the whole batch, make every staged file, directory and intent durable with
   one ``syncfs`` (:func:`~hepbundle._base.sync_filesystem`) — not an fsync per file: a batch
   of 5,000 files paid 5,000 journal commits;
3. ``rename`` each copy to ``bundles/<ns>/<name>/<version>`` — from here the version exists —
   and make the renames durable with a second ``syncfs`` before any catalogue names them;
4. replace ``catalog/<ns>/<name>.json`` (write-new + rename), update the index rows of that name
   in one SQLite transaction, bump the serial of ``catalog/repository.json``;
5. remove the work directory.

A crash before 3 leaves the tree as it was plus a work directory; after 3, the intent lets
:func:`recover` (run first by every writer) finish steps 4–5. Nothing is renamed into view
before the sync of step 2 returned, so after a power cut a visible version directory holds
every byte (a sync that reports a write-back error refuses the publish; nothing is visible). Inside a CVMFS transaction
(:func:`~hepbundle._base.deferred_sync`) neither intents nor fsyncs are written: a crash there
leaves the transaction open, and it is aborted whole. Readers resolve through the
per-name file, so they see the old catalogue or the new one with a complete bundle behind it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .._base import fsync_dir, sync_filesystem, syncing
from ..bundle import Bundle
from ..digest import (
    FileDigest,
    copy_and_hash,
    default_workers,
    hash_file,
    map_files,
    run_parallel,
    sha256_bytes,
)
from ..errors import HepbundleError, IntegrityError, RepositoryError
from ..filemodes import make_dirs, publish_mode, publish_tree
from ..manifest import MANIFEST_FILENAME, canonical_json
from ..paths import is_reserved
from ._crash import crash_point
from ._move import check_sole, give_back, move_in, still_holds
from .catalog import NameCatalog, VersionRecord, read_name_catalog, write_name_catalog
from .index import upsert_name, upsert_names, writable_index
from .layout import (
    CVMFS_CATALOG_MARKER,
    bump_serial,
    bundle_dir,
    ensure_namespace,
    ensure_repository,
    is_repository,
    read_repository,
    repository_format,
    serial_of,
    staging_dir,
    staging_dirs,
)
from .statements import next_serial, sign_changes
from .trust import write_trust_root

if TYPE_CHECKING:
    from .publisher import PublishRequest

__all__ = [
    "CREATING_SECONDS",
    "HIDDEN_PREFIX",
    "Installed",
    "LiveWorkDir",
    "abandoned",
    "change_catalog",
    "check_copied",
    "check_not_conflicting",
    "check_place_free",
    "copied_names",
    "copy_algorithms",
    "copy_bytes",
    "in_batch",
    "install",
    "install_many",
    "plan_many",
    "recover",
]

log = logging.getLogger("hepbundle")

_INTENT = "intent.json"


@dataclass(frozen=True)
class Installed:
    """What :func:`install` did: ``published`` or ``unchanged``, the catalogue after, the serial."""

    status: str
    catalog: NameCatalog
    serial: int
    recovered: tuple[str, ...]


def check_not_conflicting(catalog: NameCatalog, record: VersionRecord) -> bool:
    """True if ``record`` is already published with the same content (a no-op); raise if the
    version exists with other content (published versions are never rewritten)."""
    existing = catalog.versions.get(record.version)
    if existing is None:
        return False
    if existing.manifest_digest != record.manifest_digest:
        raise RepositoryError(
            f"{catalog.name}@{record.version} is already published with different content "
            f"(manifest sha256 {existing.manifest_digest[:12]}… ≠ {record.manifest_digest[:12]}…)",
            hint="published versions are immutable: bump the version and publish again",
        )
    return True


def check_place_free(root: Path, name: str, version: str) -> None:
    """Refuse to publish a version the catalogue does not know where a directory already is."""
    final = bundle_dir(root, name, version)
    if final.exists():
        raise RepositoryError(
            f"{final} exists but {name}@{version} is not in the catalogue",
            hint="inspect it by hand: hepbundle never overwrites a bundle directory",
        )


def _ns(name: str) -> str:
    return name.split("/", 1)[0]


def install(root: Path, req: PublishRequest) -> Installed:
    """Publish ``req.bundle`` into the tree at ``root`` (see the module docstring)."""
    return install_many(root, [req])[0]


def in_batch(e: HepbundleError, what: str, i: int, n: int) -> HepbundleError:
    """``e`` (same class, same hint) naming the bundle of a batch that was refused; ``e`` itself
    for a batch of one."""
    if n == 1:
        return e
    err = type(e).__new__(type(e))
    HepbundleError.__init__(
        err,
        f"batch refused, nothing published: {what} (bundle {i + 1} of {n}): {e.message}",
        hint=e.hint,
    )
    return err


def plan_many(catalogs: dict[str, NameCatalog], requests: Sequence[PublishRequest]) -> list[bool]:
    """Which of ``requests`` publish a new version (True) or find it already there (False),
    applying them in order to ``catalogs`` (name → catalogue, updated in place). Raises before
    anything is written if any is refused (different content under a published version, or
    the same version twice in the batch with different content), naming which one."""
    new: list[bool] = []
    for i, req in enumerate(requests):
        rec, name = req.record, req.bundle.name
        cat = catalogs[name]
        try:
            present = check_not_conflicting(cat, rec)
            cat = cat if present else cat.with_version(rec)
            for alias in req.aliases:
                cat = cat.with_alias(alias, rec.version)
        except HepbundleError as e:
            raise in_batch(e, f"{name}@{rec.version}", i, len(requests)) from None
        catalogs[name] = cat
        new.append(not present)
    return new


def install_many(root: Path, requests: Sequence[PublishRequest]) -> list[Installed]:
    """Publish every request into the tree at ``root``, all or nothing: every refusal is found
    before anything is written; every new version is staged and verified before the first one
    is renamed into place; then each changed per-name file is written once, the index rows of
    every changed name are replaced in ONE SQLite transaction and the serial goes up by one.

    A failure before the renames leaves the tree as it was; a crash after them is completed by
    :func:`recover` version by version (each has its own intent), as for a single publish."""
    if not is_repository(root):
        ensure_repository(root)
        if requests and requests[0].trust_root is not None:
            reason = f"first publish ({requests[0].bundle.ref})"
            write_trust_root(root, requests[0].trust_root, reason=reason)
    names = list(dict.fromkeys(r.bundle.name for r in requests))
    spaces = list(dict.fromkeys(_ns(n) for n in names))
    crash_point("locked")
    recovered = tuple(recover(root, only=spaces))
    before = {n: read_name_catalog(root, n, missing_ok=True) for n in names}
    after = dict(before)
    is_new = plan_many(after, requests)
    _sign_statements(root, before, after, requests)
    staged: list[tuple[Path, Path]] = []  # (work dir, final place)
    renamed: list[tuple[Path, Path]] = []
    fresh_requests = [req for req, fresh in zip(requests, is_new, strict=True) if fresh]
    try:
        dirs = _stage_all(root, fresh_requests, after)
        staged += [(w, root / req.record.path) for w, req in zip(dirs, fresh_requests, strict=True)]
        if staged:
            sync_filesystem(root)  # every staged byte and intent, once, before any rename
            crash_point("synced")
        for work, final in staged:
            make_dirs(final.parent)
            os.rename(work / "bundle", final)
            renamed.append((work, final))
            crash_point("renamed")
        if renamed:
            sync_filesystem(root)  # the renames, before a catalogue names the versions
    except BaseException:
        for work, final in reversed(renamed):  # put back what became visible: all or nothing
            os.rename(final, work / "bundle")
        for work, _ in staged:
            _discard(work)
        raise
    changed = [after[n] for n in names if after[n] != before[n]]
    works = [(w, req.bundle.name) for (w, _), req in zip(staged, fresh_requests, strict=True)]
    serials = _commit_many(root, changed, works) if changed else {}
    return [
        Installed(
            "published" if fresh else "unchanged",
            after[r.bundle.name],
            serials.get(_ns(r.bundle.name)) or serial_of(root, _ns(r.bundle.name)),
            recovered,
        )
        for r, fresh in zip(requests, is_new, strict=True)
    ]


def _sign_statements(
    root: Path,
    before: dict[str, NameCatalog],
    after: dict[str, NameCatalog],
    requests: Sequence[PublishRequest],
) -> None:
    """Append the signed catalogue statements of every changed name to ``after`` (in place),
    before anything is staged: a refused or failed signature writes nothing."""
    doc = read_repository(root)
    for req in {r.bundle.name: r for r in requests}.values():
        name = req.bundle.name
        serial, serial_file = next_serial(root, name, doc)
        after[name] = sign_changes(
            before[name],
            after[name],
            req.statement_signer,
            policy=req.policy,
            repository=str(doc["name"]),
            serial=serial,
            serial_file=serial_file,
            expires_days=req.expires_days,
        )


def _stage_all(
    root: Path, requests: Sequence[PublishRequest], after: dict[str, NameCatalog]
) -> list[Path]:
    """Stage every request (see :func:`_stage`), a batch on up to :func:`default_workers`
    threads (copying and hashing release the GIL, and small bundles are mostly file-system
    calls); all or nothing: when one fails, the ones staged are removed and the first failure
    in request order is raised. Progress callbacks are called one at a time."""
    if len(requests) <= 1:
        return [_stage(root, r, after[r.bundle.name]) for r in requests]
    lock = threading.Lock()

    def serialised(progress: Callable[[int], None] | None) -> Callable[[int], None] | None:
        if progress is None:
            return None

        def report(n: int) -> None:
            with lock:
                progress(n)

        return report

    reqs = [replace(r, progress=serialised(r.progress)) for r in requests]
    workers = min(default_workers(), len(reqs))
    # an interrupt stops every staging (each removes its own work directory) before it is raised
    done = run_parallel(
        lambda r: _stage(root, r, after[r.bundle.name]), reqs, workers, "hepbundle-stage"
    )
    failed = [d for d in done if isinstance(d, BaseException)]
    if failed:
        for d in done:
            if isinstance(d, Path):
                _discard(d)
        raise failed[0]
    return [d for d in done if isinstance(d, Path)]


def _stage(root: Path, req: PublishRequest, signed: NameCatalog) -> Path:
    """Copy one new version into a work directory, verifying every byte as it is copied, and
    write its intent (with the name's signed statements, which recovery puts in place if the
    publish is completed)."""
    rec, name = req.record, req.bundle.name
    check_place_free(root, name, rec.version)
    if req.adopt:
        work = _adopted_work_dir(root, req)
    else:
        work = _new_work_dir(root, _ns(name), f"{name.replace('/', '.')}@{rec.version}")
    try:
        stage = work / "bundle"
        if req.adopt:
            _check_adopted(req.bundle, req.progress)
        elif req.move:
            moved = move_in(req.bundle, work)
            publish_tree(stage)  # the build set these modes: normally nothing to change
            check_sole(moved, copied_names(moved))
            _check_adopted(moved, req.progress)
        else:
            _copy_bundle(req.bundle, stage, req.progress)
        crash_point("staged")
        # the staged hepbundle.json hashed to the digest read at open (_copy_bundle), and the
        # record carries that digest: the copy is the verified bundle, without parsing it again
        if req.bundle.manifest_digest != rec.manifest_digest:
            raise IntegrityError(
                f"{name}@{rec.version}: the record is of another hepbundle.json than the bundle"
            )
        crash_point("verified")
        if syncing():  # else a CVMFS transaction: a crash in it is aborted whole, not recovered
            intent = {
                "name": name,
                "record": rec.to_json(),
                "version": rec.version,
                "alias": req.alias,
                "aliases": list(req.more_aliases),
                "statements": list(signed.statements),
            }
            (work / _INTENT).write_bytes(canonical_json(intent))  # synced with the batch
        crash_point("intent-written")
    except BaseException:
        _discard(work)
        raise
    return work


def _discard(work: Path) -> None:
    """Remove a work directory that publishes nothing, putting a moved bundle back first (one
    that cannot be put back stays, and the next writer's :func:`recover` tries again)."""
    back = give_back(work)
    if still_holds(work):
        log.error("%s", back)
        return
    shutil.rmtree(work, ignore_errors=True)


def change_catalog(
    root: Path, name: str, change: Callable[[NameCatalog], NameCatalog]
) -> tuple[NameCatalog, int]:
    """Apply ``change`` to one name's catalogue (alias, yank) crash-safely; return it and the
    serial. A change that alters nothing writes nothing."""
    read_repository(root)
    recover(root, only=[_ns(name)])
    cat = read_name_catalog(root, name)
    new = change(cat)
    if new == cat:
        return cat, serial_of(root, _ns(name))
    return new, _commit_many(root, [new], [])[_ns(name)]


def _commit_many(
    root: Path, catalogs: Sequence[NameCatalog], works: Sequence[tuple[Path, str]]
) -> dict[str, int]:
    """Steps 4–5: per-name files, index rows (one transaction per index: format 2 has one per
    namespace), the serial of each namespace touched (format 1: the repository's, once), then
    drop the work directories (whose intents make a crash anywhere in here finish on the next
    run). A name whose change has no publish intent gets a catalogue-change intent first.
    Return namespace → new serial."""
    work_of: dict[str, Path] = {}  # a work directory in each namespace, for temporary files
    for w, name in works:
        work_of.setdefault(_ns(name), w)
    intended = {name for _, name in works}
    dirs = [w for w, _ in works]
    for cat in catalogs:
        if cat.name not in intended:
            work = _new_work_dir(root, _ns(cat.name), cat.name.replace("/", "."))
            if syncing():  # (no intent inside a CVMFS transaction, see _stage)
                (work / _INTENT).write_bytes(canonical_json({"name": cat.name}))
                fsync_dir(work)
            dirs.append(work)
            work_of.setdefault(_ns(cat.name), work)
    for ns in work_of:
        ensure_namespace(root, ns)
    for cat in catalogs:
        write_name_catalog(root, cat, tmp_dir=work_of[_ns(cat.name)])
        crash_point("catalogued")
    groups: dict[str, list[NameCatalog]] = {}
    sharded = repository_format(root) == 2
    for cat in catalogs:  # format 1: one index and one serial for everything
        groups.setdefault(_ns(cat.name) if sharded else _ns(catalogs[0].name), []).append(cat)
    for ns, cats in groups.items():
        with writable_index(root, ns) as conn:
            upsert_names(conn, cats, root)
    crash_point("indexed")
    serials = {ns: bump_serial(root, ns, tmp_dir=work_of[ns]) for ns in groups}
    if not sharded:
        serials = dict.fromkeys({_ns(c.name) for c in catalogs}, next(iter(serials.values())))
    crash_point("serial-bumped")
    for w in dirs:
        shutil.rmtree(w)
    crash_point("cleaned")
    return serials


def _new_work_dir(root: Path, ns: str, label: str) -> Path:
    staging = staging_dir(root, ns)
    make_dirs(staging)
    return Path(tempfile.mkdtemp(prefix=f"{label}.", dir=staging))


class LiveWorkDir:
    """A work directory that a running process fills outside the repository lock: an import
    building its bundles in the repository's staging area (:meth:`in_staging`), so that
    publishing moves them instead of copying them, or its private work area elsewhere. The
    directory is held with an exclusive ``flock`` while this object is open: :func:`recover`
    (and :meth:`remove_stale`) leave a held directory alone and remove one whose holder died
    (a SIGKILL releases the lock), so nothing is left behind for good. ``close`` removes what
    is still there (what was published has been moved away)."""

    def __init__(self, parent: Path, prefix: str) -> None:
        make_dirs(parent)
        # a sweep (recover, remove_stale) in another process removes an unheld directory: this
        # one is created under a name no sweep takes at once (HIDDEN_PREFIX + prefix), held,
        # and only then renamed to its final name (the flock stays on the open directory), so
        # no sweep ever sees it unheld under a name it matches
        hidden = Path(tempfile.mkdtemp(prefix=HIDDEN_PREFIX + prefix, dir=parent))
        fd = os.open(hidden, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a fresh directory: nobody else holds it
            final = parent / hidden.name.removeprefix(HIDDEN_PREFIX)
            while final.exists():  # rename replaces an empty directory: never take one
                final = parent / f"{prefix}{os.urandom(6).hex()}"
            os.rename(hidden, final)
        except BaseException:
            os.close(fd)
            shutil.rmtree(hidden, ignore_errors=True)
            raise
        self.path = final
        self._fd = fd

    @classmethod
    def in_staging(cls, root: Path, ns: str, label: str) -> LiveWorkDir:
        """One in the staging area of namespace ``ns`` of the repository at ``root``."""
        return cls(staging_dir(root, ns), f"{label}.")

    @staticmethod
    def remove_stale(parent: Path, prefix: str) -> list[str]:
        """Remove the directories ``parent/<prefix>*`` no live process holds, and those a
        process that died while creating one left (:func:`abandoned`); their names."""
        if not parent.is_dir():
            return []
        gone = []
        for p in sorted(parent.glob(f"{prefix}*")):
            if p.is_dir() and not p.is_symlink() and not _held(p):
                shutil.rmtree(p, ignore_errors=True)
                gone.append(p.name)
        for p in sorted(parent.glob(f"{HIDDEN_PREFIX}{prefix}*")):
            if abandoned(p):
                shutil.rmtree(p, ignore_errors=True)
                gone.append(p.name)
        return gone

    def close(self) -> None:
        if self._fd < 0:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> LiveWorkDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: the name a :class:`LiveWorkDir` has while it is created, before its holder locks it
HIDDEN_PREFIX = ".live-"
#: how long a sweep leaves an unheld :data:`HIDDEN_PREFIX` directory alone (its creator may be
#: between creating and locking it; one older is the leftover of a process that died there)
CREATING_SECONDS = 60.0


def abandoned(work: Path) -> bool:
    """Whether ``work``, named :data:`HIDDEN_PREFIX`…, is the leftover of a process that died
    while creating a :class:`LiveWorkDir`: a directory (not a link), held by no one, and older
    than :data:`CREATING_SECONDS` (a younger one may not be locked yet)."""
    try:
        st = os.lstat(work)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or time.time() - st.st_mtime < CREATING_SECONDS:
        return False
    return not _held(work)


def _held(work: Path) -> bool:
    """Whether a live process holds ``work`` (:class:`LiveWorkDir`)."""
    try:
        fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's own lock
    return False


def copied_names(bundle: Bundle) -> list[str]:
    """What a publisher copies of a bundle: the payload, the manifest and the signature files."""
    with os.scandir(bundle.root) as listing:
        extra = [e.name for e in listing if is_reserved(e.name) and e.is_file()]
    payload = {f.path for f in bundle.manifest.files}
    return sorted(payload | {n for n in extra if n != CVMFS_CATALOG_MARKER})


def copy_bytes(bundle: Bundle) -> int:
    """The bytes publishing ``bundle`` copies (and reports to ``progress``)."""
    return sum((bundle.root / n).stat().st_size for n in copied_names(bundle))


def copy_algorithms(bundle: Bundle) -> Callable[[str], str]:
    """The digest each copied file is checked with: the bundle's algorithm for a payload file,
    SHA-256 for ``hepbundle.json`` and the signature files."""
    payload = bundle.manifest.by_path
    return lambda rel: bundle.algorithm if rel in payload else "sha256"


def check_copied(bundle: Bundle, names: Sequence[str], digests: Sequence[FileDigest]) -> None:
    """Refuse a copy (IntegrityError) unless each of ``names`` hashed, as it was copied, to what
    was verified: payload files to the manifest digests, ``hepbundle.json`` to its SHA-256 read
    at open, signature files to the SHA-256 of the bytes :func:`verify_signatures` checked
    (``bundle.signature_files``; when that is None the caller verified the signatures some other
    way and they are copied as they are)."""
    payload = bundle.manifest.by_path
    checked_sigs = bundle.signature_files
    bad = []
    for n, got in zip(names, digests, strict=True):
        entry = payload.get(n)
        if entry is not None:
            ok = got.digest == entry.digest and got.size == entry.size
        elif n == MANIFEST_FILENAME:
            ok = got.digest == bundle.manifest_digest
        else:  # a signature file
            ok = checked_sigs is None or checked_sigs.get(n) == got.digest
        if not ok:
            bad.append(n)
    if bad:
        raise IntegrityError(
            f"{bundle.ref}: {', '.join(bad)} changed while being copied (nothing was published)"
        )


def _copy_bundle(bundle: Bundle, stage: Path, progress: Callable[[int], None] | None) -> None:
    """Copy payload, manifest and signature files (hashing as they pass), compare each with
    what was verified (:func:`check_copied`), and add the CVMFS nested-catalog marker (the
    caller makes the batch durable with one sync before the rename makes it visible)."""
    names = copied_names(bundle)
    for d in sorted({str(Path(n).parent) for n in names}):
        (stage / d).mkdir(parents=True, exist_ok=True)
    alg = copy_algorithms(bundle)

    def copy(rel: str) -> FileDigest:
        d = copy_and_hash(bundle.root / rel, stage / rel, alg(rel))
        crash_point("mid-copy")
        return d

    try:
        digests = map_files(
            copy, names, [(bundle.root / n).stat().st_size for n in names], progress=progress
        )
    except FileNotFoundError as e:
        raise IntegrityError(f"{bundle.ref}: {e.filename} disappeared while being copied") from None
    check_copied(bundle, names, digests)
    (stage / CVMFS_CATALOG_MARKER).touch()
    publish_tree(stage)


def _adopted_work_dir(root: Path, req: PublishRequest) -> Path:
    """The work directory a bundle to adopt was built in: ``<staging of its namespace>/<work>/
    bundle`` of this repository, or a RepositoryError (an adopted bundle is moved, never one
    from elsewhere)."""
    b = req.bundle
    work = b.root.parent
    if b.root.name != "bundle" or not _same_dir(work.parent, staging_dir(root, _ns(b.name))):
        raise RepositoryError(
            f"{b.ref}: {b.root} is not a work directory of {root}'s staging area; only a bundle "
            "built there can be published by moving it"
        )
    return work


def _same_dir(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are the same directory (two stats, not two ``realpath`` walks)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_adopted(bundle: Bundle, progress: Callable[[int], None] | None) -> None:
    """What :func:`_copy_bundle` checks, for a bundle this process built in place: every payload
    file is the one the build wrote and hashed (its identity unchanged since, from the build's
    records; a file without a record is hashed), ``hepbundle.json`` and each signature file are
    the bytes that were verified; then the CVMFS marker and the modes."""
    bundle.verify(progress=progress).raise_for_problems(f"{bundle.ref} (nothing was published)")
    payload = bundle.manifest.by_path
    names = [n for n in copied_names(bundle) if n not in payload]
    check_copied(bundle, names, [hash_file(bundle.root / n) for n in names])
    marker = bundle.root / CVMFS_CATALOG_MARKER
    marker.touch()
    publish_mode(marker)  # the build gave everything else its mode (a chmod would move ctimes)


def recover(root: Path, *, only: Sequence[str] | None = None) -> list[str]:
    """Finish or undo what crashed writers left in the staging area; return what was done.

    A publish whose bundle reached its final place is completed (catalogue, index, serial); one
    that did not is discarded. Catalogue changes are re-applied to the index from the per-name
    file, which is the source of truth.
    """
    done = []
    works = [w for staging in staging_dirs(root, only) for w in sorted(staging.iterdir())]
    for work in works:
        if work.name.startswith(HIDDEN_PREFIX):
            if abandoned(work):  # a LiveWorkDir whose creator died before holding it
                shutil.rmtree(work, ignore_errors=True)
                done.append(f"removed stale staging area {work.name}")
            continue
        if _held(work):
            continue  # a running import fills it (LiveWorkDir)
        try:
            intent = json.loads((work / _INTENT).read_bytes())
        except (OSError, ValueError):
            intent = None
        if intent is None:
            done.append(f"removed stale staging area {work.name}")
        elif "record" in intent:
            done.append(_recover_publish(root, intent, work))
        else:
            cat = read_name_catalog(root, intent["name"], missing_ok=True)
            _reindex(root, cat, work)
            done.append(f"re-indexed {intent['name']} after an interrupted change")
        back = give_back(work)  # a publish --move that never became visible
        if back is not None:
            done.append(back)
        if not still_holds(work):  # never remove a bundle that could not be put back
            shutil.rmtree(work, ignore_errors=True)
    for msg in done:
        log.warning("recovered %s: %s", root, msg)
    return done


def _recover_publish(root: Path, intent: dict[str, object], work: Path) -> str:
    name = str(intent["name"])
    rec = VersionRecord.from_json(str(intent["version"]), intent["record"])  # type: ignore[arg-type]
    final = root / rec.path
    try:
        present = sha256_bytes((final / MANIFEST_FILENAME).read_bytes()) == rec.manifest_digest
    except OSError:
        present = False
    if not present:
        return f"discarded interrupted publish of {name}@{rec.version} (it never became visible)"
    cat = read_name_catalog(root, name, missing_ok=True)
    if rec.version not in cat.versions:
        cat = cat.with_version(rec)
    more = intent.get("aliases")
    for alias in [intent.get("alias"), *(more if isinstance(more, list) else [])]:
        if alias:
            cat = cat.with_alias(str(alias), rec.version)
    signed = intent.get("statements")
    if isinstance(signed, list) and tuple(signed[: len(cat.statements)]) == cat.statements:
        cat = replace(cat, statements=tuple(signed))  # the statements signed before the crash
    write_name_catalog(root, cat, tmp_dir=work)
    _reindex(root, cat, work)
    return f"completed interrupted publish of {name}@{rec.version}"


def _reindex(root: Path, cat: NameCatalog, work: Path) -> None:
    with writable_index(root, _ns(cat.name)) as conn:
        upsert_name(conn, cat, root)
    bump_serial(root, _ns(cat.name), tmp_dir=work)
