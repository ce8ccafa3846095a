"""SLSA v1 / in-toto export, validated against the published schema two ways; show and the CLI."""

from __future__ import annotations

import base64
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement

import hepbundle
from hepbundle.cli import main
from hepbundle.provenance import slsa

from .provenance_fixtures import git, make_trained_repo

VENDOR = Path(__file__).parents[1] / "bundle-spec/v1/vendor/slsa-provenance-v1.schema.json"


@pytest.fixture
def trained(tmp_path: Path) -> hepbundle.Bundle:
    repo = make_trained_repo(tmp_path)
    return hepbundle.build(repo, tmp_path / "dist" / "atlas" / "toy-lr" / "1.0.0")


@functools.cache
def _schema() -> dict[str, Any]:
    return dict(json.loads(VENDOR.read_text()))


def check_against_slsa_schema(stmt: dict[str, Any]) -> None:
    """Valid against the SLSA v1 JSON Schema (bundle-spec/v1/vendor) and against the in-toto
    attestation protobuf definitions (strict parse: unknown fields and bad timestamps fail)."""
    jsonschema.Draft202012Validator(
        _schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(stmt)
    _proto_only(stmt)
    prov = json_format.ParseDict(stmt["predicate"], provenance_pb2.Provenance())
    assert prov.build_definition.build_type and prov.run_details.builder.id
    # round trip: nothing of the predicate is lost by the schema's message types
    again = json_format.MessageToDict(prov)
    md = stmt["predicate"]["runDetails"].get("metadata", {})
    for key in ("startedOn", "finishedOn"):
        if key in md:
            again["runDetails"]["metadata"][key] = md[key]  # proto prints the same instant
    assert again == stmt["predicate"]


def test_slsa_statement_of_a_trained_bundle_validates(trained: hepbundle.Bundle) -> None:
    stmt = slsa.statement(trained.manifest, trained.manifest_digest)
    check_against_slsa_schema(stmt)
    assert stmt["subject"] == [
        {"name": "atlas/toy-lr@1.0.0", "digest": {"sha256": trained.manifest_digest}}
    ]
    bd = stmt["predicate"]["buildDefinition"]
    code = trained.manifest.meta["provenance"]["code"]
    assert bd["buildType"] == slsa.BUILD_TYPE
    assert bd["externalParameters"]["code"]["command"] == "python train.py --epochs 50 --lr 0.5"
    assert bd["externalParameters"]["seeds"] == {"numpy": 20240917}
    deps = {d["name"]: d for d in bd["resolvedDependencies"]}
    assert deps["code"] == {
        "name": "code",
        "uri": "git+https://gitlab.cern.ch/atlas/toy-lr.git@refs/heads/main",
        "digest": {"gitCommit": code["commit"]},
    }
    assert deps["data/train.npz"]["digest"]["sha256"] == trained.manifest.meta["data"][0]["sha256"]
    rucio = deps["mc23_13p6TeV:DAOD_PHYS.37621591._000001.pool.root.1"]
    assert rucio["digest"] == {"adler32": "0a1b2c3d"} and rucio["annotations"]["resolved"] is False
    assert (
        deps["provenance/environment.lock"]["digest"]["sha256"]
        == (trained.manifest.meta["provenance"]["environment"]["lock"]["sha256"])
    )
    assert deps["container"]["uri"] == "docker://gitlab-registry.cern.ch/atlas/ml-base:2.1"
    md = stmt["predicate"]["runDetails"]["metadata"]
    training = trained.manifest.meta["provenance"]["training"]
    assert (md["startedOn"], md["finishedOn"]) == (training["start"], training["end"])
    assert md["invocationId"] == f"hepbundle-build:{trained.manifest_digest}"
    assert stmt["predicate"]["runDetails"]["byproducts"] == [
        {
            "name": "runs/model.npz",
            "digest": {"blake3": trained.manifest.file("runs/model.npz").digest},
        }
    ]


@pytest.mark.parametrize(
    ("break_it", "where"),
    [
        (lambda s: s["predicate"]["runDetails"]["metadata"].update(startedOn="yesterday"), "both"),
        (lambda s: s["predicate"]["buildDefinition"].update(recipe={}), "both"),
        (lambda s: s["subject"][0].pop("digest"), "both"),
        (lambda s: s["predicate"]["runDetails"]["builder"].pop("id"), "schema"),
    ],
)
def test_broken_statements_fail_validation(
    trained: hepbundle.Bundle, break_it: Any, where: str
) -> None:
    stmt = slsa.statement(trained.manifest, trained.manifest_digest)
    break_it(stmt)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(_schema()).validate(stmt)
    if where == "both":
        with pytest.raises((json_format.ParseError, ValueError)):
            _proto_only(stmt)


def _proto_only(stmt: dict[str, Any]) -> None:
    pb = json_format.Parse(json.dumps(stmt), statement_pb2.Statement())
    Statement.copy_from_pb(pb).validate()
    json_format.ParseDict(stmt["predicate"], provenance_pb2.Provenance())


def test_minimal_bundle_without_provenance_still_exports(built: hepbundle.Bundle) -> None:
    stmt = slsa.statement(built.manifest, built.manifest_digest)
    check_against_slsa_schema(stmt)
    assert "resolvedDependencies" not in stmt["predicate"]["buildDefinition"]
    assert stmt["subject"][0]["digest"] == {"sha256": built.manifest_digest}


def test_cli_provenance_formats(trained: hepbundle.Bundle, tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["provenance", str(trained.root)])
    assert r.exit_code == 0, r.output
    stmt = json.loads(r.output)
    check_against_slsa_schema(stmt)
    r = runner.invoke(main, ["provenance", str(trained.root), "--format", "intoto"])
    env = json.loads(r.output)
    assert env["payloadType"] == "application/vnd.in-toto+json" and env["signatures"] == []
    assert json.loads(base64.b64decode(env["payload"])) == stmt
    out = tmp_path / "prov.json"
    r = runner.invoke(main, ["provenance", str(trained.root), "--format", "json", "-o", str(out)])
    assert r.exit_code == 0, r.output
    native = json.loads(out.read_text())
    assert native["manifestDigest"] == trained.manifest_digest
    assert native["provenance"] == trained.manifest.meta["provenance"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".prov")] == []
    r = runner.invoke(main, ["provenance", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "hepbundle: error:" in r.output and "Traceback" not in r.output


def test_show_renders_provenance_and_card(trained: hepbundle.Bundle) -> None:
    r = CliRunner().invoke(main, ["show", str(trained.root)])
    assert r.exit_code == 0, r.output
    commit = trained.manifest.meta["provenance"]["code"]["commit"]
    assert f"code      https://gitlab.cern.ch/atlas/toy-lr.git @ {commit}" in r.output
    assert "command   python train.py --epochs 50 --lr 0.5" in r.output
    assert "data      [npz] data/train.npz" in r.output
    assert "data      [rucio] mc23_13p6TeV:DAOD_PHYS.37621591._000001.pool.root.1" in r.output
    assert "data      [opendata] 10.7483/OPENDATA.CMS.A342.9982" in r.output
    assert "accuracy [test]:" in r.output and "Intended use" in r.output
    assert "container gitlab-registry.cern.ch/atlas/ml-base:2.1@sha256:abab" in r.output
    assert "seeds     numpy=20240917" in r.output
    training = trained.manifest.meta["provenance"]["training"]
    assert f"trained   {training['start']} → {training['end']}" in r.output


def test_build_cli_allow_dirty(tmp_path: Path) -> None:
    repo = make_trained_repo(tmp_path)
    (repo / "train.py").write_text("# changed\n")
    runner = CliRunner()
    r = runner.invoke(main, ["build", str(repo), "-o", str(tmp_path / "b")])
    assert r.exit_code == 2
    assert "uncommitted changes (train.py)" in r.output and "--allow-dirty" in r.output
    r = runner.invoke(main, ["build", str(repo), "-o", str(tmp_path / "b"), "--allow-dirty"])
    assert r.exit_code == 0, r.output
    b = hepbundle.open(tmp_path / "b", verify="integrity")
    assert b.path("provenance/dirty.patch").read_bytes().count(b"+# changed") == 1
    assert git(repo, "status", "--porcelain") == "M train.py"  # the checkout is untouched


def test_full_provenance_example_exports_valid_slsa(tmp_path: Path) -> None:
    """The bundle-spec example carries every provenance section, and its export validates."""
    spec = Path(__file__).parents[1] / "bundle-spec/examples/full-provenance"
    b = hepbundle.build(spec, tmp_path / "b")
    meta = b.manifest.meta
    assert set(meta["provenance"]) == {"code", "environment", "training"}
    assert [d["type"] for d in meta["data"]] == ["npz", "rucio", "opendata"]
    assert (
        meta["data"][0]["record"]["mediaType"] == "application/vnd.hepbundle.npz-provenance.v1+json"
    )
    assert meta["parents"][0]["relation"] == "fine_tuned_from"
    stmt = slsa.statement(b.manifest, b.manifest_digest)
    check_against_slsa_schema(stmt)
    names = [d["name"] for d in stmt["predicate"]["buildDefinition"]["resolvedDependencies"]]
    assert names == [
        "code",
        "provenance/environment.lock",
        "container",
        "data/jets.npz",
        meta["data"][1]["did"],
        "10.7483/OPENDATA.CMS.A342.9982",
        "demo/jet-tagger-onnx@1.0.0",
    ]


@pytest.mark.parametrize("kind", ["key", "x509"])
def test_signed_attestation_round_trip(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path], tmp_path: Path, kind: str
) -> None:
    """The SLSA statement signed as a second attestation by the bundle's signer kinds (a real EC
    key; a real X.509 certificate under a test CA), verified under a trust policy; tampering and
    a rebuilt bundle are refused."""
    from hepbundle.attestation import sign_provenance, verify_provenance
    from hepbundle.policy import TrustPolicy
    from hepbundle.signing import KeySigner, X509Signer

    from . import pki

    att = tmp_path / "prov.sigstore.json"
    if kind == "key":
        sign_provenance(str(signed.root), KeySigner(ec_key[0]), att)
        policy = TrustPolicy.from_flags(keys=[ec_key[1]])
    else:
        ca = pki.make_ca()
        ca_pem = pki.write_pem(tmp_path / "ca.pem", ca.cert)
        cert, key = pki.make_cert(ca).write(tmp_path, "user")
        sign_provenance(str(signed.root), X509Signer(cert, key, ()), att)
        policy = TrustPolicy.from_flags(ca=[ca_pem], subjects=["*"])
    assert policy is not None
    res = verify_provenance(att, str(signed.root), policy)
    check_against_slsa_schema(res.statement)
    assert res.statement == slsa.statement(signed.manifest, signed.manifest_digest)
    assert res.signers[0].kind == kind
    # the attestation is not part of the bundle: the bundle still verifies as before
    assert signed.verify().ok and not (signed.root / att.name).exists()
    doc = json.loads(att.read_text())
    env = doc["dsseEnvelope"]
    stmt = json.loads(base64.b64decode(env["payload"]))
    stmt["subject"][0]["digest"]["sha256"] = "0" * 64
    env["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(hepbundle.SignatureError, match="is not about atlas/tauid@1.2.0"):
        verify_provenance(bad, str(signed.root), policy)
    with pytest.raises(hepbundle.VerificationError):
        stmt["subject"][0]["digest"]["sha256"] = signed.manifest_digest
        stmt["predicate"]["buildDefinition"]["externalParameters"]["seeds"] = {"numpy": 1}
        env["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
        bad.write_text(json.dumps(doc))
        verify_provenance(bad, str(signed.root), policy)
    with pytest.raises(hepbundle.HepbundleError, match="already exists"):
        sign_provenance(str(signed.root), KeySigner(ec_key[0]), att)


def test_attest_cli(signed: hepbundle.Bundle, ec_key: tuple[Path, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    att = tmp_path / "a.json"
    r = runner.invoke(main, ["attest", str(signed.root), "--key", str(ec_key[0]), "-o", str(att)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        main, ["verify-attestation", str(att), str(signed.root), "--key", str(ec_key[1])]
    )
    assert r.exit_code == 0, r.output
    assert r.output.startswith("OK atlas/tauid@1.2.0: provenance signed by key sha256:")
    other = hepbundle.signing.generate_key(tmp_path / "other.pem")
    r = runner.invoke(
        main, ["verify-attestation", str(att), str(signed.root), "--key", str(other[1])]
    )
    assert r.exit_code == 1 and "not allowed" in r.output
