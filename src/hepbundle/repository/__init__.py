"""The repository layer: publish bundles (local, CVMFS, tarball), the catalogue, aliases, yank.

Modules inside, bottom to top (the package's place among the layers is in docs/design.md):
``refs`` (REF syntax, SemVer order), ``layout`` (paths, ``repository.json``), ``catalog`` (the
per-name JSON files, the source of truth), ``index`` (the derived SQLite search index),
``lock``, ``publisher`` (the :class:`Publisher` interface), ``_move`` (``publish --move``: a
bundle directory renamed in and checked, or put back), ``tree`` (crash-safe changes of a tree), ``_publishers/`` (one module per backend, and the factory), ``publish`` (verification,
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

import sys
import types
from typing import TYPE_CHECKING

from .._base import lazy_exports as _lazy_exports

if TYPE_CHECKING:
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
    from .publish import default_repo, publish, publish_bytes, publish_many
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
    "publish_bytes",
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


# each name is imported from its module when first used: a job that resolves a REF reads the
# catalogue, layout and trust modules only, never the publishers, the batch machinery or SQLite
_LAZY = {
    "AliasEvent": "catalog",
    "BACKENDS": "publisher",
    "Changed": "operations",
    "FindHit": "index",
    "FindQuery": "index",
    "NameCatalog": "catalog",
    "PublishRequest": "publisher",
    "PublishResult": "publisher",
    "Publisher": "publisher",
    "RecordRef": "records",
    "Ref": "refs",
    "TrustRoot": "trust",
    "VersionRecord": "catalog",
    "append_record": "records",
    "approve_ref": "operations",
    "bundle_dir": "layout",
    "bundle_relpath": "layout",
    "catalog_file": "layout",
    "default_repo": "publish",
    "find": "index",
    "init_repository": "operations",
    "list_names": "catalog",
    "list_records": "records",
    "make_publisher": "_publishers",
    "migrate": "operations",
    "parse_ref": "refs",
    "publish": "publish",
    "publish_bytes": "publish",
    "publish_many": "publish",
    "read_name_catalog": "catalog",
    "read_repository": "layout",
    "rebuild": "operations",
    "rebuild_index": "index",
    "recover": "tree",
    "set_alias": "operations",
    "set_trust_root": "operations",
    "trust_repository": "operations",
    "trust_root_for": "trust",
    "verify_record": "records",
    "version_key": "refs",
    "versions": "operations",
    "yank": "operations",
}


__getattr__, __dir__ = _lazy_exports(__name__, _LAZY, __all__)


class _Package(types.ModuleType):
    """``repository.publish`` is the function, as it was when this package imported everything:
    importing the submodule of the same name must not rebind the package's attribute to it."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "publish" and isinstance(value, types.ModuleType):
            return  # the submodule stays reachable as sys.modules["hepbundle.repository.publish"]
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
