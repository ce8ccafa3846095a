"""Legacy paths after an import: resolve ``atlas:tauRecTools/R22/model.json`` to the bundle file,
and write a compat tree of relative symlinks with the legacy layout.

Both read the ``legacy_paths`` table of search index (the namespace's shard), filled from the manifests'
``legacyPath`` at publish (and by ``catalog rebuild``). A legacy path that several versions carry
(a cms-data file across tags) resolves to the highest released version that is not yanked,
unless a **pin** says which: ``RecoTauTag/TrainingFiles=V00-02-02`` (a release's
``CMSSW_DATA_PACKAGE`` entry) serves every legacy path under ``RecoTauTag/TrainingFiles/`` from the
version imported from that tag, so a job gets the bytes its release had. The per-version compat
tree (``<name>/<version>/<legacy path>``) gives the same to a search path. A path no version
carries that reads through a directory link of the store kept as an alias
(``tauRecTools/current/rnn.onnx``) is the file of the version the alias names now.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

from ..bundle import Bundle
from ..config import settings
from ..errors import (
    NotFoundError,
    PathError,
    RepositoryError,
    SpecError,
    UsageError,
    VerificationError,
)
from ..load import VerifyMode
from ..paths import check_relpath
from ..policy import TrustPolicy
from ..repository.catalog import read_name_catalog
from ..repository.index import LegacyHit, find_legacy
from ..repository.layout import bundle_dir, index_file
from ..repository.refs import is_version
from ..resolver import resolve, search_path
from .base import LegacyAlias
from .scan import is_alias_name

__all__ = [
    "COMPAT_LAYOUTS",
    "best_per_legacy",
    "legacy_pins",
    "parse_pins",
    "resolve_legacy",
    "write_alias_links",
    "write_compat_tree",
]

log = logging.getLogger("hepbundle")


def legacy_pins(given: Iterable[str] = ()) -> dict[str, str]:
    """The pins of a legacy lookup: ``HEPBUNDLE_LEGACY_PINS`` (a release's pin list, set once
    by its environment), overlaid prefix by prefix with ``given`` (``--pin``)."""
    env = settings().legacy_pins
    try:
        pins = parse_pins([env] if env else [])
    except UsageError as e:
        raise UsageError(f"HEPBUNDLE_LEGACY_PINS: {e}", hint=e.hint) from None
    return {**pins, **parse_pins(given)}


def parse_pins(texts: Iterable[str]) -> dict[str, str]:
    """Pins ``<legacy prefix>=<tag or version>`` (``RecoTauTag/TrainingFiles=V00-02-02``, the
    form of a release's ``CMSSW_DATA_PACKAGE`` list), several per text separated by spaces or
    commas, as {prefix: tag or version}. A malformed pin, or one prefix pinned twice to different
    values, is a UsageError."""
    pins: dict[str, str] = {}
    for text in texts:
        for item in re.split(r"[\s,]+", text.strip()):
            if not item:
                continue
            prefix, sep, value = item.partition("=")
            prefix = prefix.strip("/")
            if not sep or not prefix or not value:
                raise UsageError(
                    f"pin {item!r} is not <legacy prefix>=<tag or version>",
                    hint="e.g. RecoTauTag/TrainingFiles=V00-02-02 (as CMSSW_DATA_PACKAGE lists "
                    "them) or RecoTauTag/TrainingFiles=0.2.2",
                )
            _pinned_version(prefix, value)
            if pins.get(prefix, value) != value:
                raise UsageError(f"{prefix} is pinned twice: to {pins[prefix]} and to {value}")
            pins[prefix] = value
    return pins


def _pinned_version(prefix: str, value: str) -> str:
    """The bundle version a pin asks for: a version as written, a ``VAA-BB-CC`` tag as the
    cms-data importer turned it into one."""
    from .cms_data import tag_version  # not on a plain legacy lookup's import path

    version = value if is_version(value) else tag_version(value)
    if version is None:
        raise UsageError(
            f"pin {prefix}={value}: {value!r} is neither a version (0.2.2) nor a tag VAA-BB-CC"
        )
    return version


def _pin_for(legacy: str, pins: Mapping[str, str] | None) -> tuple[str, str] | None:
    """The pin (prefix, value) that covers ``legacy``: the longest prefix it lies under."""
    covering = [p for p in pins or () if legacy == p or legacy.startswith(p + "/")]
    if not covering:
        return None
    prefix = max(covering, key=len)
    assert pins is not None
    return prefix, pins[prefix]


def resolve_legacy(
    key: str,
    *,
    verify: VerifyMode = "lazy",
    policy: TrustPolicy | None = None,
    repos: Sequence[str | os.PathLike[str]] | None = None,
    pins: Mapping[str, str] | None = None,
) -> tuple[Bundle, str]:
    """The opened bundle holding the file recorded under ``key`` (``<namespace>:<legacy
    path>``) and that file's bundle path; the first repository of the search path that knows
    the key wins. The bundle is opened like :func:`hepbundle.resolve` (signature, catalogue
    digest), so ``bundle.path(file)`` hands back a verified file.

    Several versions carrying the legacy path: the highest released, non-yanked one, unless one
    of ``pins`` (``{"RecoTauTag/TrainingFiles": "V00-02-02"}``, see :func:`parse_pins`; None:
    ``HEPBUNDLE_LEGACY_PINS``, ``{}``: no pin) covers the path: then exactly the version it
    names (a tag must be the one the signed manifest records as imported from), in the first
    repository that has it, or NotFoundError."""
    if pins is None:
        pins = legacy_pins()
    ns, sep, rest = key.partition(":")
    if not sep or not ns or not rest:
        raise NotFoundError(
            f"{key!r} is not a legacy reference",
            hint="write <experiment>:<legacy path>, e.g. atlas:tauRecTools/R22_preprod/model.json",
        )
    rest = rest.lstrip("/")
    legacy = f"{ns}:{rest}"
    pin = _pin_for(rest, pins)
    roots = search_path(repos)
    carried: list[str] = []
    for root in roots:
        if not index_file(root, ns).is_file():
            continue
        hits = find_legacy(root, legacy)
        if not hits:
            via = _through_alias(root, ns, rest)
            if via is None:
                continue
            alias, hit, directory = via
            if pin is not None and _pinned_version(*pin) != hit.version:
                carried.append(f"{hit.name}@{hit.version} (its alias {alias})")
                continue
            b = resolve(f"{hit.name}@{alias}", verify=verify, policy=policy, repos=[root])
            _check_alias_target(b, hit, directory, root)
            if pin is not None:
                _check_tag(b, *pin)
            return b, hit.path
        best = _owned(legacy, hits, root)
        if pin is not None:
            version = _pinned_version(*pin)
            match = next((h for h in hits if h.version == version), None)
            if match is None:
                carried += [f"{h.name}@{h.version}" for h in hits]
                continue
            best = match
        elif len(hits) > 1:
            log.warning(
                "%s is in %d versions (%s); serving the highest, %s: a release that pins an "
                "older tag needs that pin (--pin, HEPBUNDLE_LEGACY_PINS)",
                legacy,
                len(hits),
                ", ".join(h.version for h in hits[:5]),
                best.version,
            )
        b = resolve(f"{best.name}@{best.version}", verify=verify, policy=policy, repos=[root])
        _check_signed_entry(b, best, rest, root)
        if pin is not None:
            _check_tag(b, *pin)
        return b, best.path
    if pin is not None and carried:
        raise NotFoundError(
            f"{legacy}: the pin {pin[0]}={pin[1]} asks for version {_pinned_version(*pin)}, "
            f"and no published, non-yanked version of that number carries this file (it is in "
            f"{', '.join(carried[:6])})",
            hint="the release's tag was not imported, or it was yanked: hepbundle versions "
            f"{carried[0].split('@')[0]} --all",
        )
    raise NotFoundError(
        f"no imported file is recorded under {key!r} in {', '.join(map(str, roots))}",
        hint="legacy paths are case-sensitive and relative to the old root (CALIBPATH entry or "
        "CMSSW src area)",
    )


def _through_alias(root: Path, ns: str, rest: str) -> tuple[str, LegacyHit, str] | None:
    """A legacy path no version carries, read through a directory link of the store that the
    import kept as an alias (``tauRecTools/current/rnn.onnx``, ``current -> 00-02-00``): the
    file ``<dir>/<x>/<rest>`` of the version that alias ``current`` of the name holding
    ``<dir>/<x>/…`` names now, as (alias, that file's hit, ``<dir>/<x>``); None when no
    component of the path is such an alias (an alias name as written: a link ``Current`` became
    the alias ``current``, :func:`.scan.link_aliases`, read as ``…/current/…``); several names
    answering is an error."""
    parts = rest.split("/")
    found: list[tuple[str, LegacyHit, str]] = []
    for i in range(len(parts) - 1):
        alias = parts[i]  # as written: legacy paths are case-sensitive
        if not is_alias_name(alias):
            continue
        under, tail = "/".join(parts[:i]), "/".join(parts[i + 1 :])
        start = f"{ns}:{under}/" if under else f"{ns}:"
        by_name: dict[str, dict[str, tuple[LegacyHit, str]]] = {}
        for h in find_legacy(root, namespace=ns, under=under):
            x, sep, after = h.legacy[len(start) :].partition("/")
            if sep and after == tail and x != alias:
                by_name.setdefault(h.name, {}).setdefault(
                    h.version, (h, f"{under}/{x}" if under else x)
                )
        for name, versions in sorted(by_name.items()):
            target = read_name_catalog(root, name, missing_ok=True).aliases.get(alias)
            if target in versions:
                hit, directory = versions[target]
                found.append((alias, hit, directory))
    if len(found) > 1:
        raise RepositoryError(
            f"{ns}:{rest} is no imported file's legacy path, and reads through several aliases: "
            + ", ".join(f"{h.name}@{a} ({d}/)" for a, h, d in found[:5]),
            hint="ask for the file's own legacy path (hepbundle path --legacy "
            f"{found[0][1].legacy})",
        )
    return found[0] if found else None


def _check_alias_target(b: Bundle, hit: LegacyHit, directory: str, root: Path) -> None:
    """The version an alias gave is the one the index named for the file (not moved meanwhile),
    its signed manifest declares the file's legacy path, and the directory the path went through
    holds every file of the version (a directory link names one version's directory)."""
    if b.version != hit.version:
        raise RepositoryError(
            f"{b.name}: its alias moved from {hit.version} to {b.version} during the lookup",
            hint="run it again",
        )
    _check_signed_entry(b, hit, hit.legacy.partition(":")[2], root)
    outside = [
        f.legacy_path
        for f in b.manifest.files
        if f.legacy_path and not f.legacy_path.startswith(directory + "/")
    ]
    if outside:
        raise NotFoundError(
            f"{b.ref} is not the directory {directory}/ alone ({outside[0]} lies elsewhere): "
            "its alias is no directory link of the store",
            hint=f"ask for the file's own legacy path ({hit.legacy})",
        )


def _check_tag(b: Bundle, prefix: str, value: str) -> None:
    """A pin naming a tag is served only by a version whose signed manifest says it was
    imported from that tag (a version of the same number published another way is not it)."""
    if is_version(value):
        return
    extra = b.manifest.meta.get("extra")
    imported = extra.get("import") if isinstance(extra, Mapping) else None
    git = imported.get("git") if isinstance(imported, Mapping) else None
    tag = git.get("tag") if isinstance(git, Mapping) else None
    if tag != value:
        raise VerificationError(
            f"the pin {prefix}={value} resolves to {b.ref}, whose manifest says it was "
            + (f"imported from tag {tag}" if tag else "not imported from a git tag"),
            hint=f"pin the version instead ({prefix}={b.version}) if that is the one meant",
        )


def _owned(legacy: str, hits: Sequence[LegacyHit], root: Path) -> LegacyHit:
    """The best hit, when every hit is of one bundle name. A legacy path belongs to one name:
    when several names declare it (a signer allowed for one name claiming another's files at a
    higher version), none of them gets it, so no name can take over another's legacy path."""
    names = sorted({h.name for h in hits})
    if len(names) > 1:
        raise RepositoryError(
            f"{legacy} is declared by several bundle names in {root}: {', '.join(names[:5])}",
            hint="a legacy path must belong to one name; ask the repository maintainers, or use "
            "the bundle file directly (hepbundle path NAME@VERSION FILE)",
        )
    return hits[0]


def _check_signed_entry(b: Bundle, hit: LegacyHit, legacy: str, root: Path) -> None:
    """The index is not signed: the file it points to must carry that ``legacyPath`` in the
    (signature-checked) manifest of the bundle it names, under that bundle's namespace."""
    ns = b.name.split("/", 1)[0]
    entry = next((f for f in b.manifest.files if f.path == hit.path), None)
    if (
        entry is None
        or entry.legacy_path != legacy
        or f"{ns}:{legacy}" != hit.legacy
        or b.name != hit.name
    ):
        raise VerificationError(
            f"{root}: the catalogue index maps {hit.legacy} to {b.ref}:{hit.path}, but that "
            "bundle's manifest does not declare this legacy path there",
            hint=f"the index was altered or is stale; run: hepbundle catalog rebuild --repo {root}",
        )


def best_per_legacy(hits: Iterable[LegacyHit]) -> dict[str, LegacyHit]:
    """The first (best) hit of every legacy path, from :func:`find_legacy`'s ordering; legacy
    paths declared by several bundle names are left out (see :func:`_owned`)."""
    out: dict[str, LegacyHit] = {}
    names: dict[str, set[str]] = {}
    for h in hits:
        out.setdefault(h.legacy, h)
        names.setdefault(h.legacy, set()).add(h.name)
    for legacy, owners in names.items():
        if len(owners) > 1:
            log.warning("%s is declared by several names (%s): left out", legacy, sorted(owners))
            del out[legacy]
    return out


#: how a compat tree is laid out: ``latest`` (``<legacy path>``, the version a legacy lookup
#: without a pin gives) or ``per-version`` (``<name>/<version>/<legacy path>`` for every version)
COMPAT_LAYOUTS = ("latest", "per-version")


def write_compat_tree(
    repo: Path, out: Path, namespaces: Iterable[str], *, layout: str = "latest"
) -> int:
    """Make ``out/<legacy path>`` (``layout="latest"``: the highest released, non-yanked version
    carrying it) or ``out/<name>/<version>/<legacy path>`` (``"per-version"``: every released,
    non-yanked version; a release's search path then names the version it pins) a relative
    symlink to the bundle file for every legacy path of ``namespaces`` in ``repo``; return the
    number of links. Existing links are re-pointed (by an atomic rename), anything else in the
    way is an error."""
    if layout not in COMPAT_LAYOUTS:
        raise SpecError(f"compat tree layout {layout!r}: use {' or '.join(COMPAT_LAYOUTS)}")
    repo = repo.absolute()
    out = out.absolute()
    count = 0
    manifests: dict[tuple[str, str], Bundle] = {}
    placed: set[Path] = set()  # directories of links placed in this call: checked and made
    real_out = os.path.realpath(out)
    for ns in sorted(set(namespaces)):
        hits = find_legacy(repo, namespace=ns)
        best = best_per_legacy(hits)
        chosen = (
            sorted(best.values(), key=lambda h: h.legacy)
            if layout == "latest"
            else [h for h in hits if h.legacy in best]  # one name per legacy path, every version
        )
        shared = sum(n > 1 for n in Counter(h.legacy for h in hits).values())
        if layout == "latest" and shared:
            log.warning(
                "compat tree %s: %d legacy path(s) of %s are in several versions and link to "
                "the highest; a release pinning an older tag would read the wrong file there: "
                "write --compat-layout per-version",
                out,
                shared,
                ns,
            )
        for hit in chosen:
            rest = hit.legacy.partition(":")[2]
            link = _link_inside(
                out,
                rest if layout == "latest" else f"{hit.name}/{hit.version}/{rest}",
                placed,
                real_out,
            )
            key = (hit.name, hit.version)
            if key not in manifests:
                manifests[key] = Bundle.load(bundle_dir(repo, hit.name, hit.version))
            _check_signed_entry(manifests[key], hit, rest, repo)
            target = manifests[key].root / check_relpath(hit.path)
            _place_link(link, os.path.relpath(target, link.parent), link.parent in placed)
            placed.add(link.parent)
            count += 1
    return count


def write_alias_links(out: Path, aliases: Iterable[LegacyAlias], *, repo: Path) -> int:
    """Keep the store's directory symlinks in a compat tree of the ``latest`` layout:
    ``out/tauRecTools/current`` → ``00-02-00`` (relative, like the store's own link), so a
    ``CALIBPATH`` consumer of ``tauRecTools/current/…`` reads the version the alias names.
    Only an alias that ``repo``'s catalogue has at the version it was made for is written: the
    store's link to a version the import did not publish (failed, a conflict) keeps the link it
    had, as the catalogue keeps the alias (and ``path --legacy`` reads through it). Returns the
    number of links."""
    out = out.absolute()
    count = 0
    now: dict[str, dict[str, str]] = {}
    for a in aliases:
        name, _, version = a.ref.partition("@")
        if name not in now:
            now[name] = dict(read_name_catalog(repo, name, missing_ok=True).aliases)
        if now[name].get(a.alias) != version:
            log.warning(
                "compat tree: %s -> %s not written: %s@%s is not %s (not published by this import)",
                a.link,
                a.target,
                name,
                a.alias,
                version,
            )
            continue
        link = _link_inside(out, a.link)
        _link_inside(out, a.target)  # the target obeys the same rules
        _place_link(link, os.path.relpath(out / a.target, link.parent))
        count += 1
    return count


def _place_link(link: Path, rel: str, parent_made: bool = False) -> None:
    """Make ``link`` a symlink to ``rel``: an existing link is re-pointed by an atomic rename;
    anything else in the way is an error. ``parent_made``: this call's caller has already
    placed a link in ``link.parent`` (so it exists and is not made again)."""
    if not parent_made:
        link.parent.mkdir(parents=True, exist_ok=True)
    try:
        st: os.stat_result | None = os.lstat(link)
    except FileNotFoundError:
        st = None
    if st is None:
        try:
            os.symlink(rel, link)  # a new name: the link appears whole or not at all
            return
        except FileExistsError:  # made meanwhile: treated as one in the way
            st = os.lstat(link)
    if stat.S_ISLNK(st.st_mode):
        if os.readlink(link) == rel:
            return
    else:
        raise RepositoryError(
            f"compat tree: {link} exists and is not a symlink",
            hint="point --compat-tree at a new directory or one written by hepbundle",
        )
    tmp = link.with_name(f".{link.name}.hepbundle-tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(rel, tmp)
    os.replace(tmp, link)


def _link_inside(
    out: Path, legacy: str, placed: Collection[Path] = (), real_out: str | None = None
) -> Path:
    """``out/legacy`` after checking the path rules on ``legacy`` and that no directory on the
    way is a symlink leading out of ``out``: the compat tree never writes outside itself.
    ``placed``: directories this writer has already checked and placed links in (not resolved
    again); ``real_out``: ``realpath(out)``, if the caller has it."""
    try:
        check_relpath(legacy)
    except PathError as e:
        raise RepositoryError(f"compat tree: legacy path refused: {e}") from None
    link = out / legacy
    if link.parent in placed:
        return link
    if real_out is None:
        real_out = os.path.realpath(out)
    existing = link.parent
    while not os.path.lexists(existing) and existing != out:
        existing = existing.parent
    real = os.path.realpath(existing)
    if real != real_out and not real.startswith(real_out + os.sep):
        raise RepositoryError(f"compat tree: {existing} leads outside {out}; not writing there")
    return link
