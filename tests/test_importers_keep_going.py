"""--keep-going: a version that fails only in the real run (the store changing under it) is
reported failed and the others are published; without it nothing is."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import hepbundle
import hepbundle.importers.run as run_mod
from hepbundle.builder import BuildOptions
from hepbundle.cli import main
from hepbundle.spec import BundleSpec

from .import_fixtures import GROUPDATA, make_groupdata


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
