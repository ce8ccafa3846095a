"""Helpers of the repository tests: real bundles of any name/version, and repository invariants."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import hepbundle
from hepbundle.repository import read_name_catalog, read_repository
from hepbundle.repository.catalog import list_names
from hepbundle.repository.index import dump_index
from hepbundle.repository.layout import (
    catalog_dir,
    catalog_file,
    index_files,
    namespaces,
    staging_dirs,
)
from hepbundle.spec import validate

from .conftest import write_spec


def make_bundle(
    where: Path,
    name: str = "atlas/tauid",
    version: str = "1.0.0",
    *,
    payload: bytes = b"weights",
    summary: str = "Tau identification",
    tags: tuple[str, ...] = ("tau",),
    framework: str = "onnx",
    key: Path | None = None,
) -> hepbundle.Bundle:
    """Build (and with ``key``, sign) a small real bundle; ``payload`` varies its content."""
    src = where / "src" / name.replace("/", "_") / f"{version}-{abs(hash(payload))}"
    (src / "model").mkdir(parents=True, exist_ok=True)
    (src / "model" / "model.onnx").write_bytes(bytes(range(256)) * 8 + payload)
    write_spec(
        src,
        f"""
        name: {name}
        version: {version}
        summary: {summary}
        authors: ["Jane Doe <jane@cern.ch>"]
        framework: {framework}
        tags: [{", ".join(tags)}]
        data:
          - type: rucio
            did: "mc23_13p6TeV:{name.split("/")[1]}.{version}"
            bytes: 1000
            adler32: "0a1b2c3d"
        files:
          - path: model/*.onnx
            role: model
        """,
    )
    out = where / "dist" / name / version / str(abs(hash(payload)))
    b = hepbundle.build(src, out)
    if key is not None:
        from hepbundle.signing import KeySigner, sign

        sign(b.root, KeySigner(key))
        b = hepbundle.Bundle.load(b.root)
    return b


def check_invariants(root: Path, *, settled: bool = True) -> dict[str, set[str]]:
    """Assert what must hold in a repository at any time; return name → catalogued versions.

    Always: every catalogue file validates, every catalogued version's bundle is complete and
    matches its manifest digest, no bundle directory is partial. ``settled`` (after recovery):
    also no staging leftovers, no uncatalogued bundle directories, the index equals a rebuild
    from the per-name files, no SQLite companion files.
    """
    out: dict[str, set[str]] = {}
    if not (root / "catalog" / "repository.json").exists():
        assert not any((root / "bundles").rglob("hepbundle.json")) if settled else True
        return out
    validate(read_repository(root), "repository.schema.json")
    for name in list_names(root):
        cat = read_name_catalog(root, name)
        validate(json.loads(cat.to_bytes()), "catalog.schema.json")
        for rec in cat.versions.values():
            b = hepbundle.Bundle.load(root / rec.path)
            assert b.manifest_digest == rec.manifest_digest
            b.verify().raise_for_problems()
            assert (root / rec.path / ".cvmfscatalog").is_file()
        out[name] = set(cat.versions)
    on_disk = {
        (
            str(p.parent.parent.parent.relative_to(root / "bundles")) + "/" + p.parent.parent.name,
            p.parent.name,
        )
        for p in (root / "bundles").glob("*/*/*/hepbundle.json")
    }
    for name, version in on_disk:
        # a bundle directory is complete whenever it exists (it appears by one rename)
        hepbundle.Bundle.load(root / "bundles" / name / version).verify().raise_for_problems()
    if settled:
        assert on_disk == {(n, v) for n, vs in out.items() for v in vs}
        for staging in staging_dirs(root):
            assert not any(staging.iterdir())
        for d in catalog_dirs(root):
            assert not list(d.rglob("*-journal")) and not list(d.rglob("*-wal"))
            assert not list(d.rglob(".*.tmp-*"))
        incremental = dump_index(root)
        from hepbundle.repository.index import rebuild_index

        copy = root.parent / (root.name + "-rebuilt")
        _copy_catalog(root, copy)
        rebuild_index(copy)
        assert dump_index(copy) == incremental
    return out


def catalog_dirs(root: Path) -> list[Path]:
    """Every directory holding catalogue files: ``catalog/`` and, in format 2, each
    ``bundles/<ns>/_catalog``."""
    return [root / "catalog", *(catalog_dir(root, ns) for ns in namespaces(root))]


def _copy_catalog(root: Path, dest: Path) -> None:
    """The catalogue files of ``root`` (no index) into ``dest``, in the same layout."""
    import shutil

    shutil.rmtree(dest, ignore_errors=True)
    skip = shutil.ignore_patterns("index.sqlite")
    for d in catalog_dirs(root):
        if d.is_dir():
            shutil.copytree(d, dest / d.relative_to(root), ignore=skip, dirs_exist_ok=True)


def index_rows(root: Path) -> int:
    total = 0
    for _, path in index_files(root):
        if path.is_file():
            with sqlite3.connect(path) as conn:
                total += int(conn.execute("SELECT count(*) FROM versions").fetchone()[0])
    return total


def catalog_path(root: Path, name: str) -> Path:
    """The per-name catalogue file of ``name`` (either format)."""
    return catalog_file(root, name)


def rewrite_same_size_keep_mtime(p: Path) -> None:
    """Change one byte of ``p`` and set its mtime back: only the ctime shows the change."""
    st = p.stat()
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 1
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
