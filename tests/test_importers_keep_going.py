"""--keep-going: a version that fails only in the real run (the store changing under it) is
reported failed and the others are published; without it nothing is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import hepbundle
import hepbundle.importers.run as run_mod
from hepbundle.builder import BuildOptions
from hepbundle.cli import main
from hepbundle.spec import BundleSpec

from .import_fixtures import GROUPDATA, make_groupdata, policy_env, write_policy

__all__ = ["policy_env"]  # fixture re-export


def test_cli_keep_going_when_the_store_changes_under_one_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GroupData file rewritten while its version is imported (what no dry run can see):
    --keep-going reports that version failed and publishes the others (exit 2)."""
    gd = make_groupdata(tmp_path / "GroupData")
    victim = gd / "JetTagCalibration/v2/dl1.onnx"
    real = run_mod.build_from_spec

    def build_then_edit(spec: BundleSpec, opts: BuildOptions) -> hepbundle.Bundle:
        b = real(spec, opts)
        if spec.name == "atlas/jettagcalibration":
            victim.write_bytes(b"rewritten by a concurrent job")
        return b

    monkeypatch.setattr(run_mod, "build_from_spec", build_then_edit)
    repo = tmp_path / "repo"
    args = ["import", "atlas-groupdata", str(gd), "--repo", str(repo), "--allow-unsigned"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and "dl1.onnx changed while it was imported" in r.output
    assert not (repo / "bundles").exists() or not any((repo / "bundles").rglob("hepbundle.json"))
    victim.write_bytes(GROUPDATA["JetTagCalibration/v2/dl1.onnx"])
    r = CliRunner().invoke(main, [*args, "--keep-going"])
    assert r.exit_code == 2, r.output
    assert "failed: atlas/jettagcalibration@2.0.0 [JetTagCalibration/v2]: atlas/jettagcalibration" \
        "@2.0.0: JetTagCalibration/v2/dl1.onnx changed while it was imported" in r.stdout  # fmt: skip
    assert "3 published, 0 unchanged, 0 conflicts, 1 failed" in r.stdout
    assert "1 version(s) failed, not published: atlas/jettagcalibration@2.0.0" in r.stderr
    b = hepbundle.resolve("atlas/taurectools@0.2.0", repos=[repo], verify="integrity")
    assert b.path("rnn.onnx").read_bytes() == GROUPDATA["tauRecTools/00-02-00/rnn.onnx"]


def _published_files(repo: Path) -> set[str]:
    """The versions the repository's catalogue and tree hold (name@version)."""
    from hepbundle.repository.catalog import list_names, read_name_catalog

    if not (repo / "bundles").exists():
        return set()
    return {f"{n}@{v}" for n in list_names(repo) for v in read_name_catalog(repo, n).versions}


def test_cli_keep_going_when_publishing_would_refuse_one_version(
    tmp_path: Path, ec_key: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the publish step refuses of one version — the trust policy allows the tau group's key
    for the tau names only, a directory of another copy sits where a version would go — stops
    the whole import without --keep-going (one line, nothing published, no work directory
    left); with it that version is failed, per bundle in the summary and --json, and the others
    are published."""
    gd = make_groupdata(tmp_path / "GroupData")
    policy = write_policy(
        tmp_path, ec_key[1], namespace="atlas/taurectools*", filename="tau-policy.yaml"
    )
    monkeypatch.setenv("HEPBUNDLE_POLICY", str(policy))
    repo = tmp_path / "repo"
    args = ["import", "atlas-groupdata", str(gd), "--repo", str(repo), "--key", str(ec_key[0])]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, r.output
    assert (
        "hepbundle: error: batch refused, nothing published: atlas/jettagcalibration@2.0.0 "
        f"(bundle 1 of 4): no rule of trust policy {policy} covers atlas/jettagcalibration (add "
        "a rule whose namespace pattern matches it)"
    ) in r.stderr.splitlines()
    assert "Traceback" not in r.output
    assert _published_files(repo) == set()
    r = CliRunner().invoke(main, [*args, "--keep-going", "--json"])
    assert r.exit_code == 2, r.output
    out = json.loads(r.stdout)
    status = {o["ref"]: (o["status"], o["detail"]) for o in out["outcomes"]}
    assert status["atlas/jettagcalibration@2.0.0"] == (
        "failed",
        f"no rule of trust policy {policy} covers atlas/jettagcalibration (add a rule whose "
        "namespace pattern matches it)",
    )
    assert (out["published"], out["failed"]) == (3, 1)
    assert _published_files(repo) == {
        "atlas/taurectools@0.1.0", "atlas/taurectools@0.2.0", "atlas/taurectools.r22_preprod@1.0.0"
    }  # fmt: skip
    b = hepbundle.resolve("atlas/taurectools@0.2.0", repos=[repo], verify="integrity")
    assert b.path("rnn.onnx").read_bytes() == GROUPDATA["tauRecTools/00-02-00/rnn.onnx"]
    assert not list((repo / "bundles" / "atlas" / ".hepbundle-staging").iterdir())

    # the policy now covers every name, but a copy of 2.0.0 the catalogue does not know is in
    # the way (a hand rsync): a conflict with what is there, refused before anything is written
    write_policy(tmp_path, ec_key[1], namespace="atlas", filename=policy.name)
    gd2 = make_groupdata(tmp_path / "GroupData2", {
        "JetTagCalibration/v2/dl1.onnx": GROUPDATA["JetTagCalibration/v2/dl1.onnx"],
        "JetTagCalibration/v3/dl1.onnx": b"dl1-v3" * 100,
    })  # fmt: skip
    stray = repo / "bundles/atlas/jettagcalibration/2.0.0"
    stray.mkdir(parents=True)
    (stray / "dl1.onnx").write_bytes(b"another copy")
    args2 = ["import", "atlas-groupdata", str(gd2), "--repo", str(repo), "--key", str(ec_key[0]),
             "--policy", str(policy)]  # fmt: skip
    r = CliRunner().invoke(main, args2)
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert (
        f"hepbundle: error: {stray} exists but atlas/jettagcalibration@2.0.0 is not in the "
        "catalogue (inspect it by hand: hepbundle never overwrites a bundle directory)"
    ) in r.stderr.splitlines()
    assert not any(v.startswith("atlas/jettagcalibration") for v in _published_files(repo))
    r = CliRunner().invoke(main, [*args2, "--keep-going"])
    _failed_on_the_stray_directory(r, stray)
    assert "1 published, 0 unchanged, 0 conflicts, 1 failed" in r.stdout
    assert "atlas/jettagcalibration@3.0.0" in _published_files(repo)
    assert (stray / "dl1.onnx").read_bytes() == b"another copy"  # never overwritten
    assert not list((repo / "bundles" / "atlas" / ".hepbundle-staging").iterdir())


def _failed_on_the_stray_directory(r: Result, stray: Path) -> None:
    """`import --keep-going` exited 2 with jettagcalibration 2.0.0 failed on ``stray``, a
    directory where that version would go."""
    assert r.exit_code == 2, r.output
    assert (
        f"failed: atlas/jettagcalibration@2.0.0 [JetTagCalibration/v2]: {stray} exists but "
        "atlas/jettagcalibration@2.0.0 is not in the catalogue"
    ) in r.stdout


def test_keep_going_with_a_stray_version_directory_and_no_repository_yet(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    """A directory where a version would go, in a tree that is no repository yet (a half
    copy): with --keep-going that version fails and the repository is made with the others."""
    gd = make_groupdata(tmp_path / "GroupData")
    repo = tmp_path / "repo"
    stray = repo / "bundles/atlas/jettagcalibration/2.0.0"
    stray.mkdir(parents=True)
    args = ["import", "atlas-groupdata", str(gd), "--repo", str(repo), "--key", str(ec_key[0])]
    r = CliRunner().invoke(main, [*args, "--keep-going"])
    _failed_on_the_stray_directory(r, stray)
    assert _published_files(repo) == {
        "atlas/taurectools@0.1.0", "atlas/taurectools@0.2.0", "atlas/taurectools.r22_preprod@1.0.0"
    }  # fmt: skip
    assert list(stray.iterdir()) == []
