"""The tarball backend: files for ``cvmfs_server ingest``, for publishers without a Stratum-0 login.

It writes, into an output directory:

* ``<ns>.<name>-<version>.bundle.tar``: ``<version>/…`` (the bundle plus ``.cvmfscatalog``), to
  ingest with ``--base_dir bundles/<ns>/<name>``;
* ``<ns>.<name>-<version>.catalog.tar``: the catalogue patch (``<ns>/<name>.json``, the updated
  ``index.sqlite`` and ``repository.json``), to ingest with ``--base_dir catalog`` *after* the
  bundle; it is computed from the current catalogue at ``base`` (a client mount of the
  repository, or a local copy), so it must be ingested before anything else changes the
  repository (``repository.json`` names the serial it was made from and the one it makes).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from ...errors import RepositoryError
from ...filemodes import make_dirs, publish_mode
from ..catalog import NameCatalog, read_name_catalog, write_name_catalog
from ..index import upsert_name, writable_index
from ..layout import (
    CATALOG_DIR,
    CVMFS_CATALOG_MARKER,
    INDEX_FILE,
    REPOSITORY_FILE,
    bump_serial,
    ensure_repository,
    is_repository,
)
from ..publish import PublishRequest, PublishResult
from ..refs import split_name
from ..tree import check_not_conflicting

__all__ = ["TarballPublisher"]


class TarballPublisher:
    """Writes ingestible tarballs into ``out`` for a repository whose current state is ``root``."""

    backend = "tarball"
    accepts_unsigned = True

    def __init__(self, out: Path, root: Path) -> None:
        self.out = out
        self.root = root

    def _catalog(self, name: str) -> NameCatalog:
        if is_repository(self.root):
            return read_name_catalog(self.root, name, missing_ok=True)
        return NameCatalog(name)

    def publish(self, request: PublishRequest) -> PublishResult:
        rec = request.record
        b = request.bundle
        ns, short = split_name(b.name)
        cat = self._catalog(b.name)
        if check_not_conflicting(cat, rec) and (
            request.alias is None or cat.aliases.get(request.alias) == rec.version
        ):
            status = "unchanged"
            artifacts: dict[str, str] = {}
            commands: tuple[str, ...] = ()
            serial = None
        else:
            new = cat.with_version(rec)
            if request.alias is not None:
                new = new.with_alias(request.alias, rec.version)
            stem = f"{ns}.{short}-{rec.version}"
            make_dirs(self.out)
            bundle_tar = self.out / f"{stem}.bundle.tar"
            members = [(p, f"{rec.version}/{p}") for p in _bundle_files(b.root)]
            _write_tar(bundle_tar, b.root, members, add_marker=f"{rec.version}/")
            catalog_tar, serial = self._catalog_patch(new, stem)
            status = "written"
            artifacts = {"bundle_tar": str(bundle_tar), "catalog_tar": str(catalog_tar)}
            commands = (
                f"cvmfs_server ingest --tar_file {bundle_tar.name} "
                f"--base_dir {rec.path.rsplit('/', 1)[0]} <repository>",
                f"cvmfs_server ingest --tar_file {catalog_tar.name} --base_dir {CATALOG_DIR} "
                "<repository>",
            )
        return PublishResult(
            ref=f"{b.name}@{rec.version}",
            status=status,
            backend=self.backend,
            repository=str(self.root),
            path=rec.path,
            manifest_digest=rec.manifest_digest,
            serial=serial,
            alias=request.alias,
            signers=rec.signers,
            artifacts=artifacts,
            commands=commands,
        )

    def _catalog_patch(self, new: NameCatalog, stem: str) -> tuple[Path, int]:
        """Apply ``new`` to a scratch copy of the catalogue files and tar what changed."""
        ns, short = split_name(new.name)
        with tempfile.TemporaryDirectory(prefix=".hepbundle-patch-", dir=self.out) as tmp:
            scratch = Path(tmp)
            for rel in (REPOSITORY_FILE, INDEX_FILE):
                if (self.root / rel).is_file():
                    (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(self.root / rel, scratch / rel)
            ensure_repository(scratch, identity=self.root.name)
            write_name_catalog(scratch, new)
            with writable_index(scratch) as conn:
                upsert_name(conn, new)
            serial = bump_serial(scratch)
            base = scratch / CATALOG_DIR
            members = [(p, p) for p in (f"{ns}/{short}.json", "index.sqlite", "repository.json")]
            target = self.out / f"{stem}.catalog.tar"
            _write_tar(target, base, members)
        return target, serial

    def change(
        self, name: str, change: Callable[[NameCatalog], NameCatalog], message: str
    ) -> tuple[NameCatalog, int | None]:
        del message
        new = change(read_name_catalog(self.root, name))
        _, serial = self._catalog_patch(new, f"{name.replace('/', '.')}-change")
        return new, serial


def _bundle_files(root: Path) -> list[str]:
    """Every regular file of the bundle (payload, manifest, signatures), sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for n in sorted(filenames):
            rel = n if rel_dir == "." else f"{rel_dir}/{n}".replace(os.sep, "/")
            if rel != CVMFS_CATALOG_MARKER:
                out.append(rel)
    return out


def _write_tar(
    target: Path, base: Path, members: list[tuple[str, str]], *, add_marker: str | None = None
) -> None:
    """A reproducible tar (sorted, owner root, mtime 0) written to a temporary name first, so
    a failure never leaves a half-written tarball under the final name."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    publish_mode(tmp, fd=fd)
    os.close(fd)

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = 0
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for src, arc in sorted(members, key=lambda m: m[1]):
                if not (base / src).is_file():
                    raise RepositoryError(f"cannot pack {base / src}: not a regular file")
                tar.add(base / src, arcname=arc, recursive=False, filter=clean)
            if add_marker is not None:
                info = clean(tarfile.TarInfo(add_marker + CVMFS_CATALOG_MARKER))
                tar.addfile(info)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
