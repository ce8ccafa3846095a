"""EC key pairs: load and check keys, sign, verify a key signature.

Signing and verification use cryptography alone: :class:`KeySigner` writes the signature file
model_signing's EC key signer writes (:mod:`.statement`), and ``model_signing verify key``
accepts it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import exceptions
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from ..errors import SignatureError, SigningError, SpecError
from . import SignatureKind, pae

if TYPE_CHECKING:
    from .statement import Payload

__all__ = [
    "SUPPORTED_CURVES",
    "KeySigner",
    "check_key",
    "ec_hash",
    "generate_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "public_key_from_pem",
    "verify_signature_bytes",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

#: the curves model_signing (and the sigstore protobuf specs) accept
_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
}
SUPPORTED_CURVES = tuple(_CURVES)
#: the ECDSA hash for each curve size, as the sigstore protobuf specs (and model_signing's
#: ``get_ec_key_hash``) pair them
_EC_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    256: hashes.SHA256,
    384: hashes.SHA384,
    521: hashes.SHA512,
}


def ec_hash(public_key: ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    """The hash an ECDSA signature with ``public_key`` uses (SHA-256/384/512 by curve size)."""
    size = public_key.curve.key_size
    if size not in _EC_HASHES:
        raise ValueError(f"Unexpected key size {size}")
    return _EC_HASHES[size]()


def key_id(public_key: PublicKey) -> str:
    """``sha256:<hex>`` of the PEM SubjectPublicKeyInfo: the hint model_signing writes into a key
    signature, so the identity we show is the one the signature file names."""
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(pem).hexdigest()


def _describe_type(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"EC {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"RSA-{key.key_size}"
    return type(key).__name__.lstrip("_")


def check_key(key: object, where: str, *, allow_rsa: bool = False) -> None:
    """Raise :class:`SigningError` ("unsupported key type") unless ``key`` is EC P-256/384/521
    (or RSA ≥ 2048 bits where ``allow_rsa``)."""
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if key.curve.name in SUPPORTED_CURVES:
            return
    elif (
        isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey) and allow_rsa and key.key_size >= 2048
    ):
        return
    supported = "EC P-256, P-384 or P-521" + (" or RSA ≥ 2048 bits" if allow_rsa else "")
    hint = (
        "RSA keys are accepted only with a certificate (--cert)"
        if isinstance(key, rsa.RSAPrivateKey) and not allow_rsa
        else f"generate one with: hepbundle key generate -o {Path(where).name}"
    )
    raise SigningError(
        f"{where}: unsupported key type {_describe_type(key)}; use {supported}", hint=hint
    )


def load_private_key(path: Path, password: str | None = None) -> PrivateKey:
    """Load a PEM private key (EC or RSA; the caller checks which it accepts)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SigningError(f"cannot read private key {path}: {e.strerror}") from None
    try:
        key = serialization.load_pem_private_key(
            data, password.encode() if password is not None else None
        )
    except TypeError as e:
        raise SigningError(
            f"{path}: {e}", hint="set HEPBUNDLE_KEY_PASSWORD for an encrypted key"
        ) from None
    except ValueError as e:
        if b"CERTIFICATE-----" in data:
            raise SigningError(
                f"{path} is a certificate, not a private key: --key of a command that signs "
                "is the PRIVATE key",
                hint="sign with a certificate as --cert CERT.pem --key KEY.pem",
            ) from None
        if b"PUBLIC KEY-----" in data:
            raise SigningError(
                f"{path} is a public key, not a private key: --key of a command that signs "
                "is the PRIVATE key (e.g. key.pem, not key.pub.pem)",
                hint="the public key goes in the trust policy, or after --trust-key",
            ) from None
        raise SigningError(f"{path} is not a PEM private key: {e}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        check_key(key, str(path))
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    return key


def load_public_key(path: Path) -> PublicKey:
    """Load a PEM public key (or the public key of a PEM certificate) named by a policy."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SpecError(f"cannot read public key {path}: {e.strerror}") from None
    return public_key_from_pem(data, str(path))


def public_key_from_pem(data: bytes, path: str) -> PublicKey:
    """The EC public key of PEM ``data`` (a public key or a certificate); ``path`` names it."""
    key: object
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        from cryptography import x509  # a certificate given as a key: rare, loaded then

        try:
            key = x509.load_pem_x509_certificate(data).public_key()
        except ValueError:
            if b"PRIVATE KEY-----" in data:
                raise SpecError(
                    f"{path} is a private key: a key to trust is the PUBLIC key (e.g. "
                    "key.pub.pem, written beside key.pem by 'hepbundle key generate')",
                    hint="never hand a private key to a verifier; pass its .pub.pem",
                ) from None
            raise SpecError(f"{path} is not a PEM public key") from None
    try:
        # key signatures are ECDSA only (as model_signing makes them); RSA needs a certificate
        check_key(key, path)
    except SigningError as e:
        raise SpecError(
            e.message, hint="RSA keys sign through certificates: trust their CA"
        ) from None
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def generate_key(out: Path, *, curve: str = "secp256r1", force: bool = False) -> tuple[Path, Path]:
    """Write a new EC private key to ``out`` (mode 0600) and its public key next to it as
    ``<stem>.pub.pem``; return both paths."""
    if curve not in SUPPORTED_CURVES:
        raise SigningError(f"unknown curve {curve!r}; use one of {', '.join(SUPPORTED_CURVES)}")
    pub = out.with_name(out.name.removesuffix(".pem") + ".pub.pem")
    for p in (out, pub):
        if p.exists() and not force:
            raise SigningError(f"{p} already exists", hint="use --force to overwrite")
    key = ec.generate_private_key(_CURVES[curve]())
    priv_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    # create with 0600 from the start: a private key must never be world-readable, even briefly
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(priv_pem)
    pub.write_bytes(pub_pem)
    return out, pub


def verify_signature_bytes(
    public_key: PublicKey, signature: bytes, payload: bytes, where: str
) -> None:
    """Check a DSSE signature over ``payload`` (PAE-encoded here) with ``public_key``: ECDSA with
    the curve's hash, or RSA PKCS#1 v1.5 with SHA-256. :class:`SignatureError` if it fails."""
    data = pae(payload)
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(ec_hash(public_key)))
        else:
            public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except exceptions.InvalidSignature:
        raise SignatureError(
            f"{where}: invalid signature: the signed statement does not verify with "
            f"{_describe_type(public_key)} key {key_id(public_key)}"
        ) from None


class KeySigner:
    """Sign with an EC private key (P-256/384/521) as model_signing's key signer does (ECDSA
    with the curve's hash over the DSSE PAE, the key's SHA-256 hint), so that
    ``model_signing verify key`` accepts the result."""

    kind: SignatureKind = "key"

    def __init__(self, private_key: Path | str, password: str | None = None) -> None:
        self.path = Path(private_key)
        key = load_private_key(self.path, password)
        check_key(key, str(self.path))
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self._key = key
        self.public_key = key.public_key()

    def describe(self) -> str:
        return f"key {key_id(self.public_key)}"

    def sign_payload(self, payload: Payload) -> str:
        from .statement import bundle_json

        sig = self._key.sign(pae(payload.raw), ec.ECDSA(ec_hash(self.public_key)))
        hint = key_id(self.public_key).removeprefix("sha256:")
        return bundle_json(payload, sig, {"publicKey": {"hint": hint}})
