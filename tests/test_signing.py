"""Signing and signature verification through the library: every signer kind, the tamper cases,
co-signatures, directories, CA directories with CRLs, and the no-policy rule of ``open``."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import hepbundle
from hepbundle import signing
from hepbundle.errors import (
    HepbundleError,
    IntegrityError,
    PolicyError,
    SignatureError,
    SigningError,
    VerificationError,
)
from hepbundle.policy import TrustPolicy

from . import pki

DN = "/DC=ch/DC=cern/OU=Users/CN=jdoe/CN=Jane Doe"


@dataclass
class Pki:
    """A CA, its PEM file, and a directory to write certificates into."""

    ca: pki.Issued
    ca_pem: Path
    dir: Path

    def user(self, stem: str, **kw: object) -> tuple[Path, Path]:
        return pki.make_cert(self.ca, **kw).write(self.dir, stem)  # type: ignore[arg-type]


@pytest.fixture
def grid(tmp_path: Path) -> Pki:
    ca = pki.make_ca()
    return Pki(ca, pki.write_pem(tmp_path / "pki" / "ca.pem", ca.cert), tmp_path / "pki")


def x509_policy(grid: Pki, subject: str = DN) -> TrustPolicy:
    policy = TrustPolicy.from_flags(ca=[grid.ca_pem], subjects=[subject])
    assert policy is not None
    return policy


def key_policy(pub: Path) -> TrustPolicy:
    policy = TrustPolicy.from_flags(keys=[pub])
    assert policy is not None
    return policy


# --- every signer kind ------------------------------------------------------------------------


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_key_signer_every_curve(
    built: hepbundle.Bundle, tmp_path: Path, curve: ec.EllipticCurve
) -> None:
    priv, pub = pki.write_key(pki.ec_key(curve), tmp_path / "k.pem")
    res = signing.sign(built.root, signing.KeySigner(priv))
    assert res.path == built.root / "hepbundle.sig" and res.role == "primary"
    [who] = signing.verify(built.root, key_policy(pub)).signers or []
    assert who.kind == "key" and res.signer == f"key {who.identity}"


@pytest.mark.parametrize(
    ("kind", "with_chain"),
    [("ec", False), ("ec", True), ("rsa", False), ("rsa", True)],
)
def test_x509_signer(built: hepbundle.Bundle, grid: Pki, kind: str, with_chain: bool) -> None:
    """EC and RSA end-entity certificates, directly under the root or under an intermediate
    shipped in the signature (--chain)."""
    issuer = pki.make_ca("Test Intermediate", issuer=grid.ca) if with_chain else grid.ca
    key = pki.rsa_key() if kind == "rsa" else pki.ec_key()
    cert, priv = pki.make_cert(issuer, key=key).write(grid.dir, f"user-{kind}")
    chain = [pki.write_pem(grid.dir / "chain.pem", issuer.cert)] if with_chain else []
    signing.sign(built.root, signing.X509Signer(cert, priv, chain))
    b = hepbundle.open(built.root, verify="full", policy=x509_policy(grid))
    assert [(s.kind, s.identity) for s in b.signature] == [("x509", DN)]
    assert b.signature[0].details["issuer"] == pki.dn(issuer.cert.subject)


def test_rsa_signature_layout_is_oms(built: hepbundle.Bundle, grid: Pki) -> None:
    """The RSA signer writes the same OMS layout as model_signing's certificate signer."""
    cert, priv = grid.user("rsa", key=pki.rsa_key())
    signing.sign(built.root, signing.X509Signer(cert, priv))
    doc = json.loads((built.root / "hepbundle.sig").read_text())
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert doc["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"
    assert len(doc["verificationMaterial"]["x509CertificateChain"]["certificates"]) == 1
    import base64

    stmt = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    assert stmt["predicateType"] == "https://model_signing/signature/v1.0"
    names = {r["name"] for r in stmt["predicate"]["resources"]}
    assert names == {"hepbundle.json", *(f.path for f in built.manifest.files)}
    assert set(stmt["predicate"]["serialization"]["ignore_paths"]) >= {
        "hepbundle.sig",
        ".cvmfscatalog",
    }


# --- signing refuses what it must ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: pki.write_key(pki.rsa_key(), d / "rsa.pem")[0], "unsupported key type RSA-2048"),
        (
            lambda d: pki.write_key(pki.ec_key(ec.SECP256K1()), d / "k1.pem")[0],
            "unsupported key type EC secp256k1",
        ),
        (lambda d: _ed25519(d / "ed.pem"), "unsupported key type Ed25519"),
        (lambda d: _text(d / "junk.pem", "not a key"), "is not a PEM private key"),
    ],
    ids=["rsa-without-cert", "secp256k1", "ed25519", "junk"],
)
def test_key_signer_refuses(tmp_path: Path, make: Callable[[Path], Path], message: str) -> None:
    with pytest.raises(SigningError, match=message):
        signing.KeySigner(make(tmp_path))


def _ed25519(path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization

    key = ed25519.Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_proxy_certificate_refused(grid: Pki) -> None:
    user = pki.make_cert(grid.ca, key=pki.rsa_key())
    proxy = pki.make_proxy(user)
    cert, key = proxy.write(grid.dir, "x509up")
    with pytest.raises(SigningError, match="proxy certificate; sign with the end-entity"):
        signing.X509Signer(cert, key, [pki.write_pem(grid.dir / "user.pem", user.cert)])


def test_certificate_key_mismatch(grid: Pki) -> None:
    cert, _ = grid.user("a")
    _, other = grid.user("b")
    with pytest.raises(SigningError, match="is not the private key of"):
        signing.X509Signer(cert, other)


def test_damaged_bundle_is_not_signed(built: hepbundle.Bundle, ec_key: tuple[Path, Path]) -> None:
    (built.root / "model" / "weights.bin").write_bytes(b"evil")
    with pytest.raises(IntegrityError, match="refusing to sign.*modified model/weights.bin"):
        signing.sign(built.root, signing.KeySigner(ec_key[0]))
    assert not (built.root / "hepbundle.sig").exists()


def test_existing_signature_needs_force(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path]
) -> None:
    with pytest.raises(SigningError, match="already exists"):
        signing.sign(signed.root, signing.KeySigner(ec_key[0]))
    signing.sign(signed.root, signing.KeySigner(ec_key[0]), force=True)
    assert not list(signed.root.glob(".*tmp"))


# --- tamper cases -------------------------------------------------------------------------------


def _flip(root: Path) -> None:
    p = root / "model" / "weights.bin"
    data = bytearray(p.read_bytes())
    data[100] ^= 0x01
    p.write_bytes(bytes(data))


def _edit_manifest(root: Path) -> None:
    """Forge the manifest so it matches a modified file: integrity alone would pass."""
    p = root / "model" / "weights.bin"
    p.write_bytes(b"evil weights")
    doc = json.loads((root / "hepbundle.json").read_text())
    alg = doc["hashing"]["algorithm"]
    for f in doc["files"]:
        if f["path"] == "model/weights.bin":
            from hepbundle.digest import algorithm

            f[alg], f["size"] = algorithm(alg).hex(b"evil weights"), 12
    (root / "hepbundle.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _copy_signature(root: Path, other: Path) -> None:
    shutil.copy(other / "hepbundle.sig", root / "hepbundle.sig")


TAMPER: dict[str, tuple[Callable[[Path], None], type[VerificationError], str]] = {
    "byte-flip": (_flip, IntegrityError, "modified model/weights.bin"),
    "added": (
        lambda r: (r / "model" / "extra.py").write_text("x"),
        IntegrityError,
        "extra model/extra.py",
    ),
    "removed": (
        lambda r: (r / "model" / "weights.bin").unlink(),
        IntegrityError,
        "missing model/weights.bin",
    ),
    "renamed": (
        lambda r: (r / "model" / "weights.bin").rename(r / "model" / "w.bin"),
        IntegrityError,
        r"extra model/w.bin .*; missing model/weights.bin",
    ),
    "edited-manifest": (_edit_manifest, SignatureError, "digest mismatch in hepbundle.json"),
    "malformed-signature": (
        lambda r: (r / "hepbundle.sig").write_text("{not json"),
        SignatureError,
        "hepbundle.sig: malformed signature file",
    ),
    "unsigned": (lambda r: (r / "hepbundle.sig").unlink(), SignatureError, "is unsigned"),
}


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_tamper_case_fails_verification(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path], case: str
) -> None:
    tamper, error, message = TAMPER[case]
    tamper(signed.root)
    with pytest.raises(error, match=message):
        signing.verify(signed.root, key_policy(ec_key[1])).report.raise_for_problems()
    with pytest.raises(error, match=message):
        hepbundle.open(signed.root, verify="full", policy=key_policy(ec_key[1]))


def test_signature_copied_from_another_bundle(
    signed: hepbundle.Bundle, model_dir: Path, tmp_path: Path, ec_key: tuple[Path, Path]
) -> None:
    """A valid signature of the same name, same key, different content does not transfer."""
    (model_dir / "model" / "weights.bin").write_bytes(b"\x03" * 100)
    other = hepbundle.build(model_dir, tmp_path / "other")
    signing.sign(other.root, signing.KeySigner(ec_key[0]))
    _copy_signature(signed.root, other.root)
    with pytest.raises(
        SignatureError,
        match="digest mismatch in hepbundle.json.*digest mismatch in model/weights.bin",
    ) as e:
        hepbundle.open(signed.root, policy=key_policy(ec_key[1]))
    assert "another bundle" in str(e.value)


def test_byte_flip_is_caught_lazily(signed: hepbundle.Bundle, ec_key: tuple[Path, Path]) -> None:
    """Lazy open checks the signature (no payload hashing); the flipped file fails on use."""
    _flip(signed.root)
    b = hepbundle.open(signed.root, policy=key_policy(ec_key[1]))
    assert b.signature and b.signature[0].kind == "key"
    assert b.path("model/model.onnx").is_file()
    with pytest.raises(IntegrityError, match="model/weights.bin"):
        b.path("model/weights.bin")


def test_corrupted_signature_bytes(signed: hepbundle.Bundle, ec_key: tuple[Path, Path]) -> None:
    doc = json.loads((signed.root / "hepbundle.sig").read_text())
    import base64

    sig = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[-1] ^= 0xFF
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    (signed.root / "hepbundle.sig").write_text(json.dumps(doc))
    with pytest.raises(SignatureError, match="invalid signature"):
        hepbundle.open(signed.root, policy=key_policy(ec_key[1]))


def test_wrong_key(signed: hepbundle.Bundle, tmp_path: Path) -> None:
    _, other = pki.write_key(pki.ec_key(), tmp_path / "other.pem")
    with pytest.raises(
        PolicyError,
        match=r"signer key sha256:\w+ \(hepbundle.sig\) is not allowed to sign atlas/tauid",
    ):
        hepbundle.open(signed.root, policy=key_policy(other))


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        (
            "wrong-dn",
            PolicyError,
            r"signer /DC=ch/DC=cern/OU=Users/CN=mallory \(hepbundle.sig\) is not allowed to sign atlas/tauid",
        ),
        ("untrusted-ca", PolicyError, "untrusted CA: .* issued by /DC=ch/DC=cern/CN=Rogue CA"),
        ("expired", SignatureError, "expired at signing time"),
        ("not-yet-valid", SignatureError, "expired at signing time"),
        ("revoked", PolicyError, "was revoked"),
    ],
)
def test_x509_trust_failures(
    built: hepbundle.Bundle,
    grid: Pki,
    tmp_path: Path,
    case: str,
    error: type[Exception],
    message: str,
) -> None:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    issuer, subject, kw = grid.ca, pki.grid_name("jdoe", "Jane Doe"), {}
    if case == "wrong-dn":
        subject = pki.grid_name("mallory")
    elif case == "untrusted-ca":
        issuer = pki.make_ca("Rogue CA")
    elif case == "expired":
        kw = {"not_before": now - dt.timedelta(days=30), "not_after": now - dt.timedelta(days=1)}
    elif case == "not-yet-valid":
        kw = {"not_before": now + dt.timedelta(days=1), "not_after": now + dt.timedelta(days=30)}
    user = pki.make_cert(issuer, subject, **kw)  # type: ignore[arg-type]
    cert, key = user.write(grid.dir, "user")
    signing.sign(built.root, signing.X509Signer(cert, key))
    policy = x509_policy(grid, "/DC=ch/DC=cern/OU=Users/CN=jdoe/*")
    if case == "revoked":
        igtf = pki.write_igtf_dir(
            tmp_path / "certificates", grid.ca, crls={0: pki.make_crl(grid.ca, [user.cert])}
        )
        policy = TrustPolicy.from_flags(ca=[igtf], subjects=["/DC=ch/DC=cern/OU=Users/CN=jdoe/*"])
    with pytest.raises(error, match=message):
        hepbundle.open(built.root, policy=policy)


def test_igtf_directory_with_crl_of_other_cert(
    built: hepbundle.Bundle, grid: Pki, tmp_path: Path
) -> None:
    """A CA directory in the /etc/grid-security/certificates layout, several CAs and a CRL that
    does not list our signer: accepted."""
    other_ca = pki.make_ca("Other Grid CA")
    victim = pki.make_cert(grid.ca, pki.grid_name("revoked-someone"))
    igtf = pki.write_igtf_dir(
        tmp_path / "certificates", other_ca, grid.ca, crls={1: pki.make_crl(grid.ca, [victim.cert])}
    )
    cert, key = grid.user("user")
    signing.sign(built.root, signing.X509Signer(cert, key))
    policy = TrustPolicy.from_flags(ca=[igtf], subjects=[DN])
    assert hepbundle.open(built.root, policy=policy).signature[0].identity == DN


def test_rfc4514_subject_pattern(built: hepbundle.Bundle, grid: Pki) -> None:
    cert, key = grid.user("user")
    signing.sign(built.root, signing.X509Signer(cert, key))
    policy = x509_policy(grid, "CN=Jane Doe,CN=jdoe,OU=Users,DC=cern,DC=ch")
    assert hepbundle.open(built.root, policy=policy).signature[0].identity == DN


# --- co-signatures and composite policies -------------------------------------------------------


def _write_policy(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    return p


def test_cosignatures_all_of(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path], grid: Pki, tmp_path: Path
) -> None:
    """The author signs with a grid certificate (hepbundle.author.sig), the release manager with
    a key (hepbundle.sig); the policy requires both."""
    policy_file = _write_policy(
        tmp_path,
        f"""
version: 1
rules:
  - namespace: "atlas/*"
    signers:
      all_of:
        - key: {ec_key[1]}
          role: primary
        - x509: {{ca: {grid.ca_pem}, subject: "/DC=ch/DC=cern/OU=Users/CN=jdoe/*"}}
          role: author
""",
    )
    policy = TrustPolicy.load(policy_file)
    with pytest.raises(PolicyError, match="no x509 signature with role 'author'"):
        hepbundle.open(signed.root, policy=policy)
    cert, key = grid.user("user")
    res = signing.sign(signed.root, signing.X509Signer(cert, key), role="author")
    assert res.path.name == "hepbundle.author.sig"
    b = hepbundle.open(signed.root, verify="full", policy=policy)
    assert [(s.kind, s.details["role"]) for s in b.signature] == [
        ("key", "primary"),
        ("x509", "author"),
    ]


def test_stale_cosignature_fails(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path], tmp_path: Path
) -> None:
    """Every signature file must cover this exact manifest, even one the policy does not need."""
    priv, _ = pki.write_key(pki.ec_key(), tmp_path / "rm.pem")
    signing.sign(signed.root, signing.KeySigner(priv), role="release")
    doc = json.loads((signed.root / "hepbundle.release.sig").read_text())
    other = tmp_path / "x"
    other.mkdir()
    (signed.root / "hepbundle.release.sig").write_text(json.dumps(doc))
    assert hepbundle.open(signed.root, policy=key_policy(ec_key[1])).signature
    _edit_manifest(signed.root)
    with pytest.raises(SignatureError, match="digest mismatch in hepbundle.json"):
        hepbundle.open(signed.root, policy=key_policy(ec_key[1]))


def test_cosignature_role_comes_from_the_signed_statement(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path], tmp_path: Path
) -> None:
    """Renaming a review co-signature to hepbundle.release.sig must not satisfy a rule that
    requires a release signature: the role is read from the signed statement."""
    priv, pub = pki.write_key(pki.ec_key(), tmp_path / "reviewer.pem")
    policy_file = _write_policy(
        tmp_path,
        f"""
version: 1
rules:
  - namespace: "*"
    signers:
      all_of:
        - {{key: {ec_key[1]}, role: primary}}
        - {{key: {pub}, role: release}}
""",
    )
    policy = TrustPolicy.load(policy_file)
    signing.sign(signed.root, signing.KeySigner(priv), role="review")
    (signed.root / "hepbundle.review.sig").rename(signed.root / "hepbundle.release.sig")
    with pytest.raises(SignatureError, match="signed as role 'review', not 'release'"):
        hepbundle.open(signed.root, policy=policy)
    (signed.root / "hepbundle.release.sig").unlink()
    signing.sign(signed.root, signing.KeySigner(priv), role="release")
    assert [s.details["role"] for s in hepbundle.open(signed.root, policy=policy).signature] == [
        "primary",
        "release",
    ]


def test_policy_namespaces_first_match(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path], tmp_path: Path
) -> None:
    _, other = pki.write_key(pki.ec_key(), tmp_path / "cms.pem")
    text = f"""
version: 1
rules:
  - namespace: cms
    signers: [{{key: {other}}}]
  - namespace: "atlas/tau*"
    signers: [{{key: {ec_key[1]}}}]
"""
    assert hepbundle.open(signed.root, policy=TrustPolicy.load(_write_policy(tmp_path, text)))
    text = f"""
version: 1
rules:
  - namespace: cms
    signers: [{{key: {other}}}]
"""
    with pytest.raises(PolicyError, match="no rule of trust policy .* covers atlas/tauid"):
        hepbundle.open(signed.root, policy=TrustPolicy.load(_write_policy(tmp_path, text)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "version: 1\nrules:\n  - namespace: x\n    signers:\n"
            "      - x509:\n          ca: ca.pem\n          subjet: '*'\n",
            r"policy.yaml:7: rules\[0\].signers\[0\].x509.subjet: unknown key "
            r"\(did you mean 'subject'\?\)",
        ),
        (
            "version: 1\nrules:\n  - namespace: x\n    signers:\n      - key: nope.pem\n",
            "policy.yaml:5: cannot read public key",
        ),
        ("version: 2\nrules: []\n", "policy.yaml:1: version"),
        (
            "version: 1\nrules:\n  - namespace: x\n    signers:\n      - x509: {subject: '*'}\n",
            "policy.yaml:5",
        ),
    ],
    ids=["typo", "missing-key-file", "version", "x509-without-ca"],
)
def test_policy_file_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    from hepbundle.errors import SpecError

    with pytest.raises(SpecError, match=message):
        TrustPolicy.load(_write_policy(tmp_path, text))


# --- the no-policy rule and HEPBUNDLE_POLICY ----------------------------------------------------


def test_signed_without_policy_is_refused(
    signed: hepbundle.Bundle, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Default deny: no policy anywhere refuses the bundle and says how to configure trust; an
    empty or unreadable HEPBUNDLE_POLICY is an error, not an absent policy."""
    with pytest.raises(PolicyError, match="no trust policy configured, refusing") as e:
        hepbundle.open(signed.root)
    assert "HEPBUNDLE_POLICY" in str(e.value) and "--integrity-only" in str(e.value)
    for value, message in (("", "set but empty"), ("/nonexistent/p.yaml", "does not exist")):
        monkeypatch.setenv("HEPBUNDLE_POLICY", value)
        with pytest.raises(PolicyError, match=message):
            hepbundle.open(signed.root)
    monkeypatch.delenv("HEPBUNDLE_POLICY")
    with caplog.at_level(logging.WARNING, logger="hepbundle"):
        b = hepbundle.open(signed.root, verify="integrity")
    assert b.signature is None and "INTEGRITY CHECKS ONLY" in caplog.text


def test_policy_from_environment(
    signed: hepbundle.Bundle,
    ec_key: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, other = pki.write_key(pki.ec_key(), tmp_path / "other.pem")
    text = f"version: 1\nrules:\n  - namespace: '*'\n    signers: [{{key: {other}}}]\n"
    monkeypatch.setenv("HEPBUNDLE_POLICY", str(_write_policy(tmp_path, text)))
    with pytest.raises(PolicyError, match="not allowed"):
        hepbundle.open(signed.root)
    assert hepbundle.open(signed.root, policy=key_policy(ec_key[1])).signature
    assert hepbundle.open(signed.root, verify="none").signature is None


# --- small directories (evaluation records) -----------------------------------------------------


def test_sign_and_verify_directory(tmp_path: Path, ec_key: tuple[Path, Path]) -> None:
    rec = tmp_path / "record"
    (rec / "plots").mkdir(parents=True)
    (rec / "record.json").write_text('{"auc": 0.93}\n')
    (rec / "plots" / "roc.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    signing.sign_directory(rec, signing.KeySigner(ec_key[0]), name="atlas/tauid-eval")
    policy = key_policy(ec_key[1])
    [who] = signing.verify_directory(rec, policy, name="atlas/tauid")
    assert who.kind == "key"
    (rec / "plots" / "roc.png").write_bytes(b"other")
    with pytest.raises(SignatureError, match="digest mismatch in plots/roc.png"):
        signing.verify_directory(rec, policy, name="atlas/tauid")
    (rec / "notes.txt").write_text("added")
    with pytest.raises(SignatureError, match="extra notes.txt"):
        signing.verify_directory(rec, policy, name="atlas/tauid")


def test_signing_time_in_the_future_is_refused(built: hepbundle.Bundle, grid: Pki) -> None:
    """The X.509 signing time is the signer's claim inside the signed statement: a claim ahead of
    our clock (beyond a 5-minute skew) is refused, so validity cannot be stretched forward."""
    cert, key = grid.user("user")
    digests = {f.path: f.digest for f in built.manifest.files}
    digests["hepbundle.json"] = built.manifest_digest_as()
    extra = {"signedAt": "2099-01-01T00:00:00Z", "role": "primary", "name": built.ref}
    payload = signing._payload(built.ref, digests, ["hepbundle.sig"], extra, built.algorithm)
    text = signing.X509Signer(cert, key).sign_payload(payload)
    (built.root / "hepbundle.sig").write_text(text)
    with pytest.raises(SignatureError, match="signing time 2099-01-01T00:00:00Z is in the future"):
        hepbundle.open(built.root, policy=x509_policy(grid))


def test_golden_signed_bundle_v1(tmp_path: Path) -> None:
    """A v1 bundle signed by an earlier hepbundle (EC key + RSA certificate co-signature) still
    verifies, as of its signing time, while its certificate is valid (until 2027-11-25; after
    that only an RFC 3161 timestamp keeps an X.509 signature verifiable, see
    test_timestamps.py)."""
    golden = Path(__file__).parent / "golden" / "signed-v1"
    bundle = shutil.copytree(golden / "bundle", tmp_path / "bundle")
    policy_file = _write_policy(
        tmp_path,
        f"""
version: 1
rules:
  - namespace: demo
    signers:
      all_of:
        - {{key: {golden / "release.pub.pem"}, role: primary}}
        - x509: {{ca: {golden / "ca.pem"}, subject: "/DC=ch/DC=cern/OU=Users/CN=golden/*"}}
          role: author
""",
    )
    b = hepbundle.open(bundle, verify="full", policy=TrustPolicy.load(policy_file))
    assert [(s.kind, s.details["signedAt"][:10]) for s in b.signature] == [
        ("key", "2026-11-25"),
        ("x509", "2026-11-25"),
    ]


@pytest.mark.parametrize("doc", ["docs/signing.md", "bundle-spec/signing.md"])
def test_policy_examples_in_docs_are_valid(doc: str) -> None:
    """Every YAML policy example in the documentation validates against the schema."""
    import re

    import yaml

    from hepbundle.spec import validate

    text = (Path(__file__).parents[1] / doc).read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "rules:" in b]
    assert blocks
    for block in blocks:
        validate(yaml.safe_load(block), "policy.schema.json", filename=doc)


def test_signature_is_checked_over_the_manifest_bytes_before_parsing(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path]
) -> None:
    """A replaced manifest is refused by its signature before its entries are read: a large,
    unsigned one that is not even a valid manifest gets the signature error, not a parse error
    (bundle-spec § 9: the signature is checked over the bytes first)."""
    manifest = signed.root / "hepbundle.json"
    manifest.write_bytes(b'{"files": [' + b'{"path": "x"}, ' * 150_000 + b'{"path": "y"}]}')
    assert manifest.stat().st_size > 1 << 20
    with pytest.raises(
        SignatureError,
        match=r"hepbundle.sig does not match: digest mismatch in hepbundle.json \(the",
    ):
        hepbundle.open(signed.root, policy=key_policy(ec_key[1]))
    # integrity-only asks for no signature: the entries are parsed, and refused as they are
    with pytest.raises(HepbundleError) as e:
        hepbundle.open(signed.root, verify="integrity")
    assert not isinstance(e.value, SignatureError)
