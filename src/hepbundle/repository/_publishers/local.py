"""The local backend: a repository directory on a disk, changed in place under a file lock."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ...filemodes import make_dirs
from ..catalog import NameCatalog
from ..lock import LOCK_FILENAME, repository_lock
from ..publisher import PublishRequest, PublishResult
from ..tree import change_catalog, install_many

__all__ = ["LocalPublisher"]


class LocalPublisher:
    """Publishes into the directory ``root`` (created on first use)."""

    backend = "local"
    accepts_unsigned = True
    verifies_on_copy = True

    def __init__(self, root: Path, *, lock_timeout: float | None = None) -> None:
        self.root = root.absolute()
        self.lock_timeout = lock_timeout

    def publish(self, request: PublishRequest) -> PublishResult:
        return self.publish_batch([request])[0]

    def publish_batch(self, requests: Sequence[PublishRequest]) -> list[PublishResult]:
        """Every request under one lock, one index transaction, one serial bump."""
        make_dirs(self.root)
        with repository_lock(self.root / LOCK_FILENAME, timeout=self.lock_timeout):
            done = install_many(self.root, requests)
        return [
            PublishResult(
                ref=f"{req.bundle.name}@{req.record.version}",
                status=d.status,
                backend=self.backend,
                repository=str(self.root),
                path=str(self.root / req.record.path),
                manifest_digest=req.record.manifest_digest,
                serial=d.serial,
                alias=req.alias,
                signers=req.record.signers,
                recovered=d.recovered,
            )
            for req, d in zip(requests, done, strict=True)
        ]

    def change(
        self, name: str, change: Callable[[NameCatalog], NameCatalog], message: str
    ) -> tuple[NameCatalog, int | None]:
        del message  # a local repository keeps no publish log
        with repository_lock(self.root / LOCK_FILENAME, timeout=self.lock_timeout):
            return change_catalog(self.root, name, change)
