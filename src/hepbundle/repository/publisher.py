"""The publisher interface: what every backend implements and what publishing hands it.

This module sits below the backends (``_publishers/local|cvmfs|tarball``), which import it, and
below :mod:`.publish` (verification + the batch logic), which drives them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..bundle import Bundle
from .catalog import NameCatalog, VersionRecord

if TYPE_CHECKING:
    from .._signers import Signer
    from ..policy import TrustPolicy


__all__ = ["BACKENDS", "Backend", "PublishRequest", "PublishResult", "Publisher"]


Backend = Literal["local", "cvmfs", "tarball"]
BACKENDS: tuple[Backend, ...] = ("local", "cvmfs", "tarball")


@dataclass(frozen=True)
class PublishRequest:
    """A verified bundle, the catalogue record it will get, and an optional alias to point at it."""

    bundle: Bundle
    record: VersionRecord
    alias: str | None = None
    progress: Callable[[int], None] | None = None
    #: more aliases to point at this version (an importer's, per bundle), after ``alias``
    more_aliases: tuple[str, ...] = ()
    #: written as the repository's trust root when this publish creates the repository
    trust_root: TrustPolicy | None = None
    #: signs the catalogue statements (publish, alias) of this change
    statement_signer: Signer | None = None
    #: the policy that decides whether statements are required, and checks them
    policy: TrustPolicy | None = None
    #: days until the new statements expire (None: they do not)
    expires_days: float | None = None
    #: the bundle was built by this process in a work directory of the repository's staging
    #: area (``tree.LiveWorkDir``): it is checked against the build's records and moved into
    #: place instead of copied (local backend)
    adopt: bool = False
    #: the bundle's directory is renamed into the staging area and checked there (from the
    #: build's records in the node cache) instead of copied, then moved into place: it is gone
    #: from where it was (``publish --move``, local backend; ``repository/_move.py``)
    move: bool = False

    @property
    def aliases(self) -> tuple[str, ...]:
        """Every alias this publish points at the version, in order."""
        return ((self.alias,) if self.alias is not None else ()) + self.more_aliases


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
    #: whether :meth:`publish` hashes every byte as it copies it and refuses a file that does not
    #: match the manifest (then :func:`publish` checks layout and signatures only, beforehand)
    verifies_on_copy: bool

    def publish(self, request: PublishRequest) -> PublishResult:
        """Publish one version (idempotent for identical content, refusing different content)."""
        ...

    def publish_batch(self, requests: Sequence[PublishRequest]) -> list[PublishResult]:
        """Publish several versions in one step, all or nothing (see :func:`publish_many`)."""
        ...

    def change(
        self, name: str, change: Callable[[NameCatalog], NameCatalog], message: str
    ) -> tuple[NameCatalog, int | None]:
        """Apply a catalogue change (alias, yank) to one name; return it and the new serial."""
        ...
