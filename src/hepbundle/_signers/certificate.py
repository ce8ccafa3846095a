"""X.509 signing and verification: EC certificates through model_signing, RSA grid certificates
with our own signer writing the same OMS format, and the checks model_signing leaves out
(subject DN, validity at signing time, proxy certificates, CRLs, IGTF CA directories).

Accepting a signature needs cryptography alone (its RFC 5280 path builder checks the chain;
pyOpenSSL decides, as before, only chains it refuses); the signers import model_signing,
sigstore-models and protobuf when they sign."""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ObjectIdentifier

from ..errors import PolicyError, SignatureError, SigningError, SpecError
from . import ParsedSignature, SignatureKind, pae
from .keys import check_key, ec_hash, load_private_key, verify_signature_bytes

if TYPE_CHECKING:
    from .statement import Payload

__all__ = ["CaStore", "X509Signer", "dn_matches", "dn_string", "verify_x509"]

#: RFC 3820 ProxyCertInfo, and the pre-RFC Globus draft OID still seen on old proxies
_PROXY_OIDS = (ObjectIdentifier("1.3.6.1.5.5.7.1.14"), ObjectIdentifier("1.3.6.1.4.1.3536.1.222"))
#: tolerated difference between the signer's clock and ours
_CLOCK_SKEW = dt.timedelta(minutes=5)
_SHORT_NAMES = {"1.2.840.113549.1.9.1": "emailAddress", "2.5.4.5": "serialNumber"}


def dn_string(name: x509.Name) -> str:
    """The OpenSSL/grid form of a DN, in encoding order: ``/DC=ch/DC=cern/OU=Users/CN=jdoe``."""
    parts = []
    for rdn in name.rdns:
        for attr in rdn:
            short = _SHORT_NAMES.get(attr.oid.dotted_string, attr.rfc4514_attribute_name)
            parts.append(f"{short}={attr.value!s}")
    return "/" + "/".join(parts)


def dn_matches(name: x509.Name, pattern: str) -> bool:
    """``pattern`` is a glob over the grid form (``/DC=ch/…/CN=*``) or, without a leading ``/``,
    over the RFC 4514 form (``CN=jdoe,OU=Users,DC=cern,DC=ch``)."""
    subject = dn_string(name) if pattern.startswith("/") else name.rfc4514_string()
    return fnmatch.fnmatchcase(subject, pattern)


def is_proxy(cert: x509.Certificate) -> bool:
    return any(e.oid in _PROXY_OIDS for e in cert.extensions)


def _refuse_proxy(cert: x509.Certificate, where: str, exc: type[Exception]) -> None:
    if is_proxy(cert):
        raise exc(
            f"{where}: {dn_string(cert.subject)} is an RFC 3820 proxy certificate; "
            "sign with the end-entity certificate (usercert.pem/userkey.pem) instead"
        )


def _load_certs(path: Path, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as e:
        raise SpecError(f"cannot read {what} {path}: {e.strerror}") from None
    except ValueError:
        raise SpecError(f"{path} is not a PEM certificate file ({what})") from None
    return certs


class X509Signer:
    """Sign with a certificate and its private key (EC or RSA), embedding the chain.

    EC goes through model_signing's certificate signer (``model_signing verify certificate``
    accepts it); RSA, which model_signing refuses, is signed here with PKCS#1 v1.5 / SHA-256 into
    the same bundle layout.
    """

    kind: SignatureKind = "x509"

    def __init__(
        self,
        certificate: Path | str,
        private_key: Path | str,
        chain: Sequence[Path | str] = (),
        password: str | None = None,
    ) -> None:
        self.cert_path, self.key_path = Path(certificate), Path(private_key)
        self.chain_paths = [Path(c) for c in chain]
        certs = _load_certs(self.cert_path, "certificate")
        self.certificate = certs[0]
        self.chain = [c for p in self.chain_paths for c in _load_certs(p, "chain")]
        _refuse_proxy(self.certificate, str(self.cert_path), SigningError)
        self._key = load_private_key(self.key_path, password)
        check_key(self._key, str(self.key_path), allow_rsa=True)
        if self._key.public_key() != self.certificate.public_key():
            raise SigningError(
                f"{self.key_path} is not the private key of {self.cert_path} "
                f"({dn_string(self.certificate.subject)})"
            )
        self._password = password

    def describe(self) -> str:
        return f"x509 {dn_string(self.certificate.subject)}"

    def sign_payload(self, payload: Payload) -> str:
        # model_signing's certificate signer takes neither a key password nor an empty chain
        # (it parses b"" as PEM and fails); those cases, and RSA, use our identical layout
        if (
            isinstance(self._key, ec.EllipticCurvePrivateKey)
            and self._password is None
            and self.chain_paths
        ):
            from model_signing._signing import sign_certificate as _oms_cert
            from model_signing._signing import sign_sigstore_pb as _oms_pb

            signer = _oms_cert.Signer(self.key_path, self.cert_path, self.chain_paths)
            sig = signer.sign(payload.upstream())
            assert isinstance(sig, _oms_pb.Signature)
            text: str = sig.bundle.to_json()
            return text
        return self._sign_own(payload)

    def _sign_own(self, payload: Payload) -> str:
        from .statement import bundle_json

        if isinstance(self._key, rsa.RSAPrivateKey):
            sig = self._key.sign(pae(payload.raw), padding.PKCS1v15(), hashes.SHA256())
        else:
            sig = self._key.sign(pae(payload.raw), ec.ECDSA(ec_hash(self._key.public_key())))
        der = [
            {"rawBytes": base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()}
            for c in (self.certificate, *self.chain)
        ]
        return bundle_json(payload, sig, {"x509CertificateChain": {"certificates": der}})


@dataclass
class CaStore:
    """Trusted CA certificates and CRLs: named PEM files and/or an IGTF-style directory
    (``<hash>.0`` certificates, ``<hash>.r0`` CRLs, as in ``/etc/grid-security/certificates``)."""

    cas: list[x509.Certificate] = field(default_factory=list)
    crls: list[x509.CertificateRevocationList] = field(default_factory=list)
    label: str = ""

    @classmethod
    def load(
        cls, ca_files: Iterable[Path] = (), ca_dir: Path | None = None, crls: Iterable[Path] = ()
    ) -> CaStore:
        store = cls()
        names: list[str] = []
        for f in ca_files:
            store.cas += _load_certs(f, "CA certificate")
            names.append(str(f))
        crl_files = list(crls)
        if ca_dir is not None:
            if not ca_dir.is_dir():
                raise SpecError(f"CA directory {ca_dir} does not exist")
            names.append(f"{ca_dir}/")
            for p in sorted(ca_dir.iterdir()):
                suffix = p.suffix[1:]
                if (suffix.isdigit() and len(suffix) == 1) or p.suffix == ".pem":
                    store.cas += _load_certs(p, "CA certificate")
                elif suffix[:1] == "r" and suffix[1:].isdigit():
                    crl_files.append(p)
        for f in crl_files:
            try:
                data = f.read_bytes()
                store.crls.append(
                    x509.load_pem_x509_crl(data)
                    if b"-----BEGIN" in data
                    else x509.load_der_x509_crl(data)
                )
            except (OSError, ValueError) as e:
                raise SpecError(f"cannot read CRL {f}: {e}") from None
        if not store.cas:
            raise SpecError(f"no CA certificates found in {', '.join(names) or '(nothing given)'}")
        store.label = ", ".join(names)
        return store

    def check_revoked(self, cert: x509.Certificate) -> None:
        """Reject ``cert`` if a CRL of its issuer, signed by that issuer, lists its serial."""
        for crl in self.crls:
            if crl.issuer != cert.issuer:
                continue
            issuer = next((c for c in self.cas if c.subject == crl.issuer), None)
            if issuer is None or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                continue
            revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if revoked is not None:
                raise PolicyError(
                    f"certificate {dn_string(cert.subject)} was revoked on "
                    f"{revoked.revocation_date_utc:%Y-%m-%d} (CRL of {dn_string(crl.issuer)})"
                )


def _ca_key_usage(
    policy: verification.Policy, cert: x509.Certificate, usage: x509.KeyUsage | None
) -> None:
    if usage is not None and not usage.key_cert_sign:
        raise ValueError("CA key usage does not allow certificate signing")


def _defer(policy: verification.Policy, cert: x509.Certificate, ext: object) -> None:
    # policy constraints are processed by OpenSSL, not by cryptography: let OpenSSL decide
    if ext is not None:
        raise ValueError("policy constraints: decided by OpenSSL")


def _chain_verifier(store: CaStore, at: dt.datetime) -> verification.ClientVerifier:
    """cryptography's RFC 5280 path builder as of ``at``, with the extension rules of OpenSSL's
    default chain check: CAs need basicConstraints and, if they have a key usage, keyCertSign;
    no TLS-style SAN or extended key usage is required of grid certificates (:func:`verify_x509`
    checks the signing key usage itself)."""
    ca_policy = (
        verification.ExtensionPolicy.permit_all()
        .require_present(x509.BasicConstraints, verification.Criticality.AGNOSTIC, None)
        .may_be_present(x509.KeyUsage, verification.Criticality.AGNOSTIC, _ca_key_usage)
    )
    ee_policy = verification.ExtensionPolicy.permit_all()
    for ext in (x509.PolicyConstraints, x509.InhibitAnyPolicy):
        ca_policy = ca_policy.may_be_present(ext, verification.Criticality.AGNOSTIC, _defer)
        ee_policy = ee_policy.may_be_present(ext, verification.Criticality.AGNOSTIC, _defer)
    return (
        verification.PolicyBuilder()
        .store(verification.Store(store.cas))
        .time(at)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )


def _chain_error(store: CaStore, chain: Sequence[x509.Certificate], at: dt.datetime) -> str | None:
    """Why ``chain`` (leaf first) does not lead to a CA of ``store`` at ``at``; None if it does.

    cryptography's path builder accepts the common chains without pyOpenSSL (~30 ms to import);
    whatever it refuses — a bad chain, but also what it does not handle as OpenSSL does (critical
    certificate policies or CRL distribution points, ``directoryName`` name constraints, SHA-224
    or RSA-1024 CAs) — pyOpenSSL decides, as it always did, and its message is reported."""
    try:
        _chain_verifier(store, at).verify(chain[0], list(chain[1:]))
        return None
    except (verification.VerificationError, ValueError):  # ValueError: an empty store
        pass
    from OpenSSL import crypto

    ossl = crypto.X509Store()
    for ca in store.cas:
        ossl.add_cert(crypto.X509.from_cryptography(ca))
    ossl.set_time(at.replace(tzinfo=None))
    ctx = crypto.X509StoreContext(
        ossl,
        crypto.X509.from_cryptography(chain[0]),
        [crypto.X509.from_cryptography(c) for c in chain[1:]],
    )
    try:
        ctx.verify_certificate()
    except crypto.X509StoreContextError as e:
        return str(e)
    return None


def verify_x509(
    sig: ParsedSignature, store: CaStore, signing_time: dt.datetime
) -> x509.Certificate:
    """Check an X.509 signature: leaf valid at ``signing_time``, chain up to a CA of ``store`` at
    that time, not a proxy, usable for signing, not revoked, and the DSSE signature itself.
    Returns the leaf certificate (the caller matches its DN)."""
    leaf = sig.chain[0]
    who = dn_string(leaf.subject)
    _refuse_proxy(leaf, sig.name, PolicyError)
    if signing_time > dt.datetime.now(dt.UTC) + _CLOCK_SKEW:
        raise SignatureError(
            f"{sig.name}: signing time {signing_time:%Y-%m-%dT%H:%M:%SZ} is in the future"
        )
    if not (leaf.not_valid_before_utc <= signing_time <= leaf.not_valid_after_utc):
        raise SignatureError(
            f"{sig.name}: certificate {who} expired at signing time: signed "
            f"{signing_time:%Y-%m-%dT%H:%M:%SZ}, valid {leaf.not_valid_before_utc:%Y-%m-%d} to "
            f"{leaf.not_valid_after_utc:%Y-%m-%d}"
        )
    problem = _chain_error(store, sig.chain, signing_time)
    if problem is not None:
        raise PolicyError(
            f"{sig.name}: untrusted CA: {who} issued by {dn_string(leaf.issuer)} does not chain "
            f"to a trusted CA ({store.label}): {problem}"
        )
    store.check_revoked(leaf)
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.digital_signature:
            raise SignatureError(f"{sig.name}: certificate {who} is not allowed to sign")
    except x509.ExtensionNotFound:
        pass
    pub = leaf.public_key()
    check_key(pub, sig.name, allow_rsa=True)
    assert isinstance(pub, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    verify_signature_bytes(pub, sig.signature, sig.payload, sig.name)
    return leaf
