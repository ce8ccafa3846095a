"""The tarball backend: files for ``cvmfs_server ingest``, for publishers without a Stratum-0 login.

It writes, into an output directory:

* ``<ns>.<name>-<version>.bundle.tar``: ``<version>/…`` (the bundle plus ``.cvmfscatalog``), to
  ingest with ``--base_dir bundles/<ns>/<name>``;
* ``<ns>.<name>-<version>.catalog.tar``: the catalogue patch (``<ns>/<name>.json``, the index
  files the change wrote — ``index-recent.sqlite``, and ``index.sqlite`` when the recent shard
  was folded into it — and ``repository.json``), to ingest with ``--base_dir catalog`` *after* the
  bundle; it is computed from the current catalogue at ``base`` (a client mount of the
  repository, or a local copy), so it must be ingested before anything else changes the
  repository (``repository.json`` names the serial it was made from and the one it makes).

Like the local backend it reads each byte once: every file is hashed as it is streamed into the
tar and compared with what was verified (the manifest digests, the manifest's and the checked
signatures' SHA-256); a mismatch removes the half-written tar, so no tarball holds bytes that
were not verified.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ...bundle import Bundle
from ...digest import FileDigest, HashingReader
from ...errors import IntegrityError, RepositoryError
from ...filemodes import make_dirs, publish_mode
from ...regular import open_regular
from ..catalog import NameCatalog, read_name_catalog, write_name_catalog
from ..index import recent_file, upsert_names, writable_index
from ..layout import (
    CATALOG_DIR,
    CVMFS_CATALOG_MARKER,
    NAMESPACE_FILE,
    REPOSITORY_FILE,
    bump_serial,
    catalog_dir,
    ensure_namespace,
    ensure_repository,
    index_file,
    is_repository,
    repository_format,
)
from ..publisher import PublishRequest, PublishResult
from ..refs import split_name
from ..tree import check_copied, copied_names, copy_algorithms, plan_many
from ..trust import TRUST_LOG_FILE, TRUST_ROOT_FILE, write_trust_root

__all__ = ["TarballPublisher"]


class TarballPublisher:
    """Writes ingestible tarballs into ``out`` for a repository whose current state is ``root``."""

    backend = "tarball"
    accepts_unsigned = True
    verifies_on_copy = True

    def __init__(self, out: Path, root: Path) -> None:
        self.out = out
        self.root = root

    def _catalog(self, name: str) -> NameCatalog:
        if is_repository(self.root):
            return read_name_catalog(self.root, name, missing_ok=True)
        return NameCatalog(name)

    def publish(self, request: PublishRequest) -> PublishResult:
        return self.publish_batch([request])[0]

    def publish_batch(self, requests: Sequence[PublishRequest]) -> list[PublishResult]:
        """One bundle tar per new version, and ONE catalogue patch for the whole batch (written
        last, after every bundle tar: a refusal or failure leaves no patch to ingest)."""
        names = list(dict.fromkeys(r.bundle.name for r in requests))
        before = {n: self._catalog(n) for n in names}
        after = dict(before)
        is_new = plan_many(after, requests)
        changed = [after[n] for n in names if after[n] != before[n]]
        commands: list[str] = []
        artifacts: list[dict[str, str]] = []
        for req, fresh in zip(requests, is_new, strict=True):
            rec, b = req.record, req.bundle
            ns, short = split_name(b.name)
            art: dict[str, str] = {}
            if fresh:
                make_dirs(self.out)
                bundle_tar = self.out / f"{ns}.{short}-{rec.version}.bundle.tar"
                _write_bundle_tar(bundle_tar, b, rec.version, req.progress)
                art["bundle_tar"] = str(bundle_tar)
                commands.append(
                    f"cvmfs_server ingest --tar_file {bundle_tar.name} "
                    f"--base_dir {rec.path.rsplit('/', 1)[0]} <repository>"
                )
            artifacts.append(art)
        serial = None
        if changed:
            first = requests[0]
            ns, short = split_name(first.bundle.name)
            stem = f"{ns}.{short}-{first.record.version}"
            if len(requests) > 1:
                stem = f"batch-{len(requests)}-{stem}"
            make_dirs(self.out)
            patches = self._catalog_patch(changed, stem, requests[0])
            serial = patches[-1][2]
            for catalog_tar, base_dir, _ in patches:
                commands.append(
                    f"cvmfs_server ingest --tar_file {catalog_tar.name} --base_dir {base_dir} "
                    "<repository>"
                )
            for art in artifacts:
                art["catalog_tar"] = str(patches[-1][0])
                if len(patches) > 1:
                    art["catalog_tars"] = " ".join(str(p[0]) for p in patches)
        results: list[PublishResult] = []
        for req, art in zip(requests, artifacts, strict=True):
            written = "bundle_tar" in art or (
                changed and req.bundle.name in {c.name for c in changed} and bool(req.aliases)
            )
            results.append(
                PublishResult(
                    ref=f"{req.bundle.name}@{req.record.version}",
                    status="written" if written else "unchanged",
                    backend=self.backend,
                    repository=str(self.root),
                    path=req.record.path,
                    manifest_digest=req.record.manifest_digest,
                    serial=serial if written else None,
                    alias=req.alias,
                    signers=req.record.signers,
                    artifacts=art if written else {},
                    commands=tuple(commands) if written else (),
                )
            )
        return results

    def _catalog_patch(
        self, changed: Sequence[NameCatalog], stem: str, first: PublishRequest | None = None
    ) -> list[tuple[Path, str, int]]:
        """Apply ``changed`` to a scratch copy of the catalogue files and tar what changed:
        (tar, ingest base directory, serial after). Format 2: one tar per namespace, to ingest
        under ``bundles/<ns>/_catalog`` (inside the namespace's lease); format 1: one tar of
        ``catalog/``. The first publish into a new repository carries its trust root
        (``catalog/trust.json`` and its log, from ``first.trust_root``), as the local backend
        writes it: in the catalogue tar (format 1) or the repository tar (format 2)."""
        fmt = repository_format(self.root)
        spaces = list(dict.fromkeys(split_name(c.name)[0] for c in changed))
        out = []
        with tempfile.TemporaryDirectory(prefix=".hepbundle-patch-", dir=self.out) as tmp:
            scratch = Path(tmp)
            copied = [REPOSITORY_FILE]
            for ns in spaces:
                shard = index_file(self.root, ns)
                copied.append(str(shard.relative_to(self.root)))
                copied.append(str(recent_file(shard).relative_to(self.root)))
                copied.append(
                    str((catalog_dir(self.root, ns) / NAMESPACE_FILE).relative_to(self.root))
                )
            for rel in copied:
                if (self.root / rel).is_file():
                    (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(self.root / rel, scratch / rel)
            copies = {rel: _identity(scratch / rel) for rel in copied}
            ensure_repository(scratch, identity=self.root.name, fmt=fmt)
            root_files: list[str] = []
            if not is_repository(self.root) and first is not None and first.trust_root:
                write_trust_root(
                    scratch, first.trust_root, reason=f"first publish ({first.bundle.ref}, tarball)"
                )
                root_files = [Path(TRUST_ROOT_FILE).name, Path(TRUST_LOG_FILE).name]
            if fmt == 2 and not is_repository(self.root):
                # a new repository: its repository.json first (ingest needs a root lease once)
                target = self.out / f"{stem}.repository.tar"
                members = [(p, p) for p in ("repository.json", *root_files)]
                _write_tar(target, scratch / CATALOG_DIR, members)
                out.append((target, CATALOG_DIR, 0))
                root_files = []
            for ns in spaces:
                ensure_namespace(scratch, ns)
            for new in changed:
                write_name_catalog(scratch, new)
            by_ns = {ns: [c for c in changed if split_name(c.name)[0] == ns] for ns in spaces}
            if fmt == 1:
                with writable_index(scratch, spaces[0]) as conn:
                    upsert_names(conn, changed)
                serial = bump_serial(scratch, spaces[0])
                files = ["/".join(split_name(new.name)) + ".json" for new in changed]
                index = _changed(scratch, copies, index_file(scratch, spaces[0]))
                members = [(p, p) for p in (*files, *index, "repository.json", *root_files)]
                target = self.out / f"{stem}.catalog.tar"
                _write_tar(target, scratch / CATALOG_DIR, members)
                return [(target, CATALOG_DIR, serial)]
            for ns, cats in by_ns.items():
                with writable_index(scratch, ns) as conn:
                    upsert_names(conn, cats)
                serial = bump_serial(scratch, ns)
                files = [split_name(c.name)[1] + ".json" for c in cats]
                index = _changed(scratch, copies, index_file(scratch, ns))
                members = [(p, p) for p in (*files, *index, NAMESPACE_FILE)]
                target = self.out / (
                    f"{stem}.catalog.tar" if len(spaces) == 1 else f"{stem}.{ns}.catalog.tar"
                )
                base = catalog_dir(scratch, ns)
                _write_tar(target, base, members)
                out.append((target, str(base.relative_to(scratch)), serial))
        return out

    def change(
        self, name: str, change: Callable[[NameCatalog], NameCatalog], message: str
    ) -> tuple[NameCatalog, int | None]:
        del message
        new = change(read_name_catalog(self.root, name))
        make_dirs(self.out)
        serial = self._catalog_patch([new], f"{name.replace('/', '.')}-change")[0][2]
        return new, serial


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _changed(
    scratch: Path, copies: dict[str, tuple[int, int, int] | None], index: Path
) -> list[str]:
    """The index files (index, recent shard) the patch must carry: those the upsert wrote (an
    index left as it was stays out, so an ingest does not re-process the large file)."""
    return [
        p.name
        for p in (index, recent_file(index))
        if p.is_file() and copies.get(str(p.relative_to(scratch))) != _identity(p)
    ]


def _write_bundle_tar(
    target: Path, bundle: Bundle, version: str, progress: Callable[[int], None] | None
) -> None:
    """The bundle tar (payload, manifest, signatures under ``<version>/``, plus the CVMFS
    marker), each file hashed as it is streamed in and checked before the tar gets its name."""
    names = copied_names(bundle)
    alg = copy_algorithms(bundle)
    digests: list[FileDigest] = []

    def read(rel: str) -> HashingReader:
        return HashingReader(open_regular(bundle.root / rel), alg(rel), progress)

    def check() -> None:
        check_copied(bundle, names, digests)

    try:
        _write_tar(
            target,
            bundle.root,
            [(n, f"{version}/{n}") for n in names],
            add_marker=f"{version}/",
            reader=read,
            digests=digests,
            check=check,
        )
    except FileNotFoundError as e:
        raise IntegrityError(f"{bundle.ref}: {e.filename} disappeared while being copied") from None
    except OSError as e:
        if str(e) != "unexpected end of data":  # tarfile's short read: a file shrank
            raise
        raise IntegrityError(
            f"{bundle.ref}: a file shrank while being copied (nothing was written)"
        ) from None


def _write_tar(
    target: Path,
    base: Path,
    members: list[tuple[str, str]],
    *,
    add_marker: str | None = None,
    reader: Callable[[str], HashingReader] | None = None,
    digests: list[FileDigest] | None = None,
    check: Callable[[], None] | None = None,
) -> None:
    """A reproducible tar (sorted, owner root, mtime 0) written to a temporary name first, so
    a failure never leaves a half-written tarball under the final name. With ``reader``, each
    member's bytes come through it (its digest appended to ``digests``, in ``members``' order)
    and ``check`` decides, before the rename, whether the tar may exist."""
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
        order = sorted(range(len(members)), key=lambda i: members[i][1])
        got: dict[int, FileDigest] = {}
        with tarfile.TarFile(tmp, "w", format=tarfile.PAX_FORMAT, copybufsize=1 << 20) as tar:
            for i in order:
                src, arc = members[i]
                if not (base / src).is_file():
                    raise RepositoryError(f"cannot pack {base / src}: not a regular file")
                if reader is None:
                    tar.add(base / src, arcname=arc, recursive=False, filter=clean)
                    continue
                with reader(src) as f:
                    info = clean(tar.gettarinfo(arcname=arc, fileobj=f.raw))
                    tar.addfile(info, f)
                    got[i] = f.digest()
            if add_marker is not None:
                info = clean(tarfile.TarInfo(add_marker + CVMFS_CATALOG_MARKER))
                tar.addfile(info)
        if digests is not None:
            digests[:] = [got[i] for i in range(len(members))]
        if check is not None:
            check()
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
