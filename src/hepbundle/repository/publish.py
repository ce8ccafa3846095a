"""Publishing: verify a bundle, then hand it to one :class:`Publisher` backend.

The backends (``local``: a directory, the embedded default; ``cvmfs``: ``cvmfs_server
transaction/publish/abort`` on a Stratum-0; ``tarball``: files for ``cvmfs_server ingest``) share
one interface, so the verification and the catalogue logic are written once::

    import hepbundle.repository as repo
    result = repo.publish("dist/atlas/tauid/1.2.0", "./hepbundle-repo", alias="prod")
    print(result.status, result.serial)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..bundle import Bundle
from ..errors import RepositoryError, SignatureError
from .catalog import NameCatalog, VersionRecord

if TYPE_CHECKING:
    from ..policy import TrustPolicy

__all__ = [
    "BACKENDS",
    "Backend",
    "PublishRequest",
    "PublishResult",
    "Publisher",
    "default_repo",
    "make_publisher",
    "publish",
    "verify_for_publish",
]

log = logging.getLogger("hepbundle")

Backend = Literal["local", "cvmfs", "tarball"]
BACKENDS: tuple[Backend, ...] = ("local", "cvmfs", "tarball")


@dataclass(frozen=True)
class PublishRequest:
    """A verified bundle, the catalogue record it will get, and an optional alias to point at it."""

    bundle: Bundle
    record: VersionRecord
    alias: str | None = None
    progress: Callable[[int], None] | None = None


@dataclass(frozen=True)
class PublishResult:
    """What a publish did. ``status`` is ``published`` or ``unchanged`` (identical content was
    already there), or ``written`` for the tarball backend (files to ingest)."""

    ref: str
    status: str
    backend: str
    repository: str
    path: str
    manifest_digest: str
    serial: int | None
    alias: str | None
    signers: tuple[str, ...]
    recovered: tuple[str, ...] = ()
    artifacts: dict[str, str] = field(default_factory=dict)
    commands: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "status": self.status,
            "backend": self.backend,
            "repository": self.repository,
            "path": self.path,
            "manifest_sha256": self.manifest_digest,
            "serial": self.serial,
            "alias": self.alias,
            "signers": list(self.signers),
            "recovered": list(self.recovered),
            "artifacts": self.artifacts,
            "commands": list(self.commands),
        }


class Publisher(Protocol):
    """One way of getting a verified bundle and catalogue changes into a repository."""

    #: backend name as the CLI spells it
    backend: str
    #: the repository tree catalogue reads go to (for cvmfs, the mounted repository)
    root: Path
    #: whether an unsigned bundle may be published with ``allow_unsigned``
    accepts_unsigned: bool

    def publish(self, request: PublishRequest) -> PublishResult:
        """Publish one version (idempotent for identical content, refusing different content)."""
        ...

    def change(
        self, name: str, change: Callable[[NameCatalog], NameCatalog], message: str
    ) -> tuple[NameCatalog, int | None]:
        """Apply a catalogue change (alias, yank) to one name; return it and the new serial."""
        ...


def default_repo() -> Path:
    """``HEPBUNDLE_REPO``, else ``./hepbundle-repo``."""
    return Path(os.environ.get("HEPBUNDLE_REPO") or "hepbundle-repo")


def make_publisher(
    backend: str,
    repo: str | os.PathLike[str] | None = None,
    *,
    lease: str | None = None,
    out: str | os.PathLike[str] | None = None,
) -> Publisher:
    """The publisher of ``backend``. ``repo`` is a directory for ``local`` and ``tarball`` (the
    current repository the catalogue patch is based on) and a repository name for ``cvmfs``."""
    if backend == "local":
        from ._publishers.local import LocalPublisher

        return LocalPublisher(Path(repo) if repo is not None else default_repo())
    if backend == "cvmfs":
        from ._publishers.cvmfs import CvmfsServerPublisher

        if repo is None:
            raise RepositoryError(
                "the cvmfs backend needs --repo <repository name>, e.g. ml.cern.ch"
            )
        return CvmfsServerPublisher(str(repo), lease=lease)
    if backend == "tarball":
        from ._publishers.tarball import TarballPublisher

        base = Path(repo) if repo is not None else default_repo()
        return TarballPublisher(Path(out) if out is not None else Path("."), base)
    raise RepositoryError(f"unknown backend {backend!r}", hint=f"use one of {', '.join(BACKENDS)}")


def verify_for_publish(
    bundle: Bundle,
    *,
    policy: TrustPolicy | None = None,
    allow_unsigned: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple[str, ...]:
    """Check every file digest, then the signatures under ``policy``; return signer identities.

    An unsigned bundle is refused unless ``allow_unsigned``; a signed one is always verified.
    """
    from .. import signing  # the signing layer: only publishers pay for importing it

    bundle.verify(progress=progress).raise_for_problems(bundle.ref)
    if not signing.is_signed(bundle):
        if not allow_unsigned:
            raise SignatureError(
                f"{bundle.ref} is unsigned; refusing to publish it",
                hint="sign it with 'hepbundle sign', or pass --allow-unsigned (local/tarball only)",
            )
        log.warning("publishing UNSIGNED bundle %s (allow_unsigned)", bundle.ref)
        return ()
    return tuple(s.identity for s in signing.verify_signatures(bundle, policy))


def publish(
    bundle: str | os.PathLike[str] | Bundle,
    repo: str | os.PathLike[str] | None = None,
    *,
    backend: str = "local",
    alias: str | None = None,
    allow_unsigned: bool = False,
    policy: TrustPolicy | None = None,
    lease: str | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> PublishResult:
    """Verify ``bundle`` (digests, signature, policy) and publish it with ``backend``.

    Nothing is written before the verification passed. See :func:`make_publisher` for ``repo``.
    """
    publisher = make_publisher(backend, repo, lease=lease, out=out)
    b = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    if allow_unsigned and not publisher.accepts_unsigned and not _is_signed(b):
        raise SignatureError(
            f"{b.ref} is unsigned and the {backend} backend never publishes unsigned bundles",
            hint="sign it with 'hepbundle sign' first",
        )
    signers = verify_for_publish(b, policy=policy, allow_unsigned=allow_unsigned, progress=progress)
    record = VersionRecord.from_bundle(b, signers=signers)
    return publisher.publish(PublishRequest(b, record, alias, progress))


def _is_signed(bundle: Bundle) -> bool:
    from ..signing import is_signed

    return is_signed(bundle)
