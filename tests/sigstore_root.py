"""A private sigstore instance for offline tests: our own Fulcio CA, CT log and Rekor log keys.

:class:`PrivateSigstore` does locally what Fulcio, the CT log and Rekor do on the network when
hepbundle signs keyless, and writes the matching trusted root. The signature files it produces
are then checked by the **real** sigstore verifier through hepbundle's API:

* Fulcio: an ephemeral P-256 key gets a 10-minute certificate from our CA, with the signer's
  identity as SAN, the OIDC issuer extensions (1.3.6.1.4.1.57264.1.1 and .1.8), code-signing EKU,
  and an **embedded SCT** (RFC 6962 precertificate timestamp signed by our CT log key);
* Rekor: a ``dsse/0.0.1`` entry for the envelope at index 1 of a two-leaf Merkle tree, with its
  inclusion proof, a **signed checkpoint** (signed note) and a signed entry timestamp (SET).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import struct
from pathlib import Path

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from google.protobuf import json_format
from model_signing._signing import signing as oms

from hepbundle._signers import pae

from .pki import key_usage

__all__ = ["PrivateSigstore", "PrivateSigstoreSigner"]

_OIDC_ISSUER = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_OIDC_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_SCT_LIST = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
_IN_TOTO = "application/vnd.in-toto+json"


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    return hashlib.sha256(_spki(key)).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _der_octet_string(data: bytes) -> bytes:
    n = len(data)
    length = bytes([n]) if n < 0x80 else bytes([0x82, n >> 8, n & 0xFF])
    return b"\x04" + length + data


def _der_utf8(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 0x80
    return b"\x0c" + bytes([len(data)]) + data


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class PrivateSigstore:
    """Our own Fulcio CA + CT log + Rekor log; ``trusted_root()`` is their public half."""

    def __init__(self, name: str = "hepbundle-test") -> None:
        self.name = name
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ct_key = ec.generate_private_key(ec.SECP256R1())
        self.rekor_key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{name}.invalid"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} fulcio"),
            ]
        )
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(days=1))
            .not_valid_after(self.now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(key_usage(ca=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key()), critical=False
            )
            .sign(self.ca_key, hashes.SHA256())
        )

    # --- the trusted root ---------------------------------------------------------------------

    def _log(self, key: ec.EllipticCurvePrivateKey, url: str) -> dict[str, object]:
        return {
            "baseUrl": url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": _b64(_spki(key.public_key())),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": f"{self.now - dt.timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}"},
            },
            "logId": {"keyId": _b64(_key_id(key.public_key()))},
        }

    def trusted_root(self) -> dict[str, object]:
        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [self._log(self.rekor_key, f"https://rekor.{self.name}.invalid")],
            "certificateAuthorities": [
                {
                    "subject": {"organization": f"{self.name}.invalid", "commonName": "fulcio"},
                    "uri": f"https://fulcio.{self.name}.invalid",
                    "certChain": {
                        "certificates": [
                            {
                                "rawBytes": _b64(
                                    self.ca_cert.public_bytes(serialization.Encoding.DER)
                                )
                            }
                        ]
                    },
                    "validFor": {"start": f"{self.now - dt.timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}"},
                }
            ],
            "ctlogs": [self._log(self.ct_key, f"https://ctfe.{self.name}.invalid")],
            "timestampAuthorities": [],
        }

    def write_trusted_root(self, path: Path, *, client_config: bool = False) -> Path:
        """Write the trusted root, or a client trust config wrapping it (``--trust-config``)."""
        root = self.trusted_root()
        doc: dict[str, object] = root
        if client_config:
            doc = {
                "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
                "trustedRoot": root,
                "signingConfig": {
                    "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
                    "caUrls": [],
                    "oidcUrls": [],
                    "rekorTlogUrls": [],
                    "tsaUrls": [],
                    "rekorTlogConfig": {"selector": "ANY"},
                    "tsaConfig": {"selector": "ANY"},
                },
            }
        path.write_text(json.dumps(doc, indent=2))
        return path

    # --- Fulcio: a short-lived certificate with an embedded SCT --------------------------------

    def issue(
        self, key: ec.EllipticCurvePrivateKey, identity: str, issuer: str
    ) -> x509.Certificate:
        san: x509.GeneralName = (
            x509.RFC822Name(identity)
            if "@" in identity and "://" not in identity
            else x509.UniformResourceIdentifier(identity)
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(minutes=1))
            .not_valid_after(self.now + dt.timedelta(minutes=9))
            .add_extension(key_usage(sign=True), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(
                x509.UnrecognizedExtension(_OIDC_ISSUER, issuer.encode()), critical=False
            )
            .add_extension(
                x509.UnrecognizedExtension(_OIDC_ISSUER_V2, _der_utf8(issuer)), critical=False
            )
        )
        # the precertificate: same TBS without the SCT list; the CT log signs over it
        precert = builder.sign(self.ca_key, hashes.SHA256())
        sct = self._sct(precert.tbs_certificate_bytes)
        sct_list = struct.pack("!H", len(sct) + 2) + struct.pack("!H", len(sct)) + sct
        final = builder.add_extension(
            x509.UnrecognizedExtension(_SCT_LIST, _der_octet_string(sct_list)), critical=False
        ).sign(self.ca_key, hashes.SHA256())
        assert final.tbs_precertificate_bytes == precert.tbs_certificate_bytes
        return final

    def _sct(self, tbs: bytes) -> bytes:
        """An RFC 6962 v1 SCT for a precertificate entry, signed by our CT log."""
        ts = int(self.now.timestamp() * 1000)
        issuer_key_hash = _key_id(self.ca_key.public_key())
        entry = issuer_key_hash + struct.pack("!I", len(tbs))[1:] + tbs
        signed = struct.pack("!BBQH", 0, 0, ts, 1) + entry + struct.pack("!H", 0)
        sig = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return (
            struct.pack("!B", 0)
            + _key_id(self.ct_key.public_key())
            + struct.pack("!QH", ts, 0)
            + struct.pack("!BBH", 4, 3, len(sig))  # sha256, ecdsa
            + sig
        )

    # --- Rekor: a dsse entry with inclusion proof, signed checkpoint and SET -------------------

    def log_entry(
        self, payload: bytes, signature: bytes, cert: x509.Certificate
    ) -> dict[str, object]:
        pem = cert.public_bytes(serialization.Encoding.PEM)
        envelope = {
            "payload": _b64(payload),
            "payloadType": _IN_TOTO,
            "signatures": [{"sig": _b64(signature), "keyid": ""}],
        }
        body = json.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "envelopeHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(json.dumps(envelope).encode()).hexdigest(),
                    },
                    "payloadHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(payload).hexdigest(),
                    },
                    "signatures": [{"signature": _b64(signature), "verifier": _b64(pem)}],
                },
            },
            separators=(",", ":"),
        ).encode()
        # a two-leaf log: someone else's entry at index 0, ours at index 1
        sibling = _leaf_hash(b'{"kind":"hashedrekord","note":"an earlier entry"}')
        root = _node_hash(sibling, _leaf_hash(body))
        log_id = _key_id(self.rekor_key.public_key())
        origin = f"rekor.{self.name}.invalid - 1234567890"
        note = f"{origin}\n2\n{_b64(root)}\n"
        note_sig = self.rekor_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        checkpoint = f"{note}\n\u2014 rekor.{self.name}.invalid {_b64(log_id[:4] + note_sig)}\n"
        integrated = int(self.now.timestamp())
        set_payload = rfc8785.dumps(
            {"body": _b64(body), "integratedTime": integrated, "logID": log_id.hex(), "logIndex": 1}
        )
        set_sig = self.rekor_key.sign(set_payload, ec.ECDSA(hashes.SHA256()))
        return {
            "logIndex": "1",
            "logId": {"keyId": _b64(log_id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(integrated),
            "inclusionPromise": {"signedEntryTimestamp": _b64(set_sig)},
            "inclusionProof": {
                "logIndex": "1",
                "rootHash": _b64(root),
                "treeSize": "2",
                "hashes": [_b64(sibling)],
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": _b64(body),
        }

    def sign_statement(self, statement: bytes, identity: str, issuer: str) -> str:
        """What keyless signing produces: a sigstore bundle v0.3 (JSON text) over ``statement``."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.issue(key, identity, issuer)
        sig = key.sign(pae(statement), ec.ECDSA(hashes.SHA256()))
        bundle = {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))},
                "tlogEntries": [self.log_entry(statement, sig, cert)],
            },
            "dsseEnvelope": {
                "payload": _b64(statement),
                "payloadType": _IN_TOTO,
                "signatures": [{"sig": _b64(sig), "keyid": ""}],
            },
        }
        return json.dumps(bundle)


class PrivateSigstoreSigner:
    """A hepbundle signer that signs keyless against :class:`PrivateSigstore` (what
    ``SigstoreSigner`` does against the public instance), for ``hepbundle.signing.sign``."""

    kind = "sigstore"

    def __init__(self, instance: PrivateSigstore, identity: str, issuer: str) -> None:
        self.instance, self.identity, self.issuer = instance, identity, issuer

    def describe(self) -> str:
        return f"sigstore {self.identity}"

    def sign_payload(self, payload: oms.Payload) -> str:
        statement = json_format.MessageToJson(payload.statement.pb).encode()
        return self.instance.sign_statement(statement, self.identity, self.issuer)
