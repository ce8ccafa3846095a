"""Importing legacy stores: GroupData and plain-directory plans, the mapping file, publishing
under a key policy, idempotency, conflicts, checksums, legacy-path resolution, the compat tree,
and a re-run after the import was killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.builder import BuildOptions, build_from_spec
from hepbundle.cli import main
from hepbundle.errors import BuildError, IntegrityError, NotFoundError, SpecError
from hepbundle.importers import available, get_importer, plan_import
from hepbundle.importers._mapping import glob_match
from hepbundle.importers.atlas_groupdata import subdir_version
from hepbundle.importers.cms_data import tag_version
from hepbundle.importers.legacy import resolve_legacy
from hepbundle.importers.run import ImportOptions, ImportReport, run_import
from hepbundle.policy import TrustPolicy
from hepbundle.repository.catalog import list_names, read_name_catalog
from hepbundle.repository.index import dump_index, find_legacy, rebuild_index
from hepbundle.repository.layout import serial_of
from hepbundle.signing import KeySigner
from hepbundle.spec import BundleSpec

from .import_fixtures import (
    GROUPDATA,
    count_source_hashes,
    make_groupdata,
    policy_env,
    write_policy,
)
from .repo_fixtures import catalog_dirs

__all__ = ["policy_env"]  # fixture re-export

GD_REFS = [
    "atlas/jettagcalibration@2.0.0",
    "atlas/taurectools@0.1.0",
    "atlas/taurectools@0.2.0",
    "atlas/taurectools.r22_preprod@1.0.0",
]


@pytest.fixture
def groupdata(tmp_path: Path) -> Path:
    return make_groupdata(tmp_path / "GroupData")


def _import(
    source: Path,
    repo: Path,
    key: Path,
    policy: TrustPolicy | None = None,
    compat_tree: Path | None = None,
) -> ImportReport:
    """Plan the GroupData import of ``source`` and run it signed with ``key``."""
    return run_import(
        plan_import("atlas-groupdata", source),
        ImportOptions(repo=repo, signer=KeySigner(key), policy=policy, compat_tree=compat_tree),
    )


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("00-02-05", "0.2.5"),
        ("v2", "2.0.0"),
        ("1.3", "1.3.0"),
        ("R22_preprod", None),
        ("dev", None),
        ("201903", None),
        ("20230705", None),
    ],
)
def test_subdir_version(name: str, version: str | None) -> None:
    assert subdir_version(name) == version


@pytest.mark.parametrize(
    ("tag", "version"),
    [("V00-02-05", "0.2.5"), ("V01-00-00", "1.0.0"), ("V10-20-30", "10.20.30"), ("v00-02-05", None),
     ("V00-02-05-patch1", None), ("before-rename", None)],
)  # fmt: skip
def test_cms_tag_version(tag: str, version: str | None) -> None:
    assert tag_version(tag) == version


@pytest.mark.parametrize(
    ("pattern", "path", "ok"),
    [("*.onnx", "a/b/rnn.onnx", True), ("a/*.onnx", "a/b/rnn.onnx", False),
     ("a/**/*.onnx", "a/b/rnn.onnx", True), ("a/**", "a/b/c", True), ("a/", "a/b/c", True),
     ("tau*/R22*/**", "tauRecTools/R22_preprod/x.json", True), ("README*", "x/README.txt", True),
     ("b/*.onnx", "a/b/rnn.onnx", False)],
)  # fmt: skip
def test_glob_match(pattern: str, path: str, ok: bool) -> None:
    assert glob_match(pattern, path) is ok


def test_builtin_importers_are_discoverable() -> None:
    from importlib.metadata import entry_points

    from hepbundle.importers import BUILTIN

    # pyproject.toml registers the built-ins in the same group experiments use
    assert {ep.name: ep.value for ep in entry_points(group="hepbundle.importers")} == BUILTIN
    kinds = available()
    assert {"dir", "atlas-groupdata", "cms-data", "mlflow"} <= set(kinds)
    assert get_importer("atlas-groupdata").kind == "atlas-groupdata"
    with pytest.raises(SpecError, match="did you mean 'cms-data'"):
        get_importer("cms-dat")


def test_groupdata_plan(groupdata: Path) -> None:
    plan = plan_import("atlas-groupdata", groupdata)
    assert [b.ref for b in plan.bundles] == GD_REFS
    by_ref = {b.ref: b for b in plan.bundles}
    v2 = by_ref["atlas/taurectools@0.2.0"]
    assert {(f.dest, f.legacy, f.role) for f in v2.files} == {
        ("README.txt", "tauRecTools/00-02-00/README.txt", "docs"),
        ("rnn.onnx", "tauRecTools/00-02-00/rnn.onnx", "model"),
        ("sub/extra.root", "tauRecTools/00-02-00/sub/extra.root", "data"),
    }
    assert v2.size == sum(len(GROUPDATA[f.legacy]) for f in v2.files if f.legacy)
    assert [s.what for s in plan.skipped] == [
        "dev/tauRecTools/00-03-00/rnn.onnx",
        "tauRecTools/notes.txt",
    ]
    assert v2.gaps() == dict.fromkeys(
        ("code", "data", "metrics", "authors", "license", "io", "validity", "environment"), False
    )
    assert v2.gap_notes()["io"].startswith("none in the store: the build reads names, dtypes")


def test_mapping_explicit_bundles_defaults_and_errors(groupdata: Path, tmp_path: Path) -> None:
    m = tmp_path / "map.yaml"
    m.write_text(
        "namespace: atlas\n"
        "include_dev: false\n"
        "defaults:\n  license: Apache-2.0\n  authors: ['Tau WG <tau@cern.ch>']\n"
        "  code: {repository: 'https://gitlab.cern.ch/atlas/athena', commit: 'abcdef1'}\n"
        "  data: [{type: rucio, did: 'mc23_13p6TeV:DAOD_PHYS.12345._000001.pool.root.1'}]\n"
        "roles: {'*.bin': weights, '*.json': model}\n"
        "skip: ['**/*.root']\n"
        "names: {JetTagCalibration: atlas/dl1}\n"
        "bundles:\n"
        "  - name: atlas/tauid-r22\n    version: 3.0.0\n    alias: prod\n"
        "    include: ['tauRecTools/R22_preprod/']\n    metrics: {auc: 0.91}\n"
    )
    plan = plan_import("atlas-groupdata", groupdata, m)
    refs = [b.ref for b in plan.bundles]
    assert refs[0] == "atlas/tauid-r22@3.0.0" and "atlas/dl1@2.0.0" in refs
    assert not any("dev" in r for r in refs)
    first = plan.bundles[0]
    assert first.aliases == ("prod",)
    assert {f.dest: f.role for f in first.files} == {
        "model.json": "model",
        "weights.bin": "weights",
    }
    # metrics from the entry, the rest from defaults; GroupData knows no I/O signature
    assert first.gaps() == dict.fromkeys(
        ("code", "data", "metrics", "authors", "license"), True
    ) | {"io": False, "validity": False, "environment": False}
    assert "tauRecTools/00-02-00/sub/extra.root" in {s.what for s in plan.skipped}
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "namespace: atlas\nbundles:\n  - name: atlas/x\n    version: one\n    include: [a]\n"
    )
    with pytest.raises(SpecError, match=r"bad.yaml:4: bundles\[0\].version"):
        plan_import("dir", groupdata, bad)
    nomatch = tmp_path / "nomatch.yaml"
    nomatch.write_text(
        "bundles:\n  - name: atlas/x\n    version: 1.0.0\n    include: [nothing/**]\n"
    )
    with pytest.raises(SpecError, match=r"nomatch.yaml:4: bundles\[0\].include: no file"):
        plan_import("dir", groupdata, nomatch)
    with pytest.raises(SpecError, match="needs a mapping file"):
        plan_import("dir", groupdata)


def test_build_records_legacy_paths(model_dir: Path, tmp_path: Path) -> None:
    spec = hepbundle.spec.load_spec(model_dir)
    b = build_from_spec(
        spec, BuildOptions(out=tmp_path / "o", legacy_paths={"model/model.onnx": "pkg/v1/m.onnx"})
    )
    assert b.manifest.file("model/model.onnx").legacy_path == "pkg/v1/m.onnx"
    assert (
        json.loads((b.root / "hepbundle.json").read_text())["files"][1]["legacyPath"]
        == "pkg/v1/m.onnx"
    )
    with pytest.raises(BuildError, match="does not pack"):
        build_from_spec(spec, BuildOptions(out=tmp_path / "p", legacy_paths={"nope": "x"}))
    assert not (tmp_path / "p").exists()


def test_import_publishes_signed_then_is_idempotent(
    groupdata: Path, tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    repo = tmp_path / "repo"
    policy = TrustPolicy.load(policy_env)
    report = _import(groupdata, repo, ec_key[0], policy=policy, compat_tree=tmp_path / "compat")
    assert [(o.ref, o.status) for o in report.outcomes] == [(r, "published") for r in GD_REFS]
    assert list_names(repo) == [
        "atlas/jettagcalibration",
        "atlas/taurectools",
        "atlas/taurectools.r22_preprod",
    ]
    b = hepbundle.resolve("atlas/taurectools@0.2.0", repos=[repo], verify="full", policy=policy)
    assert b.signature, "signed with ec_key and checked against the policy"
    assert b.manifest.file("rnn.onnx").legacy_path == "tauRecTools/00-02-00/rnn.onnx"
    assert b.path("rnn.onnx").read_bytes() == GROUPDATA["tauRecTools/00-02-00/rnn.onnx"]
    serial = serial_of(repo, "atlas")
    before = {p: p.stat().st_mtime_ns for p in _catalogue_files(repo)}
    again = _import(groupdata, repo, ec_key[0], policy=policy)
    assert [o.status for o in again.outcomes] == ["unchanged"] * len(GD_REFS)
    assert serial_of(repo, "atlas") == serial
    assert before == {p: p.stat().st_mtime_ns for p in _catalogue_files(repo)}


def test_import_refuses_signer_outside_policy(
    groupdata: Path, tmp_path: Path, ec_key: tuple[Path, Path]
) -> None:
    from hepbundle.errors import PolicyError
    from hepbundle.signing import generate_key

    other = generate_key(tmp_path / "other" / "key.pem")
    with pytest.raises(PolicyError):
        _import(
            groupdata,
            tmp_path / "repo",
            other[0],
            policy=TrustPolicy.load(write_policy(tmp_path, ec_key[1])),
        )
    assert list_names(tmp_path / "repo") == [] if (tmp_path / "repo").exists() else True


def test_changed_source_is_a_conflict_never_overwritten(
    groupdata: Path, tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    repo = tmp_path / "repo"
    _import(groupdata, repo, ec_key[0])
    published = (repo / "bundles/atlas/taurectools/0.2.0/README.txt").read_bytes()
    (groupdata / "tauRecTools/00-02-00/README.txt").write_bytes(b"edited in place\n")
    (groupdata / "tauRecTools/00-01-00/rnn.onnx").unlink()
    (groupdata / "tauRecTools/00-01-00/new.onnx").write_bytes(b"new")
    report = _import(groupdata, repo, ec_key[0])
    status = {o.ref: (o.status, o.detail) for o in report.outcomes}
    assert status["atlas/taurectools@0.2.0"][0] == "conflict"
    assert "tauRecTools/00-02-00/README.txt changed" in status["atlas/taurectools@0.2.0"][1]
    assert status["atlas/taurectools@0.1.0"][0] == "conflict"
    assert (
        "removed" in status["atlas/taurectools@0.1.0"][1]
        and "is new" in status["atlas/taurectools@0.1.0"][1]
    )
    assert status["atlas/jettagcalibration@2.0.0"][0] == "unchanged"
    assert (repo / "bundles/atlas/taurectools/0.2.0/README.txt").read_bytes() == published


def test_source_changing_during_import_aborts(
    groupdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source rewritten after the build copied it (even to the same size with its mtime set
    back: the ctime moves) is caught without hashing the store again: nothing is published."""
    import hepbundle.importers.run as run_mod

    real = run_mod.build_from_spec

    def build_then_edit(spec: BundleSpec, opts: BuildOptions) -> hepbundle.Bundle:
        b = real(spec, opts)
        p = groupdata / "JetTagCalibration/v2/dl1.onnx"
        st = p.stat()
        data = bytearray(p.read_bytes())
        data[0] ^= 1
        p.write_bytes(bytes(data))
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
        return b

    monkeypatch.setattr(run_mod, "build_from_spec", build_then_edit)
    with pytest.raises(IntegrityError, match="dl1.onnx changed while it was imported"):
        run_import(
            plan_import("atlas-groupdata", groupdata),
            ImportOptions(repo=tmp_path / "repo", allow_unsigned=True),
        )
    assert not (tmp_path / "repo" / "bundles").exists() or list_names(tmp_path / "repo") == []


def test_legacy_paths_in_index_resolve_and_survive_rebuild(
    groupdata: Path, tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    repo = tmp_path / "repo"
    _import(groupdata, repo, ec_key[0])
    b, rel = resolve_legacy("atlas:tauRecTools/R22_preprod/model.json", repos=[repo])
    assert (b.ref, rel) == ("atlas/taurectools.r22_preprod@1.0.0", "model.json")
    assert b.path(rel).read_bytes() == GROUPDATA["tauRecTools/R22_preprod/model.json"]
    hits = find_legacy(repo, namespace="atlas")
    assert len(hits) == len(GROUPDATA) - 2  # the loose file, the dev/ area
    before = (dump_index(repo), hits)
    rebuild_index(repo)
    assert (dump_index(repo), find_legacy(repo, namespace="atlas")) == before
    with pytest.raises(NotFoundError, match="no imported file"):
        resolve_legacy("atlas:tauRecTools/R22_preprod/missing.json", repos=[repo])
    with pytest.raises(NotFoundError, match="not a legacy reference"):
        resolve_legacy("tauRecTools/R22_preprod/model.json", repos=[repo])


def test_compat_tree_reads_the_same_bytes(
    groupdata: Path, tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    repo = tmp_path / "repo"
    compat = tmp_path / "compat"
    report = _import(groupdata, repo, ec_key[0], compat_tree=compat)
    assert report.compat_links == len(GROUPDATA) - 2
    for legacy, data in GROUPDATA.items():
        link = compat / legacy
        if legacy in ("tauRecTools/notes.txt", "dev/tauRecTools/00-03-00/rnn.onnx"):
            assert not link.exists()
            continue
        assert link.is_symlink() and not os.path.isabs(os.readlink(link))
        assert link.read_bytes() == data, legacy
        assert link.resolve().is_relative_to(repo.resolve() / "bundles")
    # the tree moves with the repository (relative links), like a CVMFS mount point would
    os.rename(tmp_path, tmp_path.with_name(tmp_path.name + "-moved"))
    moved = tmp_path.with_name(tmp_path.name + "-moved")
    assert (moved / "compat/tauRecTools/R22_preprod/model.json").read_bytes() == GROUPDATA[
        "tauRecTools/R22_preprod/model.json"
    ]
    os.rename(moved, tmp_path)


def test_cli_dry_run_json_then_import_and_path_legacy(
    groupdata: Path, tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    runner = CliRunner()
    repo = tmp_path / "repo"
    r = runner.invoke(
        main, ["import", "atlas-groupdata", str(groupdata), "--repo", str(repo), "--dry-run"]
    )
    assert r.exit_code == 0, r.output
    assert "plan: 4 bundles, 7 files" in r.output
    assert "atlas/taurectools@0.2.0  [tauRecTools/00-02-00]  3 files" in r.output
    assert "rnn.onnx  model  6.2 KiB  <- tauRecTools/00-02-00/rnn.onnx" in r.output
    assert "provenance: found: -; missing: code, data, metrics, authors, license" in r.output
    assert "tauRecTools/notes.txt: not inside <Package>/<subdir>/" in r.output
    assert not repo.exists(), "a dry run writes nothing"
    r = runner.invoke(main, ["import", "atlas-groupdata", str(groupdata), "--dry-run", "--json"])
    plan = json.loads(r.output)
    assert [b["ref"] for b in plan["bundles"]] == GD_REFS
    assert plan["bundles"][0]["gaps"]["license"] == "missing"
    args = [
        "import",
        "atlas-groupdata",
        str(groupdata),
        "--repo",
        str(repo),
        "--key",
        str(ec_key[0]),
    ]
    work = tmp_path / "work"
    work.mkdir()
    r = runner.invoke(
        main, [*args, "--compat-tree", str(tmp_path / "compat"), "--work-dir", str(work)]
    )
    assert r.exit_code == 0, r.output
    assert "4 published, 0 unchanged, 0 conflicts, 7 compat links" in r.output
    assert list(work.iterdir()) == [], "the build area is removed"
    assert "atlas/taurectools.r22_preprod@1.0.0" in r.output.splitlines()[4]
    r = runner.invoke(main, [*args, "--json"])
    assert json.loads(r.output)["unchanged"] == 4
    r = runner.invoke(
        main, ["path", "--legacy", "atlas:tauRecTools/00-02-00/rnn.onnx", "--repo", str(repo)]
    )
    assert r.exit_code == 0, r.output
    assert Path(r.output.strip()) == repo.absolute() / "bundles/atlas/taurectools/0.2.0/rnn.onnx"
    (groupdata / "tauRecTools/00-02-00/README.txt").write_bytes(b"changed")
    r = runner.invoke(main, args)
    assert r.exit_code == 2
    assert "conflict: atlas/taurectools@0.2.0" in r.output
    r = runner.invoke(main, ["import", "groupdata", str(groupdata), "--dry-run"])
    assert r.exit_code == 2
    assert "no importer of kind 'groupdata' (did you mean 'atlas-groupdata'?)" in r.output
    fresh = tmp_path / "fresh"
    r = runner.invoke(main, ["import", "atlas-groupdata", str(groupdata), "--repo", str(fresh)])
    assert r.exit_code == 1 and "is unsigned; refusing to publish it" in r.output
    assert list_names(fresh) == [], "nothing partial is visible"


def _import_cmd(groupdata: Path, repo: Path, key: Path) -> list[str]:
    return [sys.executable, "-m", "hepbundle", "import", "atlas-groupdata", str(groupdata),
            "--repo", str(repo), "--key", str(key)]  # fmt: skip


@pytest.mark.parametrize(
    "point", ["import-built", "staged", "synced", "renamed", "catalogued", "indexed"]
)
def test_killed_import_completes_on_rerun(
    groupdata: Path, tmp_path: Path, ec_key: tuple[Path, Path], point: str, policy_env: Path
) -> None:
    """SIGKILL while the bundles are built in the repository's staging area or inside the
    publish of the batch (HEPBUNDLE_CRASH_AT): a re-run completes everything. Killed before any
    rename, nothing was published; after the first rename that version is completed by
    recovery; after the catalogue, the whole batch is. No work directory is left."""
    repo = tmp_path / "repo"
    env = {**os.environ, "HEPBUNDLE_CRASH_AT": point}
    p = subprocess.run(
        _import_cmd(groupdata, repo, ec_key[0]), env=env, capture_output=True, check=False
    )
    assert p.returncode == -signal.SIGKILL
    p = subprocess.run(
        _import_cmd(groupdata, repo, ec_key[0]), capture_output=True, text=True, check=False
    )
    assert p.returncode == 0, p.stderr
    expected = {
        "import-built": "4 published, 0 unchanged",
        "staged": "4 published, 0 unchanged",
        "synced": "4 published, 0 unchanged",
        "renamed": "3 published, 1 unchanged",
        "catalogued": "0 published, 4 unchanged",
        "indexed": "0 published, 4 unchanged",
    }
    assert expected[point] in p.stdout
    _assert_complete(repo, ec_key)


@pytest.mark.slow
def test_import_killed_from_outside_half_way(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    """A real SIGKILL while bundles are being published; the re-run publishes the rest."""
    files = {f"Pkg{i}/00-0{j}-00/w.bin": os.urandom(3 << 20) for i in range(4) for j in range(1, 3)}
    src = make_groupdata(tmp_path / "GD", files)
    repo = tmp_path / "repo"
    proc = subprocess.Popen(
        _import_cmd(src, repo, ec_key[0]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    staging = repo / "bundles" / "atlas" / ".hepbundle-staging"
    while time.monotonic() < deadline and not (staging.is_dir() and any(staging.iterdir())):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)  # while the batch is being staged
    proc.wait()
    done = len(list_names(repo))
    assert done == 0, "the batch is all or nothing: killed while staging, nothing published"
    for name in list_names(
        repo
    ):  # what readers can see is whole: every catalogued version verifies
        for version in read_name_catalog(repo, name).versions:
            hepbundle.open(
                repo / "bundles" / name / version, verify="full"
            ).verify().raise_for_problems()
    p = subprocess.run(
        _import_cmd(src, repo, ec_key[0]), capture_output=True, text=True, check=False
    )
    assert p.returncode == 0, p.stderr
    assert f"{8 - done} published, {done} unchanged" in p.stdout
    for rel, data in files.items():
        pkg, ver, name = rel.split("/")
        v = ".".join(str(int(x)) for x in ver.split("-"))
        assert (repo / "bundles/atlas" / pkg.lower() / v / name).read_bytes() == data


def _assert_complete(repo: Path, ec_key: tuple[Path, Path]) -> None:
    from hepbundle.repository.layout import staging_dirs

    assert [list(d.iterdir()) for d in staging_dirs(repo)] == [[]] * len(staging_dirs(repo))
    policy = TrustPolicy.from_flags(keys=[ec_key[1]])
    for ref in GD_REFS:
        name, _, version = ref.partition("@")
        rec = read_name_catalog(repo, name).versions[version]
        b = hepbundle.resolve(ref, repos=[repo], verify="full", policy=policy)
        assert b.manifest_digest == rec.manifest_digest
    before = dump_index(repo)
    rebuild_index(repo)
    assert dump_index(repo) == before


def test_experiment_importer_from_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, groupdata: Path
) -> None:
    """An experiment's package registers its importer under ``hepbundle.importers``; the
    command finds it like the built-in ones and runs it through the same driver."""
    site = tmp_path / "site"
    dist = site / "lhcb_importers-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lhcb-importers\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[hepbundle.importers]\nlhcb-paramfiles = lhcb_paramfiles:ParamFiles\n"
    )
    (site / "lhcb_paramfiles.py").write_text(
        "from pathlib import Path\n"
        "from hepbundle.importers.base import ImportPlan, PlannedFile, make_bundle\n"
        "class ParamFiles:\n"
        "    kind = 'lhcb-paramfiles'\n"
        "    def plan(self, source, mapping):\n"
        "        root = Path(source)\n"
        "        f = PlannedFile('JetTagCalibration/v2/dl1.onnx', 'dl1.onnx',\n"
        "                        'ParamFiles/dl1.onnx', 3000, 'model')\n"
        "        b = make_bundle(name='lhcb/dl1', version='1.0.0', files=[f], meta={},\n"
        "                        origin='ParamFiles', source_root=root)\n"
        "        return ImportPlan(self.kind, source, (b,))\n"
    )
    monkeypatch.syspath_prepend(str(site))
    assert available()["lhcb-paramfiles"] == "lhcb_paramfiles:ParamFiles"
    plan = plan_import("lhcb-paramfiles", groupdata)
    report = run_import(plan, ImportOptions(repo=tmp_path / "repo", allow_unsigned=True))
    assert [(o.ref, o.status) for o in report.outcomes] == [("lhcb/dl1@1.0.0", "published")]
    b, rel = resolve_legacy("lhcb:ParamFiles/dl1.onnx", repos=[tmp_path / "repo"], verify="none")
    assert b.path(rel).read_bytes() == GROUPDATA["JetTagCalibration/v2/dl1.onnx"]
    # the manifest names the experiment's importer and the version of the package shipping it
    assert b.manifest.meta["extra"]["import"]["importer"] == {
        "kind": "lhcb-paramfiles",
        "class": "lhcb_paramfiles:ParamFiles",
        "distribution": "lhcb-importers",
        "version": "1.0",
    }


def test_dir_import_with_alias_strip_and_roles(
    groupdata: Path, tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    m = tmp_path / "map.yaml"
    m.write_text(
        "defaults: {license: Apache-2.0}\n"
        "bundles:\n"
        "  - name: atlas/tau-all\n    version: 2.1.0\n    alias: prod\n"
        "    include: ['tauRecTools/**']\n    exclude: ['**/*.txt']\n    strip: tauRecTools\n"
        "  - name: atlas/bad-strip\n    version: 1.0.0\n    include: ['JetTagCalibration/']\n"
        "    strip: tauRecTools\n"
    )
    with pytest.raises(SpecError, match=r"map.yaml:12: bundles\[1\].strip: .* is not under"):
        plan_import("dir", groupdata, m)
    m.write_text("\n".join(m.read_text().splitlines()[:8]) + "\n")
    plan = plan_import("dir", groupdata, m)
    (b,) = plan.bundles
    assert sorted(f.dest for f in b.files) == [
        "00-01-00/rnn.onnx", "00-02-00/rnn.onnx", "00-02-00/sub/extra.root",
        "R22_preprod/model.json", "R22_preprod/weights.bin",
    ]  # fmt: skip
    assert {s.what for s in plan.skipped} >= {
        "tauRecTools/notes.txt",
        "dev/tauRecTools/00-03-00/rnn.onnx",
    }
    report = run_import(plan, ImportOptions(repo=tmp_path / "repo", signer=KeySigner(ec_key[0])))
    assert report.count("published") == 1
    got = hepbundle.resolve("atlas/tau-all@prod", repos=[tmp_path / "repo"])
    assert got.version == "2.1.0" and got.manifest.meta["license"] == "Apache-2.0"
    assert got.manifest.file("R22_preprod/weights.bin").role == "weights"
    r = CliRunner().invoke(
        main,
        [
            "path",
            "--legacy",
            "atlas:tauRecTools/00-01-00/rnn.onnx",
            "x",
            "--repo",
            str(tmp_path / "repo"),
        ],
    )
    assert r.exit_code == 2 and "--legacy takes no FILE" in r.output


def test_two_sources_mapping_to_one_version_are_refused(groupdata: Path, tmp_path: Path) -> None:
    (groupdata / "tauRecTools/0-1-0").mkdir()
    (groupdata / "tauRecTools/0-1-0/other.onnx").write_bytes(b"other")
    with pytest.raises(SpecError, match="tauRecTools/0-1-0 and tauRecTools/00-01-00 would both"):
        plan_import("atlas-groupdata", groupdata)


def _catalogue_files(repo: Path) -> list[Path]:
    """Every file of the catalogue (repository.json, per-name files, index shards, serials)."""
    return [p for d in catalog_dirs(repo) for p in d.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        (
            "cms-data",
            "names: {RecoTauTag-TrainingFiles: cms/deeptau}\nbundles:\n"
            "  - {name: cms/x, version: 1.0.0, include: [data/]}\n",
            r"map.yaml:2: bundles: the cms-data importer does not use this key",
        ),
        ("cms-data", "include_dev: true\n", r"map.yaml:1: include_dev: the cms-data importer"),
        (
            "cms-data",
            "defaults:\n  license: MIT\n  version: 2.0.0\n",
            r"map.yaml:3: defaults.version: the cms-data importer does not use this key",
        ),
        (
            "cms-data",
            "names: {RecoTauTag-Training: cms/deeptau}\n",
            r"map.yaml:1: names.RecoTauTag-Training: matches nothing the cms-data importer found",
        ),
        (
            "mlflow",
            "bundles:\n  - {name: mlflow/x, version: 1.0.0, include: [model/]}\n",
            r"map.yaml:1: bundles: the mlflow importer does not use this key",
        ),
        ("mlflow", "skip: ['**/*.ckpt']\n", r"map.yaml:1: skip: the mlflow importer"),
        (
            "atlas-groupdata",
            "names: {tauRecTool: atlas/tau}\n",
            r"names.tauRecTool: matches nothing the atlas-groupdata importer found",
        ),
        (
            "dir",
            "names: {tauRecTools: atlas/tau}\nbundles:\n"
            "  - {name: atlas/t, version: 1.0.0, include: [tauRecTools/]}\n",
            r"map.yaml:1: names: the dir importer does not use this key",
        ),
    ],
)
def test_unknown_or_unused_mapping_keys_are_errors(
    kind: str, text: str, message: str, groupdata: Path, tmp_path: Path
) -> None:
    """A mapping key the importer would silently ignore is an error naming its line: the mapping
    is the migration's record of intent, and an ignored key publishes something else, for good."""
    from .import_fixtures import make_cms_data

    source = {
        "cms-data": lambda: make_cms_data(tmp_path / "cms"),
        "mlflow": lambda: tmp_path / "never-opened.db",
    }.get(kind, lambda: groupdata)()
    m = tmp_path / "map.yaml"
    m.write_text(text)
    with pytest.raises(SpecError, match=message) as e:
        plan_import(kind, source, m)
    if "tauRecTool:" in text:
        assert e.value.hint == "did you mean 'tauRecTools'?"
    r = CliRunner().invoke(main, ["import", kind, str(source), "--map", str(m), "--dry-run"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert not (tmp_path / "never-opened.db").exists()


def test_used_mapping_keys_still_accepted(groupdata: Path, tmp_path: Path) -> None:
    m = tmp_path / "map.yaml"
    m.write_text(
        "format: 1\nnamespace: atlas\ndefaults: {version: 2.0.0, license: MIT}\n"
        "names: {tauRecTools: atlas/tau, tauRecTools/R22_preprod: atlas/tau-r22}\n"
    )
    refs = [b.ref for b in plan_import("atlas-groupdata", groupdata, m).bundles]
    assert "atlas/tau@0.2.0" in refs and "atlas/tau-r22@2.0.0" in refs


def test_groupdata_safe_defaults_dates_dev_and_the_rule_of_each_bundle(tmp_path: Path) -> None:
    """Date-named campaign folders of different taggers are not versions of one name (latest
    would jump between taggers), dev/ is off unless asked, and the plan says which rule made
    each name and version."""
    gd = make_groupdata(
        tmp_path / "GD",
        {
            **GROUPDATA,
            "BTagging/201903/dl1r.onnx": b"dl1r" * 100,
            "BTagging/20230705/gn2.onnx": b"gn2" * 100,
        },
    )
    plan = plan_import("atlas-groupdata", gd)
    by = {b.ref: b for b in plan.bundles}
    assert "atlas/btagging.201903@1.0.0" in by and "atlas/btagging.20230705@1.0.0" in by
    assert not any(r.startswith("atlas/btagging@") or "-dev" in r for r in by)
    reasons = {s.what: s.reason for s in plan.skipped}
    assert reasons["dev/tauRecTools/00-03-00/rnn.onnx"] == (
        "dev/ area: off by default (include_dev: true imports it)"
    )
    assert by["atlas/btagging.201903@1.0.0"].rule == (
        "date-named subdir (a date is no version) '201903': its own name, version 1.0.0 "
        "(the default; set defaults.version); name <namespace>/<Package>.<subdir>"
    )
    assert by["atlas/taurectools@0.2.0"].rule == (
        "version-like subdir '00-02-00' → 0.2.0; name <namespace>/<Package>"
    )
    dry = CliRunner().invoke(main, ["import", "atlas-groupdata", str(gd), "--dry-run"])
    assert "  rule: version-like subdir '00-02-00' → 0.2.0; name <namespace>/<Package>" in (
        dry.output
    )
    js = json.loads(
        CliRunner()
        .invoke(main, ["import", "atlas-groupdata", str(gd), "--dry-run", "--json"])
        .output
    )
    assert all(b["rule"] for b in js["bundles"])
    m = tmp_path / "map.yaml"
    m.write_text(
        "include_dev: true\ndefaults: {version: 2.0.0}\n"
        "names: {BTagging/201903: atlas/dl1r, BTagging/20230705: atlas/gn2}\n"
    )
    opted = {b.ref: b for b in plan_import("atlas-groupdata", gd, m).bundles}
    assert {"atlas/dl1r@2.0.0", "atlas/gn2@2.0.0", "atlas/taurectools@0.3.0-dev"} <= set(opted)
    assert opted["atlas/dl1r@2.0.0"].rule.endswith(
        "version 2.0.0 (defaults.version); name from names:"
    )
    assert opted["atlas/taurectools@0.3.0-dev"].rule.endswith(
        "dev/ area → pre-release 0.3.0-dev (include_dev: true)"
    )


def test_default_roles_of_weight_and_model_formats(tmp_path: Path) -> None:
    """safetensors weights, GGUF models and TMVA weight files (plain or gzipped, as cms-data
    keeps them) get their role by default, not 'data'."""
    files = {
        "JetTagging/00-01-00/model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ",
        "JetTagging/00-01-00/llm.gguf": b"GGUF\x03\x00\x00\x00",
        "JetTagging/00-01-00/BDT.weights.xml.gz": b"\x1f\x8b\x08\x00",
        "JetTagging/00-01-00/TMVAClassification_BDTG.xml": b'<?xml version="1.0"?>\n<MethodSetup/>',
    }
    plan = plan_import("atlas-groupdata", make_groupdata(tmp_path / "gd", files))
    assert {f.dest: f.role for f in plan.bundles[0].files} == {
        "model.safetensors": "weights",
        "llm.gguf": "model",
        "BDT.weights.xml.gz": "weights",
        "TMVAClassification_BDTG.xml": "weights",
    }


#: an lwtnn network in the sequential format (lwtnn's parse_json) and in the graph format
#: (parse_json_graph), as its converters write them, and a JSON configuration with some of the
#: same keys that is no network
LWTNN_SEQUENTIAL = {
    "inputs": [{"name": "pt", "offset": -20.0, "scale": 0.05}, {"name": "eta", "offset": 0.0,
                                                                "scale": 0.4}],
    "layers": [
        {"architecture": "dense", "activation": "rectified", "weights": [0.1, -0.2, 0.3, 0.4],
         "bias": [0.0, 0.1]},
        {"architecture": "dense", "activation": "sigmoid", "weights": [0.5, -0.5], "bias": [0.0]},
    ],
    "outputs": ["tau"],
    "defaults": {"eta": 0.0},
    "miscellaneous": {"trained": "2019-03"},
}  # fmt: skip
LWTNN_GRAPH = {
    "inputs": [{"name": "jet", "variables": [{"name": "pt", "offset": 0.0, "scale": 1.0}]}],
    "input_sequences": [{"name": "tracks", "variables": [{"name": "d0", "offset": 0.0,
                                                          "scale": 1.0}]}],
    "nodes": [{"type": "input", "sources": [0], "size": 1},
              {"type": "feed_forward", "sources": [0], "layer_index": 0}],
    "layers": [{"architecture": "dense", "activation": "softmax", "weights": [1.0],
                "bias": [0.0]}],
    "outputs": {"flavour": {"node_index": 1, "labels": ["b", "c", "light"]}},
}  # fmt: skip
NOT_LWTNN = {"inputs": ["pt", "eta"], "outputs": ["score"], "layers": [16, 8, 1]}


def test_lwtnn_networks_are_models_by_content(tmp_path: Path) -> None:
    """lwtnn networks are plain .json files: told apart from configuration by their keys, in
    both of lwtnn's formats; a mapping role still wins."""
    files = {
        "BTagging/00-01-00/dl1_network.json": json.dumps(LWTNN_SEQUENTIAL).encode(),
        "BTagging/00-01-00/rnnip_graph.json": json.dumps(LWTNN_GRAPH, indent=1).encode(),
        "BTagging/00-01-00/calib.json": json.dumps(NOT_LWTNN).encode(),
        "BTagging/00-01-00/broken.json": b'{"inputs": [',
    }
    gd = make_groupdata(tmp_path / "gd", files)
    roles = {f.dest: f.role for f in plan_import("atlas-groupdata", gd).bundles[0].files}
    assert roles == {
        "dl1_network.json": "model",
        "rnnip_graph.json": "model",
        "calib.json": "config",
        "broken.json": "config",
    }
    m = tmp_path / "map.yaml"
    m.write_text("roles:\n  'rnnip_graph.json': weights\n")
    roles = {f.dest: f.role for f in plan_import("atlas-groupdata", gd, m).bundles[0].files}
    assert roles["rnnip_graph.json"] == "weights"
    assert roles["dl1_network.json"] == "model"


def test_manifest_records_the_migration_and_the_signature_role(
    groupdata: Path, tmp_path: Path, ec_key: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest says where a version came from: the store's root, the importer and its
    version, and each file's original time (GroupData's only dates); ``--as migration`` signs
    in that role, which a policy can require."""
    when = {"rnn.onnx": 1551693600, "README.txt": 1551780000, "sub/extra.root": 1262304000}
    for dest, t in when.items():
        os.utime(groupdata / "tauRecTools/00-02-00" / dest, (t, t))
    policy = write_policy(tmp_path, ec_key[1], namespace="atlas", role="migration")
    monkeypatch.setenv("HEPBUNDLE_POLICY", str(policy))
    repo = tmp_path / "repo"
    args = ["import", "atlas-groupdata", str(groupdata), "--repo", str(repo)]
    r = CliRunner().invoke(main, [*args, "--as", "migration"])
    assert r.exit_code == 2 and "--as ROLE names the role of the migration signature" in r.output
    r = CliRunner().invoke(main, [*args, "--key", str(ec_key[0]), "--as", "migration"])
    assert r.exit_code == 0, r.output
    root = repo / "bundles/atlas/taurectools/0.2.0"
    assert (root / "hepbundle.migration.sig").is_file() and not (root / "hepbundle.sig").exists()
    b = hepbundle.resolve("atlas/taurectools@0.2.0", repos=[repo], policy=TrustPolicy.load(policy))
    record = b.manifest.meta["extra"]["import"]
    assert record["kind"] == "atlas-groupdata" and record["area"] == "tauRecTools/00-02-00"
    assert record["source"] == str(groupdata.resolve())
    assert record["importer"] == {
        "kind": "atlas-groupdata",
        "class": "hepbundle.importers.atlas_groupdata:GroupDataImporter",
        "distribution": "hepbundle",
        "version": hepbundle.__version__,
    }
    assert record["fileTimes"] == {
        "README.txt": "2019-03-05T10:00:00Z",
        "rnn.onnx": "2019-03-04T10:00:00Z",
        "sub/extra.root": "2010-01-01T00:00:00Z",
    }
    # a re-run is a no-op: the record is part of the published version, not re-derived
    r = CliRunner().invoke(main, [*args, "--key", str(ec_key[0]), "--as", "migration"])
    assert r.exit_code == 0 and "0 published, 4 unchanged" in r.output


def test_mapping_metadata_changed_after_publishing_is_reported(
    groupdata: Path, tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    m = tmp_path / "map.yaml"
    m.write_text("defaults:\n  license: Apache-2.0\n  authors: ['Tau WG']\n")
    repo = tmp_path / "repo"
    args = ["import", "atlas-groupdata", str(groupdata), "--map", str(m), "--repo", str(repo),
            "--key", str(ec_key[0])]  # fmt: skip
    assert CliRunner().invoke(main, args).exit_code == 0
    m.write_text("defaults:\n  license: CC-BY-4.0\n  authors: ['Tau WG']\n")
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "0 published, 0 unchanged, 0 conflicts, 4 with changed metadata" in r.output
    assert (
        "metadata changed: atlas/taurectools@0.2.0: the store's license changed since it was "
        "published" in r.output
    )
    r = CliRunner().invoke(main, [*args, "--json"])
    assert {o["status"] for o in json.loads(r.output)["outcomes"]} == {"metadata-changed"}


def test_lwtnn_networks_in_cms_data_are_models_by_blob_content(tmp_path: Path) -> None:
    """cms-data keeps lwtnn networks too (RecoBTag-Combined's DeepCSV): read from the tag's
    blob at plan time, so the dry-run already shows the role."""
    from .import_fixtures import git, make_cms_data

    repo = make_cms_data(tmp_path / "cms")
    (repo / "data" / "DeepCSV_PhaseI.json").write_text(json.dumps(LWTNN_SEQUENTIAL))
    (repo / "data" / "settings.json").write_text(json.dumps(NOT_LWTNN))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "DeepCSV network")
    git(repo, "tag", "V02-00-00")
    (repo / "data" / "DeepCSV_PhaseI.json").write_text("{}")  # the work tree plays no part
    plan = plan_import("cms-data", repo)
    [v2] = [b for b in plan.bundles if b.spec.version == "2.0.0"]
    roles = {f.dest: f.role for f in v2.files}
    assert roles["data/DeepCSV_PhaseI.json"] == "model"
    assert roles["data/settings.json"] == "config"


@pytest.mark.parametrize("point", ["import-built", "synced", "catalogued"])
def test_rerun_after_sigkill_hashes_nothing_published_and_leaves_no_work_dir(
    tmp_path: Path,
    ec_key: tuple[Path, Path],
    policy_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    point: str,
) -> None:
    """A real SIGKILL of an import subprocess (before the batch is visible, or after its
    catalogue): the re-run hashes no byte of what is already published (the node's records of
    the sources, under the published manifest's digest), builds only what is not, and neither
    run leaves a ``hepbundle-import-*`` work directory or a staging work directory behind."""
    from hepbundle.repository.layout import staging_dirs

    files = {f"Pkg{i}/00-0{j}-00/d/w{k}.bin": os.urandom(50_000 + k) for i in range(3)
             for j in (1, 2) for k in range(4)}  # fmt: skip
    src = make_groupdata(tmp_path / "GD", files)
    repo, scratch = tmp_path / "repo", tmp_path / "scratch"
    scratch.mkdir()
    cmd = [*_import_cmd(src, repo, ec_key[0]), "--work-dir", str(scratch)]
    env = {**os.environ, "HEPBUNDLE_CRASH_AT": point, "HEPBUNDLE_CACHE_DIR": str(tmp_path / "c")}
    p = subprocess.run(cmd, env=env, capture_output=True, check=False)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert [d.name[:17] for d in scratch.iterdir()] == ["hepbundle-import-"]  # left by the kill
    monkeypatch.setenv("HEPBUNDLE_CACHE_DIR", str(tmp_path / "c"))
    hashed = count_source_hashes(monkeypatch)
    r = CliRunner().invoke(main, cmd[3:])
    assert r.exit_code == 0, r.output
    published_before = 6 if point == "catalogued" else 0
    assert f"{6 - published_before} published, {published_before} unchanged" in r.output
    assert hashed == []  # nothing published was read again; the new versions were built once
    assert list(scratch.iterdir()) == []
    assert [list(d.iterdir()) for d in staging_dirs(repo)] == [[]] * len(staging_dirs(repo))
    for rel, data in files.items():
        pkg, ver, sub, name = rel.split("/")
        v = ".".join(str(int(x)) for x in ver.split("-"))
        assert (repo / "bundles/atlas" / pkg.lower() / v / sub / name).read_bytes() == data
    # and once more: everything unchanged, still nothing read
    r = CliRunner().invoke(main, cmd[3:])
    assert r.exit_code == 0 and "0 published, 6 unchanged" in r.output, r.output
    assert hashed == []


def test_a_mapping_says_the_validity_scope_the_store_knew(
    groupdata: Path, tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    """``validity:`` in the mapping's defaults or a bundle entry becomes the bundles' scope (an
    unquoted date as written); the gap report names it; a malformed one is the map's line."""
    m = tmp_path / "map.yaml"
    m.write_text(
        "defaults:\n  validity: {releases: ['Athena 24.0.*']}\n"
        "bundles:\n"
        "  - name: atlas/tau-old\n    version: 1.0.0\n    include: ['tauRecTools/00-01-00/']\n"
        "    validity:\n      runs: [{first: 100, last: 199}]\n"
        "      times: [{since: 2022-07-05}]\n"
        "  - name: atlas/tau-new\n    version: 2.0.0\n    include: ['tauRecTools/00-02-00/']\n"
    )
    plan = plan_import("dir", groupdata, m)
    old, new = plan.bundles
    assert old.gaps()["validity"] and new.gaps()["validity"]
    r = CliRunner().invoke(main, ["import", "dir", str(groupdata), "--map", str(m), "--dry-run"])
    assert (
        r.exit_code == 0
        and "missing: code, data, metrics, authors, license, io, environment\n" in r.output
    )
    report = run_import(plan, ImportOptions(repo=tmp_path / "repo", signer=KeySigner(ec_key[0])))
    assert report.count("published") == 2
    repos = [tmp_path / "repo"]
    b = hepbundle.resolve("atlas/tau-old@1.0.0", repos=repos)
    assert b.manifest.meta["validity"] == {
        "runs": [{"first": 100, "last": 199}],
        "times": [{"since": "2022-07-05"}],
    }
    assert hepbundle.resolve("atlas/tau-new", repos=repos).manifest.meta["validity"] == {
        "releases": ["Athena 24.0.*"]
    }
    got = hepbundle.resolve("atlas/tau-old@valid", repos=repos, context="run=150")
    assert got.version == "1.0.0"
    with pytest.raises(hepbundle.ValidityError):
        hepbundle.resolve("atlas/tau-old@1.0.0", repos=repos, context="run=250")
    m.write_text("bundles:\n  - name: atlas/x\n    version: 1.0.0\n    include: ['x/']\n"
                 "    validity: {iovs: []}\n")  # fmt: skip
    with pytest.raises(SpecError, match=r"map.yaml:5: bundles\[0\].validity"):
        plan_import("dir", groupdata, m)
