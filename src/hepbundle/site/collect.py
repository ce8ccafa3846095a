"""Gather what the catalogue page shows from a repository: catalogue, manifests, records.

Everything here is read-only and reads the repository through the repository layer (per-name
catalogue files, evaluation records) and :class:`~hepbundle.bundle.Bundle` (manifests, the model
card through the verified ``Bundle.path``). The result is plain frozen values that
:mod:`hepbundle.site.render` turns into HTML, so the HTML side never touches the repository.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bundle import Bundle
from ..errors import HepbundleError
from ..iosig import of as io_signature_of
from ..manifest import FileEntry
from ..repository import (
    AliasEvent,
    NameCatalog,
    RecordRef,
    VersionRecord,
    list_names,
    list_records,
    read_name_catalog,
    read_repository,
)
from ..repository.trust import trust_root_for
from ..validity import Scope

__all__ = ["NameInfo", "SiteData", "VersionInfo", "code_link", "collect"]

log = logging.getLogger(__name__)

#: attachments shown inline; SVG is left out on purpose (it can carry script)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
#: the model card is rendered only up to this size (a card is prose, not a data file)
MAX_CARD_BYTES = 1 << 20
#: plots the bundle itself carries (image files of any role) shown on its page: how many, how big
MAX_BUNDLE_IMAGES, MAX_IMAGE_BYTES = 12, 5 << 20


@dataclass(frozen=True)
class VersionInfo:
    """One published version with what its page shows."""

    name: str
    record: VersionRecord
    aliases: tuple[str, ...]
    files: tuple[FileEntry, ...]
    meta: Mapping[str, Any]
    card_markdown: str | None
    records: tuple[RecordRef, ...]
    problems: tuple[str, ...]
    #: (bundle path, bytes) of the images the bundle carries, read through the verified path
    images: tuple[tuple[str, bytes], ...] = ()

    @property
    def version(self) -> str:
        return self.record.version

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class NameInfo:
    """One name: its versions (newest first), aliases and alias history."""

    name: str
    versions: tuple[VersionInfo, ...]
    aliases: Mapping[str, str]
    alias_history: tuple[AliasEvent, ...]
    latest: str | None

    @property
    def shown(self) -> VersionInfo:
        """The version the index lists: the latest release, else the newest version."""
        for v in self.versions:
            if v.version == self.latest:
                return v
        return self.versions[0]


@dataclass(frozen=True)
class SiteData:
    """Everything the site shows, in name order."""

    repo_root: Path
    repository: Mapping[str, Any]
    names: tuple[NameInfo, ...]
    #: key identity → whose key it is, from the repository's trust root (policy ``name:``)
    signer_names: Mapping[str, str] = field(default_factory=dict)


def collect(repo_root: Path) -> SiteData:
    """Read every name of the repository at ``repo_root``.

    A version whose bundle cannot be opened, or whose manifest digest differs from the
    catalogue's, still gets a page: its problems are listed there (the site is a window on the
    repository, not a gate; the loader is the gate).
    """
    root = Path(repo_root)
    repository = read_repository(root)
    names = tuple(_name_info(root, read_name_catalog(root, n)) for n in list_names(root))
    return SiteData(root, repository, tuple(n for n in names if n.versions), _signer_names(root))


def _signer_names(root: Path) -> dict[str, str]:
    """The names the repository's trust root gives keys; none when it has no trust root this
    node accepts (the page then shows fingerprints only, as a name is only as good as the
    policy that gives it)."""
    try:
        trust = trust_root_for(root)
    except HepbundleError as e:
        log.warning("signer names not shown: %s", e.message)
        return {}
    return trust.policy.signer_names() if trust is not None else {}


def _name_info(root: Path, cat: NameCatalog) -> NameInfo:
    by_version: dict[str, list[str]] = {}
    for alias, version in sorted(cat.aliases.items()):
        by_version.setdefault(version, []).append(alias)
    versions = tuple(
        _version_info(root, cat.name, rec, tuple(by_version.get(rec.version, ())))
        for rec in reversed(cat.sorted_versions())
    )
    latest = cat.latest()
    return NameInfo(
        name=cat.name,
        versions=versions,
        aliases=dict(cat.aliases),
        alias_history=cat.alias_history,
        latest=latest.version if latest else None,
    )


def _version_info(
    root: Path, name: str, rec: VersionRecord, aliases: tuple[str, ...]
) -> VersionInfo:
    problems: list[str] = []
    files: tuple[FileEntry, ...] = ()
    meta: Mapping[str, Any] = {}
    card: str | None = None
    images: tuple[tuple[str, bytes], ...] = ()
    try:
        bundle = Bundle.load(root / rec.path)
    except HepbundleError as e:
        problems.append(f"bundle unreadable: {e}")
    else:
        files, meta = bundle.manifest.files, bundle.manifest.meta
        if bundle.manifest_digest != rec.manifest_digest:
            problems.append("hepbundle.json differs from the catalogue's manifest digest")
        else:
            card = _read_card(bundle, problems)
            images = _read_images(bundle, problems)
    try:
        records = tuple(list_records(root, name, rec.version))
    except HepbundleError as e:
        problems.append(f"evaluation records unreadable: {e}")
        records = ()
    for p in problems:
        log.warning("%s@%s: %s", name, rec.version, p)
    return VersionInfo(
        name=name,
        record=rec,
        aliases=aliases,
        files=tuple(sorted(files, key=lambda f: f.path)),
        meta=meta,
        card_markdown=card,
        records=records,
        problems=tuple(problems),
        images=images,
    )


def _read_card(bundle: Bundle, problems: list[str]) -> str | None:
    """The model card text, read only after its digest matched the manifest."""
    relpath = bundle.manifest.meta.get("modelCard")
    if not relpath:
        return None
    try:
        entry = bundle.manifest.file(str(relpath))
    except KeyError:
        problems.append(f"model card {relpath!r} is not in the manifest")
        return None
    if entry.size > MAX_CARD_BYTES:
        problems.append(f"model card {relpath!r} is larger than {MAX_CARD_BYTES} bytes; not shown")
        return None
    try:
        return bundle.path(entry.path).read_text(encoding="utf-8", errors="replace")
    except (HepbundleError, OSError) as e:
        problems.append(f"model card not shown: {e}")
        return None


def _read_images(bundle: Bundle, problems: list[str]) -> tuple[tuple[str, bytes], ...]:
    """The plots the bundle carries (PNG/JPEG/GIF/WebP files of any role, up to
    :data:`MAX_BUNDLE_IMAGES` of at most :data:`MAX_IMAGE_BYTES`), each read only after its
    digest matched the manifest."""
    wanted = [
        f
        for f in bundle.manifest.files
        if f.path.lower().endswith(IMAGE_SUFFIXES) and f.size <= MAX_IMAGE_BYTES
    ]
    out = []
    for f in sorted(wanted, key=lambda f: f.path)[:MAX_BUNDLE_IMAGES]:
        try:
            out.append((f.path, bundle.path(f.path).read_bytes()))
        except (HepbundleError, OSError) as e:
            problems.append(f"plot {f.path} not shown: {e}")
    return tuple(out)


def image_attachments(record: RecordRef) -> list[str]:
    """The attachments of ``record`` the page shows as images."""
    return [a for a in record.attachments if a.lower().endswith(IMAGE_SUFFIXES)]


_SCP_REMOTE = re.compile(r"^(?:[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>[^/].*)$")
_URL_REMOTE = re.compile(
    r"^(?:https?|ssh|git)://(?:[^@/]+@)?(?P<host>[^/:]+)(?::\d+)?/(?P<path>.+)$"
)


def code_link(code: Mapping[str, Any]) -> str | None:
    """An https link to the commit of a code record on its web host, when one can be derived.

    GitHub, GitLab (gitlab.cern.ch) and Gitea all serve ``<project>/commit/<sha>``; remotes in
    scp form (``git@host:group/project.git``) and ssh/git/http URLs map to the same page. Local
    paths and unknown forms give None (the page then shows the remote as text).
    """
    remote, commit = str(code.get("remote") or ""), str(code.get("commit") or "")
    if not remote or not re.fullmatch(r"[0-9a-f]{7,64}", commit):
        return None
    m = _URL_REMOTE.match(remote) or _SCP_REMOTE.match(remote)
    if m is None or "." not in m["host"]:
        return None
    path = m["path"].removesuffix("/").removesuffix(".git")
    if not re.fullmatch(r"[\w.~/-]+", path):
        return None
    return f"https://{m['host']}/{path}/commit/{commit}"


def data_label(ref: Mapping[str, Any]) -> str:
    """The identifier of a data reference (Rucio DID, DOI, path, URI)."""
    for key in ("did", "doi", "path", "uri", "name", "record"):
        if ref.get(key):
            return str(ref[key])
    return json.dumps(dict(ref), sort_keys=True)


def metric_rows(metrics: Any) -> list[tuple[str, str, str]]:
    """(name, value, split) rows from either metrics form: a mapping or a list of records."""
    if isinstance(metrics, Mapping):
        return [(str(k), _scalar(v), "") for k, v in metrics.items()]
    rows = []
    for m in metrics if isinstance(metrics, Sequence) and not isinstance(metrics, str) else ():
        if isinstance(m, Mapping):
            rows.append((str(m.get("name", "")), _scalar(m.get("value")), str(m.get("split", ""))))
    return rows


def io_rows(meta: Any) -> list[dict[str, str]]:
    """The I/O signature's table rows (``IOSignature.rows``: one per input feature, one per
    output), or none when the manifest records none or an unreadable one."""
    try:
        sig = io_signature_of(meta)
    except HepbundleError:
        return []
    return sig.rows() if sig is not None else []


def validity_rows(meta: Any) -> list[tuple[str, str]]:
    """The validity scope's rows (``Scope.rows``: dimension, entries), or none when the
    manifest records none or an unreadable one."""
    section = meta.get("validity") if isinstance(meta, Mapping) else None
    if not section:
        return []
    try:
        return Scope.from_json(section).rows()
    except HepbundleError:
        return []


@dataclass(frozen=True)
class TimelineBar:
    """One run range of one version on the name page's timeline, in SVG user units."""

    version: str
    x: float
    width: float
    y: float
    label: str
    open_ended: bool
    yanked: bool


#: the run timeline's drawing width and row height (SVG user units)
TIMELINE_WIDTH, TIMELINE_ROW = 600.0, 22.0


def run_timeline(versions: Sequence[VersionInfo]) -> tuple[tuple[TimelineBar, ...], int, int]:
    """The name page's picture of the versions' intervals of validity in runs: one row per
    version that records run ranges (newest first, as the history table), a bar per range; an
    open-ended range runs to the right edge. Returns (bars, first run, last run drawn);
    no bars when no version records a run range."""
    rows: list[tuple[VersionInfo, tuple[tuple[int, int | None], ...]]] = []
    for v in versions:
        section = v.meta.get("validity")
        try:
            scope = Scope.from_json(section) if section else None
        except HepbundleError:
            scope = None
        if scope is not None and scope.runs:
            rows.append((v, tuple((r.first, r.last) for r in scope.runs)))
    if not rows:
        return (), 0, 0
    lo = min(first for _, ranges in rows for first, _ in ranges)
    top = max(last if last is not None else first for _, ranges in rows for first, last in ranges)
    opened = any(last is None for _, ranges in rows for _, last in ranges)
    hi = top + max(1, (top - lo) // 10) if opened else top  # room for an open end to show
    span = max(1, hi - lo + 1)
    bars = []
    for i, (v, ranges) in enumerate(rows):
        for first, last in ranges:
            end = hi if last is None else last
            x = (first - lo) / span * TIMELINE_WIDTH
            width = max(2.0, (end - first + 1) / span * TIMELINE_WIDTH)
            label = f"{v.version}: runs {first}–{last if last is not None else '…'}"
            bars.append(
                TimelineBar(
                    v.version, round(x, 1), round(min(width, TIMELINE_WIDTH - x), 1),
                    i * TIMELINE_ROW, label, last is None, v.record.yanked is not None,
                )
            )  # fmt: skip
    return tuple(bars), lo, hi


def flatten(obj: Any, prefix: str = "", limit: int = 60) -> list[tuple[str, str]]:
    """Dotted key paths of the scalars in a JSON value (at most ``limit`` rows), for tables."""
    out: list[tuple[str, str]] = []

    def walk(value: Any, key: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(value, Mapping) and value:
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, list) and value and any(isinstance(v, Mapping) for v in value):
            for i, v in enumerate(value):
                walk(v, f"{key}[{i}]")
        else:
            out.append((key, _scalar(value)))

    walk(obj, prefix)
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)
