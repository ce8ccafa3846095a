"""Signers and signature parsing behind :mod:`hepbundle.signing`: one module per key kind.

``keys``      EC P-256/384/521 key pairs (model_signing's key signer; upstream verifies them)
``certificate`` X.509 certificates: EC through model_signing, RSA (grid certificates) our own,
              chain, subject DN and validity checks against named CAs or an IGTF directory
``sigstore``  keyless signing through Fulcio/Rekor, and offline verification against a trust root

Every signature file is an OMS v1.0 signature: a sigstore bundle (v0.3 JSON) whose DSSE envelope
carries an in-toto statement of file digests. :func:`parse_signature` reads one without trusting
it; the kind-specific modules then check it against trust material.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from cryptography import x509
from model_signing._signing import sign_sigstore_pb as _oms_pb
from model_signing._signing import signing as _oms
from sigstore.errors import Error as SigstoreError
from sigstore.models import Bundle as SigstoreBundle

from ..errors import SignatureError

__all__ = [
    "IN_TOTO_PAYLOAD_TYPE",
    "ParsedSignature",
    "SignatureKind",
    "Signer",
    "pae",
    "parse_signature",
]

SignatureKind = Literal["key", "x509", "sigstore"]

IN_TOTO_PAYLOAD_TYPE: str = _oms._IN_TOTO_JSON_PAYLOAD_TYPE
#: the DSSE pre-authentication encoding, as model_signing computes it
pae = _oms_pb.pae


class Signer(Protocol):
    """Something that turns an OMS payload into signature-file text (a sigstore bundle JSON)."""

    kind: SignatureKind

    def sign_payload(self, payload: _oms.Payload) -> str: ...

    def describe(self) -> str:
        """Who will sign, for messages (``key sha256:…``, a DN, ``sigstore (ambient OIDC)``)."""
        ...


@dataclass(frozen=True)
class ParsedSignature:
    """A signature file read but not yet trusted: its kind, envelope and verification material."""

    name: str
    kind: SignatureKind
    payload_type: str
    payload: bytes
    signature: bytes
    key_hint: str | None = None
    chain: tuple[x509.Certificate, ...] = ()
    #: the sigstore-python bundle, for keyless signatures
    sigstore_bundle: Any = None

    @property
    def statement(self) -> dict[str, Any]:
        """The in-toto statement (unverified until a verifier accepted the signature)."""
        if self.payload_type != IN_TOTO_PAYLOAD_TYPE:
            raise SignatureError(
                f"{self.name}: DSSE payload type is {self.payload_type!r}, "
                f"expected {IN_TOTO_PAYLOAD_TYPE!r}"
            )
        try:
            obj = json.loads(self.payload)
        except (ValueError, UnicodeDecodeError) as e:
            raise SignatureError(f"{self.name}: malformed signature file: payload: {e}") from None
        if not isinstance(obj, dict):
            raise SignatureError(f"{self.name}: malformed signature file: payload not an object")
        return obj


def parse_signature(path: Path) -> ParsedSignature:
    """Read a signature file; raise :class:`SignatureError` ("malformed signature file") if it is
    not an OMS sigstore bundle with a DSSE envelope."""
    name = path.name
    try:
        raw = path.read_text(encoding="utf-8")
        doc = json.loads(raw)
    except FileNotFoundError:
        raise SignatureError(f"{name} is missing") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise SignatureError(f"{name}: malformed signature file: {e}") from None
    try:
        vm = doc["verificationMaterial"]
        if vm.get("tlogEntries") or "certificate" in vm:
            return _parse_sigstore(name, raw)
        bundle = _oms_pb.Signature.read(path).bundle
        env = bundle.dsse_envelope
        if env is None or not env.signatures:
            raise SignatureError(f"{name}: malformed signature file: no DSSE envelope")
        mat = bundle.verification_material
        if mat.x509_certificate_chain is not None:
            chain = tuple(
                x509.load_der_x509_certificate(c.raw_bytes)
                for c in mat.x509_certificate_chain.certificates
            )
            if not chain:
                raise SignatureError(f"{name}: malformed signature file: empty certificate chain")
            return ParsedSignature(
                name, "x509", env.payload_type, env.payload, env.signatures[0].sig, chain=chain
            )
        hint = mat.public_key.hint if mat.public_key is not None else None
        return ParsedSignature(
            name, "key", env.payload_type, env.payload, env.signatures[0].sig, key_hint=hint
        )
    except SignatureError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise SignatureError(f"{name}: malformed signature file: {e}") from None


def _parse_sigstore(name: str, raw: str) -> ParsedSignature:
    try:
        bundle = SigstoreBundle.from_json(raw)
    except (SigstoreError, ValueError) as e:
        raise SignatureError(f"{name}: malformed sigstore bundle: {e}") from None
    env = bundle._dsse_envelope
    if env is None:
        raise SignatureError(f"{name}: malformed signature file: no DSSE envelope")
    return ParsedSignature(
        name,
        "sigstore",
        env._inner.payload_type,
        env._inner.payload,
        env._inner.signatures[0].sig,
        chain=(bundle.signing_certificate,),
        sigstore_bundle=bundle,
    )
