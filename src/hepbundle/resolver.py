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
the bundle (signatures under the trust policy, see :mod:`hepbundle.load`); :func:`verify_ref`
checks it whole (``hepbundle verify``); :func:`read_ref` reads only its manifest (provenance
export, attestations, lineage); :func:`name_catalog` and :func:`find` read the catalogue over
the search path (``hepbundle versions``, ``hepbundle find``). Trust decisions about the
catalogue itself belong in this module too, so that every reader gets them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bundle import check_bundle_dir
from .config import settings
from .errors import NotFoundError, UsageError, ValidityError, VerificationError, YankedError
from .load import VerifyMode, open
from .manifest import Manifest, read_manifest
from .repository.catalog import NameCatalog, VersionRecord, read_name_catalog
from .repository.layout import bundle_dir, catalog_file
from .repository.refs import VALID, Ref, parse_ref, shadowing_hint
from .validity import Context, Scope, parse_context

if TYPE_CHECKING:
    from .bundle import Bundle
    from .policy import TrustPolicy
    from .repository.index import FindHit, FindQuery
    from .signing import VerifyResult

__all__ = [
    "Located",
    "check_catalogue",
    "check_scope",
    "find",
    "job_context",
    "locate",
    "name_catalog",
    "not_found",
    "open_located",
    "read_ref",
    "resolve",
    "search_path",
    "verify_ref",
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
    #: the job's context the choice depended on (``@valid``, an alias); None otherwise
    context: Context | None = field(default=None, compare=False, repr=False)

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
    ref: str | os.PathLike[str],
    *,
    repos: Repos = None,
    allow_yanked: bool = False,
    context: Context | Mapping[str, Any] | str | None = None,
) -> Located:
    """Where REF points, reading only the small per-name catalogue file of each repository of
    :func:`search_path`; nothing is opened. A yanked version is refused unless
    ``allow_yanked``. ``ns/name@valid`` picks, by the scopes the catalogue records, the newest
    release whose scope covers ``context`` (default ``HEPBUNDLE_CONTEXT``; required)."""
    text = os.fspath(ref)
    parsed = parse_ref(text)
    if parsed.path is not None:
        return Located(parsed.path, parsed)
    assert parsed.name is not None
    ctx = None
    if parsed.selector == VALID:
        ctx = job_context(context)
        if not ctx:
            raise UsageError(
                f"{text}: @valid picks the version whose validity scope covers the job's "
                "context, and no context was given",
                hint="pass --context run=456789,release=CMSSW_15_0_3 (context= in Python, or "
                "HEPBUNDLE_CONTEXT)",
            )
    roots = search_path(repos)
    first_error: NotFoundError | None = None
    for root in roots:
        if not catalog_file(root, parsed.name).is_file():
            continue
        try:
            catalog = read_name_catalog(root, parsed.name)
            if ctx:
                record = catalog.valid_for(ctx)
            elif _is_alias(catalog, parsed.selector):
                assert parsed.selector is not None
                ctx = job_context(context)
                record = catalog.alias_for(parsed.selector, ctx)
            else:
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
        return Located(
            bundle_dir(root, parsed.name, record.version), parsed, record, root, catalog, ctx
        )
    if first_error is not None:
        hint = shadowing_hint(parsed)
        if hint is not None:
            raise NotFoundError(first_error.message, hint=hint)
        raise first_error
    raise not_found(parsed.name, roots)


def _is_alias(catalog: NameCatalog, selector: str | None) -> bool:
    return selector is not None and selector in catalog.aliases and selector not in catalog.versions


def _from_history(where: Located) -> bool:
    """Whether ``where`` is an alias's earlier version, chosen for the job's context
    (:meth:`NameCatalog.alias_for`) rather than the version the alias points at."""
    cat, sel, rec = where.catalog, where.ref.selector, where.record
    return (
        cat is not None
        and rec is not None
        and _is_alias(cat, sel)
        and cat.aliases[sel] != rec.version  # type: ignore[index]
    )


def not_found(name: str | None, roots: Sequence[Path]) -> NotFoundError:
    """The error for a name no repository of ``roots`` knows: "no such repository" when none of
    them is a repository, else the closest catalogued names ("did you mean"), and the entries
    of the search path that are not repositories. Only the failure path pays for the listing."""
    import difflib

    from .repository.catalog import list_names
    from .repository.layout import is_repository

    real = [r for r in roots if is_repository(r)]
    absent = [r for r in roots if r not in real]
    where = ", ".join(map(str, roots))
    if not real:
        what = "no such repository" if len(roots) == 1 else "no such repositories"
        return NotFoundError(
            f"{what}: {where}" + (f" (looking for {name!r})" if name else ""),
            hint="check HEPBUNDLE_PATH / --repo: each entry is a repository directory "
            "(catalog/repository.json), e.g. /cvmfs/<repo>",
        )
    names = sorted({n for r in real for n in list_names(r)})
    close = difflib.get_close_matches(name or "", names, n=3, cutoff=0.6)
    hints = [f"did you mean {' or '.join(map(repr, close))}?"] if close else []
    if absent:
        hints.append(f"not a repository: {', '.join(map(str, absent))}")
    hints.append("search with: hepbundle find")
    return NotFoundError(f"no bundle named {name!r} in {where}", hint="; ".join(hints))


def name_catalog(name: str, *, repos: Repos = None) -> tuple[Path, NameCatalog]:
    """The catalogue of ``name`` (every version, aliases, history) in the first repository of
    :func:`search_path` that knows it, and that repository (``hepbundle versions``)."""
    parsed = parse_ref(name)
    if parsed.name is None:
        raise NotFoundError(f"{name!r} is a path; this needs a catalogue name ns/name")
    roots = search_path(repos)
    for root in roots:
        if catalog_file(root, parsed.name).is_file():
            return root, read_name_catalog(root, parsed.name)
    raise not_found(parsed.name, roots)


def find(query: FindQuery, *, repos: Repos = None) -> list[tuple[Path, FindHit]]:
    """Search the index of every repository of :func:`search_path`, in order; a version found
    in an earlier repository hides the same ``name@version`` in later ones (as
    :func:`locate` would pick it). Each hit comes with its repository; at most
    ``query.limit`` hits. Entries of the path that are not repositories are skipped unless
    none is one ("no such repository"). A ``valid_for`` search gives per name the version
    ``ns/name@valid`` resolves to over the same path."""
    from .repository.index import find as find_in
    from .repository.layout import is_repository

    roots = search_path(repos)
    real = [r for r in roots if is_repository(r)]
    if not real:
        raise not_found(None, roots)
    # a validity search without --all-versions answers what @valid picks: the first repository
    # with a version covering the context wins the name
    by_name = query.valid_for is not None and not query.all_versions
    seen: set[tuple[str, str]] = set()
    hits: list[tuple[Path, FindHit]] = []
    for root in real:
        for hit in find_in(root, query):
            key = (hit.name, "" if by_name else hit.version)
            if key not in seen:
                seen.add(key)
                hits.append((root, hit))
    return hits[: query.limit]


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
            _check_catalog(where, chosen)
            _check_approvals(where.repo, where.catalog, where.record, where.ref.selector, chosen)
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


def _check_catalog(where: Located, policy: TrustPolicy) -> None:
    """The signed statements behind the record ``where`` found (see
    :mod:`hepbundle.repository.statements`); when the choice depended on the job's context
    (``@valid``, an alias), the same choice made on the signed statements must agree."""
    root, cat, record = where.repo, where.catalog, where.record
    assert root is not None and cat is not None and record is not None
    if not policy.signs_catalog(cat.name):
        return
    from .repository.layout import REPOSITORY_FILE, read_repository
    from .repository.statements import NodeState, check_catalog, next_serial

    doc = read_repository(root)
    # format 1: the repository's serial; format 2: the namespace's (bundles/<ns>/_catalog)
    serial, serial_file = next_serial(root, cat.name, doc)
    check_catalog(
        cat,
        record,
        where.ref.selector,
        policy,
        context=where.context or None,
        repository=str(doc.get("name")),
        repo_serial=serial - 1,
        state=NodeState.default(),
        namespace=None if serial_file == REPOSITORY_FILE else cat.name.split("/", 1)[0],
        serial_file=serial_file,
    )


def _check_approvals(
    root: Path, cat: NameCatalog, record: VersionRecord, selector: str | None, policy: TrustPolicy
) -> None:
    """An alias the policy guards with approvals (``prod``) resolves only to a version that still
    has them: deleting or altering an approval record, or a policy that now asks for more, is
    refused at use, not only when the alias moved."""
    if selector is None or selector not in cat.aliases:
        return
    if not policy.required_approvals(cat.name, selector):
        return
    from .repository.approvals import check_approvals

    check_approvals(root, cat.name, record.version, selector, policy, resolving=True)


def resolve(
    ref: str | os.PathLike[str],
    *,
    verify: VerifyMode = "lazy",
    policy: TrustPolicy | None = None,
    allow_yanked: bool = False,
    repos: Repos = None,
    context: Context | Mapping[str, Any] | str | None = None,
) -> Bundle:
    """Open the bundle a reference names: a path, or ``ns/name@1.2.0``, ``ns/name@prod``,
    ``ns/name`` (the latest release), searching the repositories of :func:`search_path` in
    order; the first repository that knows the name and the version or alias wins.

    Reads only the small per-name catalogue file of each repository, then checks that the
    bundle's manifest digest equals the one the catalogue recorded: a bundle swapped behind the
    catalogue's back is refused. Yanked versions are refused unless ``allow_yanked``.

    ``context`` (``{"run": 456789}``, ``"run=456789,release=CMSSW_15_0_3"``; default
    ``HEPBUNDLE_CONTEXT``) is the job's: a version whose validity scope excludes it is refused
    (:class:`~hepbundle.errors.ValidityError`, naming the scope and the context), judged on the
    opened, verified manifest.
    """
    where = locate(ref, repos=repos, allow_yanked=allow_yanked, context=context)
    bundle = open_located(where, verify=verify, policy=policy)
    chose = where.ref.selector == VALID or _from_history(where)
    check_scope(bundle.manifest, context, chosen_as=where.ref.selector if chose else None)
    return bundle


def job_context(context: Context | Mapping[str, Any] | str | None) -> Context:
    """The job's context: ``context`` as given, else ``HEPBUNDLE_CONTEXT``; a malformed one is
    one :class:`~hepbundle.errors.UsageError` naming where it came from."""
    source = "context"
    if context is None:
        context, source = settings().context, "HEPBUNDLE_CONTEXT"
    return parse_context(context, source=source)


def check_scope(
    manifest: Manifest,
    context: Context | Mapping[str, Any] | str | None,
    *,
    chosen_as: str | None = None,
) -> None:
    """Refuse ``manifest`` when its validity scope excludes ``context`` (None: the
    ``HEPBUNDLE_CONTEXT`` of the environment; empty: nothing to check). ``chosen_as`` (the
    selector, ``valid`` or an alias, that chose this version for the context by the
    catalogue's record of its scope): the verified manifest's scope must also cover the
    context, not merely not exclude it."""
    ctx = job_context(context)
    if not ctx:
        return
    scope = Scope.from_json(manifest.meta.get("validity"), where=f"{manifest.ref}: validity")
    if chosen_as is not None and not scope.covers(ctx):
        raise ValidityError(
            f"{manifest.ref} was chosen as @{chosen_as} for {ctx} by the catalogue, but its "
            f"signed manifest's validity scope ({scope.describe()}) does not cover it",
            hint="the catalogue's record of its scope differs from the bundle: do not use it",
            ref=manifest.ref,
        )
    excluded = scope.excluded_by(ctx)
    if excluded:
        asked = ",".join(f"{k}={ctx.values[k]}" for k in excluded)
        raise ValidityError(
            f"{manifest.ref} is not valid for {asked} (context {ctx}): its validity scope is "
            f"{scope.describe(excluded)}",
            hint=f"pick a version valid for this context (hepbundle versions {manifest.name}), "
            "or run with the context the model was made for",
            ref=manifest.ref,
        )


def verify_ref(
    ref: str | os.PathLike[str] | Located,
    policy: TrustPolicy | None = None,
    *,
    repos: Repos = None,
    allow_yanked: bool = False,
    integrity_only: bool = False,
    files: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyResult:
    """What ``hepbundle verify REF`` does: :func:`hepbundle.load.verify` of the bundle REF names
    (signatures first, then every file's digest, or only ``files``). A catalogue reference
    goes through the same search, yank, catalogue-digest and signed-statement checks as
    :func:`resolve`, and is judged by ``policy``, else ``HEPBUNDLE_POLICY``, else the trust
    root of the repository it was found in. ``ref`` may be what :func:`locate` returned."""
    from . import load as _load

    where = ref if isinstance(ref, Located) else locate(ref, repos=repos, allow_yanked=allow_yanked)
    if where.record is None or where.repo is None:
        return _load.verify(
            where.path, policy, integrity_only=integrity_only, files=files, progress=progress
        )
    from .bundle import Bundle
    from .signing import verify as _verify

    bundle = Bundle.load(where.path)
    check_catalogue(where, bundle.manifest, bundle.manifest_digest)
    what = f"{where.ref.name}@{where.record.version} in {where.repo}"
    if integrity_only:
        log.info("%s: INTEGRITY CHECKS ONLY (--integrity-only): signatures not checked", what)
        return _verify(bundle, integrity_only=True, files=files, progress=progress)
    chosen = _repository_policy(where.repo, policy, what)
    if where.catalog is not None:
        _check_catalog(where, chosen)
    return _verify(bundle, chosen, files=files, progress=progress)


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
