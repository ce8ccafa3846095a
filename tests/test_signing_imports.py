"""Opening a key- or X.509-signed bundle under a trust policy imports neither model_signing,
sigstore, sigstore_models, pyOpenSSL nor protobuf (a job's ``hepbundle path`` stays fast), and
the json-only signature reader that made that possible agrees with upstream's."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

import hepbundle
from hepbundle import signing
from hepbundle._signers import pae, parse_signature, signed_digests
from hepbundle.errors import PolicyError, SignatureError
from hepbundle.policy import TrustPolicy

from . import pki

HEAVY = ("model_signing", "sigstore", "sigstore_models", "OpenSSL", "google.protobuf")

# a fresh interpreter: pytest itself has imported the signing stacks by now
_CHILD = """
import json, sys
from pathlib import Path
import hepbundle
from hepbundle.errors import HepbundleError
from hepbundle.policy import TrustPolicy
kind, root, trust = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
if kind == "key":
    policy = TrustPolicy.from_flags(keys=[trust])
else:
    policy = TrustPolicy.from_flags(ca=[trust])
try:
    signers = [[s.kind, s.identity] for s in hepbundle.open(root, policy=policy).signature]
    error = None
except HepbundleError as e:
    signers, error = [], e.message
heavy = [m for m in json.loads(sys.argv[4]) if m in sys.modules]
print(json.dumps({"signers": signers, "error": error, "heavy": heavy}))
"""


def _open_in_child(kind: str, root: Path, trust: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, kind, str(root), str(trust), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_key_verification_imports_no_signing_stack(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path]
) -> None:
    res = _open_in_child("key", signed.root, ec_key[1])
    assert res["error"] is None
    assert [kind for kind, _ in res["signers"]] == ["key"]
    assert res["heavy"] == []


def test_key_verification_failure_imports_no_signing_stack(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path]
) -> None:
    """The refusal path (a flipped signature byte) is as light as the accepting one."""
    sig = signed.root / "hepbundle.sig"
    doc = json.loads(sig.read_text())
    raw = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
    raw[-1] ^= 0xFF
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    sig.write_text(json.dumps(doc))
    res = _open_in_child("key", signed.root, ec_key[1])
    assert "invalid signature" in res["error"]
    assert res["heavy"] == []


@pytest.mark.parametrize(("kind", "with_chain"), [("ec", False), ("rsa", False), ("ec", True)])
def test_x509_verification_imports_no_signing_stack(
    built: hepbundle.Bundle, tmp_path: Path, kind: str, with_chain: bool
) -> None:
    ca = pki.make_ca()
    ca_pem = pki.write_pem(tmp_path / "pki" / "ca.pem", ca.cert)
    issuer = pki.make_ca("Test Intermediate", issuer=ca) if with_chain else ca
    key = pki.rsa_key() if kind == "rsa" else pki.ec_key()
    cert, priv = pki.make_cert(issuer, key=key).write(tmp_path / "pki", "user")
    chain = [pki.write_pem(tmp_path / "pki" / "chain.pem", issuer.cert)] if with_chain else []
    signing.sign(built.root, signing.X509Signer(cert, priv, chain))
    res = _open_in_child("x509", built.root, ca_pem)
    assert res["error"] is None
    assert res["signers"] == [["x509", "/DC=ch/DC=cern/OU=Users/CN=jdoe/CN=Jane Doe"]]
    assert res["heavy"] == []


# --- the json reader agrees with upstream -------------------------------------------------------


def test_pae_is_upstreams() -> None:
    from model_signing._signing import sign_sigstore_pb

    for payload in (b"", b"{}", json.dumps({"a": "\u00e9"}).encode()):
        assert pae(payload) == sign_sigstore_pb.pae(payload)


def _statement(signed: hepbundle.Bundle) -> dict[str, Any]:
    stmt = parse_signature(signed.root / "hepbundle.sig").statement
    return json.loads(json.dumps(stmt))  # a private copy to damage


def _upstream_digests(stmt: dict[str, Any]) -> dict[str, str]:
    from model_signing._signing import signing as oms

    return {
        rd.identifier: rd.digest.digest_hex
        for rd in oms.dsse_payload_to_manifest(stmt).resource_descriptors()
    }


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def change(stmt: dict[str, Any]) -> None:
        obj = stmt
        for k in path[:-1]:
            obj = obj[k]
        obj[path[-1]] = value

    return change


DAMAGE = {
    "as-signed": lambda s: None,
    "unnormalised-path": lambda s: s["predicate"]["resources"][0].update(name="./model//x.bin"),
    "uppercase-hex": lambda s: [
        r.update(digest=r["digest"].upper()) for r in s["predicate"]["resources"]
    ],
    "predicate-type": _set(("predicateType",), "https://example.org/other"),
    "two-subjects": lambda s: s["subject"].append(s["subject"][0]),
    "root-digest": _set(("subject", 0, "digest", "sha256"), "00" * 32),
    "unknown-method": _set(("predicate", "serialization", "method"), "tarball"),
    "no-resources": lambda s: s["predicate"].pop("resources"),
    "bad-hex": _set(("predicate", "resources", 0, "digest"), "zz"),
    "compat-v0.2": lambda s: s.update(
        predicateType="https://model_signing/Digests/v0.1",
        subject=[
            {"name": r["name"], "digest": {"sha256": r["digest"]}}
            for r in s["predicate"]["resources"]
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_statement_reader_agrees_with_upstream(signed: hepbundle.Bundle, case: str) -> None:
    """Same digests where upstream accepts the statement, an error where it refuses it."""
    stmt = _statement(signed)
    DAMAGE[case](stmt)
    try:
        want = _upstream_digests(stmt)
    except (KeyError, TypeError, ValueError):
        with pytest.raises((KeyError, TypeError, ValueError)):
            signed_digests(stmt)
        return
    assert signed_digests(stmt) == want


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d.pop("dsseEnvelope"), "no DSSE envelope"),
        (lambda d: d["dsseEnvelope"].update(signatures=[]), "no DSSE envelope"),
        (lambda d: d["dsseEnvelope"].update(payload=7), "expected a base64 string"),
        (lambda d: d["dsseEnvelope"].update(payload="abc"), "base64|padding"),
        (lambda d: d["verificationMaterial"].update(publicKey={"hint": 3}), "hint"),
        (lambda d: d.update(verificationMaterial=[]), "no attribute 'get'"),
        (
            lambda d: d["verificationMaterial"].update(x509CertificateChain={"certificates": []}),
            "empty certificate chain",
        ),
    ],
    ids=["no-envelope", "no-signatures", "payload-type", "bad-base64", "hint", "vm-list", "chain"],
)
def test_malformed_bundle_json(signed: hepbundle.Bundle, damage: Any, message: str) -> None:
    sig = signed.root / "hepbundle.sig"
    doc = json.loads(sig.read_text())
    damage(doc)
    sig.write_text(json.dumps(doc))
    with pytest.raises(
        SignatureError, match=f"hepbundle.sig: malformed signature file: .*{message}"
    ):
        parse_signature(sig)


# --- the chain check agrees with OpenSSL's (what decided before) --------------------------------


def _openssl_accepts(ca: pki.Issued, leaf: pki.Issued, chain: list[pki.Issued]) -> bool:
    from OpenSSL import crypto

    store = crypto.X509Store()
    store.add_cert(crypto.X509.from_cryptography(ca.cert))
    ctx = crypto.X509StoreContext(
        store,
        crypto.X509.from_cryptography(leaf.cert),
        [crypto.X509.from_cryptography(c.cert) for c in chain],
    )
    try:
        ctx.verify_certificate()
    except crypto.X509StoreContextError:
        return False
    return True


def _dirname(*dcs: str) -> x509.GeneralName:
    return x509.DirectoryName(
        x509.Name([x509.NameAttribute(NameOID.DOMAIN_COMPONENT, dc) for dc in dcs])
    )


_POLICIES = x509.CertificatePolicies([x509.PolicyInformation(ObjectIdentifier("1.2.3.4"), None)])
_CRLDP = x509.CRLDistributionPoints(
    [x509.DistributionPoint([x509.UniformResourceIdentifier("http://ca/crl")], None, None, None)]
)
_UNKNOWN = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")


def _chain_case(case: str, root: pki.Issued) -> tuple[pki.Issued, list[pki.Issued]]:
    """(leaf, intermediates) under ``root`` for one case of :data:`CHAIN_CASES`."""
    if case.startswith("leaf-"):
        ext = {"leaf-critical-policies": _POLICIES, "leaf-critical-crldp": _CRLDP}.get(case)
        return pki.make_cert(root, extensions=[(ext or _UNKNOWN, True)]), []
    if case == "ca-rsa-1024":
        inter = pki.make_ca("Weak", issuer=root, key=pki.rsa_key(1024))
    elif case == "ca-requires-explicit-policy":
        explicit = x509.PolicyConstraints(require_explicit_policy=0, inhibit_policy_mapping=None)
        inter = pki.make_ca("Explicit", issuer=root, extensions=[(explicit, False)])
    elif case == "intermediate-not-ca":
        inter = pki.make_cert(root, pki.grid_name("not-a-ca"))
    elif case == "path-length-exceeded":
        zero = pki.make_ca("Zero", issuer=root, path_length=0)
        inter = pki.make_ca("Under Zero", issuer=zero)
        return pki.make_cert(inter), [inter, zero]
    else:
        allowed = {"name-constraints-kept": ("ch", "cern"), "name-constraints-broken": ("de",)}
        kw: dict[str, Any] = {"cert_sign": case != "intermediate-without-cert-sign"}
        if case in allowed:
            nc = x509.NameConstraints(
                permitted_subtrees=[_dirname(*allowed[case])], excluded_subtrees=None
            )
            kw["extensions"] = [(nc, True)]
        inter = pki.make_ca("Intermediate", issuer=root, **kw)
    return pki.make_cert(inter), [inter]


CHAIN_CASES = {
    "ca-rsa-1024": True,
    "ca-requires-explicit-policy": True,
    "leaf-critical-policies": True,
    "leaf-critical-crldp": True,
    "leaf-critical-unknown": False,
    "intermediate-not-ca": False,
    "intermediate-without-cert-sign": False,
    "path-length-exceeded": False,
    "name-constraints-kept": True,
    "name-constraints-broken": False,
}


@pytest.mark.parametrize("case", sorted(CHAIN_CASES))
def test_chain_rules_match_openssl(built: hepbundle.Bundle, tmp_path: Path, case: str) -> None:
    """Edge cases of the chain check: the verdict is the one pyOpenSSL gave before (cryptography's
    path builder accepts the common chains; what it refuses, pyOpenSSL decides)."""
    root = pki.make_ca()
    leaf, chain = _chain_case(case, root)
    assert _openssl_accepts(root, leaf, chain) is CHAIN_CASES[case]
    d = tmp_path / "pki"
    cert, key = leaf.write(d, "user")
    chain_pems = [pki.write_pem(d / "chain.pem", *(c.cert for c in chain))] if chain else []
    signing.sign(built.root, signing.X509Signer(cert, key, chain_pems))
    policy = TrustPolicy.from_flags(ca=[pki.write_pem(d / "ca.pem", root.cert)])
    if CHAIN_CASES[case]:
        assert hepbundle.open(built.root, policy=policy).signature
    else:
        with pytest.raises(PolicyError, match="untrusted CA: .* does not chain to a trusted CA"):
            hepbundle.open(built.root, policy=policy)


# --- the json-only statement writer agrees with upstream's -------------------------------------

#: digest sets whose statements are compared: upstream orders resources by path components
#: (``a/b`` before ``a-b/c``, whose text sorts first), names are kept as UTF-8
_DIGEST_SETS = {
    "component-order": {"a-b/c": "11" * 32, "a/b": "22" * 32, "a.b": "33" * 32, "A": "44" * 32},
    "non-ascii": {"mod\u00e8le/poids.bin": "55" * 32, "hepbundle.json": "66" * 32},
    "one-file": {"hepbundle.json": "77" * 32},
}


def _upstream_payload(
    name: str, digests: dict[str, str], ignore: list[str], extra: dict[str, Any], alg: str
) -> Any:
    """The payload model_signing builds for the same statement (what hepbundle used before)."""
    from pathlib import PurePosixPath

    from model_signing import manifest as oms_manifest
    from model_signing._hashing import hashing as oms_hashing
    from model_signing._signing import signing as oms

    serialization = oms_manifest._FileSerialization(
        alg, allow_symlinks=False, ignore_paths=[Path(p) for p in ignore]
    )
    items = [
        oms_manifest.FileManifestItem(
            path=PurePosixPath(p), digest=oms_hashing.Digest(alg, bytes.fromhex(h))
        )
        for p, h in digests.items()
    ]
    payload = oms.Payload(oms_manifest.Manifest(name, items, serialization))
    payload.statement.pb.predicate["hepbundle"] = extra
    return payload


@pytest.mark.parametrize("alg", ["sha256", "blake3"])
@pytest.mark.parametrize("case", sorted(_DIGEST_SETS))
def test_statement_writer_agrees_with_upstream(case: str, alg: str) -> None:
    """The statement written with json alone is upstream's: the same JSON document (members,
    values, resource order, subject digest) and the same protobuf Statement once parsed; only
    the order of a protobuf Struct's keys, which upstream leaves to its map, may differ."""
    from google.protobuf import json_format

    from hepbundle._signers.statement import oms_payload

    digests = _DIGEST_SETS[case]
    ignore = [".cvmfscatalog", "hepbundle.sig"] if case != "one-file" else []
    extra = {"signedAt": "2026-12-02T12:00:00Z", "role": "primary", "name": "atlas/x@1.0.0"}
    ours = oms_payload("atlas/x@1.0.0", digests, ignore, extra, alg, extra_key="hepbundle")
    theirs = _upstream_payload("atlas/x@1.0.0", digests, ignore, extra, alg)
    theirs_raw = json_format.MessageToJson(theirs.statement.pb).encode("utf-8")
    assert json.loads(ours.raw) == json.loads(theirs_raw)
    assert ours.statement.pb == theirs.statement.pb
    names = [r["name"] for r in json.loads(ours.raw)["predicate"]["resources"]]
    if case == "component-order":
        assert names == ["A", "a/b", "a-b/c", "a.b"]  # not the text order (a-b/c first)
    assert signed_digests(json.loads(ours.raw)) == {k: v for k, v in digests.items()}


def _strip(doc: dict[str, Any]) -> dict[str, Any]:
    """A signature document without its payload and signature bytes (ECDSA is randomised)."""
    out = json.loads(json.dumps(doc))
    out["dsseEnvelope"]["payload"] = "P"
    out["dsseEnvelope"]["signatures"][0]["sig"] = "S"
    return out


def _same_layout(ours: str, theirs: str) -> None:
    """Byte agreement of the signature files' envelopes: upstream's text with our payload and
    signature put in is our text, byte for byte."""
    a, b = json.loads(ours), json.loads(theirs)
    assert _strip(a) == _strip(b)
    env_a, env_b = a["dsseEnvelope"], b["dsseEnvelope"]
    swapped = theirs.replace(env_b["payload"], env_a["payload"]).replace(
        env_b["signatures"][0]["sig"], env_a["signatures"][0]["sig"]
    )
    assert swapped == ours


def test_key_signature_file_is_upstreams(ec_key: tuple[Path, Path]) -> None:
    """KeySigner writes the file model_signing's EC key signer writes for the same statement."""
    from model_signing._signing import sign_ec_key

    from hepbundle._signers.statement import oms_payload

    digests = _DIGEST_SETS["component-order"]
    extra = {"signedAt": "2026-12-02T12:00:00Z", "role": "primary", "name": "atlas/x@1.0.0"}
    ours = oms_payload("atlas/x@1.0.0", digests, [], extra, "blake3", extra_key="hepbundle")
    text = signing.KeySigner(ec_key[0]).sign_payload(ours)
    upstream = sign_ec_key.Signer(ec_key[0]).sign(ours.upstream()).bundle.to_json()
    _same_layout(text, upstream)
    # and upstream's verifier accepts our signature over our payload bytes
    verifier = sign_ec_key.Verifier(ec_key[1])
    from sigstore_models.bundle.v1 import Bundle as PbBundle

    kind, raw = verifier._verify_bundle(PbBundle.from_json(text))
    assert kind == "application/vnd.in-toto+json" and raw == ours.raw


def test_x509_signature_file_is_upstreams(tmp_path: Path) -> None:
    """The X.509 signer's own path (RSA, a key password, no chain) writes the layout of
    model_signing's certificate signer (which hepbundle uses for EC with a chain)."""
    from model_signing._signing import sign_certificate

    from hepbundle._signers.statement import oms_payload

    root_ca = pki.make_ca()
    inter = pki.make_ca("Test Intermediate", issuer=root_ca)
    cert, key = pki.make_cert(inter).write(tmp_path, "user")
    chain = pki.write_pem(tmp_path / "chain.pem", inter.cert)
    extra = {"signedAt": "2026-12-02T12:00:00Z", "role": "primary", "name": "atlas/x@1.0.0"}
    payload = oms_payload("atlas/x@1.0.0", {"a": "88" * 32}, [], extra, "sha256", extra_key="h")
    ours = signing.X509Signer(cert, key, (chain,))._sign_own(payload)
    theirs = sign_certificate.Signer(key, cert, [chain]).sign(payload.upstream()).bundle.to_json()
    _same_layout(ours, theirs)


@pytest.mark.parametrize("alg", ["sha256", "blake3"])
def test_upstream_api_verifies_what_the_writer_signs(
    tmp_path: Path, ec_key: tuple[Path, Path], alg: str
) -> None:
    """model_signing's own verifier (it rehashes the directory) accepts a bundle signed by the
    json-only writer, with file names whose component order differs from their text order."""
    from model_signing import hashing, verifying

    src = tmp_path / "src"
    for rel in ("model/a-b/c.bin", "model/a/b.bin", "model/a.b", "model/\u00e8.bin"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(rel.encode() * 100)
    (src / "hepbundle.yaml").write_text(
        "name: atlas/order\nversion: 1.0.0\nsummary: s\nauthors: [A <a@b.c>]\n"
        "files:\n  - path: model\n    role: weights\n"
    )
    b = hepbundle.build(src, tmp_path / "b", algorithm=alg)
    signing.sign(b, signing.KeySigner(ec_key[0]))
    (b.root / ".cvmfscatalog").touch()
    verifying.Config().use_elliptic_key_verifier(public_key=ec_key[1]).set_hashing_config(
        hashing.Config().use_file_serialization(
            hashing_algorithm=alg,  # type: ignore[arg-type]
            ignore_paths=[b.root / ".cvmfscatalog", b.root / "hepbundle.sig"],
        )
    ).verify(b.root, b.root / "hepbundle.sig")
    (b.root / "model" / "a" / "b.bin").write_bytes(b"evil")
    with pytest.raises(ValueError, match="Hash mismatch"):
        verifying.Config().use_elliptic_key_verifier(public_key=ec_key[1]).verify(
            b.root, b.root / "hepbundle.sig"
        )


def test_key_signing_imports_no_signing_stack(
    built: hepbundle.Bundle, ec_key: tuple[Path, Path]
) -> None:
    """Signing with a key writes the statement and the signature file with json and
    cryptography alone: no model_signing, sigstore, sigstore-models or protobuf import."""
    code = (
        "import json, sys\n"
        "from hepbundle import signing\n"
        "signing.sign(sys.argv[1], signing.KeySigner(sys.argv[2]))\n"
        "print(json.dumps([m for m in json.loads(sys.argv[3]) if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(built.root), str(ec_key[0]), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert json.loads(out.stdout) == []
    assert hepbundle.open(built.root, policy=TrustPolicy.from_flags(keys=[ec_key[1]])).signature
