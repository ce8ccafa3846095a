"""Migration of a format-1 repository to format 2 (see ``bundle-spec/repository.md``).

Format 2 moves every namespace's catalogue into ``bundles/<ns>/_catalog`` (per-name files,
records, an index shard, the namespace's serial) so that one publish writes under one path a
CVMFS gateway lease covers. The migration, under the repository lock (local) or inside one
transaction on the root (cvmfs):

1. finishes what crashed format-1 writers left (:func:`~.tree.recover`);
2. writes the format-2 catalogue of every namespace beside the format-1 one (per-name files
   copied byte for byte, records copied, a fresh index shard, ``namespace.json`` carrying the
   repository's serial so serials never go backwards) — readers still use format 1;
3. replaces ``catalog/repository.json`` by its format-2 form: from this rename on, readers use
   format 2;
4. removes the format-1 catalogue (``catalog/<ns>/``, ``catalog/index.sqlite``, the root's
   staging area).

A crash before 3 leaves a valid format-1 repository (the half-written format-2 files are
rewritten by the next run); after 3, a valid format-2 one whose leftovers the next run removes.
Bundle directories are never touched: their paths are the same in both formats.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .._base import utc_timestamp, write_atomic
from ..filemodes import make_dirs, publish_mode
from ..manifest import canonical_json
from ._crash import crash_point
from .catalog import list_names
from .index import build_index_file
from .layout import (
    BUNDLES_DIR,
    CATALOG_DIR,
    CATALOG_SUBDIR,
    CVMFS_CATALOG_MARKER,
    INDEX_FILE,
    NAMESPACE_FILE,
    NAMESPACE_MEDIA_TYPE,
    RECENT_INDEX_FILE,
    REPOSITORY_FILE,
    REPOSITORY_MEDIA_TYPE,
    STAGING_DIR,
    read_repository,
    repository_format,
)
from .tree import recover

__all__ = ["Migrated", "migrate_tree"]


@dataclass(frozen=True)
class Migrated:
    """What a migration did: the format before, the namespaces and names moved, the serial."""

    format_before: int
    namespaces: tuple[str, ...]
    names: int
    serial: int
    cleaned: tuple[str, ...]


def migrate_tree(root: Path) -> Migrated:
    """Migrate the repository tree at ``root`` to format 2 (a no-op but for leftovers when it is
    format 2 already); the caller holds the lock or a transaction on the root."""
    root = Path(root)
    doc = read_repository(root)
    before = repository_format(root)
    if before == 1:
        recover(root)
        doc = read_repository(root)
        serial = int(doc.get("serial", 0))
        names = list_names(root)
        spaces = sorted({n.split("/", 1)[0] for n in names})
        for ns in spaces:
            _copy_namespace(root, ns, [n for n in names if n.split("/", 1)[0] == ns], serial)
            crash_point("migrate-namespace")
        new = {k: v for k, v in doc.items() if k != "serial"}
        new.update(
            mediaType=REPOSITORY_MEDIA_TYPE, format=2, migrated=utc_timestamp(),
            updated=utc_timestamp(),
        )  # fmt: skip
        write_atomic(root / REPOSITORY_FILE, canonical_json(new))
        crash_point("migrate-switched")
    else:
        names, spaces, serial = list_names(root), [], 0
    cleaned = tuple(_remove_format1(root))
    return Migrated(before, tuple(spaces), len(names), serial, cleaned)


def _copy_namespace(root: Path, ns: str, names: list[str], serial: int) -> None:
    src = root / CATALOG_DIR / ns
    dest = root / BUNDLES_DIR / ns / CATALOG_SUBDIR
    make_dirs(dest)
    (dest.parent / CVMFS_CATALOG_MARKER).touch()
    publish_mode(dest.parent / CVMFS_CATALOG_MARKER)
    for name in names:
        short = name.split("/", 1)[1]
        write_atomic(dest / f"{short}.json", (src / f"{short}.json").read_bytes())
        records = src / f"{short}.records"
        if records.is_dir():
            shutil.rmtree(dest / f"{short}.records", ignore_errors=True)
            shutil.copytree(records, dest / f"{short}.records")
    state = {"mediaType": NAMESPACE_MEDIA_TYPE, "namespace": ns, "serial": max(serial, 1),
             "updated": utc_timestamp()}  # fmt: skip
    write_atomic(dest / NAMESPACE_FILE, canonical_json(state))
    build_index_file(root, dest / "index.sqlite", names)


def _remove_format1(root: Path) -> list[str]:
    """Delete format 1's catalogue: the namespace directories of ``catalog/`` (format 2 keeps
    none there), ``catalog/index.sqlite`` and its recent shard; other files of ``catalog/`` stay."""
    gone = []
    base = root / CATALOG_DIR
    for p in sorted(base.iterdir()) if base.is_dir() else []:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
            gone.append(str(p.relative_to(root)))
    for rel in (
        INDEX_FILE,
        INDEX_FILE + "-journal",
        RECENT_INDEX_FILE,
        RECENT_INDEX_FILE + "-journal",
    ):
        if (root / rel).is_file():
            (root / rel).unlink()
            gone.append(rel)
    staging = root / STAGING_DIR
    if staging.is_dir() and not any(staging.iterdir()):
        staging.rmdir()
        gone.append(STAGING_DIR)
    return gone
