"""The signing commands through CliRunner, and our signatures through the upstream
``model_signing`` command-line tool."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.cli import main

from . import pki
from .needs import missing


def run(*args: object) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def test_key_generate_sign_verify(built: hepbundle.Bundle, tmp_path: Path) -> None:
    """The main job: a fresh key, sign, verify with the public key."""
    code, out, err = run("key", "generate", "-o", tmp_path / "k.pem")
    assert code == 0, err
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    code, out, err = run("sign", built.root, "--key", tmp_path / "k.pem")
    assert code == 0, err
    assert out.startswith(f"signed {built.root} as primary by key sha256:")
    code, out, err = run("verify", built.root, "--key", tmp_path / "k.pub.pem")
    assert code == 0, err
    assert out.startswith("OK atlas/tauid@1.2.0: signed by key sha256:") and "3 files" in out
    code, out, _ = run("verify", built.root, "--key", tmp_path / "k.pub.pem", "--json")
    res = json.loads(out)
    assert (
        res["ok"] and res["signers"][0]["kind"] == "key" and res["signers"][0]["role"] == "primary"
    )
    # without a policy: refused, with how to configure trust
    code, out, err = run("verify", built.root)
    assert code == 1 and out == "" and "no trust policy configured" in err and "--policy" in err
    # integrity only must be asked for by name, and is never reported as verified
    code, out, err = run("verify", built.root, "--integrity-only")
    assert code == 0 and out.startswith("INTEGRITY ONLY atlas/tauid@1.2.0: signatures NOT checked")
    assert "verified" not in out
    code, out, _ = run("verify", built.root, "--integrity-only", "--json")
    res = json.loads(out)
    assert res["ok"] and res["verified"] is False and res["mode"] == "integrity-only"


def test_key_generate_json(built: hepbundle.Bundle, tmp_path: Path) -> None:
    """`key generate --json` names both files, the curve and the key id `sign` reports."""
    code, gen, err = run(
        "key", "generate", "-o", tmp_path / "k2.pem", "--curve", "secp384r1", "--json"
    )
    assert code == 0, err
    res = json.loads(gen)
    assert res == {
        "private": str(tmp_path / "k2.pem"),
        "public": str(tmp_path / "k2.pub.pem"),
        "curve": "secp384r1",
        "keyId": res["keyId"],
    }
    assert res["keyId"].startswith("sha256:")
    code, out, err = run("sign", built.root, "--key", tmp_path / "k2.pem", "--as", "release")
    assert code == 0, err
    assert out.rstrip().endswith(f"by key {res['keyId']} -> hepbundle.release.sig"), out


def test_key_is_private_to_sign_and_trust_key_public(
    built: hepbundle.Bundle, tmp_path: Path
) -> None:
    """One meaning each: --key of a command that signs is the PRIVATE key, --trust-key is a
    PUBLIC key in every verifying command; the wrong kind of PEM is one line, exit 2."""
    assert run("key", "generate", "-o", tmp_path / "k.pem")[0] == 0
    code, out, err = run("sign", built.root, "--key", tmp_path / "k.pub.pem")
    assert code == 2 and out == "", err
    assert "k.pub.pem is a public key, not a private key" in err and "--trust-key" in err, err
    assert len(err.strip().splitlines()) <= 2 and "Traceback" not in err, err
    ca = pki.make_ca()
    cert, _ = pki.make_cert(ca).write(tmp_path, "usercert")
    code, _, err = run("sign", built.root, "--key", cert)
    assert code == 2 and "is a certificate, not a private key" in err and "--cert" in err, err
    assert run("sign", built.root, "--key", tmp_path / "k.pem")[0] == 0
    for flag in ("--key", "--trust-key"):
        code, out, err = run("verify", built.root, flag, tmp_path / "k.pem")
        assert code == 2 and out == "", (flag, err)
        assert "k.pem is a private key: a key to trust is the PUBLIC key" in err, (flag, err)
        code, out, err = run("verify", built.root, flag, tmp_path / "k.pub.pem")
        assert code == 0 and out.startswith("OK atlas/tauid@1.2.0: signed by key"), (flag, err)


def test_verify_signature_before_digests(signed: hepbundle.Bundle, tmp_path: Path) -> None:
    _, other = pki.write_key(pki.ec_key(), tmp_path / "other.pem")
    code, _, err = run("verify", signed.root, "--key", other)
    assert code == 1 and err.count("\n") == 1
    assert "is not allowed to sign atlas/tauid" in err


def test_x509_cli_with_policy_and_cosignature(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path], tmp_path: Path
) -> None:
    ca = pki.make_ca()
    ca_pem = pki.write_pem(tmp_path / "ca.pem", ca.cert)
    cert, key = pki.make_cert(ca, key=pki.rsa_key()).write(tmp_path, "usercert")
    code, out, err = run("sign", signed.root, "--cert", cert, "--key", key, "--as", "author")
    assert code == 0, err
    assert (signed.root / "hepbundle.author.sig").is_file()
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nrules:\n  - namespace: atlas\n    signers:\n      all_of:\n"
        f"        - {{key: {ec_key[1]}}}\n"
        f"        - x509: {{ca: {ca_pem}, subject: '/DC=ch/DC=cern/OU=Users/CN=jdoe/*'}}\n"
        "          role: author\n"
    )
    code, out, err = run("verify", signed.root, "--policy", policy, "--json")
    assert code == 0, err
    kinds = [(s["kind"], s["role"]) for s in json.loads(out)["signers"]]
    assert kinds == [("key", "primary"), ("x509", "author")]
    code, out, err = run("verify", signed.root, "--ca", ca_pem, "--subject", "/DC=ch/*/CN=mallory")
    assert code == 1 and "is not allowed to sign atlas/tauid" in err


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["sign", "{b}"], "say how to sign", 2),
        (["sign", "{b}", "--cert", "{k}"], "--cert needs --key", 2),
        (["sign", "{b}", "--sigstore", "--key", "{k}"], "drop --key/--cert", 2),
        (["sign", "{b}", "--key", "{rsa}"], "unsupported key type RSA-2048", 2),
        (["verify", "{b}", "--subject", "CN=x"], "--subject needs --ca", 2),
        (["verify", "{b}", "--identity", "a@b"], "--identity and --issuer go together", 2),
        (["verify", "{b}", "--key", "{pub}", "--policy", "{pub}"], "either --policy or", 2),
    ],
)
def test_cli_errors_one_line(
    built: hepbundle.Bundle,
    ec_key: tuple[Path, Path],
    tmp_path: Path,
    args: list[str],
    message: str,
    code: int,
) -> None:
    rsa, _ = pki.write_key(pki.rsa_key(), tmp_path / "rsa.pem")
    subst = {"b": built.root, "k": ec_key[0], "pub": ec_key[1], "rsa": rsa}
    got, _, err = run(*(a.format(**subst) for a in args))
    assert got == code and message in err and err.count("\n") == 1 and "Traceback" not in err


# --- the upstream model_signing command line ---------------------------------------------------

_UPSTREAM = Path(sys.executable).with_name("model_signing")


@pytest.fixture
def upstream_cli() -> None:
    """The upstream model_signing console script (a dependency of hepbundle, so always present
    in an installed environment)."""
    if not _UPSTREAM.exists():
        missing("model_signing console script not installed")


def _upstream(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_UPSTREAM), *map(str, args)], capture_output=True, text=True, timeout=120
    )


# model_signing 1.1.1's command line hashes with SHA-256 whatever the signature says (its verify
# commands pass a default hashing configuration; there is no algorithm option), so SHA-256
# bundles are checked with the command and BLAKE3 bundles with upstream's Python API, which takes
# the algorithm from the signed statement (serialization.hash_type) — docs/signing.md.
_UPSTREAM_API = """
import sys
from model_signing import hashing, signing, verifying
op, model, sig, key = sys.argv[1:5]
if op == "verify":
    verifying.Config().use_elliptic_key_verifier(public_key=key).verify(model, sig)
else:
    signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(
        hashing.Config().use_file_serialization(hashing_algorithm=sys.argv[5])
    ).sign(model, sig)
print("upstream", op, "succeeded")
"""


def _upstream_api(*args: object) -> subprocess.CompletedProcess[str]:
    """Upstream model_signing's own Python API, in a fresh interpreter (no hepbundle import)."""
    return subprocess.run(
        [sys.executable, "-c", _UPSTREAM_API, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def built_sha256(model_dir: Path, tmp_path: Path) -> hepbundle.Bundle:
    return hepbundle.build(model_dir, tmp_path / "sha256" / "1.2.0", algorithm="sha256")


@pytest.fixture
def signed_sha256(built_sha256: hepbundle.Bundle, ec_key: tuple[Path, Path]) -> hepbundle.Bundle:
    assert run("sign", built_sha256.root, "--key", ec_key[0])[0] == 0
    return built_sha256


@pytest.mark.integration
@pytest.mark.usefixtures("upstream_cli")
def test_upstream_verifies_key_signature(
    signed_sha256: hepbundle.Bundle, ec_key: tuple[Path, Path]
) -> None:
    """`model_signing verify key` accepts our signature, also once published into CVMFS (the
    nested-catalog marker is in the signed ignore list), and catches a modified file."""
    signed = signed_sha256
    (signed.root / ".cvmfscatalog").touch()
    sig = signed.root / "hepbundle.sig"
    r = _upstream("verify", "key", signed.root, "--signature", sig, "--public_key", ec_key[1])
    assert r.returncode == 0 and "Verification succeeded" in r.stdout, r.stderr
    r = _upstream_api("verify", signed.root, sig, ec_key[1])
    assert r.returncode == 0, r.stderr
    (signed.root / "model" / "weights.bin").write_bytes(b"evil")
    r = _upstream("verify", "key", signed.root, "--signature", sig, "--public_key", ec_key[1])
    assert r.returncode == 1 and "Hash mismatch for 'model/weights.bin'" in r.stderr


@pytest.mark.integration
@pytest.mark.usefixtures("upstream_cli")
def test_upstream_verifies_blake3_key_signature(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path]
) -> None:
    """A BLAKE3 bundle's signature (hash_type and every resource algorithm ``blake3``, digests
    of the plain file contents) verifies with upstream model_signing's API, also with the CVMFS
    marker present, and upstream catches a modified file. Upstream's 1.1.1 command line cannot:
    it recomputes SHA-256 and reports every file as mismatched (the documented cost)."""
    assert signed.algorithm == "blake3"
    (signed.root / ".cvmfscatalog").touch()
    sig = signed.root / "hepbundle.sig"
    r = _upstream_api("verify", signed.root, sig, ec_key[1])
    assert r.returncode == 0 and "upstream verify succeeded" in r.stdout, r.stderr
    r = _upstream("verify", "key", signed.root, "--signature", sig, "--public_key", ec_key[1])
    assert r.returncode == 1 and "Expected 'Digest(algorithm='blake3'" in r.stderr
    assert "Actual 'Digest(algorithm='sha256'" in r.stderr
    (signed.root / "model" / "weights.bin").write_bytes(b"evil")
    r = _upstream_api("verify", signed.root, sig, ec_key[1])
    assert r.returncode == 1 and "Hash mismatch for 'model/weights.bin'" in r.stderr


@pytest.mark.integration
@pytest.mark.parametrize("alg", ["sha256", "blake3"])
def test_bundle_signed_by_upstream_api_verifies_here(
    model_dir: Path, tmp_path: Path, ec_key: tuple[Path, Path], alg: str
) -> None:
    """Upstream's API signing with the bundle's algorithm gives a signature hepbundle accepts;
    one in the other algorithm is refused with the reason (no payload is re-hashed at open)."""
    b = hepbundle.build(model_dir, tmp_path / alg, algorithm=alg)
    sig = b.root / "hepbundle.sig"
    r = _upstream_api("sign", b.root, sig, ec_key[0], alg)
    assert r.returncode == 0, r.stderr
    code, out, err = run("verify", b.root, "--key", ec_key[1], "--json")
    assert code == 0 and json.loads(out)["signers"][0]["kind"] == "key", err
    other = "sha256" if alg == "blake3" else "blake3"
    r = _upstream_api("sign", b.root, sig, ec_key[0], other)
    assert r.returncode == 0, r.stderr
    code, _, err = run("verify", b.root, "--key", ec_key[1])
    assert code == 1 and f"signs {other} digests but the manifest lists {alg} digests" in err


@pytest.mark.integration
@pytest.mark.usefixtures("upstream_cli")
def test_upstream_verifies_ec_certificate_signature(
    built_sha256: hepbundle.Bundle, tmp_path: Path, ec_key: tuple[Path, Path]
) -> None:
    """`model_signing verify certificate` accepts our EC certificate signature (through an
    intermediate); a co-signature is skipped with --ignore-paths. For RSA it fails: upstream
    verifies ECDSA only, which docs/signing.md states."""
    built = built_sha256
    root_ca = pki.make_ca()
    inter = pki.make_ca("Test Intermediate", issuer=root_ca)
    cert, key = pki.make_cert(inter).write(tmp_path, "user")
    chain = pki.write_pem(tmp_path / "chain.pem", inter.cert)
    ca_pem = pki.write_pem(tmp_path / "ca.pem", root_ca.cert)
    assert run("sign", built.root, "--cert", cert, "--key", key, "--chain", chain)[0] == 0
    assert run("sign", built.root, "--key", ec_key[0], "--as", "release")[0] == 0
    sig = built.root / "hepbundle.sig"
    r = _upstream(
        "verify",
        "certificate",
        built.root,
        "--signature",
        sig,
        "--certificate_chain",
        ca_pem,
        "--ignore-paths",
        built.root / "hepbundle.release.sig",
    )
    assert r.returncode == 0 and "Verification succeeded" in r.stdout, r.stderr

    rsa_bundle = tmp_path / "rsa-bundle"
    shutil.copytree(built.root, rsa_bundle)
    for s in rsa_bundle.glob("hepbundle*.sig"):
        s.unlink()
    cert, key = pki.make_cert(root_ca, key=pki.rsa_key()).write(tmp_path, "rsa")
    assert run("sign", rsa_bundle, "--cert", cert, "--key", key)[0] == 0
    assert run("verify", rsa_bundle, "--ca", ca_pem)[0] == 0
    r = _upstream(
        "verify",
        "certificate",
        rsa_bundle,
        "--signature",
        rsa_bundle / "hepbundle.sig",
        "--certificate_chain",
        ca_pem,
    )
    assert r.returncode == 1


@pytest.mark.integration
@pytest.mark.usefixtures("upstream_cli")
def test_bundle_signed_by_upstream_verifies_here(
    built_sha256: hepbundle.Bundle, ec_key: tuple[Path, Path]
) -> None:
    """The other direction: `model_signing sign key` on a bundle directory gives a signature
    hepbundle accepts (it covers hepbundle.json too); it records no signing time. The command
    signs SHA-256 only, so this is a SHA-256 bundle (BLAKE3: the API test above)."""
    built = built_sha256
    sig = built.root / "hepbundle.sig"
    r = _upstream("sign", "key", built.root, "--signature", sig, "--private_key", ec_key[0])
    assert r.returncode == 0, r.stderr
    code, out, err = run("verify", built.root, "--key", ec_key[1], "--json")
    assert code == 0, err
    assert json.loads(out)["signers"][0]["kind"] == "key"


def test_verify_refuses_rsa_public_key_for_key_signatures(
    signed: hepbundle.Bundle, tmp_path: Path
) -> None:
    _, pub = pki.write_key(pki.rsa_key(), tmp_path / "rsa.pem")
    code, _, err = run("verify", signed.root, "--key", pub)
    assert code == 2 and "unsupported key type RSA-2048" in err and "trust their CA" in err
