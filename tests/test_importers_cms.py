"""The cms-data importer on a real git repository with three version tags: versions from tags,
provenance from the tagger/commit, files read from git objects, legacy CMSSW paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.cli import main
from hepbundle.importers import plan_import
from hepbundle.importers.legacy import resolve_legacy
from hepbundle.importers.run import ImportOptions, run_import
from hepbundle.signing import KeySigner

from .import_fixtures import CMS_TAGS, git, make_cms_data, policy_env

__all__ = ["policy_env"]

NAME = "cms/recotautag-trainingfiles"


@pytest.fixture
def cms_repo(tmp_path: Path) -> Path:
    return make_cms_data(tmp_path / "src")


def test_plan_versions_provenance_and_legacy_paths(cms_repo: Path) -> None:
    plan = plan_import("cms-data", cms_repo)
    assert [b.ref for b in plan.bundles] == [f"{NAME}@0.1.0", f"{NAME}@0.2.5", f"{NAME}@1.0.0"]
    assert [s.what for s in plan.skipped] == ["tag before-rename"]
    v025 = plan.bundles[1]
    assert {(f.dest, f.legacy) for f in v025.files} == {
        ("data/tau_id.root", "RecoTauTag/TrainingFiles/data/tau_id.root"),
        ("data/dnn/graph.pb", "RecoTauTag/TrainingFiles/data/dnn/graph.pb"),
    }
    g = v025.extra_meta["extra"]["import"]["git"]
    assert g["tag"] == "V00-02-05" and g["message"] == "DeepTau v2p5"
    assert g["commit"] == git(cms_repo, "rev-parse", "V00-02-05^{commit}")
    assert g["date"].startswith("2024-02-15T10:00:00")
    assert g["repository"] == "https://github.com/cms-data/RecoTauTag-TrainingFiles.git"
    assert v025.spec.authors == ({"name": "Tau Expert", "email": "tau.expert@cern.ch"},)
    assert v025.spec.summary == "DeepTau v2p5"
    light = plan.bundles[2].extra_meta["extra"]["import"]["git"]
    assert light["commit"] == git(cms_repo, "rev-parse", "V01-00-00")
    assert light["message"] == "update for V01-00-00", "a lightweight tag: the commit's message"
    assert plan.bundles[0].gaps() == {
        "code": False, "data": False, "metrics": False, "authors": True, "license": False,
        "io": False,
    }  # fmt: skip


def test_import_reads_each_tag_not_the_working_tree(
    cms_repo: Path, tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    (cms_repo / "data" / "tau_id.root").write_bytes(b"uncommitted edit")  # never imported
    repo = tmp_path / "repo"
    compat = tmp_path / "compat"
    report = run_import(
        plan_import("cms-data", cms_repo),
        ImportOptions(repo=repo, signer=KeySigner(ec_key[0]), compat_tree=compat),
    )
    assert [o.status for o in report.outcomes] == ["published"] * 3
    for tag, files, _ in CMS_TAGS:
        version = ".".join(str(int(x)) for x in tag[1:].split("-"))
        b = hepbundle.resolve(f"{NAME}@{version}", repos=[repo], verify="full")
        assert {p: b.path(p).read_bytes() for p in files} == files
        assert b.manifest.meta["extra"]["import"]["git"]["tag"] == tag
    # the legacy path resolves to the highest version carrying it; the compat tree agrees
    b, rel = resolve_legacy("cms:RecoTauTag/TrainingFiles/data/tau_id.root", repos=[repo])
    assert b.version == "1.0.0" and b.path(rel).read_bytes() == CMS_TAGS[2][1]["data/tau_id.root"]
    link = compat / "RecoTauTag/TrainingFiles/data/tau_id.root"
    assert link.read_bytes() == CMS_TAGS[2][1]["data/tau_id.root"]
    again = run_import(
        plan_import("cms-data", cms_repo), ImportOptions(repo=repo, signer=KeySigner(ec_key[0]))
    )
    assert [o.status for o in again.outcomes] == ["unchanged"] * 3


def test_moved_tag_is_a_conflict(
    cms_repo: Path, tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    repo = tmp_path / "repo"
    args = ["import", "cms-data", str(cms_repo), "--repo", str(repo), "--key", str(ec_key[0])]
    assert CliRunner().invoke(main, args).exit_code == 0
    (cms_repo / "data" / "tau_id.root").write_bytes(b"retagged")
    git(cms_repo, "commit", "-qam", "oops")
    git(cms_repo, "tag", "-f", "-a", "V00-02-05", "-m", "moved")
    r = CliRunner().invoke(main, [*args, "--json"])
    assert r.exit_code == 2
    out = json.loads(r.output.split("\nhepbundle: error")[0])
    status = {o["ref"]: o["status"] for o in out["outcomes"]}
    assert status == {
        f"{NAME}@0.1.0": "unchanged",
        f"{NAME}@0.2.5": "conflict",
        f"{NAME}@1.0.0": "unchanged",
    }


def test_mapping_renames_and_not_a_checkout(cms_repo: Path, tmp_path: Path) -> None:
    m = tmp_path / "map.yaml"
    m.write_text("names: {RecoTauTag-TrainingFiles: cms/deeptau}\nskip: ['**/*.pb']\n"
                 "defaults: {license: CC-BY-4.0}\n")  # fmt: skip
    plan = plan_import("cms-data", cms_repo, m)
    assert [b.ref for b in plan.bundles] == [
        "cms/deeptau@0.1.0",
        "cms/deeptau@0.2.5",
        "cms/deeptau@1.0.0",
    ]
    assert all(f.dest == "data/tau_id.root" for b in plan.bundles for f in b.files)
    assert plan.bundles[0].spec.license == "CC-BY-4.0"
    from hepbundle.errors import SpecError

    with pytest.raises(SpecError, match="not a git checkout"):
        plan_import("cms-data", tmp_path)
