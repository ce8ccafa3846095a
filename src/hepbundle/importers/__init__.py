"""Importers: move an experiment's existing model store into signed, versioned bundles.

Built in: ``dir`` (any tree + a mapping file), ``atlas-groupdata`` (a GroupData/CALIBPATH area),
``cms-data`` (a cms-data git repository, one version per tag) and ``mlflow`` (registered model
versions of an MLflow store). Experiments add theirs under the ``hepbundle.importers`` entry-point
group; the value is a class with ``kind`` and ``plan(source, mapping)`` (:class:`.base.Importer`).

Example::

    from pathlib import Path
    from hepbundle.importers import plan_import
    from hepbundle.importers.run import ImportOptions, run_import

    plan = plan_import("atlas-groupdata", "/cvmfs/atlas.cern.ch/repo/sw/database/GroupData")
    report = run_import(plan, ImportOptions(repo=Path("hepbundle-repo"), signer=...))
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Sequence
from dataclasses import replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import cast

from ..errors import SpecError
from ._mapping import ImportMap, load_map
from .base import Importer, ImportPlan, PlannedBundle, PlannedFile

__all__ = [
    "BUILTIN",
    "ImportMap",
    "ImportPlan",
    "Importer",
    "PlannedBundle",
    "PlannedFile",
    "available",
    "get_importer",
    "importer_identity",
    "load_map",
    "plan_import",
]

#: the importers shipped with hepbundle (also registered as entry points in pyproject.toml)
BUILTIN = {
    "dir": "hepbundle.importers.dir:DirImporter",
    "atlas-groupdata": "hepbundle.importers.atlas_groupdata:GroupDataImporter",
    "cms-data": "hepbundle.importers.cms_data:CmsDataImporter",
    "mlflow": "hepbundle.importers.mlflow:MlflowImporter",
}

GROUP = "hepbundle.importers"


def available() -> dict[str, str]:
    """KIND → ``module:Class`` of every importer: built-ins, then the entry points (which may
    add kinds, or replace a built-in with an experiment's own)."""
    found = dict(BUILTIN)
    found.update({ep.name: ep.value for ep in entry_points(group=GROUP)})
    return dict(sorted(found.items()))


def get_importer(kind: str) -> Importer:
    """An instance of the importer of ``kind``."""
    kinds = available()
    if kind not in kinds:
        close = difflib.get_close_matches(kind, list(kinds), n=1)
        raise SpecError(
            f"no importer of kind {kind!r}",
            hint=f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(kinds)}",
        )
    module, _, attr = kinds[kind].partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise SpecError(f"importer {kind!r} ({kinds[kind]}) cannot be loaded: {e}") from None
    return cast(Importer, cls())


def importer_identity(kind: str, importer: Importer) -> dict[str, str]:
    """Who plans an import of ``kind`` with ``importer``, as the manifest records it: the kind,
    the class (``module:Class``), and the distribution that ships it with its version
    (hepbundle's own for the built-ins, else the entry point's)."""
    from .._base import __version__

    cls = type(importer)
    who = {
        "kind": kind,
        "class": f"{cls.__module__}:{cls.__qualname__}",
        "distribution": "hepbundle",
        "version": __version__,
    }
    if cls.__module__.split(".", 1)[0] != "hepbundle":
        who.update(distribution="unknown", version="unknown")
        for ep in entry_points(group=GROUP, name=kind):
            if ep.dist is not None:
                who.update(distribution=ep.dist.name, version=ep.dist.version)
    return who


def plan_import(
    kind: str,
    source: str | Path,
    mapping: str | Path | None = None,
    *,
    allow_links_outside: Sequence[str | Path] = (),
) -> ImportPlan:
    """Plan the import of ``source`` with the importer of ``kind`` and an optional mapping file.
    Two parts of the store that would become the same version are an error (naming both); a
    planned bundle without files is moved to the plan's ``refused`` (never published). A
    mapping key the importer does not read (its ``mapping_keys``, when it declares them) or a
    ``names:`` key that matched nothing is an error.

    ``allow_links_outside``: directories a file symlink of the store may point into and be read
    through (an importer that scans a directory tree, ``scans_tree``; by default such a link is
    refused)."""
    importer = get_importer(kind)
    m = load_map(mapping)
    if allow_links_outside:
        if not getattr(importer, "scans_tree", False):
            raise SpecError(
                f"the {kind} importer reads no directory tree: links outside it cannot be allowed",
                hint="drop --allow-links-outside",
            )
        missing = [str(d) for d in allow_links_outside if not Path(d).is_dir()]
        if missing:
            raise SpecError(f"--allow-links-outside {missing[0]}: no such directory")
        m = replace(m, links_outside=tuple(str(d) for d in allow_links_outside))
    used = getattr(importer, "mapping_keys", None)
    if used is not None:
        m.check_keys(kind, frozenset(used))
    plan = importer.plan(str(source), m).without_empty()
    if used is not None:
        m.check_names(kind)
    who = importer_identity(kind, importer)
    plan = replace(plan, bundles=tuple(b.with_migration(who, plan.source) for b in plan.bundles))
    seen: dict[str, str] = {}
    for b in plan.bundles:
        if b.ref in seen:
            raise SpecError(
                f"{seen[b.ref]} and {b.origin} would both become {b.ref}",
                hint="give one of them another name or version in the mapping file ('names:', "
                "'bundles:')",
            )
        seen[b.ref] = b.origin
    return plan
