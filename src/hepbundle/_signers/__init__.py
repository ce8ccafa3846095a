"""Signers and signature parsing behind :mod:`hepbundle.signing`: one module per key kind.

``keys``      EC P-256/384/521 key pairs (model_signing's key signer; upstream verifies them)
``certificate`` X.509 certificates: EC through model_signing, RSA (grid certificates) our own,
              chain, subject DN and validity checks against named CAs or an IGTF directory
``sigstore``  keyless signing through Fulcio/Rekor, and offline verification against a trust root

Every signature file is an OMS v1.0 signature: a sigstore bundle (v0.3 JSON) whose DSSE envelope
carries an in-toto statement of file digests. :func:`parse_signature` reads one without trusting
it; the kind-specific modules then check it against trust material.

Accepting a key or X.509 signature needs only json, base64 and cryptography: these modules
import model_signing, sigstore, sigstore-models and protobuf only inside the functions that sign
or that verify keyless signatures (and pyOpenSSL only to decide an X.509 chain cryptography
refuses), so a production job that opens a bundle under a key or X.509 policy does not pay
~0.35 s of imports for them (``tests/test_signing_imports.py``).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..errors import SignatureError

if TYPE_CHECKING:
    from cryptography import x509

    from .statement import Payload

__all__ = [
    "IN_TOTO_PAYLOAD_TYPE",
    "ParsedSignature",
    "SignatureKind",
    "Signer",
    "pae",
    "parse_signature",
    "parse_signature_text",
    "signed_algorithm",
    "signed_digests",
]

SignatureKind = Literal["key", "x509", "sigstore"]

#: the DSSE payload type of an OMS signature (model_signing's ``_IN_TOTO_JSON_PAYLOAD_TYPE``)
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
#: OMS predicate types: v1.0, and the v0.2 "digests" form upstream still accepts
_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
_PREDICATE_TYPE_COMPAT = "https://model_signing/Digests/v0.1"


def pae(payload: bytes) -> bytes:
    """The DSSE v1 pre-authentication encoding of an in-toto ``payload`` (what is signed);
    byte-identical to model_signing's ``sign_sigstore_pb.pae`` (a test holds them equal)."""
    header = f"DSSEv1 {len(IN_TOTO_PAYLOAD_TYPE)} {IN_TOTO_PAYLOAD_TYPE} {len(payload)}"
    return header.encode("utf-8") + b" " + payload


class Signer(Protocol):
    """Something that turns an OMS payload (:class:`.statement.Payload`: the in-toto statement
    to sign) into signature-file text (a sigstore bundle JSON)."""

    kind: SignatureKind

    def sign_payload(self, payload: Payload) -> str: ...

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
    #: hex SHA-256 of the file's bytes as parsed (so a copy can be checked to be this file)
    file_sha256: str = ""
    #: RFC 3161 timestamp responses (DER) over ``signature`` (:mod:`.timestamp`)
    timestamps: tuple[bytes, ...] = ()

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


def signed_digests(statement: dict[str, Any]) -> dict[str, str]:
    """The resource digests (path → lowercase hex) an OMS statement signs, with upstream's checks
    (``model_signing``'s ``dsse_payload_to_manifest``): predicate type v1.0 (or the v0.2 compat
    form), one subject whose SHA-256 is the digest over all resource digests, a known
    serialization method. Raises KeyError, TypeError or ValueError when malformed."""
    predicate_type = statement["predicateType"]
    if predicate_type == _PREDICATE_TYPE_COMPAT:
        # v0.2: the subjects are the files; no serialization, no root digest
        return {
            str(PurePosixPath(s["name"])): bytes.fromhex(s["digest"]["sha256"]).hex()
            for s in statement["subject"]
        }
    if predicate_type != _PREDICATE_TYPE:
        raise ValueError(
            f"Predicate type mismatch, expected {_PREDICATE_TYPE}, got {predicate_type}"
        )
    subjects = statement["subject"]
    if len(subjects) != 1:
        raise ValueError(f"Expected only one subject, got {subjects}")
    expected_root = subjects[0]["digest"]["sha256"]
    predicate = statement["predicate"]
    method = predicate["serialization"]["method"]
    if method not in ("files", "shards"):
        raise ValueError(f"Unknown serialization type {method}")
    root = hashlib.sha256()
    out: dict[str, str] = {}
    for resource in predicate["resources"]:
        digest = bytes.fromhex(resource["digest"])
        root.update(digest)
        out[_resource_id(str(resource["name"]), method)] = digest.hex()
    if root.hexdigest() != expected_root:
        raise ValueError(
            f"Manifest is inconsistent. Root digest is {expected_root}, "
            f"but the included resources hash to {root.hexdigest()}"
        )
    return out


def signed_algorithm(statement: dict[str, Any]) -> str:
    """The one digest algorithm an OMS statement's resources use: the serialization's
    ``hash_type``, which every resource's ``algorithm`` must repeat (upstream hashes with
    ``hash_type`` and compares algorithm and value). ``sha256`` for the v0.2 compat form.
    Raises KeyError, TypeError or ValueError when malformed or mixed."""
    if statement["predicateType"] == _PREDICATE_TYPE_COMPAT:
        return "sha256"
    hash_type = statement["predicate"]["serialization"]["hash_type"]
    if not isinstance(hash_type, str):
        raise TypeError(f"serialization.hash_type must be a string, got {hash_type!r}")
    for resource in statement["predicate"]["resources"]:
        if resource["algorithm"] != hash_type:
            raise ValueError(
                f"resource {resource['name']!r} has a {resource['algorithm']!r} digest but the "
                f"serialization names {hash_type!r}"
            )
    return hash_type


def _resource_id(name: str, method: str) -> str:
    """The identifier upstream gives a resource: a normalised POSIX path, or ``path:start:end``
    for a shard."""
    if method == "files":
        return str(PurePosixPath(name))
    parts = name.split(":")
    if len(parts) != 3:
        raise ValueError(
            f"Invalid resource name: expected 3 components separated by `:`, got {name}"
        )
    return f"{PurePosixPath(parts[0])}:{int(parts[1])}:{int(parts[2])}"


def _b64(value: Any) -> bytes:
    """A base64 field of the bundle JSON (standard alphabet, as protobuf JSON writes bytes)."""
    if not isinstance(value, str):
        raise TypeError(f"expected a base64 string, got {type(value).__name__}")
    return base64.b64decode(value)


def parse_signature(path: Path) -> ParsedSignature:
    """Read a signature file; raise :class:`SignatureError` ("malformed signature file") if it is
    not an OMS sigstore bundle with a DSSE envelope. Key and X.509 signatures are read with json
    alone (the bundle is small and specified); keyless ones through sigstore-python."""
    name = path.name
    try:
        data = path.read_bytes()
        raw = data.decode("utf-8")
        doc = json.loads(raw)
    except FileNotFoundError:
        raise SignatureError(f"{name} is missing") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise SignatureError(f"{name}: malformed signature file: {e}") from None
    return dataclasses.replace(_parse(name, raw, doc), file_sha256=hashlib.sha256(data).hexdigest())


def parse_signature_text(name: str, raw: str) -> ParsedSignature:
    """:func:`parse_signature` of text already read (``name`` labels it in messages)."""
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise SignatureError(f"{name}: malformed signature file: {e}") from None
    parsed = _parse(name, raw, doc)
    return dataclasses.replace(parsed, file_sha256=hashlib.sha256(raw.encode()).hexdigest())


def _parse(name: str, raw: str, doc: Any) -> ParsedSignature:
    try:
        vm = doc["verificationMaterial"]
        if vm.get("tlogEntries") or "certificate" in vm:
            return _parse_sigstore(name, raw)
        env = doc.get("dsseEnvelope")
        if not isinstance(env, dict) or not env.get("signatures"):
            raise SignatureError(f"{name}: malformed signature file: no DSSE envelope")
        payload_type, payload = str(env["payloadType"]), _b64(env["payload"])
        signature = _b64(env["signatures"][0]["sig"])
        tsd = vm.get("timestampVerificationData") or {}
        stamps = tuple(_b64(t["signedTimestamp"]) for t in tsd.get("rfc3161Timestamps") or [])
        if vm.get("x509CertificateChain") is not None:
            from cryptography import (
                x509,
            )  # only for certificate signatures: a key job never loads it

            chain = tuple(
                x509.load_der_x509_certificate(_b64(c["rawBytes"]))
                for c in vm["x509CertificateChain"]["certificates"]
            )
            if not chain:
                raise SignatureError(f"{name}: malformed signature file: empty certificate chain")
            return ParsedSignature(
                name, "x509", payload_type, payload, signature, chain=chain, timestamps=stamps
            )
        hint = (vm.get("publicKey") or {}).get("hint")
        if hint is not None and not isinstance(hint, str):
            raise TypeError(f"publicKey.hint must be a string, got {type(hint).__name__}")
        return ParsedSignature(
            name, "key", payload_type, payload, signature, key_hint=hint, timestamps=stamps
        )
    except SignatureError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise SignatureError(f"{name}: malformed signature file: {e}") from None


def _parse_sigstore(name: str, raw: str) -> ParsedSignature:
    # sigstore-python (~0.3 s to import) is needed only for keyless signatures
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle as SigstoreBundle

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
