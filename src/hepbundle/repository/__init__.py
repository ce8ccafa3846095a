"""The repository layer: publish bundles (local, CVMFS, tarball), the catalogue, aliases, yank.

Modules inside, bottom to top (the package's place among the layers is in docs/design.md):
``refs`` (REF syntax, SemVer order), ``layout`` (paths, ``repository.json``), ``catalog`` (the
per-name JSON files, the source of truth), ``index`` (the derived SQLite search index),
``lock``, ``publisher`` (the :class:`Publisher` interface), ``tree`` (crash-safe changes of a
tree), ``_publishers/`` (one module per backend, and the factory), ``publish`` (verification,
batches), ``operations`` (alias, yank, rebuild) and ``records`` (evaluation records appended to
versions). Looking a REF up is :mod:`hepbundle.resolver`. The normative format is ``bundle-spec/repository.md``.

Example::

    from pathlib import Path
    import hepbundle.repository as repository

    repository.publish("dist/atlas/tauid/1.2.0", "hepbundle-repo", alias="prod")
    cat = repository.read_name_catalog(Path("hepbundle-repo"), "atlas/tauid")
    rec = cat.resolve("prod")                 # VersionRecord: version, manifest_digest, yanked
    where = repository.bundle_dir(Path("hepbundle-repo"), "atlas/tauid", rec.version)
"""

from __future__ import annotations

from ._publishers import make_publisher
from .catalog import AliasEvent, NameCatalog, VersionRecord, list_names, read_name_catalog
from .index import FindHit, FindQuery, find, rebuild_index
from .layout import bundle_dir, bundle_relpath, catalog_file, read_repository
from .operations import (
    Changed,
    approve_ref,
    init_repository,
    migrate,
    rebuild,
    set_alias,
    set_trust_root,
    trust_repository,
    versions,
    yank,
)
from .publish import default_repo, publish, publish_many
from .publisher import BACKENDS, Publisher, PublishRequest, PublishResult
from .records import RecordRef, append_record, list_records, verify_record
from .refs import Ref, parse_ref, version_key
from .tree import recover
from .trust import TrustRoot, trust_root_for

__all__ = [
    "BACKENDS",
    "AliasEvent",
    "Changed",
    "FindHit",
    "FindQuery",
    "NameCatalog",
    "PublishRequest",
    "PublishResult",
    "Publisher",
    "RecordRef",
    "Ref",
    "TrustRoot",
    "VersionRecord",
    "append_record",
    "approve_ref",
    "bundle_dir",
    "bundle_relpath",
    "catalog_file",
    "default_repo",
    "find",
    "init_repository",
    "list_names",
    "list_records",
    "make_publisher",
    "migrate",
    "parse_ref",
    "publish",
    "publish_many",
    "read_name_catalog",
    "read_repository",
    "rebuild",
    "rebuild_index",
    "recover",
    "set_alias",
    "set_trust_root",
    "trust_repository",
    "trust_root_for",
    "verify_record",
    "version_key",
    "versions",
    "yank",
]
