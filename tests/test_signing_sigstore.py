"""Keyless (sigstore) signatures verified offline by the real sigstore verifier, against a
private trust root built by the test (tests/sigstore_root.py)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

import hepbundle
from hepbundle import signing
from hepbundle.errors import PolicyError, SignatureError
from hepbundle.policy import TrustPolicy

from .sigstore_root import PrivateSigstore, PrivateSigstoreSigner

ID = "https://gitlab.cern.ch/atlas/ml//.gitlab-ci.yml@refs/heads/main"
ISSUER = "https://gitlab.cern.ch"


@pytest.fixture
def instance() -> PrivateSigstore:
    return PrivateSigstore()


@pytest.fixture
def keyless(built: hepbundle.Bundle, instance: PrivateSigstore) -> hepbundle.Bundle:
    signing.sign(built.root, PrivateSigstoreSigner(instance, ID, ISSUER))
    return built


def policy(root: Path, identity: str = ID, issuer: str = ISSUER) -> TrustPolicy:
    p = TrustPolicy.from_flags(identity=identity, issuer=issuer, trust_config=root)
    assert p is not None
    return p


def test_right_identity_passes(
    keyless: hepbundle.Bundle, instance: PrivateSigstore, tmp_path: Path
) -> None:
    root = instance.write_trusted_root(tmp_path / "trusted_root.json")
    b = hepbundle.open(keyless.root, verify="full", policy=policy(root))
    assert [(s.kind, s.identity, s.details["issuer"]) for s in b.signature] == [
        ("sigstore", ID, ISSUER)
    ]


def test_client_trust_config_accepted(
    keyless: hepbundle.Bundle, instance: PrivateSigstore, tmp_path: Path
) -> None:
    root = instance.write_trusted_root(tmp_path / "trust.json", client_config=True)
    assert hepbundle.open(keyless.root, policy=policy(root)).signature


def _corrupt_checkpoint(sig: Path) -> None:
    doc = json.loads(sig.read_text())
    proof = doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["checkpoint"]["envelope"] = proof["checkpoint"]["envelope"].replace("\n2\n", "\n3\n", 1)
    sig.write_text(json.dumps(doc))


def _corrupt_inclusion_proof(sig: Path) -> None:
    doc = json.loads(sig.read_text())
    proof = doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["hashes"] = [base64.b64encode(b"\x00" * 32).decode()]
    sig.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        (
            "wrong-identity",
            PolicyError,
            f"sigstore signer {ID} .* is not mallory@cern.ch .*not allowed to sign atlas/tauid",
        ),
        (
            "wrong-issuer",
            PolicyError,
            f"issuer {ISSUER}\\) is not {ID} \\(issuer https://token.actions.githubusercontent.com\\)",
        ),
        ("other-trust-root", SignatureError, "sigstore verification failed: .*certificate chain"),
        ("untrusted-ct-log", SignatureError, "failed to verify SCT on signing certificate"),
        ("untrusted-rekor-key", SignatureError, "invalid log entry"),
        (
            "broken-checkpoint",
            SignatureError,
            "sigstore verification failed: invalid log entry: checkpoint",
        ),
        (
            "broken-inclusion-proof",
            SignatureError,
            "sigstore verification failed: invalid log entry: inclusion proof",
        ),
    ],
)
def test_keyless_failures(
    keyless: hepbundle.Bundle,
    instance: PrivateSigstore,
    tmp_path: Path,
    case: str,
    error: type[Exception],
    message: str,
) -> None:
    root = instance.write_trusted_root(tmp_path / "trusted_root.json")
    identity, issuer = ID, ISSUER
    if case == "wrong-identity":
        identity = "mallory@cern.ch"
    elif case == "wrong-issuer":
        issuer = "https://token.actions.githubusercontent.com"
    elif case == "other-trust-root":
        root = PrivateSigstore("elsewhere").write_trusted_root(tmp_path / "other.json")
    elif case in ("untrusted-ct-log", "untrusted-rekor-key"):
        # same Fulcio CA, but the SCT / log entry is signed by a key the trust root does not list
        from cryptography.hazmat.primitives.asymmetric import ec

        setattr(
            instance,
            "ct_key" if case == "untrusted-ct-log" else "rekor_key",
            ec.generate_private_key(ec.SECP256R1()),
        )
        signing.sign(keyless.root, PrivateSigstoreSigner(instance, ID, ISSUER), force=True)
    elif case == "broken-checkpoint":
        _corrupt_checkpoint(keyless.root / "hepbundle.sig")
    elif case == "broken-inclusion-proof":
        _corrupt_inclusion_proof(keyless.root / "hepbundle.sig")
    with pytest.raises(error, match=message):
        hepbundle.open(keyless.root, policy=policy(root, identity, issuer))


def test_keyless_tampered_bundle(
    keyless: hepbundle.Bundle, instance: PrivateSigstore, tmp_path: Path
) -> None:
    root = instance.write_trusted_root(tmp_path / "trusted_root.json")
    (keyless.root / "model" / "weights.bin").write_bytes(b"evil")
    with pytest.raises(hepbundle.IntegrityError, match="modified model/weights.bin"):
        hepbundle.open(keyless.root, verify="full", policy=policy(root))


def test_keyless_cli_verify(
    keyless: hepbundle.Bundle, instance: PrivateSigstore, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from hepbundle.cli import main

    root = instance.write_trusted_root(tmp_path / "trusted_root.json")
    args = [
        "verify",
        str(keyless.root),
        "--identity",
        ID,
        "--issuer",
        ISSUER,
        "--trust-config",
        str(root),
        "--json",
    ]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["signers"][0]["identity"] == ID
    r = CliRunner().invoke(main, [*args[:3], "someone@else", *args[4:]])
    assert r.exit_code == 1 and "is not someone@else" in r.stderr


def test_pinned_production_root_rejects_private_signature(keyless: hepbundle.Bundle) -> None:
    """Without --trust-config the pinned public-good root is used, offline: our private Fulcio
    is not in it."""
    p = TrustPolicy.from_flags(identity=ID, issuer=ISSUER)
    with pytest.raises(SignatureError, match="sigstore verification failed"):
        hepbundle.open(keyless.root, policy=p)


def test_sigstore_signer_without_network_fails_cleanly(built: hepbundle.Bundle) -> None:
    """The real keyless code path needs Fulcio/Rekor; with no network it is one clear error."""
    from hepbundle.errors import SigningError

    with pytest.raises(SigningError, match="sigstore signing failed"):
        signing.sign(built.root, signing.SigstoreSigner(identity_token="not-a-jwt"))
    assert not (built.root / "hepbundle.sig").exists()


def test_sigstore_sign_with_no_network_is_one_line(built: hepbundle.Bundle) -> None:
    """The real CLI in a network namespace with no interface: one line saying so, no urllib3
    retry warnings, no "report the issue at sigstore-python" text."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from .needs import missing

    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-n", "true"]).returncode != 0:
        missing("needs unshare -n (util-linux, root) for a namespace without network")
    src = Path(hepbundle.__file__).resolve().parents[1]
    r = subprocess.run(
        [unshare, "-n", sys.executable, "-m", "hepbundle", "sign", str(built.root), "--sigstore"],
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1, r.stderr
    assert "no network (cannot reach tuf-repo-cdn.sigstore.dev)" in r.stderr
    assert "Retrying" not in r.stderr and "reporting the issue" not in r.stderr
    assert not (built.root / "hepbundle.sig").exists()
