"""The one REF resolver: every command and API that takes a bundle reference goes through here.

A REF is a bundle directory (``/…``, ``./…``, ``~/…`` or any existing path that is not a
reference) or a catalogue reference: ``ns/name@1.2.0``, ``ns/name@prod`` (an alias) or
``ns/name`` (the latest release). One rule for each concern:

search      :func:`search_path`: the ``repos`` given (``--repo``, repeatable), else
            ``HEPBUNDLE_PATH`` (colon-separated, like ``CALIBPATH``), else ``HEPBUNDLE_REPO``,
            else ``./hepbundle-repo`` if it exists; the first repository whose catalogue knows
            the name and the version or alias wins.
yank        a yanked version is refused (:class:`~hepbundle.errors.YankedError`) unless
            ``allow_yanked`` (``--allow-yanked``), which logs a warning.
catalogue   the bundle found must be the one the catalogue recorded: its manifest digest,
            name and version are compared with the catalogue's record
            (:func:`check_catalogue`), whether the bundle is opened or only its manifest read.
trust       opening a catalogue reference judges it under the policy given, else
            ``HEPBUNDLE_POLICY``, else the repository's trust root (refused without any); when
            that policy signs the name's catalogue, the signed statement behind the version or
            alias is checked and a catalogue older than this node has seen is refused
            (:mod:`hepbundle.repository.statements`).

:func:`locate` returns the catalogue record without opening anything; :func:`resolve` opens
the bundle (signatures under the trust policy, see :mod:`hepbundle.load`); :func:`read_ref`
reads only its manifest (provenance export, attestations, lineage). Trust decisions about the
catalogue itself belong in this module too, so that every reader gets them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bundle import check_bundle_dir
from .config import settings
from .errors import NotFoundError, VerificationError, YankedError
from .load import VerifyMode, open
from .manifest import Manifest, read_manifest
from .repository.catalog import NameCatalog, VersionRecord, read_name_catalog
from .repository.layout import bundle_dir, catalog_file
from .repository.refs import Ref, parse_ref, shadowing_hint

if TYPE_CHECKING:
    from .bundle import Bundle
    from .policy import TrustPolicy

__all__ = [
    "Located",
    "check_catalogue",
    "locate",
    "open_located",
    "read_ref",
    "resolve",
    "search_path",
]

log = logging.getLogger("hepbundle")

Repos = Sequence[str | os.PathLike[str]] | None


@dataclass(frozen=True)
class Located:
    """Where a REF points: a bundle directory, and, for a catalogue reference, the repository
    and the catalogue record it was found through (None for a path)."""

    path: Path
    ref: Ref
    record: VersionRecord | None = None
    repo: Path | None = None
    #: the per-name catalogue the record came from (its signed statements are checked at open)
    catalog: NameCatalog | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "ref": str(self.ref),
            "version": self.record.version if self.record else None,
            "yanked": self.record.yanked if self.record else None,
            "catalog_manifest_sha256": self.record.manifest_digest if self.record else None,
        }


def search_path(repos: Repos = None) -> list[Path]:
    """Repositories to search, in order: ``repos``, else ``HEPBUNDLE_PATH`` (colon-separated,
    like ``CALIBPATH``), else ``HEPBUNDLE_REPO``, else ``./hepbundle-repo`` if it exists."""
    if repos:
        return [Path(r) for r in repos]
    s = settings()
    if s.search_path:
        return list(s.search_path)
    if s.repo is not None:
        return [s.repo]
    if Path("hepbundle-repo").is_dir():
        return [Path("hepbundle-repo")]
    raise NotFoundError(
        "no repository to search",
        hint="set HEPBUNDLE_PATH=/cvmfs/<repo>:<other> or pass --repo",
    )


def locate(
    ref: str | os.PathLike[str], *, repos: Repos = None, allow_yanked: bool = False
) -> Located:
    """Where REF points, reading only the small per-name catalogue file of each repository of
    :func:`search_path`; nothing is opened. A yanked version is refused unless
    ``allow_yanked``."""
    text = os.fspath(ref)
    parsed = parse_ref(text)
    if parsed.path is not None:
        return Located(parsed.path, parsed)
    assert parsed.name is not None
    roots = search_path(repos)
    first_error: NotFoundError | None = None
    for root in roots:
        if not catalog_file(root, parsed.name).is_file():
            continue
        try:
            catalog = read_name_catalog(root, parsed.name)
            record = catalog.resolve(parsed.selector)
        except NotFoundError as e:
            first_error = first_error or e
            continue
        if record.yanked is not None:
            msg = f"{parsed.name}@{record.version} is yanked: {record.yanked}"
            if not allow_yanked:
                raise YankedError(
                    msg,
                    hint="pin another version, or pass allow_yanked=True / --allow-yanked",
                    ref=f"{parsed.name}@{record.version}",
                )
            log.warning("%s (allowed)", msg)
        if parsed.selector != record.version:
            log.info("resolved %s to %s@%s in %s", text, parsed.name, record.version, root)
        return Located(bundle_dir(root, parsed.name, record.version), parsed, record, root, catalog)
    if first_error is not None:
        hint = shadowing_hint(parsed)
        if hint is not None:
            raise NotFoundError(first_error.message, hint=hint)
        raise first_error
    raise NotFoundError(
        f"no bundle named {parsed.name!r} in {', '.join(map(str, roots))}",
        hint="check HEPBUNDLE_PATH, or search with: hepbundle find",
    )


def check_catalogue(where: Located, manifest: Manifest, manifest_digest: str) -> None:
    """Refuse a bundle that is not the one the catalogue recorded (a directory changed or
    swapped behind the catalogue's back). A path has no record: nothing to compare."""
    record = where.record
    if record is None:
        return
    if manifest_digest != record.manifest_digest:
        raise VerificationError(
            f"{manifest.ref} in {where.repo}: manifest digest sha256:{manifest_digest[:16]}… "
            f"differs from the catalogue's sha256:{record.manifest_digest[:16]}…",
            hint="the bundle directory was changed behind the catalogue; do not use it",
        )
    name = where.ref.name
    if (manifest.name, manifest.version) != (name, record.version):
        raise VerificationError(
            f"{where.repo}: catalogue entry {name}@{record.version} holds {manifest.ref}"
        )


def open_located(
    where: Located, *, verify: VerifyMode = "lazy", policy: TrustPolicy | None = None
) -> Bundle:
    """Open what :func:`locate` found (signatures under the trust policy, and for a catalogue
    reference the signed catalogue statements behind it) and check it is the bundle the
    catalogue recorded."""
    chosen = policy
    if verify not in ("integrity", "none") and where.repo is not None and where.record:
        what = f"{where.ref.name}@{where.record.version} in {where.repo}"
        chosen = _repository_policy(where.repo, policy, what)
        if where.catalog is not None:
            _check_catalog(where.repo, where.catalog, where.record, where.ref.selector, chosen)
    bundle = open(where.path, verify=verify, policy=chosen)
    check_catalogue(where, bundle.manifest, bundle.manifest_digest)
    return bundle


def _repository_policy(root: Path, policy: TrustPolicy | None, what: str) -> TrustPolicy:
    from .policy import no_policy_error
    from .repository.trust import repository_policy

    chosen = repository_policy(root, policy)
    if chosen is None:
        raise no_policy_error(f"{what} (the repository has no trust root)")
    return chosen


def _check_catalog(
    root: Path, cat: NameCatalog, record: VersionRecord, selector: str | None, policy: TrustPolicy
) -> None:
    """The signed statements behind ``record`` (see :mod:`hepbundle.repository.statements`)."""
    if not policy.signs_catalog(cat.name):
        return
    from .repository.layout import read_repository
    from .repository.statements import NodeState, check_catalog

    doc = read_repository(root)
    check_catalog(
        cat,
        record,
        selector,
        policy,
        repository=str(doc.get("name")),
        repo_serial=int(doc["serial"]) if "serial" in doc else None,
        state=NodeState.default(),
    )


def resolve(
    ref: str | os.PathLike[str],
    *,
    verify: VerifyMode = "lazy",
    policy: TrustPolicy | None = None,
    allow_yanked: bool = False,
    repos: Repos = None,
) -> Bundle:
    """Open the bundle a reference names: a path, or ``ns/name@1.2.0``, ``ns/name@prod``,
    ``ns/name`` (the latest release), searching the repositories of :func:`search_path` in
    order; the first repository that knows the name and the version or alias wins.

    Reads only the small per-name catalogue file of each repository, then checks that the
    bundle's manifest digest equals the one the catalogue recorded: a bundle swapped behind the
    catalogue's back is refused. Yanked versions are refused unless ``allow_yanked``.
    """
    where = locate(ref, repos=repos, allow_yanked=allow_yanked)
    return open_located(where, verify=verify, policy=policy)


def read_ref(
    ref: str | os.PathLike[str], *, repos: Repos = None, allow_yanked: bool = False
) -> tuple[Located, Manifest, str]:
    """The manifest of the bundle REF names and the SHA-256 of its bytes, without opening the
    bundle (no signature or payload check), under the same search, yank and catalogue rules as
    :func:`resolve`."""
    where = locate(ref, repos=repos, allow_yanked=allow_yanked)
    check_bundle_dir(where.path)
    manifest, digest = read_manifest(where.path)
    check_catalogue(where, manifest, digest)
    return where, manifest, digest
