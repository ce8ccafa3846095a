"""The cvmfs backend: publish on a Stratum-0 inside ``cvmfs_server transaction``/``publish``.

Protocol (observed on a real CernVM-FS 2.x Stratum-0, see the CVMFS notes)::

    cvmfs_server transaction REPO[/LEASE]        opens the writable overlay at /cvmfs/REPO
    … the same crash-safe tree changes as the local backend, under /cvmfs/REPO …
    cvmfs_server publish -a TAG -m MESSAGE REPO  commits a new revision, tagged
    cvmfs_server abort -f REPO                   on any failure: the overlay is thrown away

Nothing is written under /cvmfs/REPO outside a transaction: the duplicate check reads the
published catalogue first, and the lock file lives outside the repository. Inside the
transaction nothing is fsynced (:func:`~hepbundle._base.deferred_sync`): ``cvmfs_server
publish`` reads the overlay and makes the revision durable as a whole, and a crash inside a
transaction leaves it open for the operator to ``abort -f`` — never to publish. The mount root is
``HEPBUNDLE_CVMFS_ROOT`` (default ``/cvmfs``) so tests can use a plain directory.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from ..._base import deferred_sync
from ...config import settings
from ...errors import RepositoryError
from ..catalog import NameCatalog, read_name_catalog
from ..layout import (
    BUNDLES_DIR,
    CATALOG_DIR,
    REPOSITORY_FILE,
    is_repository,
    staging_dirs,
    written_paths,
)
from ..lock import repository_lock
from ..publisher import PublishRequest, PublishResult
from ..tree import Installed, change_catalog, install_many, plan_many

__all__ = ["CvmfsServerPublisher", "cvmfs_root", "error_lines", "safe_message", "safe_tag"]

log = logging.getLogger("hepbundle")

T = TypeVar("T")

_TRANSACTION_BUSY = 17  # exit code of a second `cvmfs_server transaction` (CVMFS notes)


def cvmfs_root() -> Path:
    """Where repositories are mounted: ``HEPBUNDLE_CVMFS_ROOT`` or ``/cvmfs``."""
    return settings().cvmfs_root


class CvmfsServerPublisher:
    """Publishes into the CVMFS repository ``repo`` (e.g. ``ml.cern.ch``) on this Stratum-0."""

    backend = "cvmfs"
    accepts_unsigned = False
    verifies_on_copy = True

    def __init__(self, repo: str, *, lease: str | None = None, command: str = "cvmfs_server"):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", repo):
            raise RepositoryError(
                f"{repo!r} is not a CVMFS repository name", hint="e.g. --repo ml.cern.ch"
            )
        self.repo = repo
        self.lease = (lease or "").strip("/")
        self.command = command
        self.root = cvmfs_root() / repo

    def _lock_path(self) -> Path:
        # outside the repository: nothing may be written under /cvmfs/REPO without a transaction
        base = settings().lock_dir or Path(tempfile.gettempdir())
        return base / f"hepbundle-cvmfs-{self.repo}.lock"

    def _run(self, *args: str) -> None:
        argv = [self.command, *args]
        log.info("running %s", " ".join(argv))
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise RepositoryError(
                f"{self.command} not found; the cvmfs backend runs on a CVMFS Stratum-0",
                hint="use --backend tarball to prepare an ingest elsewhere",
            ) from None
        if proc.returncode != 0:
            detail = error_lines(proc.stderr) or error_lines(proc.stdout)
            hint = (
                "another transaction is open on this repository; wait, or abort it"
                if args[0] == "transaction" and proc.returncode == _TRANSACTION_BUSY
                else None
            )
            raise RepositoryError(
                f"cvmfs_server {args[0]} {self.repo} failed (exit {proc.returncode})"
                + (f": {detail}" if detail else ""),
                hint=hint,
            )

    def _check_lease(self, paths: list[str]) -> None:
        """A lease must cover every path the change writes (catalogue and index included)."""
        if not self.lease:
            return
        outside = [p for p in paths if p != self.lease and not p.startswith(self.lease + "/")]
        if outside:
            raise RepositoryError(
                f"lease /{self.lease} does not cover {outside[0]}, which this change writes",
                hint="publish with a lease on the repository root, or without --lease",
            )

    def _in_transaction(self, work: Callable[[], tuple[bool, str, str]]) -> None:
        """Run ``work`` inside a transaction; it returns (changed, tag, message). Publish if it
        changed something, abort otherwise and on any failure."""
        target = f"{self.repo}/{self.lease}" if self.lease else self.repo
        self._run("transaction", target)
        try:
            with deferred_sync():  # the publish below is the durability point, not each file
                changed, tag, message = work()
            for staging in staging_dirs(self.root):  # a work area is never part of a release
                shutil.rmtree(staging, ignore_errors=True)
            if changed:
                self._run("publish", "-a", safe_tag(tag), "-m", safe_message(message), self.repo)
            else:
                self._run("abort", "-f", self.repo)
        except BaseException:
            try:
                self._run("abort", "-f", self.repo)
            except RepositoryError as e:
                log.error("%s", e)
            raise

    def publish(self, request: PublishRequest) -> PublishResult:
        return self.publish_batch([request])[0]

    def publish_batch(self, requests: Sequence[PublishRequest]) -> list[PublishResult]:
        """Every request in ONE transaction and one ``cvmfs_server publish``; refusals are found
        from the published catalogue before any transaction is opened."""
        names = list(dict.fromkeys(r.bundle.name for r in requests))
        published = is_repository(self.root)
        before = {
            n: read_name_catalog(self.root, n, missing_ok=True) if published else NameCatalog(n)
            for n in names
        }
        after = dict(before)
        plan_many(after, requests)
        outcome: list[Installed] = [
            Installed("unchanged", after[r.bundle.name], 0, ()) for r in requests
        ]
        serial: int | None = None
        if after != before:
            self._check_lease(
                [p for r in requests for p in self._paths_written(r.bundle.name, r.record.path)]
            )

            def work() -> tuple[bool, str, str]:
                outcome[:] = install_many(self.root, requests)
                if len(requests) == 1:
                    rec = requests[0].record
                    ref = f"{requests[0].bundle.name}@{rec.version}"
                    message = f"hepbundle publish {ref} manifest sha256:{rec.manifest_digest}"
                    return True, f"{requests[0].bundle.name}-{rec.version}", message
                refs = " ".join(f"{r.bundle.name}@{r.record.version}" for r in requests)
                message = f"hepbundle publish {len(requests)} bundles: {refs}"
                return True, f"hepbundle-batch-{len(requests)}-s{outcome[0].serial}", message

            with repository_lock(self._lock_path()):
                self._in_transaction(work)
            serial = outcome[0].serial
        return [
            PublishResult(
                ref=f"{r.bundle.name}@{r.record.version}",
                status=o.status,
                backend=self.backend,
                repository=self.repo,
                path=str(self.root / r.record.path),
                manifest_digest=r.record.manifest_digest,
                serial=serial,
                alias=r.alias,
                signers=r.record.signers,
            )
            for r, o in zip(requests, outcome, strict=True)
        ]

    def _paths_written(self, name: str, bundle_path: str | None = None) -> list[str]:
        """Everything a change of ``name`` writes, relative to the repository root."""
        paths = written_paths(self.root, name.split("/", 1)[0])
        if not is_repository(self.root):  # the first publish creates the repository
            paths.append(REPOSITORY_FILE)
        return [bundle_path, *paths] if bundle_path else paths

    def write(self, name: str | None, work: Callable[[Path], T], message: str, tag: str) -> T:
        """Run ``work(root)`` (a change under ``name``'s catalogue, e.g. appending an evaluation
        record; with ``name`` None a change of the whole tree, e.g. a migration, which needs a
        lease on the root) inside a transaction and publish it, tagged ``tag``; abort on any
        failure."""
        self._check_lease(self._paths_written(name) if name else [CATALOG_DIR, BUNDLES_DIR])
        result: list[T] = []

        def run() -> tuple[bool, str, str]:
            result.append(work(self.root))
            return True, tag, message

        with repository_lock(self._lock_path()):
            self._in_transaction(run)
        return result[0]

    def change(
        self, name: str, change: Callable[[NameCatalog], NameCatalog], message: str
    ) -> tuple[NameCatalog, int | None]:
        self._check_lease(self._paths_written(name))
        result: list[tuple[NameCatalog, int]] = []

        def work() -> tuple[bool, str, str]:
            before = read_name_catalog(self.root, name)
            result.append(change_catalog(self.root, name, change))
            # "hepbundle alias atlas/tauid@1.1.0 as prod" → atlas.tauid.1.1.0-alias-s7: tag
            # names must be unique (cvmfs_server refuses one in use), the serial makes them so
            words = [*message.split(), "", "", ""]
            tag = f"{words[2].rstrip(':')}-{words[1]}-s{result[0][1]}"
            return result[0][0] != before, tag, message

        with repository_lock(self._lock_path()):
            self._in_transaction(work)
        return result[0][0], result[0][1]


#: what may reach ``cvmfs_server``'s ``sh -c`` (CVMFS notes: tag names and ``-m`` messages are
#: pasted unquoted into a shell command line, so anything else is code, not data)
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9 ._:@/+=,-]+")
_MESSAGE_LIMIT = 400


def safe_message(text: str) -> str:
    """``text`` as a ``cvmfs_server publish -m`` message that is data to ``sh``, never code.

    Every character outside ``[A-Za-z0-9 ._:@/+=,-]`` becomes a space (``$(…)``, backticks,
    quotes, parentheses, ``;&|<>``, newlines, globs, ``~`` and ``#``), leading dashes are cut
    from every word (so no word reads as an option of ``cvmfs_swissknife``), runs of spaces
    collapse, and the result is at most 400 characters (never empty)::

        >>> safe_message("hepbundle yank a/b@1.0.0: bad $(touch /x) `id`; rm -rf /")
        'hepbundle yank a/b@1.0.0: bad touch /x id rm rf /'
    """
    words = [w.lstrip("-") for w in _SAFE_CHARS.sub(" ", text).split()]
    out = " ".join(w for w in words if w)[:_MESSAGE_LIMIT].strip()
    return out or "hepbundle"


def safe_tag(text: str) -> str:
    """A CVMFS tag name from free text: ``atlas/tauid-1.2.0`` → ``atlas.tauid-1.2.0``.

    Tag names may hold no spaces (``cvmfs_server publish`` refuses them) and go through the same
    shell as messages: only ``[A-Za-z0-9._-]``, starting with a letter or digit, ≤ 100 chars."""
    tag = re.sub(r"[^A-Za-z0-9._-]+", ".", text.replace("/", ".")).strip(".-_")[:100]
    return tag.rstrip(".-_") or "hepbundle"


def error_lines(output: str | None, *, limit: int = 3) -> str:
    """cvmfs_server's own error from its output: the first non-empty lines, up to the
    ``Executed Command:`` section it appends (whose last line is the echoed swissknife command,
    not the cause), joined by ``; ``."""
    lines: list[str] = []
    for line in (output or "").splitlines():
        if line.strip().startswith("Executed Command"):
            break
        if line.strip():
            lines.append(line.strip())
        if len(lines) == limit:
            break
    return "; ".join(lines)
