"""The local backend: a repository directory on a disk, changed in place under a file lock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ...filemodes import make_dirs
from ..catalog import NameCatalog
from ..lock import LOCK_FILENAME, repository_lock
from ..publish import PublishRequest, PublishResult
from ..tree import change_catalog, install

__all__ = ["LocalPublisher"]


class LocalPublisher:
    """Publishes into the directory ``root`` (created on first use)."""

    backend = "local"
    accepts_unsigned = True

    def __init__(self, root: Path, *, lock_timeout: float | None = None) -> None:
        self.root = root.absolute()
        self.lock_timeout = lock_timeout

    def publish(self, request: PublishRequest) -> PublishResult:
        make_dirs(self.root)
        with repository_lock(self.root / LOCK_FILENAME, timeout=self.lock_timeout):
            done = install(self.root, request)
        rec = request.record
        return PublishResult(
            ref=f"{request.bundle.name}@{rec.version}",
            status=done.status,
            backend=self.backend,
            repository=str(self.root),
            path=str(self.root / rec.path),
            manifest_digest=rec.manifest_digest,
            serial=done.serial,
            alias=request.alias,
            signers=rec.signers,
            recovered=done.recovered,
        )

    def change(
        self, name: str, change: Callable[[NameCatalog], NameCatalog], message: str
    ) -> tuple[NameCatalog, int | None]:
        del message  # a local repository keeps no publish log
        with repository_lock(self.root / LOCK_FILENAME, timeout=self.lock_timeout):
            return change_catalog(self.root, name, change)
