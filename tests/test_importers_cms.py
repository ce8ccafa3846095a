"""The cms-data importer on a real git repository with three version tags: versions from tags,
provenance from the tagger/commit, files read from git objects, legacy CMSSW paths."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import hepbundle
from hepbundle.cli import main
from hepbundle.importers import plan_import
from hepbundle.importers.cms_data import says_only_the_tag, tag_version
from hepbundle.importers.legacy import resolve_legacy
from hepbundle.importers.run import ImportOptions, run_import
from hepbundle.signing import KeySigner

from .import_fixtures import (
    CMS_ORIGIN,
    CMS_TAGS,
    DEEPTAU_CORE,
    DEEPTAU_TAGS,
    CmsTag,
    cms_tree,
    git,
    make_cms_data,
    make_cms_repo,
    make_deeptau,
    policy_env,
)

__all__ = ["policy_env"]

NAME = "cms/recotautag-trainingfiles"


@pytest.fixture
def cms_repo(tmp_path: Path) -> Path:
    return make_cms_data(tmp_path / "src")


def test_plan_versions_provenance_and_legacy_paths(cms_repo: Path) -> None:
    plan = plan_import("cms-data", cms_repo)
    assert [b.ref for b in plan.bundles] == [f"{NAME}@0.1.0", f"{NAME}@0.2.5", f"{NAME}@1.0.0"]
    # the data/ layout (the tree is data/ and a README): the README is listed, not imported
    assert [(s.what, s.reason) for s in plan.skipped] == [
        *((f"{t}:README.md", "outside data/ (data layout)") for t, _, _ in CMS_TAGS),
        ("tag before-rename", "not of the form VAA-BB-CC"),
    ]
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
        "io": False, "validity": False, "environment": False,
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


# --- real cms-data repositories: files at the root, names with prefixes, export-ignore -------

CORE_LEGACY = f"RecoTauTag/TrainingFiles/data/{DEEPTAU_CORE}"


def _import(repo: Path, out: Path, key: Path, *extra: str) -> Result:
    args = ["import", "cms-data", str(repo), "--repo", str(out), "--key", str(key), *extra]
    return CliRunner().invoke(main, args)


def test_root_layout_is_what_filein_path_finds(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    """Files at the repository root (as cmsdist installs a tag into RecoTauTag/TrainingFiles/
    data/), a clone named cms-data-RecoTauTag-TrainingFiles: the FileInPath path resolves."""
    src = make_deeptau(tmp_path / "src")
    plan = plan_import("cms-data", src)
    assert [b.ref for b in plan.bundles] == [f"{NAME}@0.2.2", f"{NAME}@0.3.0"]
    v022, v030 = plan.bundles
    first = cms_tree(DEEPTAU_TAGS, "V00-02-02")
    assert {(f.dest, f.legacy) for f in v022.files} == {
        (p, f"RecoTauTag/TrainingFiles/data/{p}") for p in first
    }
    assert {f.dest: f.role for f in v022.files} == {
        "README.md": "docs",
        DEEPTAU_CORE: "model",
        "DeepTauId/deepTau_2017v2p6_e6_inner.pb": "model",
        "DeepTauId/deepTau_2017v2p6_e6_outer.pb": "model",
        "MVAIsolation/tauIdMVAIsoDBoldDMwLT2017.weights.xml.gz": "weights",
    }
    assert "legacy paths RecoTauTag/TrainingFiles/data/… (RecoTauTag/TrainingFiles from the " \
        "directory name and the origin URL; root layout" in v022.rule  # fmt: skip
    assert v030.extra_meta["extra"]["import"]["package"] == "RecoTauTag/TrainingFiles"
    assert v030.extra_meta["extra"]["import"]["layout"] == "root"
    repo = tmp_path / "repo"
    r = _import(src, repo, ec_key[0])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["path", "--legacy", f"cms:{CORE_LEGACY}", "--repo", str(repo)])
    assert r.exit_code == 0, r.output
    latest = cms_tree(DEEPTAU_TAGS, "V00-03-00")
    assert Path(r.output.strip()).read_bytes() == latest[DEEPTAU_CORE]
    b = hepbundle.resolve(f"{NAME}@0.2.2", repos=[repo], verify="full")
    assert {p: b.path(p).read_bytes() for p in first} == first


@pytest.mark.parametrize(
    ("dirname", "origin", "how"),
    [
        ("data-RecoTauTag-TrainingFiles", None, "the directory name"),
        ("RecoTauTag-TrainingFiles.git", None, "the directory name"),
        ("checkout", "git@github.com:cms-data/RecoTauTag-TrainingFiles.git", "the origin URL"),
        ("CMSSW_14_0_0/src/RecoTauTag/TrainingFiles/data", None, "the directory name"),
    ],
)
def test_package_from_the_directory_or_the_origin(
    tmp_path: Path, dirname: str, origin: str | None, how: str
) -> None:
    plan = plan_import("cms-data", make_deeptau(tmp_path, dirname, origin=origin))
    assert [b.ref for b in plan.bundles] == [f"{NAME}@0.2.2", f"{NAME}@0.3.0"]
    assert CORE_LEGACY in {f.legacy for f in plan.bundles[1].files}
    assert f"(RecoTauTag/TrainingFiles from {how}; root layout" in plan.bundles[1].rule


def test_package_key_settles_a_disagreement(tmp_path: Path) -> None:
    from hepbundle.errors import SpecError

    src = make_deeptau(tmp_path, "RecoTauTag-TrainingFiles", origin=f"{CMS_ORIGIN[:-28]}x-y.git")
    with pytest.raises(SpecError, match=r"directory name says RecoTauTag/TrainingFiles, the "
                       r"origin URL https://github.com/cms-data/x-y.git says x/y") as e:  # fmt: skip
        plan_import("cms-data", src)
    assert "package:" in (e.value.hint or "")
    m = tmp_path / "map.yaml"
    m.write_text("package: RecoTauTag/TrainingFiles\nlayout: root\n")
    plan = plan_import("cms-data", src, m)
    assert CORE_LEGACY in {f.legacy for f in plan.bundles[1].files}
    assert "from package: in the mapping" in plan.bundles[1].rule
    unnamed = make_deeptau(tmp_path, "clone", origin=None)
    with pytest.raises(SpecError, match="cannot tell <Subsystem>/<Package> from the directory "
                       r"name 'clone' \(no origin remote\)"):  # fmt: skip
        plan_import("cms-data", unnamed)
    assert [b.ref for b in plan_import("cms-data", unnamed, m).bundles] == [
        f"{NAME}@0.2.2",
        f"{NAME}@0.3.0",
    ]
    m.write_text("package: RecoTauTag-TrainingFiles\n")
    with pytest.raises(
        SpecError, match=r"map.yaml:1: package: 'RecoTauTag-TrainingFiles' is invalid"
    ):
        plan_import("cms-data", unnamed, m)


def test_summary_is_the_commit_subject_when_the_message_is_the_tag(tmp_path: Path) -> None:
    v022 = plan_import("cms-data", make_deeptau(tmp_path)).bundles[0]
    g = v022.extra_meta["extra"]["import"]["git"]
    assert g["message"] == "V00-02-02" and g["subject"] == DEEPTAU_TAGS[0].subject
    assert v022.spec.summary == "Add DeepTau 2017v2p6 e6 training files"
    assert v022.spec.description == "Add DeepTau 2017v2p6 e6 training files"


@pytest.mark.parametrize(
    ("message", "only"),
    [
        ("V00-02-02", True),
        ("Tag V00-02-02", True),
        ("new version V00-02-02.", True),
        ("", True),
        ("DeepTau v2p5 (V00-02-02)", False),
        ("V00-02-02: retrained on UL", False),
    ],
)
def test_says_only_the_tag(message: str, only: bool) -> None:
    assert says_only_the_tag(message, "V00-02-02") is only


#: a later tag after the export-ignore one, in each layout
_LATER = {
    "root": [
        *DEEPTAU_TAGS,
        CmsTag("V00-03-01", "Add the 2018 inner graph", "DeepTau 2018v2p5 inner",
               {"DeepTauId/deepTau_2018v2p5_inner.pb": b"inner-2018" * 900}),
    ],
    "data": [
        CmsTag("V00-01-00", "First files", "First training files",
               {"README.md": b"cms-data\n", "data/tau_id.root": b"v1" * 400}),
        CmsTag("V00-02-00", "Validation plots, not for the release", None,
               {".gitattributes": b"data/validation/** export-ignore\n",
                "data/validation/roc.png": b"png" * 300, "data/tau_id.root": b"v2" * 500}),
        CmsTag("V00-03-00", "Retrained", "Retrained", {"data/tau_id.root": b"v3" * 600}),
    ],
}  # fmt: skip


@pytest.mark.parametrize("layout", ["root", "data"])
def test_export_ignore_is_skipped_and_later_tags_import(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path, layout: str
) -> None:
    """export-ignore (the file is in the tree, not in the release tarball) used to fail the
    build on a file git archive never wrote, and every later tag with it."""
    tags = _LATER[layout]
    src = make_cms_repo(tmp_path / "src", "RecoTauTag-TrainingFiles", tags)
    plan = plan_import("cms-data", src)
    ignored = "validation/roc_core.png" if layout == "root" else "data/validation/roc.png"
    tag = "V00-03-00" if layout == "root" else "V00-02-00"
    reasons = {s.what: s.reason for s in plan.skipped}
    assert reasons[f"{tag}:{ignored}"].startswith("export-ignore (.gitattributes)")
    assert reasons[f"{tag}:.gitattributes"] == "git metadata"
    repo = tmp_path / "repo"
    report = run_import(plan, ImportOptions(repo=repo, signer=KeySigner(ec_key[0])))
    assert [o.status for o in report.outcomes] == ["published"] * len(tags)
    for t in tags:
        b = hepbundle.resolve(f"{NAME}@{tag_version(t.tag)}", repos=[repo], verify="full")
        want = {
            p: data
            for p, data in cms_tree(tags, t.tag).items()
            if not p.startswith(".git") and p != ignored and (layout == "root" or p != "README.md")
        }
        assert {f.path: b.path(f.path).read_bytes() for f in b.manifest.files} == want


def test_file_name_not_utf8_refuses_the_tag_unless_skipped(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    """A Latin-1 name (a traceback before) cannot be a bundle path: the plan says so, and the
    tag is not published without the file unless the mapping leaves it out by name."""
    bad = os.fsdecode(b"DeepTauId/caf\xe9.pb")
    tags = [*DEEPTAU_TAGS, CmsTag("V00-04-00", "A Latin-1 name", None, {bad: b"x" * 10})]
    src = make_cms_repo(tmp_path / "src", "RecoTauTag-TrainingFiles", tags)
    r = CliRunner().invoke(main, ["import", "cms-data", str(src), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "V00-04-00:DeepTauId/caf\\xe9.pb: refused: the file name is not valid UTF-8" in r.output
    assert (
        "tag V00-04-00: refused: 1 file(s) of the release cannot be imported "
        "(DeepTauId/caf\\xe9.pb: the file name is not valid UTF-8"
    ) in r.output
    repo = tmp_path / "repo"
    r = _import(src, repo, ec_key[0], "--json")
    assert r.exit_code == 2 and "Traceback" not in r.output
    out = json.loads(r.stdout.split("\nhepbundle: error")[0])
    assert [o["ref"] for o in out["outcomes"]] == [f"{NAME}@0.2.2", f"{NAME}@0.3.0"]
    assert "1 version(s) refused, not published: tag V00-04-00" in r.stderr
    assert "skip: a file the import cannot reproduce" in r.stderr  # the hint fits the refusal
    m = tmp_path / "map.yaml"
    m.write_text("skip: ['RecoTauTag/TrainingFiles/data/DeepTauId/caf*.pb']\n")  # legacy path
    r = _import(src, repo, ec_key[0], "--map", str(m))
    assert r.exit_code == 0, r.output
    b = hepbundle.resolve(f"{NAME}@0.4.0", repos=[repo], verify="full")
    assert set(b.manifest.by_path) == set(cms_tree(DEEPTAU_TAGS, "V00-02-02"))  # the 5 others


@pytest.mark.parametrize("depth", [None, "1"])
def test_clone_without_tags_is_an_error(tmp_path: Path, depth: str | None) -> None:
    src = make_deeptau(tmp_path / "src")
    clone = tmp_path / "RecoTauTag-TrainingFiles"
    git(tmp_path, "clone", "-q", "--no-tags", *(["--depth", depth] if depth else []),
        f"file://{src}", str(clone))  # fmt: skip
    r = CliRunner().invoke(main, ["import", "cms-data", str(clone), "--dry-run"])
    assert r.exit_code == 2
    assert r.output.startswith(f"hepbundle: error: {clone}: no tag of the form VAA-BB-CC, so no")
    assert "(the clone has no tags at all)" in r.output and "Traceback" not in r.output
    assert ("fetch --unshallow --tags" in r.output) is bool(depth)
    r = CliRunner().invoke(main, ["import", "cms-data", str(clone), "--dry-run", "--json"])
    err = json.loads(r.stdout)
    assert r.exit_code == 2 and err["ok"] is False and "no tag of the form" in err["message"]


# --- a release gets the bytes of the tag it pins ---------------------------------------------


def test_pinned_release_gets_the_bytes_of_its_tag(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """V00-03-00 retrained core.pb; a release pinning V00-02-02 must still read the old one,
    through hepbundle path --legacy --pin and through the per-version compat tree."""
    src = make_deeptau(tmp_path / "src")
    repo, compat = tmp_path / "repo", tmp_path / "compat"
    r = _import(src, repo, ec_key[0], "--compat-tree", str(compat), "--compat-layout",
                "per-version")  # fmt: skip
    assert r.exit_code == 0, r.output
    old = cms_tree(DEEPTAU_TAGS, "V00-02-02")[DEEPTAU_CORE]
    new = cms_tree(DEEPTAU_TAGS, "V00-03-00")[DEEPTAU_CORE]
    assert old != new

    def legacy_path(*pins: str) -> Result:
        args = ["path", "--legacy", f"cms:{CORE_LEGACY}", "--repo", str(repo)]
        return CliRunner().invoke(main, [*args, *(a for p in pins for a in ("--pin", p))])

    caplog.clear()
    assert legacy_path().exit_code == 0
    assert f"cms:{CORE_LEGACY} is in 2 versions (0.3.0, 0.2.2); serving the highest, 0.3.0" in (
        caplog.text
    )  # the unpinned answer is not given silently
    for pins, want in [
        ((), new),  # no pin: the highest release
        (("Alignment/OfflineValidation=V00-03-00 RecoTauTag/TrainingFiles=V00-02-02",), old),
        (("RecoTauTag/TrainingFiles=0.2.2",), old),
        (("RecoTauTag/TrainingFiles=V00-03-00",), new),
        (("RecoTauTag=V00-03-00", "RecoTauTag/TrainingFiles=V00-02-02"), old),  # longest wins
    ]:
        r = legacy_path(*pins)
        assert r.exit_code == 0, (pins, r.output)
        assert Path(r.stdout.strip()).read_bytes() == want, pins
    b, rel = resolve_legacy(
        f"cms:{CORE_LEGACY}", repos=[repo], pins={"RecoTauTag/TrainingFiles": "V00-02-02"}
    )
    assert (b.version, b.path(rel).read_bytes()) == ("0.2.2", old)

    r = legacy_path("RecoTauTag/TrainingFiles=V00-01-07")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert (
        f"cms:{CORE_LEGACY}: the pin RecoTauTag/TrainingFiles=V00-01-07 asks for version 0.1.7, "
        f"and no published, non-yanked version of that number carries this file (it is in "
        f"{NAME}@0.3.0, {NAME}@0.2.2)"
    ) in r.output
    for bad, msg in [
        ("RecoTauTag/TrainingFiles", "is not <legacy prefix>=<tag or version>"),
        ("RecoTauTag/TrainingFiles=DeepTau2017v2", "is neither a version (0.2.2) nor a tag"),
    ]:
        r = legacy_path(bad)
        assert r.exit_code == 2 and msg in r.output, r.output
    r = CliRunner().invoke(main, ["path", f"{NAME}@0.2.2", "--pin", "A/B=V00-01-00"])
    assert r.exit_code == 2 and "--pin goes with --legacy" in r.output

    for t in DEEPTAU_TAGS:
        tree = cms_tree(DEEPTAU_TAGS, t.tag)
        search_dir = compat / NAME / str(tag_version(t.tag))  # what CMSSW_SEARCH_PATH names
        link = search_dir / CORE_LEGACY
        assert link.is_symlink() and not os.path.isabs(os.readlink(link))
        assert link.read_bytes() == tree[DEEPTAU_CORE], t.tag
        assert (search_dir / "RecoTauTag/TrainingFiles/data/README.md").read_bytes() == (
            tree["README.md"]
        )
    assert not (compat / CORE_LEGACY).exists()  # per-version only: no unpinned flat tree
    caplog.clear()
    r = _import(src, repo, ec_key[0], "--compat-tree", str(tmp_path / "flat"))
    assert r.exit_code == 0, r.output
    assert "5 legacy path(s) of cms are in several versions and link to the highest" in (
        caplog.text
    )


def test_a_tag_pin_needs_the_version_imported_from_that_tag(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    """Version 0.2.2 published by hand (not imported from V00-02-02) is not what a release
    pinning V00-02-02 had: the tag pin is checked against the signed manifest's record."""
    from hepbundle.builder import BuildOptions, build_from_spec
    from hepbundle.errors import VerificationError
    from hepbundle.repository import publish
    from hepbundle.signing import sign
    from hepbundle.spec import load_spec

    from .conftest import write_spec

    src = tmp_path / "by-hand"
    src.mkdir()
    (src / "core.pb").write_bytes(b"not the tagged bytes")
    write_spec(src, f"name: {NAME}\nversion: 0.2.2\nfiles:\n  - {{path: core.pb, role: model}}\n")
    b = build_from_spec(
        load_spec(src), BuildOptions(out=tmp_path / "out", legacy_paths={"core.pb": CORE_LEGACY})
    )
    sign(b.root, KeySigner(ec_key[0]))
    repo = tmp_path / "repo"
    publish(b.root, repo)
    with pytest.raises(VerificationError, match=f"resolves to {NAME}@0.2.2, whose manifest says "
                       "it was not imported from a git tag"):  # fmt: skip
        resolve_legacy(f"cms:{CORE_LEGACY}", repos=[repo], pins={"RecoTauTag": "V00-02-02"})
    got, rel = resolve_legacy(f"cms:{CORE_LEGACY}", repos=[repo], pins={"RecoTauTag": "0.2.2"})
    assert got.path(rel).read_bytes() == b"not the tagged bytes"


def _drop_object(repo: Path, rev: str) -> None:
    """Delete the loose object of ``rev`` (a damaged clone)."""
    sha = git(repo, "rev-parse", rev)
    (repo / ".git" / "objects" / sha[:2] / sha[2:]).unlink()


def test_missing_blob_refuses_its_tag_in_the_dry_run(tmp_path: Path) -> None:
    """A damaged clone (an object gone): the plan refuses that tag, the real run is not the
    first to find out."""
    src = make_deeptau(tmp_path / "src")
    _drop_object(src, f"V00-02-02:{DEEPTAU_CORE}")  # the old core.pb: only V00-02-02 has it
    plan = plan_import("cms-data", src)
    assert [b.ref for b in plan.bundles] == [f"{NAME}@0.3.0"]
    (refused,) = plan.refused
    assert refused.what == "tag V00-02-02"
    assert f"({DEEPTAU_CORE}: the blob is missing from the clone" in refused.reason


def test_keep_going_publishes_the_tags_that_build(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    """An object lost after the plan was made (the real run fails on it): without --keep-going
    nothing is published; with it the other tags are, the failed one is named, exit 2."""
    src = make_deeptau(tmp_path / "src")
    plan = plan_import("cms-data", src)
    _drop_object(src, f"V00-02-02:{DEEPTAU_CORE}")
    repo = tmp_path / "repo"
    from hepbundle.errors import BuildError
    from hepbundle.importers.run import FAILED

    opts = ImportOptions(repo=repo, signer=KeySigner(ec_key[0]))
    with pytest.raises(BuildError, match=f"cannot read {DEEPTAU_CORE} .* missing"):
        run_import(plan, opts)
    assert not (repo / "bundles").exists() or not list((repo / "bundles").rglob("0.3.0"))
    report = run_import(plan, replace(opts, keep_going=True))
    assert [(o.ref, o.status) for o in report.outcomes] == [
        (f"{NAME}@0.2.2", FAILED),
        (f"{NAME}@0.3.0", "published"),
    ]
    assert "missing" in report.outcomes[0].detail
    assert hepbundle.resolve(f"{NAME}@0.3.0", repos=[repo], verify="full").version == "0.3.0"
    git(src, "tag", "V00-03-01", "V00-03-00")
    r = _import(src, repo, ec_key[0])  # planned again: now the dry run sees the lost object
    assert r.exit_code == 2, r.output
    assert f"{NAME}@0.3.1  published" in r.stdout and f"{NAME}@0.2.2" not in r.stdout
    assert "tag V00-02-02: refused: 1 file(s) of the release cannot be imported" in r.stdout
    assert "hepbundle: error: 1 version(s) refused, not published: tag V00-02-02" in r.stderr


def test_the_release_environment_pins_every_legacy_lookup(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HEPBUNDLE_LEGACY_PINS, set once by a release's environment, pins every lookup of an
    unchanged job script; --pin overrides one prefix; pins={} asks for none."""
    src = make_deeptau(tmp_path / "src")
    repo = tmp_path / "repo"
    assert _import(src, repo, ec_key[0]).exit_code == 0
    old = cms_tree(DEEPTAU_TAGS, "V00-02-02")[DEEPTAU_CORE]
    new = cms_tree(DEEPTAU_TAGS, "V00-03-00")[DEEPTAU_CORE]
    monkeypatch.setenv("HEPBUNDLE_LEGACY_PINS", "CondFormats/JetMETObjects=V01-00-03,"
                       "RecoTauTag/TrainingFiles=V00-02-02")  # fmt: skip
    args = ["path", "--legacy", f"cms:{CORE_LEGACY}", "--repo", str(repo)]
    for extra, want in [((), old), (("--pin", "RecoTauTag/TrainingFiles=V00-03-00"), new)]:
        r = CliRunner().invoke(main, [*args, *extra])
        assert r.exit_code == 0, r.output
        assert Path(r.stdout.strip()).read_bytes() == want, extra
    assert resolve_legacy(f"cms:{CORE_LEGACY}", repos=[repo])[0].version == "0.2.2"
    assert resolve_legacy(f"cms:{CORE_LEGACY}", repos=[repo], pins={})[0].version == "0.3.0"
    monkeypatch.setenv("HEPBUNDLE_LEGACY_PINS", "RecoTauTag/TrainingFiles")
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2
    assert (
        "HEPBUNDLE_LEGACY_PINS: pin 'RecoTauTag/TrainingFiles' is not <legacy prefix>=" in r.output
    )


def test_a_bare_mirror_plans_like_the_checkout(tmp_path: Path) -> None:
    """``git clone --mirror`` (no working tree, the name ending in .git): same versions, files,
    legacy paths and export-ignore verdicts as the checkout it mirrors."""
    src = make_deeptau(tmp_path / "src")
    mirror = tmp_path / "RecoTauTag-TrainingFiles.git"
    git(tmp_path, "clone", "-q", "--mirror", str(src), str(mirror))
    want, got = plan_import("cms-data", src), plan_import("cms-data", mirror)
    assert [b.ref for b in got.bundles] == [f"{NAME}@0.2.2", f"{NAME}@0.3.0"]
    assert [b.files for b in got.bundles] == [b.files for b in want.bundles]
    assert got.skipped == want.skipped
    assert "V00-03-00:validation/roc_core.png" in {s.what for s in got.skipped}
    repo = tmp_path / "repo"
    run_import(got, ImportOptions(repo=repo, allow_unsigned=True))  # read from the bare clone
    b = hepbundle.resolve(f"{NAME}@0.2.2", repos=[repo], verify="integrity")
    assert b.path(DEEPTAU_CORE).read_bytes() == cms_tree(DEEPTAU_TAGS, "V00-02-02")[DEEPTAU_CORE]
