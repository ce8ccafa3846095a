"""A small real PKI for tests: EC/RSA keys, a CA, end-entity, proxy and expired certificates.

Everything is made with ``cryptography`` and written as PEM files, so the code under test reads
keys and certificates exactly as it would read a user's. Grid-style subject DNs are used
(``/DC=ch/DC=cern/OU=Users/CN=…``), as IGTF CAs issue them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

__all__ = [
    "PROXY_CERT_INFO_OID",
    "Issued",
    "ec_key",
    "grid_name",
    "key_usage",
    "make_ca",
    "make_cert",
    "make_crl",
    "make_expired",
    "make_proxy",
    "rsa_key",
    "write_igtf_dir",
    "write_key",
    "write_pem",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

#: RFC 3820 ProxyCertInfo extension
PROXY_CERT_INFO_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.14")

_NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def write_key(key: PrivateKey, path: Path) -> tuple[Path, Path]:
    """Write ``key`` as unencrypted PKCS#8 PEM to ``path`` and its public key to ``<stem>.pub.pem``;
    return both paths."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub = path.with_name(path.name.removesuffix(".pem") + ".pub.pem")
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path, pub


def write_pem(path: Path, *certs: x509.Certificate) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


def key_usage(*, sign: bool = False, ca: bool = False, encipher: bool = False) -> x509.KeyUsage:
    """KeyUsage with digitalSignature (``sign``), keyCertSign + cRLSign (``ca``) and
    keyEncipherment (``encipher``, RSA end entities) as asked, everything else off."""
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=encipher,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def grid_name(*cns: str, ou: str = "Users") -> x509.Name:
    """``/DC=ch/DC=cern/OU=<ou>/CN=<cn>/CN=…`` as an X.509 name."""
    attrs = [
        x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "ch"),
        x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "cern"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
    ]
    attrs += [x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in cns]
    return x509.Name(attrs)


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: PrivateKey

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write ``<stem>.pem`` (certificate) and ``<stem>.key.pem``; return (cert, key)."""
        cert = write_pem(directory / f"{stem}.pem", self.cert)
        key, _ = write_key(self.key, directory / f"{stem}.key.pem")
        return cert, key


def make_ca(
    cn: str = "Test Grid CA",
    *,
    key: PrivateKey | None = None,
    issuer: Issued | None = None,
    days: int = 3650,
    path_length: int | None = None,
    cert_sign: bool = True,
    extensions: list[tuple[x509.ExtensionType, bool]] | None = None,
) -> Issued:
    """A self-signed root CA (or an intermediate under ``issuer``); ``cert_sign=False`` leaves
    keyCertSign out of its key usage, ``extensions`` adds (extension, critical) pairs."""
    key = key or ec_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "ch"),
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "cern"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW - dt.timedelta(days=1))
        .not_valid_after(_NOW + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(key_usage(sign=True, ca=cert_sign), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    for ext, critical in extensions or []:
        builder = builder.add_extension(ext, critical=critical)
    signer = issuer.key if issuer else key
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def make_cert(
    ca: Issued,
    subject: x509.Name | None = None,
    *,
    key: PrivateKey | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    code_signing: bool = True,
    extensions: list[tuple[x509.ExtensionType, bool]] | None = None,
) -> Issued:
    """An end-entity certificate issued by ``ca`` (default: valid from yesterday for a year)."""
    key = key or ec_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject or grid_name("jdoe", "Jane Doe"))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or _NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or _NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            key_usage(sign=True, encipher=isinstance(key, rsa.RSAPrivateKey)), critical=True
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if code_signing:
        usages.append(ExtendedKeyUsageOID.CODE_SIGNING)
    builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    for ext, critical in extensions or []:
        builder = builder.add_extension(ext, critical=critical)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def make_expired(ca: Issued, subject: x509.Name | None = None) -> Issued:
    """A certificate whose validity ended yesterday."""
    return make_cert(
        ca,
        subject,
        not_before=_NOW - dt.timedelta(days=30),
        not_after=_NOW - dt.timedelta(days=1),
    )


def make_proxy(user: Issued, *, key: PrivateKey | None = None) -> Issued:
    """An RFC 3820 proxy certificate of ``user``: subject = user DN + ``/CN=<serial>``, issued by
    the user's own key, with the critical ProxyCertInfo extension (inherit-all policy)."""
    key = key or rsa_key()
    serial = x509.random_serial_number()
    subject = x509.Name([*user.cert.subject, x509.NameAttribute(NameOID.COMMON_NAME, str(serial))])
    # ProxyCertInfo ::= SEQUENCE { pCPathLenConstraint OPTIONAL, proxyPolicy SEQUENCE {
    #   policyLanguage OID id-ppl-inheritAll (1.3.6.1.5.5.7.21.1) } }
    inherit_all = bytes.fromhex("300c300a06082b06010505071501")
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(user.cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(_NOW - dt.timedelta(minutes=5))
        .not_valid_after(_NOW + dt.timedelta(hours=12))
        .add_extension(x509.UnrecognizedExtension(PROXY_CERT_INFO_OID, inherit_all), critical=True)
    )
    return Issued(builder.sign(user.key, hashes.SHA256()), key)


def make_crl(ca: Issued, revoked: list[x509.Certificate]) -> x509.CertificateRevocationList:
    """A CRL of ``ca`` listing ``revoked``, issued now and valid for a week."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(_NOW)
        .next_update(_NOW + dt.timedelta(days=7))
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(_NOW)
            .build()
        )
    return builder.sign(ca.key, hashes.SHA256())


def write_igtf_dir(
    directory: Path, *cas: Issued, crls: dict[int, x509.CertificateRevocationList] | None = None
) -> Path:
    """An ``/etc/grid-security/certificates``-style directory: ``<subject hash>.0`` per CA (with
    the ``.signing_policy``/``.namespaces`` companions a real IGTF bundle carries) and
    ``<hash>.r0`` CRLs for the CAs at the indices given in ``crls``."""
    from OpenSSL import crypto

    directory.mkdir(parents=True, exist_ok=True)
    for i, ca in enumerate(cas):
        h = f"{crypto.X509.from_cryptography(ca.cert).subject_name_hash():08x}"
        write_pem(directory / f"{h}.0", ca.cert)
        (directory / f"{h}.signing_policy").write_text("access_id_CA X509 '/DC=ch/DC=cern/CN=x'\n")
        (directory / f"{h}.namespaces").write_text(
            'TO Issuer "/DC=ch/DC=cern" PERMIT Subject ".*"\n'
        )
        if crls and i in crls:
            (directory / f"{h}.r0").write_bytes(crls[i].public_bytes(serialization.Encoding.PEM))
    return directory


def dn(name: x509.Name) -> str:
    """The grid (OpenSSL one-line) form of ``name``: ``/DC=ch/DC=cern/OU=Users/CN=jdoe``."""
    return "/" + "/".join(f"{a.rfc4514_attribute_name}={a.value!s}" for a in name)
