"""Catalogue operations on a repository: list versions, move an alias, yank, rebuild the index
(looking a REF up is :mod:`hepbundle.resolver`). Each is one typed function the CLI calls."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import settings
from ..errors import NotFoundError, RepositoryError, SpecError
from ._publishers import make_publisher
from .approvals import approve, check_approvals
from .catalog import NameCatalog, check_alias, read_name_catalog
from .index import rebuild_index
from .layout import STAGING_DIR, ensure_repository, read_repository
from .lock import LOCK_FILENAME, repository_lock
from .publish import default_repo
from .records import RecordRef
from .refs import Ref, parse_ref
from .statements import next_serial, sign_changes
from .tree import recover
from .trust import (
    TrustRoot,
    accept_trust_root,
    read_trust_root,
    repository_policy,
    write_trust_root,
)

if TYPE_CHECKING:
    from .._signers import Signer
    from ..policy import TrustPolicy
    from .migration import Migrated

__all__ = [
    "Changed",
    "approve_ref",
    "default_actor",
    "init_repository",
    "migrate",
    "rebuild",
    "set_alias",
    "set_trust_root",
    "trust_repository",
    "versions",
    "yank",
]


@dataclass(frozen=True)
class Changed:
    """The outcome of an alias or yank: the catalogue after, the version it concerned, and the
    repository serial (None for the tarball backend, which only writes a patch)."""

    catalog: NameCatalog
    version: str
    serial: int | None


def _root(repo: str | os.PathLike[str] | None) -> Path:
    return Path(repo) if repo is not None else default_repo()


def _name_ref(text: str) -> Ref:
    ref = parse_ref(text)
    if ref.name is None:
        raise NotFoundError(f"{text!r} is a path; this needs a catalogue reference ns/name@version")
    return ref


def versions(name: str, repo: str | os.PathLike[str] | None = None) -> NameCatalog:
    """The catalogue of one name (every version, aliases, history)."""
    ref = _name_ref(name)
    assert ref.name is not None
    return read_name_catalog(_root(repo), ref.name)


def default_actor() -> str:
    """Who changes the catalogue, as recorded with an alias move or a yank:
    ``$HEPBUNDLE_ACTOR`` (a CI job sets e.g. its pipeline URL), else ``user@host``."""
    explicit = settings().actor
    if explicit:
        return explicit
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _force_hint(what: str) -> str:
    return f"{what}, or pass --force (force=True from Python) if that is what you want"


def set_alias(
    ref_text: str,
    alias: str,
    repo: str | os.PathLike[str] | None = None,
    *,
    backend: str = "local",
    force: bool = False,
    actor: str | None = None,
    signer: Signer | None = None,
    policy: TrustPolicy | None = None,
) -> Changed:
    """Point ``alias`` at the version REF names (moving it if it pointed elsewhere; the
    catalogue keeps every move, and who made it, in ``aliasHistory``). A malformed alias is
    refused before any backend is asked to do anything; pointing an alias at a yanked version
    is refused unless ``force``. ``signer`` signs the alias statement; approvals the policy
    requires for the alias must exist."""
    check_alias(alias)
    who = actor or default_actor()

    def apply(cat: NameCatalog, version: str) -> NameCatalog:
        rec = cat.versions[version]
        if rec.yanked is not None and not force:
            raise RepositoryError(
                f"{cat.name}@{version} is yanked ({rec.yanked}); every job loading "
                f"{cat.name}@{alias} would be refused",
                hint=_force_hint("alias a version that is not yanked"),
            )
        return cat.with_alias(alias, version, actor=who)

    def approved(root: Path, name: str, version: str, chosen: TrustPolicy | None) -> None:
        check_approvals(root, name, version, alias, chosen)

    return _change(
        ref_text,
        repo,
        backend,
        apply,
        lambda ref: f"hepbundle alias {ref} as {alias}",
        signer,
        policy,
        approved,
    )


def yank(
    ref_text: str,
    reason: str,
    repo: str | os.PathLike[str] | None = None,
    *,
    backend: str = "local",
    force: bool = False,
    actor: str | None = None,
    signer: Signer | None = None,
    policy: TrustPolicy | None = None,
) -> Changed:
    """Mark the version REF names as yanked with ``reason``; the bundle stays in place;
    ``signer`` signs the yank statement.

    Refused unless ``force`` when an alias points at that version (every job loading the alias
    would then fail) or when it is already yanked (the first reason would be replaced)."""
    ref = _name_ref(ref_text)
    if ref.selector is None:
        raise NotFoundError(
            f"yank needs an explicit version or alias, not {ref_text!r}",
            hint=f"e.g. {ref.name}@1.2.0",
        )
    if not reason.strip():
        raise SpecError("a yank needs a reason", hint="pass --reason 'why'")
    who = actor or default_actor()

    def apply(cat: NameCatalog, version: str) -> NameCatalog:
        rec = cat.versions[version]
        if rec.yanked is not None and not force:
            by = f" by {rec.yanked_by}" if rec.yanked_by else ""
            raise RepositoryError(
                f"{cat.name}@{version} is already yanked{by} at {rec.yanked_time}: {rec.yanked}",
                hint=_force_hint("keep the first reason"),
            )
        pointing = sorted(a for a, v in cat.aliases.items() if v == version)
        if pointing and not force:
            others = [
                r.version for r in cat.sorted_versions() if not r.yanked and r.version != version
            ]
            move = (
                f"move it first: hepbundle alias {cat.name}@{others[-1]} {pointing[0]}"
                if others
                else "publish a fixed version and move the alias to it first"
            )
            raise RepositoryError(
                f"{cat.name}@{version} is what "
                + ", ".join(f"@{a}" for a in pointing)
                + " points at: yanking it makes every job loading "
                + " and ".join(f"{cat.name}@{a}" for a in pointing)
                + " fail",
                hint=_force_hint(move),
            )
        return cat.with_yank(version, reason, actor=who)

    return _change(
        ref_text,
        repo,
        backend,
        apply,
        lambda ref: f"hepbundle yank {ref}: {reason}",
        signer,
        policy,
    )


def _change(
    ref_text: str,
    repo: str | os.PathLike[str] | None,
    backend: str,
    apply: Callable[[NameCatalog, str], NameCatalog],
    message: Callable[[str], str],
    signer: Signer | None,
    policy: TrustPolicy | None,
    precheck: Callable[[Path, str, str, TrustPolicy | None], None] | None = None,
) -> Changed:
    """Resolve REF to a version in the current catalogue, then let the backend apply the change
    (``apply`` runs on the catalogue as the backend reads it, under its lock, and the change's
    signed statement is appended there)."""
    ref = _name_ref(ref_text)
    assert ref.name is not None
    name = ref.name
    publisher = make_publisher(backend, repo)
    version = read_name_catalog(publisher.root, ref.name).resolve(ref.selector).version
    chosen = repository_policy(publisher.root, policy)
    if precheck is not None:
        precheck(publisher.root, ref.name, version, chosen)

    def change(cat: NameCatalog) -> NameCatalog:
        doc = read_repository(publisher.root)
        serial, serial_file = next_serial(publisher.root, name, doc)
        return sign_changes(
            cat,
            apply(cat, version),
            signer,
            policy=chosen,
            repository=str(doc["name"]),
            serial=serial,
            serial_file=serial_file,
        )

    cat, serial = publisher.change(ref.name, change, message(f"{ref.name}@{version}"))
    return Changed(cat, version, serial)


def rebuild(repo: str | os.PathLike[str] | None = None) -> int:
    """Rebuild ``catalog/index.sqlite`` from the per-name files of a local repository; return
    the number of versions indexed."""
    root = _root(repo).absolute()
    read_repository(root)
    with repository_lock(root / LOCK_FILENAME):
        recover(root)
        staging = root / STAGING_DIR
        staging.mkdir(exist_ok=True)
        try:
            return rebuild_index(root, work_dir=staging)
        finally:
            if not any(staging.iterdir()):
                staging.rmdir()


def migrate(repo: str | os.PathLike[str] | None = None, *, backend: str = "local") -> Migrated:
    """Migrate a format-1 repository to format 2 (``bundle-spec/repository.md``): a local
    directory under its lock, or a CVMFS repository (``backend="cvmfs"``, on its Stratum-0)
    in ONE transaction on the root. Running it again is harmless."""
    from ._publishers.cvmfs import CvmfsServerPublisher
    from .migration import migrate_tree

    if backend == "cvmfs":
        if repo is None:
            raise RepositoryError("migrating on CVMFS needs --repo <repository name>")
        pub = CvmfsServerPublisher(str(repo))
        read_repository(pub.root)
        return pub.write(
            None, migrate_tree, "hepbundle migrate repository format 1 to 2", "hepbundle-format-2"
        )
    if backend != "local":
        raise RepositoryError(f"repositories are migrated in place: not with the {backend} backend")
    root = _root(repo).absolute()
    read_repository(root)
    with repository_lock(root / LOCK_FILENAME):
        return migrate_tree(root)


def init_repository(
    repo: str | os.PathLike[str] | None,
    policy: TrustPolicy,
    *,
    name: str | None = None,
) -> TrustRoot:
    """Create a local repository (if needed) with ``policy`` as its trust root, and accept that
    trust root on this node (the operator wrote it here). Refuses to replace an existing trust
    root: that is :func:`set_trust_root`, with a reason."""
    root = _root(repo).absolute()
    root.mkdir(parents=True, exist_ok=True)
    with repository_lock(root / LOCK_FILENAME):
        ensure_repository(root, identity=name)
        if read_trust_root(root) is not None:
            raise RepositoryError(
                f"{root} already has a trust root",
                hint="change it with: hepbundle repo trust-root set POLICY --reason 'why'",
            )
        write_trust_root(
            root,
            policy.with_catalog_signers(),
            reason="repository initialised (hepbundle repo init)",
        )
    return accept_trust_root(root)


def set_trust_root(
    repo: str | os.PathLike[str] | None, policy: TrustPolicy, *, reason: str
) -> TrustRoot:
    """The operator's explicit, logged change of a local repository's trust root (appended to
    ``catalog/trust-log.jsonl``); accepted on this node. Other nodes must accept it again."""
    root = _root(repo).absolute()
    read_repository(root)
    with repository_lock(root / LOCK_FILENAME):
        write_trust_root(root, policy, reason=reason)
    return accept_trust_root(root)


def trust_repository(repo: str | os.PathLike[str] | None) -> TrustRoot:
    """Accept the repository's current trust root on this node (trust on first use)."""
    root = _root(repo).absolute()
    read_repository(root)
    return accept_trust_root(root)


def approve_ref(
    ref_text: str,
    role: str,
    signer: Signer,
    repo: str | os.PathLike[str] | None = None,
    *,
    policy: TrustPolicy | None = None,
) -> RecordRef:
    """``hepbundle approve REF --as ROLE``: a signed approval of the version REF names."""
    ref = _name_ref(ref_text)
    assert ref.name is not None
    root = _root(repo)
    version = read_name_catalog(root, ref.name).resolve(ref.selector).version
    return approve(root, ref.name, version, role, signer, repository_policy(root, policy))
