"""The ``atlas-groupdata`` importer: a GroupData calibration area as PathResolver sees it.

Layout: ``<root>/<Package>/<subdir>/…`` and ``<root>/dev/<Package>/<subdir>/…``. Files the
mapping's ``bundles:`` claim go there first; the rest is grouped one bundle per
``<Package>/<subdir>``:

* a version-like ``<subdir>`` (``00-02-05``, ``v2``, ``1.3``) becomes a version of
  ``atlas/<package>`` (``00-02-05`` → ``0.2.5``);
* any other ``<subdir>`` (``R22_preprod``), and a date-named one (``201903``, ``20230705``:
  campaigns, often of different taggers, never versions of one another), becomes
  ``atlas/<package>.<subdir>`` at the ``defaults.version`` of the mapping (else ``1.0.0``);
* the same under ``dev/`` becomes a pre-release of that version (``0.2.5-dev``) only with
  ``include_dev: true``; by default ``dev/`` is listed as skipped.

Each planned bundle's ``rule`` says which of these produced its name and version. A version
holding an entry the scan refuses (an unreadable file or directory, a dangling link, a FIFO, a
name that is not UTF-8…; the version's directory itself unreadable) is refused whole unless the
mapping's ``skip:`` leaves that entry out (:func:`.scan.refuse_incomplete`).

Bundle paths are relative to ``<Package>/<subdir>/``; every file keeps its full legacy path
(``tauRecTools/R22_preprod/model.json``), recorded as ``atlas:…`` in the catalogue.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from ._mapping import COMMON_KEYS, ImportMap
from .base import ImportPlan, PlannedBundle, Skipped, SourceFile, make_bundle, safe_name
from .dir import explicit_bundles, planned_files, selects
from .scan import Entry, apply_skip, link_aliases, refuse_incomplete, scan_tree, take_inventory

__all__ = ["GroupDataImporter", "is_date_dir", "subdir_version"]

_VERSION_DIR = re.compile(r"^[vV]?(\d+)(?:[._-](\d+))?(?:[._-](\d+))?$")
#: ``YYYYMM`` or ``YYYYMMDD`` (a campaign date, not a version)
_DATE_DIR = re.compile(r"^(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])?$")


def is_date_dir(subdir: str) -> bool:
    """Whether a directory name is a date (``201903``, ``20230705``)."""
    return _DATE_DIR.match(subdir) is not None


def subdir_version(subdir: str) -> str | None:
    """SemVer of a version-like directory name (``00-02-05`` → ``0.2.5``, ``v2`` → ``2.0.0``),
    or None (also for a date-named one: ``201903`` is no version 201903.0.0)."""
    if is_date_dir(subdir):
        return None
    m = _VERSION_DIR.match(subdir)
    if m is None:
        return None
    return ".".join(str(int(g or 0)) for g in m.groups())


def _version_dir(e: Entry, mapping: ImportMap) -> tuple[bool, str, str] | None:
    """The ``(dev, Package, subdir)`` whose version directory holds the store entry ``e`` (or
    is it: a directory or directory link at that depth), None if none would be imported."""
    parts = e.path.split("/")
    dev = parts[0] == "dev"
    if dev:
        parts = parts[1:]
        if not mapping.include_dev:
            return None
    if len(parts) < 2 or (len(parts) == 2 and "directory" not in e.kind):
        return None
    return dev, parts[0], parts[1]


def _in_group(prefix: str, explicit: Sequence[Callable[[Entry], bool]], e: Entry) -> bool:
    """Whether the version grouped from the directory ``prefix`` holds the store entry ``e``:
    below it (or it), and, unless a directory, not taken by an explicit ``bundles:`` entry."""
    if e.path != prefix and not e.path.startswith(prefix + "/"):
        return False
    return e.kind == "directory" or not any(holds(e) for holds in explicit)


class GroupDataImporter:
    """ATLAS GroupData-style area (``CALIBPATH`` layout)."""

    kind = "atlas-groupdata"
    mapping_keys = COMMON_KEYS | {"include_dev", "bundles", "defaults.version"}
    #: plans from a directory scan (takes ``--allow-links-outside``; gives an inventory)
    scans_tree = True

    def plan(self, source: str, mapping: ImportMap) -> ImportPlan:
        root = Path(source).resolve()
        scan = apply_skip(scan_tree(root, allow_outside=mapping.links_outside), mapping)
        bundles, claimed = explicit_bundles(root, scan.files, mapping)
        held = [
            (b, functools.partial(selects, entry))
            for b, entry in zip(bundles, mapping.bundles, strict=True)
        ]
        groups: dict[tuple[bool, str, str], list[SourceFile]] = defaultdict(list)
        for e in scan.entries:  # a version of refused entries only is listed, refused
            key = _version_dir(e, mapping) if e.refused else None
            if key is not None and not any(holds(e) for _, holds in held):
                groups.setdefault(key, [])
        skipped: list[Skipped] = scan.left_out()
        for f in scan.files:
            if f.legacy in claimed:
                continue
            if mapping.skipped(f.legacy):
                skipped.append(Skipped(f.legacy, "skip: in the mapping"))
                continue
            parts = f.legacy.split("/")
            dev = parts[0] == "dev"
            if dev:
                parts = parts[1:]
            if len(parts) < 3:
                skipped.append(Skipped(f.legacy, "not inside <Package>/<subdir>/"))
            elif dev and not mapping.include_dev:
                skipped.append(
                    Skipped(f.legacy, "dev/ area: off by default (include_dev: true imports it)")
                )
            else:
                groups[(dev, parts[0], parts[1])].append(f)
        ns = mapping.namespace_or("atlas")
        explicit = [holds for _, holds in held]
        for (dev, package, subdir), members in sorted(groups.items()):
            b = self._group(root, mapping, ns, dev, package, subdir, members)
            held.append((b, functools.partial(_in_group, b.origin, explicit)))
        bundles, refused, withheld = refuse_incomplete(scan, held)
        bundles, aliases, unaliased = link_aliases(scan, bundles)
        plan = ImportPlan(
            self.kind,
            str(root),
            tuple(bundles),
            tuple(skipped + unaliased),
            tuple(refused),
            legacy_aliases=tuple(aliases),
        )
        return replace(plan, inventory=take_inventory(scan, plan, withheld))

    @staticmethod
    def _group(
        root: Path,
        mapping: ImportMap,
        ns: str,
        dev: bool,
        package: str,
        subdir: str,
        members: list[SourceFile],
    ) -> PlannedBundle:
        key = f"{package}/{subdir}"
        version = subdir_version(subdir)
        if version is not None:
            given = mapping.name(key) or mapping.name(package)
            name = given or f"{ns}/{safe_name(package)}"
            rule = f"version-like subdir {subdir!r} → {version}"
            default_name = "<namespace>/<Package>"
        else:
            given = mapping.name(key)
            name = given or f"{ns}/{safe_name(package)}.{safe_name(subdir)}"
            what = (
                "date-named subdir (a date is no version)"
                if is_date_dir(subdir)
                else "named subdir"
            )
            if "version" in mapping.defaults:
                version, source = str(mapping.defaults["version"]), "defaults.version"
            else:
                version, source = "1.0.0", "the default; set defaults.version"
            rule = f"{what} {subdir!r}: its own name, version {version} ({source})"
            default_name = "<namespace>/<Package>.<subdir>"
        rule += "; name from names:" if given else f"; name {default_name}"
        if dev:
            version += "-dev" if "-" not in version else ".dev"
            rule += f"; dev/ area → pre-release {version} (include_dev: true)"
        prefix = f"dev/{key}" if dev else key
        return make_bundle(
            name=name,
            version=version,
            files=planned_files(root, members, prefix, mapping),
            meta=mapping.meta_for(),
            origin=prefix,
            source_root=root,
            extra_meta={"extra": {"import": {"kind": "atlas-groupdata", "area": prefix}}},
            rule=rule,
        )
