"""Hash agility: the manifest names its digest algorithm (sha256 or blake3), every reader
dispatches through one table, and an unknown algorithm is refused (bundle-spec/README.md § 5.1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.cache import VerificationCache
from hepbundle.cli import main
from hepbundle.digest import ALGORITHMS, DEFAULT_ALGORITHM, UnknownAlgorithmError, algorithm
from hepbundle.errors import FormatError, IntegrityError, SignatureError
from hepbundle.signing import KeySigner, TrustPolicy, sign

ALGS = sorted(ALGORITHMS)


@pytest.fixture(params=ALGS)
def any_built(request: pytest.FixtureRequest, model_dir: Path, tmp_path: Path) -> hepbundle.Bundle:
    return hepbundle.build(model_dir, tmp_path / "out" / request.param, algorithm=request.param)


def _manifest(b: hepbundle.Bundle) -> dict[str, object]:
    doc: dict[str, object] = json.loads((b.root / "hepbundle.json").read_bytes())
    return doc


def _write(b: hepbundle.Bundle, doc: dict[str, object]) -> None:
    (b.root / "hepbundle.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def test_reference_vectors() -> None:
    """The registered algorithms are the standard ones over the plain bytes (what sha256sum and
    b3sum print), so any implementation can check a bundle."""
    assert algorithm("sha256").hex(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    # BLAKE3 test vector of the reference implementation: the empty input
    assert algorithm("blake3").hex(b"") == (
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    )
    assert DEFAULT_ALGORITHM in ALGORITHMS


def test_unknown_algorithm_name_refused() -> None:
    with pytest.raises(UnknownAlgorithmError, match=r"unsupported digest algorithm 'md5'.*sha256"):
        algorithm("md5")


def test_manifest_names_its_algorithm_and_entries_carry_that_member(
    any_built: hepbundle.Bundle, model_dir: Path
) -> None:
    from hepbundle.digest import hash_file
    from hepbundle.spec import validate

    doc = _manifest(any_built)
    validate(doc, "manifest.schema.json")
    alg = any_built.algorithm
    assert doc["hashing"] == {  # type: ignore[comparison-overlap]
        "algorithm": alg,
        "ignore": ["hepbundle.json", "hepbundle.sig", "hepbundle.*.sig", ".cvmfscatalog"],
        "symlinks": "refuse",
    }
    files = {f["path"]: f for f in doc["files"]}  # type: ignore[attr-defined]
    entry = files["model/weights.bin"]
    assert set(entry) == {"path", "size", alg, "role"}
    assert entry[alg] == hash_file(model_dir / "model/weights.bin", alg).digest
    # the manifest digest (catalogue identity) is SHA-256 whatever the files' algorithm
    assert any_built.manifest_digest == algorithm("sha256").hex(
        (any_built.root / "hepbundle.json").read_bytes()
    )


def test_both_algorithms_verify_and_catch_tampering(any_built: hepbundle.Bundle) -> None:
    assert any_built.verify().ok
    p = any_built.root / "model/weights.bin"
    data = bytearray(p.read_bytes())
    data[7] ^= 1
    p.write_bytes(bytes(data))
    report = hepbundle.open(any_built.root, verify="none").verify()
    assert report.of_kind("modified") == ["model/weights.bin"]
    assert f"{any_built.algorithm} differs" in str(report.problems[0])
    with pytest.raises(IntegrityError, match="model/weights.bin"):
        hepbundle.open(any_built.root, verify="integrity").path("model/weights.bin")  # unsigned


def test_unknown_manifest_algorithm_refused_with_its_name(built: hepbundle.Bundle) -> None:
    doc = _manifest(built)
    doc["hashing"]["algorithm"] = "sha3-256"  # type: ignore[index]
    _write(built, doc)
    with pytest.raises(FormatError, match=r"hashing\.algorithm: unsupported digest algorithm"):
        hepbundle.open(built.root)
    r = CliRunner().invoke(main, ["verify", str(built.root)])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "'sha3-256'" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("alg", ALGS)
def test_digest_member_of_another_algorithm_refused(
    model_dir: Path, tmp_path: Path, alg: str
) -> None:
    """Both the schema and the reader refuse an entry whose digest member is not the one the
    manifest names (a sha256 value relabelled, or an algorithm switched without re-hashing)."""
    import jsonschema

    from hepbundle.spec import validate

    b = hepbundle.build(model_dir, tmp_path / alg, algorithm=alg)
    other = next(a for a in ALGS if a != alg)
    doc = _manifest(b)
    doc["files"][0][other] = doc["files"][0].pop(alg)  # type: ignore[index]
    with pytest.raises((jsonschema.ValidationError, hepbundle.SpecError)):
        validate(doc, "manifest.schema.json")
    _write(b, doc)
    with pytest.raises(FormatError, match=rf"a {other} digest in a {alg} manifest"):
        hepbundle.open(b.root)
    # switching hashing.algorithm alone does not make the old digests acceptable
    doc = _manifest(hepbundle.build(model_dir, tmp_path / f"{alg}-2", algorithm=alg))
    doc["hashing"]["algorithm"] = other  # type: ignore[index]
    with pytest.raises((jsonschema.ValidationError, hepbundle.SpecError)):
        validate(doc, "manifest.schema.json")


def test_sign_and_verify_both_algorithms(
    any_built: hepbundle.Bundle, ec_key: tuple[Path, Path]
) -> None:
    sign(any_built.root, KeySigner(ec_key[0]))
    stmt = _statement(any_built.root / "hepbundle.sig")
    alg = any_built.algorithm
    assert stmt["predicate"]["serialization"]["hash_type"] == alg
    resources = {r["name"]: r for r in stmt["predicate"]["resources"]}
    assert {r["algorithm"] for r in resources.values()} == {alg}
    assert resources["hepbundle.json"]["digest"] == algorithm(alg).hex(
        (any_built.root / "hepbundle.json").read_bytes()
    )
    b = hepbundle.open(any_built.root, policy=TrustPolicy.from_flags(keys=[ec_key[1]]))
    assert b.signature and b.verify().ok


def test_statement_mixing_algorithms_refused(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path]
) -> None:
    """A statement whose resources name another algorithm than its hash_type is malformed (upstream
    would fail on it too); one in an unknown algorithm is refused by name."""
    from hepbundle import signing
    from hepbundle._signers.statement import Payload

    policy = TrustPolicy.from_flags(keys=[ec_key[1]])
    digests = {f.path: f.digest for f in signed.manifest.files}
    digests["hepbundle.json"] = signed.manifest_digest_as()
    extra = {"signedAt": "2020-01-01T00:00:00Z", "role": "primary", "name": signed.ref}
    stmt = signing._payload(signed.ref, digests, ["hepbundle.sig"], extra, "blake3").document

    def signed_file() -> str:
        return KeySigner(ec_key[0]).sign_payload(Payload(json.dumps(stmt, indent=2).encode()))

    stmt["predicate"]["resources"][0]["algorithm"] = "sha256"
    (signed.root / "hepbundle.sig").write_text(signed_file())
    with pytest.raises(SignatureError, match="malformed signature file.*'blake3'"):
        hepbundle.open(signed.root, policy=policy)
    stmt["predicate"]["resources"][0]["algorithm"] = "blake3"
    stmt["predicate"]["serialization"]["hash_type"] = "blake2"
    for r in stmt["predicate"]["resources"]:
        r["algorithm"] = "blake2"
    (signed.root / "hepbundle.sig").write_text(signed_file())
    with pytest.raises(SignatureError, match="unsupported digest algorithm 'blake2'"):
        hepbundle.open(signed.root, policy=policy)


def test_node_cache_for_both_algorithms(any_built: hepbundle.Bundle, tmp_path: Path) -> None:
    def opened() -> hepbundle.Bundle:
        b = hepbundle.Bundle.load(any_built.root)
        b.cache = VerificationCache(tmp_path / "cache")
        return b

    first = opened().verify()
    assert first.ok and first.cached == 0 and first.bytes > 0
    again = opened().verify()
    assert again.ok and again.cached == len(any_built.manifest.files) and again.bytes == 0


def test_slsa_export_names_the_digest_algorithm(any_built: hepbundle.Bundle) -> None:
    """The SLSA subject is the manifest's SHA-256 (a name every in-toto consumer knows); the
    model byproducts carry the bundle's own digests under their algorithm's name."""
    from hepbundle.provenance import slsa

    st = slsa.statement(any_built.manifest, any_built.manifest_digest)
    assert st["subject"] == [
        {"name": any_built.ref, "digest": {"sha256": any_built.manifest_digest}}
    ]
    by = {p["name"]: p["digest"] for p in st["predicate"]["runDetails"].get("byproducts", [])}
    entry = any_built.manifest.file("model/model.onnx")
    assert by["model/model.onnx"] == {any_built.algorithm: entry.digest}


def test_cli_build_digest_option(model_dir: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(
        main, ["build", str(model_dir), "-o", str(tmp_path / "b"), "--digest", "sha256", "--json"]
    )
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["algorithm"] == "sha256"
    assert hepbundle.open(tmp_path / "b", verify="integrity").algorithm == "sha256"
    r = CliRunner().invoke(
        main, ["build", str(model_dir), "-o", str(tmp_path / "c"), "--digest", "md5"]
    )
    assert r.exit_code == 2 and "md5" in r.stderr and not (tmp_path / "c").exists()


def _statement(sig: Path) -> dict[str, object]:
    import base64

    doc = json.loads(sig.read_text())
    out: dict[str, object] = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    return out
