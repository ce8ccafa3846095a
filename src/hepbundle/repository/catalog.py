"""The per-name catalogue file ``catalog/<ns>/<name>.json``: versions, aliases, yanked marks.

It is the source of truth of a repository (the SQLite index is derived from these files), and the
only file a loader reads to resolve ``ns/name@prod``. Values are frozen; a change makes a new
:class:`NameCatalog` which :func:`write_name_catalog` puts in place with write-new + fsync + rename.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._base import utc_timestamp, write_atomic
from .._json import read_json
from ..errors import FormatError, NotFoundError, SpecError
from ..limits import MAX_CATALOG_BYTES
from ..manifest import canonical_json
from ..validity import Context, Scope, covers_recorded
from .layout import (
    NAMESPACE_FILE,
    REPOSITORY_FILE,
    bundle_relpath,
    catalog_dir,
    catalog_file,
    is_repository,
    namespaces,
)
from .refs import ALIAS_RE, NAME_RE, VALID, is_prerelease, is_version, version_key

if TYPE_CHECKING:
    from ..bundle import Bundle

__all__ = [
    "CATALOG_MEDIA_TYPE",
    "AliasEvent",
    "NameCatalog",
    "VersionRecord",
    "catalog_from_json",
    "list_names",
    "read_name_catalog",
    "write_name_catalog",
]

CATALOG_MEDIA_TYPE = "application/vnd.hepbundle.catalog.v1+json"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class VersionRecord:
    """One published version as the catalogue knows it.

    ``manifest_digest`` is the hex SHA-256 of the bundle's ``hepbundle.json`` (what
    :attr:`hepbundle.Bundle.manifest_digest` computes); ``path`` is relative to the repository
    root; ``yanked`` is None or the reason given.
    """

    version: str
    manifest_digest: str
    path: str
    created: str
    published: str
    summary: str = ""
    authors: tuple[str, ...] = ()
    framework: str = ""
    license: str = ""
    tags: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    signers: tuple[str, ...] = ()
    yanked: str | None = None
    yanked_time: str | None = None
    yanked_by: str | None = None
    #: the manifest's validity scope as recorded (bundle-spec/validity.md), for ``@valid`` and
    #: ``find --valid-for`` without opening bundles; not signed: a choice made on it is
    #: confirmed on the opened bundle's verified manifest (:mod:`hepbundle.resolver`)
    validity: Mapping[str, Any] | None = field(default=None, compare=False)

    @classmethod
    def from_bundle(
        cls, bundle: Bundle, *, signers: tuple[str, ...] = (), published: str | None = None
    ) -> VersionRecord:
        """The record of ``bundle`` as it will be published (searchable fields from its manifest)."""
        meta = bundle.manifest.meta
        return cls(
            version=bundle.version,
            manifest_digest=bundle.manifest_digest,
            path=bundle_relpath(bundle.name, bundle.version),
            created=bundle.manifest.created,
            published=published or utc_timestamp(),
            summary=str(meta.get("summary") or ""),
            authors=tuple(_person_name(a) for a in meta.get("authors") or ()),
            framework=str(meta.get("framework") or ""),
            license=str(meta.get("license") or ""),
            tags=tuple(str(t) for t in meta.get("tags") or ()),
            datasets=tuple(_dataset_name(d) for d in meta.get("data") or ()),
            signers=signers,
            validity=meta.get("validity") or None,
        )

    @property
    def prerelease(self) -> bool:
        return is_prerelease(self.version)

    def to_json(self) -> dict[str, Any]:
        return {
            "manifestSha256": self.manifest_digest,
            "path": self.path,
            "created": self.created,
            "published": self.published,
            "summary": self.summary,
            "authors": list(self.authors),
            "framework": self.framework,
            "license": self.license,
            "tags": list(self.tags),
            "datasets": list(self.datasets),
            "signers": list(self.signers),
            "yanked": None
            if self.yanked is None
            else {
                "reason": self.yanked,
                "time": self.yanked_time,
                **({"actor": self.yanked_by} if self.yanked_by else {}),
            },
            **({"validity": dict(self.validity)} if self.validity else {}),
        }

    @classmethod
    def from_json(cls, version: str, obj: Mapping[str, Any]) -> VersionRecord:
        yanked = obj.get("yanked")
        return cls(
            version=version,
            manifest_digest=obj["manifestSha256"],
            path=obj["path"],
            created=obj["created"],
            published=obj["published"],
            summary=obj.get("summary", ""),
            authors=tuple(obj.get("authors", ())),
            framework=obj.get("framework", ""),
            license=obj.get("license", ""),
            tags=tuple(obj.get("tags", ())),
            datasets=tuple(obj.get("datasets", ())),
            signers=tuple(obj.get("signers", ())),
            yanked=None if yanked is None else yanked["reason"],
            yanked_time=None if yanked is None else yanked["time"],
            yanked_by=None if yanked is None else yanked.get("actor"),
            validity=obj.get("validity") or None,
        )


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias: to ``version`` from ``previous`` (None when it was created)."""

    alias: str
    version: str
    previous: str | None
    time: str
    actor: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "version": self.version,
            "previous": self.previous,
            "time": self.time,
            **({"actor": self.actor} if self.actor else {}),
        }


@dataclass(frozen=True)
class NameCatalog:
    """Every version of one name, its aliases and their history."""

    name: str
    versions: dict[str, VersionRecord] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    alias_history: tuple[AliasEvent, ...] = ()
    #: signed catalogue statements, oldest first (:mod:`hepbundle.repository.statements`)
    statements: tuple[dict[str, Any], ...] = ()

    def sorted_versions(self) -> list[VersionRecord]:
        """Versions in SemVer order, oldest first."""
        return sorted(self.versions.values(), key=lambda r: version_key(r.version))

    def valid_for(self, context: Context) -> VersionRecord:
        """``@valid``: the newest version, neither yanked nor a pre-release, whose recorded
        validity scope covers ``context`` (bundle-spec/validity.md); :class:`NotFoundError`
        listing the versions' scopes when none does. The recorded scope is not signed: the
        resolver confirms the choice on the opened bundle's verified manifest."""
        usable = [r for r in self.sorted_versions() if not r.yanked and not r.prerelease]
        for r in reversed(usable):
            if covers_recorded(r.validity, context, f"{self.name}@{r.version}: validity"):
                return r

        def said(r: VersionRecord) -> str:
            try:
                return Scope.from_json(r.validity).describe(context.values)
            except FormatError:
                return "unreadable scope"

        seen = [f"{r.version} ({said(r)})" for r in reversed(usable[-5:])]
        raise NotFoundError(
            f"no version of {self.name} is valid for {context}",
            hint="released versions: "
            + ("; ".join(seen) if seen else "none")
            + " (bundle-spec/validity.md)",
        )

    def alias_for(self, alias: str, context: Context) -> VersionRecord:
        """``ns/name@alias`` for a job with ``context``: the alias's version when its recorded
        scope does not exclude the context (what it always resolved to); else, among the
        versions the alias has pointed at (``aliasHistory``) that are not yanked, the newest
        whose recorded scope covers the context (the conditions lookup: data of an earlier
        period gets the version that was prod for it); else the alias's version again, which
        the resolver refuses naming its scope. :class:`NotFoundError` for an unknown alias."""
        current = self.versions[self.aliases[alias]] if alias in self.aliases else None
        if current is None:
            raise NotFoundError(f"{self.name} has no alias {alias!r}")
        if not context or self._admits(current, context):
            return current
        pointed = {e.version for e in self.alias_history if e.alias == alias}
        for v in sorted(pointed & set(self.versions), key=version_key, reverse=True):
            r = self.versions[v]
            if not r.yanked and covers_recorded(r.validity, context, f"{self.name}@{v}: validity"):
                return r
        return current

    def _admits(self, r: VersionRecord, context: Context) -> bool:
        try:
            scope = Scope.from_json(r.validity, where=f"{self.name}@{r.version}: validity")
        except FormatError:
            return False
        return not scope.excluded_by(context)

    def latest(self) -> VersionRecord | None:
        """The highest version that is neither yanked nor a pre-release."""
        usable = [r for r in self.sorted_versions() if not r.yanked and not r.prerelease]
        return usable[-1] if usable else None

    def resolve(self, selector: str | None = None) -> VersionRecord:
        """The record a selector names: a version, an alias, or None / ``latest`` for
        :meth:`latest`. A yanked version is returned (the loader decides to warn or refuse)."""
        if selector is None or (selector == "latest" and "latest" not in self.aliases):
            rec = self.latest()
            if rec is None:
                every = self.sorted_versions()
                usable = [r.version for r in every if not r.yanked]
                if not every:
                    raise NotFoundError(f"{self.name} has no published version")
                if not usable:
                    last = every[-1]
                    raise NotFoundError(
                        f"every version of {self.name} is yanked (latest {last.version}: "
                        f"{last.yanked})",
                        hint="publish a fixed version, or name a yanked one explicitly and "
                        "allow it (--allow-yanked / allow_yanked=True)",
                    )
                raise NotFoundError(
                    f"{self.name} has only pre-release versions",
                    hint=f"name one explicitly: {', '.join(usable[-5:])}",
                )
            return rec
        if selector in self.versions:
            return self.versions[selector]
        if selector in self.aliases:
            return self.versions[self.aliases[selector]]
        known = [*self.versions, *self.aliases]
        close = difflib.get_close_matches(selector, known, n=3, cutoff=0.5)
        close = [c for c in close if not self.resolve(c).yanked] or close
        kind = "version" if is_version(selector) else "version or alias"
        raise NotFoundError(
            f"{self.name} has no {kind} {selector!r}",
            hint=f"did you mean {' or '.join(map(repr, close))}?"
            if close
            else f"known: {', '.join(known[-8:]) or 'none'}",
        )

    def with_version(self, record: VersionRecord) -> NameCatalog:
        return replace(self, versions={**self.versions, record.version: record})

    def with_alias(
        self, alias: str, version: str, *, time: str | None = None, actor: str | None = None
    ) -> NameCatalog:
        """Point ``alias`` at ``version`` (which must exist), appending to the history (with
        who did it, when ``actor`` is given)."""
        check_alias(alias)
        if version not in self.versions:
            raise NotFoundError(f"{self.name} has no version {version!r} to alias")
        previous = self.aliases.get(alias)
        if previous == version:
            return self
        event = AliasEvent(alias, version, previous, time or utc_timestamp(), actor)
        return replace(
            self,
            aliases={**self.aliases, alias: version},
            alias_history=(*self.alias_history, event),
        )

    def with_yank(
        self, version: str, reason: str, *, time: str | None = None, actor: str | None = None
    ) -> NameCatalog:
        """Mark ``version`` yanked (the bundle stays; loaders warn or refuse per policy)."""
        rec = self.resolve(version)
        if not reason.strip():
            raise SpecError("a yank needs a reason", hint="pass --reason 'why'")
        yanked = replace(rec, yanked=reason, yanked_time=time or utc_timestamp(), yanked_by=actor)
        return self.with_version(yanked)

    def to_json(self) -> dict[str, Any]:
        return {
            "mediaType": CATALOG_MEDIA_TYPE,
            "name": self.name,
            "versions": {r.version: r.to_json() for r in self.sorted_versions()},
            "aliases": dict(sorted(self.aliases.items())),
            "aliasHistory": [e.to_json() for e in self.alias_history],
            **({"statements": list(self.statements)} if self.statements else {}),
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())


def check_alias(alias: str) -> None:
    """:class:`SpecError` unless ``alias`` is a lowercase word (and not the implicit ``latest``)."""
    if not ALIAS_RE.match(alias) or alias in ("latest", VALID):
        raise SpecError(
            f"{alias!r} is not a valid alias",
            hint="aliases are lowercase words like prod or validated; 'latest' is implicit, "
            "'valid' picks by validity scope (bundle-spec/validity.md)",
        )


def catalog_from_json(obj: Any, *, source: str) -> NameCatalog:
    """Parse a per-name catalogue, dispatching on its media type.

    The checks are those of ``catalog.schema.json`` that a reader relies on (types, SemVer
    keys, digests, that each version's path is exactly where the layout puts it, that aliases
    name existing versions), written out by hand: generic JSON Schema validation costs ~0.4 ms
    per version, too slow for resolving ``@prod`` in a job. The tests validate every file the
    writer produces against the schema itself.
    """
    media_type = obj.get("mediaType") if isinstance(obj, dict) else None
    if media_type != CATALOG_MEDIA_TYPE:
        raise FormatError(
            f"{source}: unknown catalogue format {media_type!r}; this hepbundle reads "
            f"{CATALOG_MEDIA_TYPE}",
            hint="upgrade hepbundle",
        )
    where = "name"
    try:
        name = _expect(obj["name"], str, "name")
        if NAME_RE.match(name) is None:
            raise ValueError(f"{name!r} is not namespace/name")
        versions = {}
        for v, r in _expect(obj["versions"], dict, "versions").items():
            where = f"versions.{v}"
            versions[v] = _check_record(name, v, _expect(r, dict, where))
        where = "aliases"
        aliases = {str(a): str(v) for a, v in _expect(obj["aliases"], dict, "aliases").items()}
        for a, v in aliases.items():
            if ALIAS_RE.match(a) is None or v not in versions:
                raise ValueError(f"alias {a!r} -> {v!r} names no published version")
        where = "aliasHistory"
        history = tuple(
            AliasEvent(**_expect(e, dict, where)) for e in _expect(obj["aliasHistory"], list, where)
        )
        where = "statements"
        statements = tuple(
            _expect(s, dict, where) for s in _expect(obj.get(where, []), list, where)
        )
    except (KeyError, TypeError, ValueError) as e:
        detail = f"missing field {e}" if isinstance(e, KeyError) else str(e)
        raise FormatError(f"{source}: {where}: {detail}") from None
    return NameCatalog(name, versions, aliases, history, statements)


def _expect(value: Any, kind: type, where: str) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"{where} must be a JSON {kind.__name__}, not {type(value).__name__}")
    return value


def _check_record(name: str, version: str, r: dict[str, Any]) -> VersionRecord:
    if not is_version(version):
        raise ValueError(f"{version!r} is not a SemVer version")
    if not isinstance(r["manifestSha256"], str) or _SHA256_RE.match(r["manifestSha256"]) is None:
        raise ValueError(f"manifestSha256 {r['manifestSha256']!r} is not 64 hex digits")
    if r["path"] != bundle_relpath(name, version):
        # a catalogue must never send a loader anywhere but the version's own directory
        raise ValueError(f"path {r['path']!r} is not {bundle_relpath(name, version)!r}")
    for key in ("created", "published"):
        _expect(r[key], str, key)
    for key in ("authors", "tags", "datasets", "signers"):
        if not all(isinstance(x, str) for x in _expect(r.get(key, []), list, key)):
            raise TypeError(f"{key} must be a list of strings")
    if r["yanked"] is not None:
        _expect(_expect(r["yanked"], dict, "yanked")["reason"], str, "yanked.reason")
    return VersionRecord.from_json(version, r)


def read_name_catalog(repo_root: Path, name: str, *, missing_ok: bool = False) -> NameCatalog:
    """Read ``catalog/<ns>/<name>.json`` (and nothing else).

    An unknown name raises :class:`NotFoundError` suggesting the closest known names, or gives an
    empty catalogue with ``missing_ok``.
    """
    path = catalog_file(repo_root, name)
    try:
        obj = read_json(path, limit=MAX_CATALOG_BYTES)
    except FileNotFoundError:
        if missing_ok:
            return NameCatalog(name=name)
        if not is_repository(repo_root):
            raise NotFoundError(
                f"{repo_root} is not a hepbundle repository ({REPOSITORY_FILE} is missing)",
                hint="set --repo or HEPBUNDLE_REPO to a repository",
            ) from None
        close = difflib.get_close_matches(name, list_names(repo_root), n=3, cutoff=0.6)
        raise NotFoundError(
            f"no bundle named {name!r} in repository {repo_root}",
            hint=f"did you mean {' or '.join(map(repr, close))}?"
            if close
            else "see: hepbundle find",
        ) from None
    cat = catalog_from_json(obj, source=str(path))
    if cat.name != name:
        raise FormatError(f"{path}: describes {cat.name!r}, expected {name!r}")
    return cat


def write_name_catalog(
    repo_root: Path, catalog: NameCatalog, *, tmp_dir: Path | None = None
) -> None:
    """Replace the per-name file atomically (the caller holds the repository lock)."""
    write_atomic(catalog_file(repo_root, catalog.name), catalog.to_bytes(), tmp_dir=tmp_dir)


def list_names(repo_root: Path) -> list[str]:
    """Every ``ns/name`` that has a catalogue file, sorted (reads directory listings only)."""
    names = []
    for ns in namespaces(repo_root):
        for f in sorted(catalog_dir(repo_root, ns).glob("*.json")):
            if not f.name.startswith(".") and f.name != NAMESPACE_FILE:
                names.append(f"{ns}/{f.stem}")
    return names


def _person_name(a: Any) -> str:
    if isinstance(a, Mapping):
        return str(a.get("name", ""))
    return str(a)


def _dataset_name(d: Any) -> str:
    """A short searchable label of a data reference (Rucio DID, DOI, file path, …)."""
    if isinstance(d, Mapping):
        for key in ("did", "name", "doi", "uri", "path", "url"):
            if d.get(key):
                return str(d[key])
        return json.dumps(d, sort_keys=True)
    return str(d)
