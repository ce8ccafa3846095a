"""The ``dir`` importer: any directory tree, cut into bundles by the mapping's ``bundles:`` list.

Each entry names ``ns/name`` and ``version`` and selects files by legacy-path globs
(``include``/``exclude``); bundle paths are the legacy paths minus ``strip`` (default: the
longest directory the selected files share), and every file keeps its legacy path.
"""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ._mapping import ImportMap, glob_below, glob_match
from .base import (
    ImportPlan,
    PlannedBundle,
    PlannedFile,
    Skipped,
    SourceFile,
    make_bundle,
    pick,
)
from .scan import Entry, apply_skip, link_aliases, refuse_incomplete, scan_tree, take_inventory

__all__ = ["DirImporter", "explicit_bundles", "planned_files", "selects"]


def planned_files(
    root: Path, files: Sequence[SourceFile], strip: str, mapping: ImportMap
) -> list[PlannedFile]:
    """Files of the store at ``root`` placed at their legacy path minus the leading directory
    ``strip``, each with its role (by path, or by content: an lwtnn ``.json``)."""
    cut = len(strip.rstrip("/")) + 1 if strip.strip("/") else 0
    base = str(root)
    return [
        PlannedFile(
            f.legacy,
            f.legacy[cut:],
            f.legacy,
            f.size,
            mapping.role(f.legacy, f"{base}/{f.legacy}"),
            f.mtime_ns,
        )
        for f in files
    ]


def common_dir(legacies: Sequence[str]) -> str:
    """The longest directory every path lies under ('' if none)."""
    dirs = [posixpath.dirname(p) for p in legacies]
    return posixpath.commonpath(dirs) if dirs and all(dirs) else ""


def explicit_bundles(
    root: Path, files: Sequence[SourceFile], mapping: ImportMap
) -> tuple[list[PlannedBundle], set[str]]:
    """The mapping's ``bundles:`` entries over ``files``; also the legacy paths they claimed."""
    out: list[PlannedBundle] = []
    claimed: set[str] = set()
    for i, entry in enumerate(mapping.bundles):
        chosen = [
            f
            for f in pick(files, entry["include"], entry.get("exclude", ()))
            if not mapping.skipped(f.legacy)
        ]
        if not chosen:
            raise SpecError(
                f"{mapping.where('bundles', i, 'include')}bundles[{i}].include: no file of "
                f"{root} matches {', '.join(entry['include'])}",
                hint="globs are relative to SOURCE; ** crosses directories",
            )
        strip = _strip(entry, [f.legacy for f in chosen], mapping, i)
        claimed.update(f.legacy for f in chosen)
        out.append(
            make_bundle(
                name=entry["name"],
                version=entry["version"],
                files=planned_files(root, chosen, strip, mapping),
                meta=mapping.meta_for(entry),
                origin=f"bundles[{i}]",
                source_root=root,
                aliases=(entry["alias"],) if entry.get("alias") else (),
                where=mapping.where("bundles", i),
                rule=f"bundles[{i}] of the mapping: name and version from the entry",
            )
        )
    return out, claimed


def selects(entry: Mapping[str, Any], e: Entry) -> bool:
    """Whether the ``bundles:`` entry ``entry`` takes the store entry ``e``: a file or link its
    globs match; a directory (refused: its entries are unknown) below which an ``include``
    may match and no directory-wide ``exclude`` (``dir/``, ``dir/**``) covers it."""
    include, exclude = entry["include"], entry.get("exclude", ())
    if e.kind == "directory":
        return any(glob_below(p, e.path) for p in include) and not any(
            p.endswith(("/", "**")) and glob_match(p, e.path + "/") for p in exclude
        )
    return any(glob_match(p, e.path) for p in include) and not any(
        glob_match(p, e.path) for p in exclude
    )


def _strip(entry: Mapping[str, Any], legacies: Sequence[str], mapping: ImportMap, i: int) -> str:
    if "strip" not in entry:
        return common_dir(legacies)
    strip = str(entry["strip"]).strip("/")
    outside = [p for p in legacies if strip and not p.startswith(strip + "/")]
    if outside:
        raise SpecError(
            f"{mapping.where('bundles', i, 'strip')}bundles[{i}].strip: {outside[0]!r} is not "
            f"under {strip!r}"
        )
    return strip


class DirImporter:
    """Plain directory tree + mapping file."""

    kind = "dir"
    #: names come from each entry of ``bundles:``; the namespace from the names
    mapping_keys = frozenset({"format", "defaults", "roles", "skip", "bundles"})
    #: plans from a directory scan (takes ``--allow-links-outside``; gives an inventory)
    scans_tree = True

    def plan(self, source: str, mapping: ImportMap) -> ImportPlan:
        root = Path(source).resolve()
        if not mapping.bundles:
            raise SpecError(
                "the dir importer needs a mapping file with 'bundles:'",
                hint="pass --map MAP.yaml (see docs/migration.md)",
            )
        scan = apply_skip(scan_tree(root, allow_outside=mapping.links_outside), mapping)
        bundles, claimed = explicit_bundles(root, scan.files, mapping)
        bundles, refused, withheld = refuse_incomplete(
            scan,
            [
                (b, functools.partial(selects, entry))
                for b, entry in zip(bundles, mapping.bundles, strict=True)
            ],
        )
        bundles, aliases, unaliased = link_aliases(scan, bundles)
        skipped = tuple(scan.left_out() + unaliased) + tuple(
            Skipped(
                f.legacy,
                "skip: in the mapping" if mapping.skipped(f.legacy) else "matched by no bundle",
            )
            for f in scan.files
            if f.legacy not in claimed
        )
        plan = ImportPlan(
            self.kind,
            str(root),
            tuple(bundles),
            skipped,
            tuple(refused),
            legacy_aliases=tuple(aliases),
        )
        return replace(plan, inventory=take_inventory(scan, plan, withheld))
