"""The dry-run finds what the real import would refuse: given the repository and the signer,
it says for each version what the import will do (new, unchanged, conflict, metadata changed,
refused by publishing and why), and the real import then does exactly that, on a realistic
GroupData store published under a trust policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from hepbundle.cli import main
from hepbundle.signing import generate_key

from .import_fixtures import GROUPDATA, make_groupdata


def _run(*args: str) -> tuple[int, dict[str, Any], str]:
    r = CliRunner().invoke(main, [*args, "--json"])
    return r.exit_code, json.loads(r.stdout), r.stderr


def _said(plan: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {b["ref"]: (b["status"], b["detail"]) for b in plan["publish"]["bundles"]}


def _did(report: dict[str, Any]) -> dict[str, str]:
    return {o["ref"]: o["status"] for o in report["outcomes"]}


def test_dry_run_says_what_the_import_will_do_and_refuse(
    tmp_path: Path, ec_key: tuple[Path, Path]
) -> None:
    gd = make_groupdata(tmp_path / "GroupData")
    other = generate_key(tmp_path / "jet-wg" / "key.pem")
    policy = tmp_path / "policy.yaml"
    # the tau group's key signs the tau names; the jet group's key, not ours, signs the rest of
    # atlas; lhcb is covered by no rule
    policy.write_text(
        "version: 1\nrules:\n"
        f"  - namespace: 'atlas/taurectools*'\n    signers:\n      - key: {ec_key[1]}\n"
        f"  - namespace: atlas\n    signers:\n      - key: {other[1]}\n"
    )
    repo = tmp_path / "repo"
    args = ["import", "atlas-groupdata", str(gd), "--repo", str(repo), "--key", str(ec_key[0]),
            "--policy", str(policy)]  # fmt: skip
    code, plan, _ = _run(*args, "--dry-run")
    assert code == 0
    said = _said(plan)
    assert said["atlas/jettagcalibration@2.0.0"][0] == "refused"
    assert (
        "the trust policy does not accept the signer for atlas/jettagcalibration: signer key "
        in said["atlas/jettagcalibration@2.0.0"][1]
    )
    assert {r: s for r, (s, _) in said.items() if s != "refused"} == {
        "atlas/taurectools@0.1.0": "new", "atlas/taurectools@0.2.0": "new",
        "atlas/taurectools.r22_preprod@1.0.0": "new",
    }  # fmt: skip
    assert (plan["publish"]["new"], plan["publish"]["refused"]) == (3, 1)
    # the real import refuses the same version, for the same reason
    code, report, _ = _run(*args, "--keep-going")
    assert code == 2
    did = _did(report)
    assert {r for r, s in did.items() if s == "failed"} == {"atlas/jettagcalibration@2.0.0"}
    assert {r for r, s in did.items() if s == "published"} == {
        r for r, (s, _) in said.items() if s == "new"
    }

    # the store changes: a file of 0.1.0 grows, one is added to 0.2.0, R22's metadata changes,
    # a stray copy of a version the catalogue does not know sits in the repository
    (gd / "tauRecTools/00-01-00/rnn.onnx").write_bytes(b"retrained" * 10)
    (gd / "tauRecTools/00-02-00/extra.json").write_bytes(b"{}")
    (gd / "tauRecTools/R22_preprod/model.json").write_bytes(b'{"layers": [16, 8, 2]}\n')
    (gd / "tauRecTools/00-05-00").mkdir()
    (gd / "tauRecTools/00-05-00/rnn.onnx").write_bytes(b"v5")
    (repo / "bundles/atlas/taurectools/0.5.0").mkdir()
    m = tmp_path / "map.yaml"
    m.write_text("defaults: {license: MIT}\nskip: [JetTagCalibration/]\n")
    code, plan, _ = _run(*args, "--dry-run", "--map", str(m))
    assert code == 0
    said = _said(plan)
    assert {r: s for r, (s, _) in said.items()} == {
        "atlas/taurectools@0.1.0": "conflict",
        "atlas/taurectools@0.2.0": "conflict",
        # same size, other bytes: the dry-run reads no content; its records no longer match
        "atlas/taurectools.r22_preprod@1.0.0": "published",
        "atlas/taurectools@0.5.0": "refused",
    }
    assert said["atlas/taurectools@0.1.0"][1] == (
        f"tauRecTools/00-01-00/rnn.onnx changed size (90 B, published "
        f"{len(GROUPDATA['tauRecTools/00-01-00/rnn.onnx'])} B)"
    )
    assert said["atlas/taurectools@0.2.0"][1] == "tauRecTools/00-02-00/extra.json is new"
    assert "bundles/atlas/taurectools/0.5.0 exists but atlas/taurectools@0.5.0 is not in the " \
        "catalogue" in said["atlas/taurectools@0.5.0"][1]  # fmt: skip
    code, report, _ = _run(*args, "--keep-going", "--map", str(m))
    assert code == 2
    assert _did(report) == {
        "atlas/taurectools@0.1.0": "conflict",
        "atlas/taurectools@0.2.0": "conflict",
        "atlas/taurectools.r22_preprod@1.0.0": "conflict",
        "atlas/taurectools@0.5.0": "failed",
    }

    # put the store back: the license the mapping adds is new metadata, nothing else changed
    for rel in ("tauRecTools/00-01-00/rnn.onnx", "tauRecTools/R22_preprod/model.json"):
        (gd / rel).write_bytes(GROUPDATA[rel])
    (gd / "tauRecTools/00-02-00/extra.json").unlink()
    code, plan, _ = _run(*args, "--dry-run", "--map", str(m))
    # rewritten, so this node's records of them are void: the import will compare them
    assert _said(plan)["atlas/taurectools@0.1.0"] == (
        "published",
        "its files are compared with the published ones when importing (and the store's "
        "license changed since it was published)",
    )
    code, report, _ = _run(*args, "--keep-going", "--map", str(m))
    assert _did(report)["atlas/taurectools@0.1.0"] == "metadata-changed"
    # compared, so recorded: now the dry-run knows, without reading a byte
    code, plan, _ = _run(*args, "--dry-run", "--map", str(m))
    assert _said(plan)["atlas/taurectools@0.1.0"] == (
        "metadata-changed",
        "the store's license changed since it was published",
    )
    code, plan, _ = _run(*args, "--dry-run")
    assert _said(plan)["atlas/taurectools@0.1.0"] == ("unchanged", "")
    code, report, _ = _run(*args, "--keep-going")
    assert _did(report)["atlas/taurectools@0.1.0"] == "unchanged"


def test_dry_run_without_a_signer_says_the_import_would_refuse_unsigned_bundles(
    tmp_path: Path,
) -> None:
    gd = make_groupdata(tmp_path / "GroupData")
    repo = tmp_path / "repo"
    args = ["import", "atlas-groupdata", str(gd), "--repo", str(repo)]
    code, plan, _ = _run(*args, "--dry-run")
    assert code == 0 and plan["publish"]["refused"] == 4
    assert {d for _, d in _said(plan).values()} == {
        "unsigned: the import signs with --key (or --cert), or publishes unsigned with "
        "--allow-unsigned"
    }
    r = CliRunner().invoke(main, args)
    assert r.exit_code != 0 and "is unsigned; refusing to publish it" in r.stderr
    code, plan, _ = _run(*args, "--dry-run", "--allow-unsigned")
    assert plan["publish"]["new"] == 4
    # only looking: no repository, no signer: publishing is not checked, and the plan says so
    r = CliRunner().invoke(main, ["import", "atlas-groupdata", str(gd), "--dry-run"])
    assert r.exit_code == 0 and "publishing not checked: give --repo and --key" in r.stdout
    assert "publish" not in json.loads(
        CliRunner()
        .invoke(main, ["import", "atlas-groupdata", str(gd), "--dry-run", "--json"])
        .stdout
    )
