"""RFC 3161 timestamps: a real TSA on loopback (`openssl ts -reply`); an X.509 signature with a
token verifies after its certificate expired, without one it does not; forged, mismatched and
untrusted tokens are refused."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest

import hepbundle
from hepbundle import signing
from hepbundle.errors import PolicyError, SignatureError
from hepbundle.policy import TrustPolicy

from . import pki
from .tsa import allow_loopback, make_tsa, serve_tsa

LATER = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)  # the certificates live 365 days


@pytest.fixture
def tsa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    allow_loopback(monkeypatch)
    cfg, ca = make_tsa(tmp_path / "tsa")
    with serve_tsa(cfg) as url:
        yield url, ca


def _policy(
    tmp_path: Path, ca: Path, tsa_ca: Path | None, name: str = "policy.yaml"
) -> TrustPolicy:
    tsa = f"tsa: {{ca: [{tsa_ca}]}}\n" if tsa_ca else ""
    p = tmp_path / name
    p.write_text(
        f"version: 1\n{tsa}rules:\n  - namespace: '*'\n    signers:\n      - x509: {{ca: {ca}}}\n"
    )
    return TrustPolicy.load(p)


def _grid(tmp_path: Path) -> tuple[Path, tuple[Path, Path]]:
    ca = pki.make_ca()
    ca_pem = pki.write_pem(tmp_path / "grid-ca.pem", ca.cert)
    return ca_pem, pki.make_cert(ca, key=pki.rsa_key()).write(tmp_path, "usercert")


def test_timestamp_proves_signing_time_after_the_certificate_expired(
    built: hepbundle.Bundle, tmp_path: Path, tsa: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, tsa_ca = tsa
    grid_ca, (cert, key) = _grid(tmp_path)
    signing.sign(built.root, signing.X509Signer(cert, key), tsa_url=url)
    doc = json.loads((built.root / "hepbundle.sig").read_text())
    assert doc["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    policy = _policy(tmp_path, grid_ca, tsa_ca)
    now = hepbundle.open(built.root, policy=policy)
    assert now.signature and "timestampedAt" in now.signature[0].details
    # years later: the grid certificate has expired; the token proves when it was used
    monkeypatch.setattr("hepbundle.policy._now", lambda: LATER)
    later = hepbundle.open(built.root, policy=policy)
    assert (
        later.signature and later.signature[0].details["timestampedAt"][:10] == f"{dt.date.today()}"
    )
    # the same signature without its token: refused
    del doc["verificationMaterial"]["timestampVerificationData"]
    (built.root / "hepbundle.sig").write_text(json.dumps(doc))
    with pytest.raises(SignatureError, match="no RFC 3161 timestamp"):
        hepbundle.open(built.root, policy=policy)


def test_forged_mismatched_and_untrusted_tokens_are_refused(
    built: hepbundle.Bundle, signed: hepbundle.Bundle, tmp_path: Path, tsa: tuple[str, Path]
) -> None:
    url, tsa_ca = tsa
    grid_ca, (cert, key) = _grid(tmp_path)
    signing.sign(built.root, signing.X509Signer(cert, key), tsa_url=url, force=True)
    sig = built.root / "hepbundle.sig"
    good = json.loads(sig.read_text())
    policy = _policy(tmp_path, grid_ca, tsa_ca)
    assert hepbundle.open(built.root, policy=policy).signature

    def with_token(token: bytes) -> None:
        doc = json.loads(json.dumps(good))
        stamps = doc["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
        stamps[0]["signedTimestamp"] = base64.b64encode(token).decode()
        sig.write_text(json.dumps(doc))

    token = base64.b64decode(
        good["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0][
            "signedTimestamp"
        ]
    )
    # forged: one byte of the TSA's signed attributes changed
    forged = bytearray(token)
    forged[len(forged) // 2] ^= 0x01
    with_token(bytes(forged))
    with pytest.raises((SignatureError, PolicyError), match="timestamp"):
        hepbundle.open(built.root, policy=policy)
    # mismatched: a genuine token over another signature
    from hepbundle._signers.timestamp import request_timestamp

    with_token(request_timestamp(url, b"some other signature"))
    with pytest.raises(SignatureError, match="timestamp refused"):
        hepbundle.open(built.root, policy=policy)
    # untrusted: a genuine token, but the policy trusts another TSA, or none
    with_token(token)
    _, other_ca = make_tsa(tmp_path / "other-tsa", cn="Other TSA")
    with pytest.raises(PolicyError, match="timestamp refused"):
        hepbundle.open(built.root, policy=_policy(tmp_path, grid_ca, other_ca, "p2.yaml"))
    with pytest.raises(PolicyError, match="names no TSA"):
        hepbundle.open(built.root, policy=_policy(tmp_path, grid_ca, None, "p3.yaml"))


def test_sign_cli_tsa_and_unreachable_tsa(
    built: hepbundle.Bundle, tmp_path: Path, tsa: tuple[str, Path]
) -> None:
    from click.testing import CliRunner

    from hepbundle.cli import main

    url, _ = tsa
    _, (cert, key) = _grid(tmp_path)
    r = CliRunner().invoke(
        main, ["sign", str(built.root), "--cert", str(cert), "--key", str(key), "--tsa", url]
    )
    assert r.exit_code == 0, r.stderr
    r = CliRunner().invoke(
        main,
        [
            "sign",
            str(built.root),
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--force",
            "--tsa",
            "http://127.0.0.1:9/tsa",
        ],
    )
    assert r.exit_code == 2 and "timestamp authority" in r.stderr and r.stderr.count("\n") == 1
    assert (built.root / "hepbundle.sig").exists()  # the earlier signature is left as it was
