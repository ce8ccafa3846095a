"""Legacy paths are bundle-relative paths under the bundle path rules (schema and code); the
compat tree never writes outside itself; a legacy lookup never crosses from one bundle name to
another and serves only what the signed manifest declares; an import never copies a file from
outside the store through a symlink."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.builder import BuildOptions, build_from_spec
from hepbundle.cli import main
from hepbundle.errors import BuildError, FormatError, RepositoryError, VerificationError
from hepbundle.importers import plan_import
from hepbundle.importers.legacy import resolve_legacy, write_compat_tree
from hepbundle.importers.run import ImportOptions, run_import
from hepbundle.manifest import Manifest
from hepbundle.repository import publish
from hepbundle.repository.layout import index_file
from hepbundle.signing import KeySigner, sign
from hepbundle.spec import load_spec, validate

from .conftest import write_spec
from .import_fixtures import make_groupdata, policy_env

__all__ = ["policy_env"]

_HOSTILE = ["../../../escaped", "/tmp/absolute", "a/../../b", "a//b", "a\\..\\b", "x\x00y", "."]


@pytest.mark.parametrize("legacy", _HOSTILE)
def test_build_refuses_hostile_legacy_path(model_dir: Path, tmp_path: Path, legacy: str) -> None:
    spec = load_spec(model_dir)
    opts = BuildOptions(out=tmp_path / "o", legacy_paths={"model/model.onnx": legacy})
    with pytest.raises(BuildError, match="legacy path of 'model/model.onnx'"):
        build_from_spec(spec, opts)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("legacy", _HOSTILE)
def test_manifest_and_schema_refuse_hostile_legacy_path(
    built: hepbundle.Bundle, legacy: str
) -> None:
    doc = json.loads((built.root / "hepbundle.json").read_bytes())
    doc["files"][0]["legacyPath"] = legacy
    with pytest.raises(FormatError, match="legacyPath"):
        Manifest.from_bytes(json.dumps(doc).encode(), source="m")
    with pytest.raises(hepbundle.HepbundleError, match="legacyPath"):
        validate(doc, "manifest.schema.json", filename="m")


def test_schema_accepts_ordinary_legacy_path(built: hepbundle.Bundle) -> None:
    doc = json.loads((built.root / "hepbundle.json").read_bytes())
    doc["files"][0]["legacyPath"] = "tauRecTools/R22_preprod/..hidden/model.json"
    validate(doc, "manifest.schema.json", filename="m")
    assert Manifest.from_bytes(json.dumps(doc).encode()).files[0].legacy_path


@pytest.fixture
def imported(tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path) -> Path:
    """A GroupData store imported, signed and published into ``repo``."""
    gd = make_groupdata(tmp_path / "GroupData")
    repo = tmp_path / "repo"
    run_import(
        plan_import("atlas-groupdata", gd),
        ImportOptions(repo=repo, signer=KeySigner(ec_key[0])),
    )
    return repo


def _index_rows(repo: Path, sql: str, *args: object) -> None:
    with sqlite3.connect(index_file(repo, "atlas")) as conn:  # the atlas shard (format 2)
        conn.execute(sql, args)


def test_compat_tree_never_escapes(imported: Path, tmp_path: Path) -> None:
    """An index row (an older repository, or one edited by hand) with an escaping legacy path
    is refused; nothing is written outside the compat tree."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").symlink_to("/etc/hostname")
    _index_rows(
        imported,
        "UPDATE legacy_paths SET legacy = ? WHERE legacy = ?",
        "atlas:../victim/keep",
        "atlas:tauRecTools/R22_preprod/model.json",
    )
    compat = tmp_path / "compat"
    with pytest.raises(RepositoryError, match="legacy path refused"):
        write_compat_tree(imported, compat, ["atlas"])
    assert os.readlink(victim / "keep") == "/etc/hostname"


def test_compat_tree_refuses_symlinked_directory_leading_out(
    imported: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    compat = tmp_path / "compat"
    compat.mkdir()
    (compat / "tauRecTools").symlink_to(outside)
    with pytest.raises(RepositoryError, match="leads outside"):
        write_compat_tree(imported, compat, ["atlas"])
    assert list(outside.iterdir()) == []


def _publish_claimant(
    tmp_path: Path, repo: Path, key: Path, legacy: str, name: str = "atlas/junk"
) -> None:
    """A bundle of another name, signed by a valid key, declaring someone else's legacy path at
    a high version."""
    src = tmp_path / "junk"
    (src / "model.json").parent.mkdir(parents=True, exist_ok=True)
    (src / "model.json").write_text('{"evil": true}\n')
    write_spec(
        src,
        f"""
        name: {name}
        version: 99.0.0
        summary: junk
        files:
          - path: model.json
            role: model
        """,
    )
    b = build_from_spec(
        load_spec(src),
        BuildOptions(out=tmp_path / "junk-out", legacy_paths={"model.json": legacy}),
    )
    sign(b.root, KeySigner(key))
    publish(b.root, repo)


def test_legacy_path_is_not_taken_over_by_another_name(
    imported: Path, tmp_path: Path, ec_key: tuple[Path, Path]
) -> None:
    legacy = "tauRecTools/R22_preprod/model.json"
    _publish_claimant(tmp_path, imported, ec_key[0], legacy)
    with pytest.raises(RepositoryError, match="several bundle names"):
        resolve_legacy(f"atlas:{legacy}", repos=[imported])
    res = CliRunner().invoke(main, ["path", "--legacy", f"atlas:{legacy}", "--repo", str(imported)])
    assert res.exit_code != 0 and "atlas/junk" in res.output and "Traceback" not in res.output
    compat = tmp_path / "compat"
    write_compat_tree(imported, compat, ["atlas"])
    assert not (compat / legacy).exists()  # left out, not pointed at atlas/junk


def test_index_row_edited_to_another_file_is_refused(imported: Path) -> None:
    """index.sqlite is not signed: a row redirected to another file of the bundle (or another
    bundle) does not match the signed manifest's legacyPath."""
    legacy = "atlas:tauRecTools/R22_preprod/model.json"
    _, rel = resolve_legacy(legacy, repos=[imported])
    assert rel == "model.json"
    _index_rows(
        imported, "UPDATE legacy_paths SET path = ? WHERE legacy = ?", "weights.bin", legacy
    )
    with pytest.raises(VerificationError, match="does not declare this legacy path"):
        resolve_legacy(legacy, repos=[imported])


def test_import_refuses_symlinks_leaving_the_store(tmp_path: Path) -> None:
    gd = make_groupdata(tmp_path / "GroupData")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for a bundle\n")
    (gd / "tauRecTools" / "00-01-00" / "notes.txt").symlink_to(secret)
    (gd / "tauRecTools" / "00-02-00" / "inside.txt").symlink_to("README.txt")
    (gd / "tauRecTools" / "00-01-00" / "linkdir").symlink_to(tmp_path)
    plan = plan_import("atlas-groupdata", gd)
    legacy = {f.legacy for b in plan.bundles for f in b.files}
    assert "tauRecTools/00-01-00/notes.txt" not in legacy
    assert "tauRecTools/00-02-00/inside.txt" in legacy  # a link inside the store is read through
    assert not any(x.startswith("tauRecTools/00-01-00/linkdir") for x in legacy)
    reasons = {s.what: s.reason for s in plan.skipped}
    assert "leaving the store" in reasons["tauRecTools/00-01-00/notes.txt"]
    assert "symlinked directory" in reasons["tauRecTools/00-01-00/linkdir"]
    # and the version holding them is refused whole, never published without them
    assert [r.what for r in plan.refused] == ["atlas/taurectools@0.1.0 [tauRecTools/00-01-00]"]
    assert not any(x.startswith("tauRecTools/00-01-00/") for x in legacy)
    res = CliRunner().invoke(main, ["import", "atlas-groupdata", str(gd), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "notes.txt" in res.output and "refused: symlink leaving the store" in res.output


def test_cms_data_symlinks_under_data_do_not_crash(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    from .import_fixtures import git, make_cms_data

    repo = make_cms_data(tmp_path / "cms")
    (repo / "data" / "passwd").symlink_to("/etc/passwd")
    (repo / "data" / "up").symlink_to("../../outside")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "links")
    git(repo, "tag", "V02-00-00")
    plan = plan_import("cms-data", repo)
    assert {"V02-00-00:data/passwd", "V02-00-00:data/up"} <= {s.what for s in plan.skipped}
    report = run_import(plan, ImportOptions(repo=tmp_path / "repo", signer=KeySigner(ec_key[0])))
    assert report is not None
    b = hepbundle.open(tmp_path / "repo" / "bundles" / "cms" / "recotautag-trainingfiles" / "2.0.0")
    assert {f.path for f in b.manifest.files} == {"data/tau_id.root", "data/dnn/graph.pb"}
