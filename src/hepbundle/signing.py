"""Sign bundles (and small directories) in the OMS v1.0 format, and verify their signatures
against a trust policy without hashing payload files.

The contract the layers above rely on:

* :func:`sign` writes ``hepbundle.sig`` (or the co-signature ``hepbundle.<role>.sig``) into a
  bundle after checking its integrity once. The signed in-toto statement lists every payload
  file's digest **and** ``hepbundle.json``'s own digest, so one signature covers metadata and
  payload, and names its ignore list (signature files, ``.cvmfscatalog``) so that upstream
  ``model_signing verify`` recomputes the same set.
* :func:`verify_signatures` checks every signature file of a bundle: the statement's digests
  must equal the manifest's file list plus the digest of ``hepbundle.json`` as read at open,
  and the trust policy must be satisfied by cryptographically valid signatures. Payload files
  are then checked one by one on first use (:meth:`Bundle.path`), or all at once.
  Raises :class:`~hepbundle.errors.SignatureError` (unsigned, malformed, invalid, digest
  mismatch) or :class:`~hepbundle.errors.PolicyError` (signer not allowed, untrusted CA).
* :func:`sign_directory` / :func:`verify_directory` do the same for a small directory that is
  not a bundle (evaluation records), hashing its files directly.

Signers are plain objects the caller constructs: :class:`KeySigner`, :class:`X509Signer`,
:class:`SigstoreSigner`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._base import TIME_FORMAT, utc_timestamp, write_atomic
from ._signers import (
    Signer,
    parse_signature,
    parse_signature_text,
    signed_algorithm,
    signed_digests,
)
from ._signers.keys import (
    SUPPORTED_CURVES,
    KeySigner,
    generate_key,
    key_id,
    load_public_key,
)
from ._signers.statement import Payload, oms_payload
from .bundle import Bundle
from .cache import default_cache
from .config import settings
from .digest import DEFAULT_ALGORITHM, algorithm, hash_files, sha256_bytes
from .errors import FormatError, PathError, SignatureError, SigningError, SpecError
from .integrity import IntegrityReport
from .manifest import MANIFEST_FILENAME
from .paths import check_relpath, is_reserved
from .policy import Candidate, Node, SignerInfo, TrustPolicy, no_policy_error, policy_from_env

if TYPE_CHECKING:
    from ._signers import ParsedSignature
    from ._signers.certificate import X509Signer
    from ._signers.sigstore import SigstoreSigner

__all__ = [
    "PRIMARY_ROLE",
    "SIGNATURE_FILENAME",
    "STATEMENT_ROLE",
    "SUPPORTED_CURVES",
    "KeySigner",
    "ParsedStatement",
    "SignResult",
    "Signer",
    "SignerInfo",
    "SigstoreSigner",
    "TrustPolicy",
    "VerifyResult",
    "X509Signer",
    "generate_key",
    "is_signed",
    "key_id",
    "load_public_key",
    "parse_statement",
    "sign",
    "sign_directory",
    "sign_statement",
    "signature_files",
    "signature_name",
    "signer_from",
    "verify",
    "verify_directory",
    "verify_signatures",
    "verify_statement",
]

log = logging.getLogger("hepbundle")

SIGNATURE_FILENAME = "hepbundle.sig"
PRIMARY_ROLE = "primary"
#: always in the signed ignore list: what a bundle may gain after signing without changing
_IGNORED = (SIGNATURE_FILENAME, ".cvmfscatalog")
_PREDICATE_KEY = "hepbundle"


def signature_name(role: str | None) -> str:
    """``hepbundle.sig`` for the primary signature, ``hepbundle.<role>.sig`` for a co-signature."""
    if role in (None, "", PRIMARY_ROLE):
        return SIGNATURE_FILENAME
    assert role is not None
    if not role.replace("-", "").replace("_", "").isalnum() or not role.isascii():
        raise SigningError(f"role {role!r} must be letters, digits, '-' or '_'")
    return f"hepbundle.{role}.sig"


def signature_files(root: Path) -> dict[str, Path]:
    """The signature files at the top of ``root``, by role (``primary`` first)."""
    out: dict[str, Path] = {}
    if (root / SIGNATURE_FILENAME).is_file():
        out[PRIMARY_ROLE] = root / SIGNATURE_FILENAME
    for p in sorted(root.glob("hepbundle.*.sig")):
        if p.name != SIGNATURE_FILENAME and p.is_file():
            out[p.name.removeprefix("hepbundle.").removesuffix(".sig")] = p
    return out


def is_signed(bundle: Bundle) -> bool:
    return bool(signature_files(bundle.root))


@dataclass(frozen=True)
class SignResult:
    """What :func:`sign` wrote."""

    path: Path
    role: str
    signer: str
    signed_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "signature": str(self.path),
            "role": self.role,
            "signer": self.signer,
            "signedAt": self.signed_at,
        }


def _payload(
    name: str,
    digests: Mapping[str, str],
    ignore: Sequence[str],
    extra: dict[str, Any],
    alg: str = "sha256",
) -> Payload:
    """The OMS v1.0 in-toto statement over ``digests`` (path → hex digest in ``alg``): the
    serialization's ``hash_type`` and every resource's ``algorithm`` name ``alg``, which is what
    upstream ``model_signing`` recomputes with when it verifies. Written with json alone
    (:mod:`._signers.statement`): signing does not import model_signing for it. Extra predicate
    fields are allowed by OMS v1.0 ("verifiers ignore other fields"); the signing time lives
    there so an X.509 verifier can hold it against the certificate validity."""
    return oms_payload(name, digests, ignore, extra, algorithm(alg).name, extra_key=_PREDICATE_KEY)


def _write_signature(
    root: Path,
    role: str | None,
    name: str,
    digests: Mapping[str, str],
    alg: str,
    signer: Signer,
    force: bool,
    tsa_url: str | None = None,
) -> SignResult:
    target = root / signature_name(role)
    if target.exists() and not force:
        raise SigningError(f"{target} already exists", hint="use --force to replace the signature")
    others = [p.name for p in signature_files(root).values() if p.name != target.name]
    ignore = sorted({*_IGNORED, target.name, *others})
    now = utc_timestamp()
    extra = {"signedAt": now, "role": role or PRIMARY_ROLE, "name": name}
    text = signer.sign_payload(_payload(name, digests, ignore, extra, alg))
    if tsa_url is not None:
        text = _add_timestamp(text, tsa_url)
    write_atomic(target, text.encode("utf-8"))
    log.info("signed %s as %s (%s)", name, role or PRIMARY_ROLE, signer.describe())
    return SignResult(target, role or PRIMARY_ROLE, signer.describe(), now)


def _add_timestamp(text: str, tsa_url: str) -> str:
    """The signature document with an RFC 3161 timestamp over its signature bytes, where
    sigstore bundles keep one (``verificationMaterial.timestampVerificationData``)."""
    import base64

    from ._signers.timestamp import request_timestamp

    doc = json.loads(text)
    sig = base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"])
    token = request_timestamp(tsa_url, sig)
    vm = doc["verificationMaterial"]
    stamps = vm.setdefault("timestampVerificationData", {}).setdefault("rfc3161Timestamps", [])
    stamps.append({"signedTimestamp": base64.b64encode(token).decode("ascii")})
    return json.dumps(doc, indent=2) + "\n"


def sign(
    bundle: str | os.PathLike[str] | Bundle,
    signer: Signer,
    *,
    role: str | None = None,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    tsa_url: str | None = None,
) -> SignResult:
    """Sign a bundle (a directory, or the :class:`Bundle` a build returned) after checking every
    file against its manifest: a damaged bundle is never signed. ``role`` writes a co-signature
    ``hepbundle.<role>.sig``; ``tsa_url`` adds an RFC 3161 timestamp over the signature from
    that Time-Stamping Authority, so an X.509 signature still verifies after its certificate
    expires.

    The check reads each payload byte at most once, and not at all for a file whose digest this
    node computed from the bytes it wrote or verified (the build's records in the verification
    cache, or the in-memory records of the :class:`Bundle` a build just returned), as long as the
    file provably did not change since (docs/design.md, "One hashing pass per byte")."""
    if isinstance(bundle, Bundle):
        b = bundle
    else:
        b = Bundle.load(bundle)
        b.cache = default_cache()
    b.verify(progress=progress).raise_for_problems(f"{b.ref} (refusing to sign)")
    b.manifest_bytes()  # unchanged since the check above
    return _write_signature(
        b.root, role, b.ref, _bundle_digests(b), b.algorithm, signer, force, tsa_url
    )


def _bundle_digests(b: Bundle) -> dict[str, str]:
    """What a bundle's signature lists: every payload digest of the manifest, and the digest of
    hepbundle.json as read at open, all in the bundle's algorithm."""
    digests = {f.path: f.digest for f in b.manifest.files}
    digests[MANIFEST_FILENAME] = b.manifest_digest_as(b.algorithm)
    return digests


def _directory_digests(root: Path, alg: str) -> dict[str, str]:
    rels: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for n in sorted(filenames):
            rel = n if rel_dir == "." else f"{rel_dir}/{n}".replace(os.sep, "/")
            if (rel_dir == "." and is_reserved(rel)) or n.startswith(".hepbundle."):
                continue
            check_relpath(rel)
            if (Path(dirpath) / n).is_symlink():
                raise PathError(f"{root}/{rel} is a symlink; signed directories hold regular files")
            rels.append(rel)
    digests = hash_files([root / r for r in rels], alg)
    return {r: d.digest for r, d in zip(rels, digests, strict=True)}


def sign_directory(
    path: str | os.PathLike[str],
    signer: Signer,
    *,
    name: str | None = None,
    role: str | None = None,
    force: bool = False,
    alg: str = DEFAULT_ALGORITHM,
) -> SignResult:
    """Sign every regular file under a small directory (not a bundle: no manifest), e.g. an
    evaluation record. ``name`` is recorded in the statement (default: the directory name)."""
    root = Path(path)
    if not root.is_dir():
        raise SigningError(f"{root} is not a directory")
    digests = _directory_digests(root, algorithm(alg).name)
    return _write_signature(root, role, name or root.name, digests, alg, signer, force)


def _signed_at(stmt: Mapping[str, Any]) -> dt.datetime:
    extra = (stmt.get("predicate") or {}).get(_PREDICATE_KEY) or {}
    try:
        return dt.datetime.strptime(str(extra["signedAt"]), TIME_FORMAT).replace(tzinfo=dt.UTC)
    except (KeyError, ValueError):
        # a signature made by plain model_signing records no time: judge it as of now
        return dt.datetime.now(dt.UTC)


def _statement_algorithm(sig: ParsedSignature) -> str:
    """The digest algorithm a signature's statement uses (a known one)."""
    try:
        name = signed_algorithm(sig.statement)
    except (KeyError, TypeError, ValueError) as e:
        raise SignatureError(f"{sig.name}: malformed signature file: statement: {e}") from None
    try:
        return algorithm(name).name
    except FormatError as e:
        raise SignatureError(f"{sig.name}: {e.message}", hint=e.hint) from None


def _check_statement(
    sig: ParsedSignature, expected: Mapping[str, str], alg: str, what: str
) -> dt.datetime:
    """The signed digests must be exactly ``expected``, in algorithm ``alg``; returns the
    claimed signing time."""
    stmt = sig.statement
    signed_alg = _statement_algorithm(sig)
    if signed_alg != alg:
        raise SignatureError(
            f"{what}: {sig.name} signs {signed_alg} digests but the manifest lists {alg} digests",
            hint="the signature belongs to another build of this bundle",
        )
    try:
        signed = signed_digests(stmt)
    except (KeyError, TypeError, ValueError) as e:
        raise SignatureError(f"{sig.name}: malformed signature file: statement: {e}") from None
    problems = [
        f"digest mismatch in {p}"
        for p in sorted(expected)
        if p in signed and signed[p] != expected[p]
    ]
    problems += [
        f"extra {p} (not covered by the signature)" for p in sorted(set(expected) - set(signed))
    ]
    problems += [f"missing {p} (signed but absent)" for p in sorted(set(signed) - set(expected))]
    if problems:
        hint = (
            "the manifest was edited or the signature belongs to another bundle"
            if any(MANIFEST_FILENAME in p for p in problems)
            else None
        )
        listed = "; ".join(problems[:20])
        more = f"; … and {len(problems) - 20:,} more" if len(problems) > 20 else ""
        raise SignatureError(f"{what}: {sig.name} does not match: {listed}{more}", hint=hint)
    return _signed_at(stmt)


def _verify(
    root: Path,
    expected: Callable[[str], tuple[str, Mapping[str, str]]],
    name: str,
    what: str,
    policy: TrustPolicy,
    checked: dict[str, str] | None = None,
) -> list[SignerInfo]:
    """Check every signature file of ``root``; ``expected(algorithm of the signature)`` gives the
    algorithm the digests must be in and the digests (path → hex) the statement must list.
    ``checked`` receives file name → SHA-256 of the bytes of every signature file checked."""
    files = signature_files(root)
    if not files:
        raise SignatureError(
            f"{what} is unsigned ({SIGNATURE_FILENAME} is missing)",
            hint="sign it with: hepbundle sign",
        )
    candidates = []
    for file_role, p in files.items():
        sig = parse_signature(p)
        alg, digests = expected(_statement_algorithm(sig))
        signed_at = _check_statement(sig, digests, alg, what)
        stamped = _timestamped_at(sig, policy, f"{what}: {sig.name}")
        candidates.append(Candidate(sig, _signed_role(sig, file_role, what), signed_at, stamped))
        if checked is not None:
            checked[p.name] = sig.file_sha256
    return policy.evaluate(name, candidates)


def _timestamped_at(sig: ParsedSignature, policy: TrustPolicy, where: str) -> dt.datetime | None:
    """The earliest time the signature's RFC 3161 timestamps prove (None without one); a token
    that is forged, covers other bytes or comes from a TSA the policy does not trust refuses."""
    if not sig.timestamps:
        return None
    from ._signers.timestamp import verify_timestamp

    return min(verify_timestamp(t, sig.signature, policy.tsa_roots, where) for t in sig.timestamps)


def _signed_role(sig: ParsedSignature, file_role: str, what: str) -> str:
    """The role a signature was made for, as its signed statement says; the file name is only
    where it is stored. A signature whose file claims another role was renamed: refused."""
    extra = (sig.statement.get("predicate") or {}).get(_PREDICATE_KEY)
    role = extra.get("role") if isinstance(extra, Mapping) else None
    if role is None:
        # plain model_signing signs no role: it can only stand as the primary signature
        if file_role == PRIMARY_ROLE:
            return PRIMARY_ROLE
        raise SignatureError(
            f"{what}: {sig.name} names no role in its signed statement",
            hint="a co-signature's role must be signed: re-sign with hepbundle sign --role",
        )
    if not isinstance(role, str) or role != file_role:
        raise SignatureError(
            f"{what}: {sig.name} was signed as role {role!r}, not {file_role!r}",
            hint="the signature file was renamed; roles are taken from the signed statement",
        )
    return role


@dataclass(frozen=True)
class ManifestCheck:
    """What :func:`verify_manifest_signature` established before the manifest was parsed."""

    #: the bundle the signatures name (``ns/name@version``, signed)
    ref: str
    policy: TrustPolicy
    signers: list[SignerInfo]
    #: signature file role → the parsed signature whose statement covers the manifest bytes
    sigs: Mapping[str, ParsedSignature]


def _signed_ref(sig: ParsedSignature) -> str | None:
    extra = (sig.statement.get("predicate") or {}).get(_PREDICATE_KEY)
    ref = extra.get("name") if isinstance(extra, Mapping) else None
    return ref if isinstance(ref, str) and "@" in ref else None


#: a manifest whose bytes the signatures do not cover is refused unparsed when larger than this;
#: a smaller one (every real bundle) is parsed only to list which entries differ
_DIAGNOSE_BYTES = 1 << 20


def verify_manifest_signature(
    root: Path, data: bytes, policy_for: Callable[[str, str], TrustPolicy]
) -> ManifestCheck | None:
    """Check the signatures over the manifest's BYTES before its entries are parsed: every
    signature file's statement must list the digest of exactly ``data`` as ``hepbundle.json``,
    and the signers must satisfy ``policy_for(name, version)`` of the bundle they signed (the
    ``name`` in the signed statement). An unsigned, forged or foreign manifest is thus refused
    before its (up to 100,000) entries cost anything. None when the signatures name no bundle
    (plain model_signing signs no name): then :func:`verify_signatures` decides after parsing.
    The payload digests are compared by :func:`verify_signatures` (``prechecked=``)."""
    files = signature_files(root)
    if not files:
        return None
    parsed = {role: parse_signature(p) for role, p in files.items()}
    refs = {_signed_ref(sig) for sig in parsed.values()}
    if len(refs) != 1 or None in refs:
        return None
    ref = str(refs.pop())
    name, _, version = ref.rpartition("@")
    what = f"{ref} ({root})"
    policy = policy_for(name, version)
    candidates = []
    for role, sig in parsed.items():
        alg = _statement_algorithm(sig)
        try:
            signed = signed_digests(sig.statement)
        except (KeyError, TypeError, ValueError) as e:
            raise SignatureError(f"{sig.name}: malformed signature file: statement: {e}") from None
        if signed.get(MANIFEST_FILENAME) != algorithm(alg).hex(data):
            if len(data) <= _DIAGNOSE_BYTES:
                return None  # refused after parsing, with every differing entry listed
            problem = "digest mismatch in" if MANIFEST_FILENAME in signed else "extra"
            raise SignatureError(
                f"{what}: {sig.name} does not match: {problem} {MANIFEST_FILENAME}",
                hint="the manifest was edited or the signature belongs to another bundle",
            )
        stamped = _timestamped_at(sig, policy, f"{what}: {sig.name}")
        candidates.append(
            Candidate(sig, _signed_role(sig, role, what), _signed_at(sig.statement), stamped)
        )
    return ManifestCheck(ref, policy, policy.evaluate(name, candidates), parsed)


def verify_signatures(
    bundle: Bundle, policy: TrustPolicy | None = None, *, prechecked: ManifestCheck | None = None
) -> list[SignerInfo]:
    """Verify the bundle's signatures against ``policy`` (default: ``HEPBUNDLE_POLICY``; none is
    refused); see the module docstring. Stores and returns the signers that satisfied it.
    ``prechecked``: :func:`verify_manifest_signature` of the bytes this bundle was parsed from
    (signers already judged); what is left is comparing every payload digest."""
    if prechecked is not None:
        if prechecked.ref != bundle.ref:
            raise SignatureError(
                f"{bundle.ref}: the signatures were made for {prechecked.ref}",
                hint="the signature belongs to another bundle",
            )
        digests = _bundle_digests(bundle)
        files: dict[str, str] = {}
        for sig in prechecked.sigs.values():
            _check_statement(sig, digests, bundle.algorithm, bundle.ref)
            files[sig.name] = sig.file_sha256
        signers = list(prechecked.signers)
        bundle.signature = signers
        bundle.signature_files = files
        return signers
    policy = policy or policy_from_env()
    if policy is None:
        raise no_policy_error(bundle.ref)
    expected = _bundle_digests(bundle)
    checked: dict[str, str] = {}
    signers = _verify(
        bundle.root,
        lambda _: (bundle.algorithm, expected),
        bundle.name,
        bundle.ref,
        policy,
        checked,
    )
    bundle.signature = signers
    bundle.signature_files = checked
    return signers


def verify_directory(
    path: str | os.PathLike[str], policy: TrustPolicy, *, name: str
) -> list[SignerInfo]:
    """Verify a directory signed with :func:`sign_directory`: every file hashed and compared with
    the signed statement (in the algorithm the statement names), signers checked against the
    rule of ``policy`` for ``name``."""
    root = Path(path)
    hashed: dict[str, dict[str, str]] = {}

    def expected(alg: str) -> tuple[str, Mapping[str, str]]:
        if alg not in hashed:
            hashed[alg] = _directory_digests(root, alg)
        return alg, hashed[alg]

    return _verify(root, expected, name, str(root), policy)


@dataclass(frozen=True)
class VerifyResult:
    """What ``hepbundle verify`` found: who signed (None: not checked, integrity only) and the
    file report. ``verified`` only when signatures were checked and every file matched."""

    bundle: Bundle
    signers: list[SignerInfo] | None
    report: IntegrityReport

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.bundle.ref,
            "path": str(self.bundle.root),
            "manifest_sha256": self.bundle.manifest_digest,
            "signed": is_signed(self.bundle),
            "signers": None if self.signers is None else [s.to_json() for s in self.signers],
            "mode": "integrity-only" if self.signers is None else "signatures",
            "verified": self.verified,
            **self.report.to_json(),
        }

    @property
    def verified(self) -> bool:
        return self.signers is not None and self.report.ok


def verify(
    bundle: str | os.PathLike[str] | Bundle,
    policy: TrustPolicy | None = None,
    *,
    integrity_only: bool = False,
    files: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Signatures under ``policy`` (default ``HEPBUNDLE_POLICY``; none is refused) first, then
    file digests (all, or only ``files``). ``integrity_only`` skips the signatures: asked for by
    name, and the result says ``verified: false``. :func:`hepbundle.load.verify` also applies a
    repository's trust root."""
    b = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    signers = None if integrity_only else verify_signatures(b, policy)
    return VerifyResult(b, signers, b.verify(files, progress=progress))


def signer_from(
    *,
    key: Path | None = None,
    cert: Path | None = None,
    chain: Sequence[Path] = (),
    sigstore: bool = False,
    identity_token: str | None = None,
    trust_config: Path | None = None,
    password: str | None = None,
) -> Signer:
    """The signer the caller names: ``sigstore`` (keyless; ``identity_token``, default
    ``SIGSTORE_ID_TOKEN``), ``cert`` + ``key`` (+ ``chain``) for X.509, or ``key`` alone for an EC
    key. An encrypted key's ``password`` defaults to ``HEPBUNDLE_KEY_PASSWORD``. The command
    line's signer options are exactly these arguments."""
    password = password if password is not None else settings().key_password
    if sigstore:
        if key or cert:
            raise SpecError("--sigstore signs keyless: drop --key/--cert")
        token = identity_token or settings().sigstore_id_token
        from ._signers.sigstore import SigstoreSigner

        return SigstoreSigner(token, trust_config=trust_config)
    if cert is not None:
        if key is None:
            raise SpecError("--cert needs --key (the certificate's private key)")
        from ._signers.certificate import X509Signer

        return X509Signer(cert, key, tuple(chain), password=password)
    if chain:
        raise SpecError("--chain goes with --cert")
    if key is None:
        raise SpecError(
            "say how to sign: --key KEY.pem, --cert CERT.pem --key KEY.pem, or --sigstore"
        )
    return KeySigner(key, password)


#: the one resource a catalogue statement's OMS signature lists: the statement itself
STATEMENT_RESOURCE = "hepbundle-catalog-statement.json"
#: the role every catalogue statement is signed as
STATEMENT_ROLE = "release"


def sign_statement(signer: Signer, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Sign a catalogue statement about ``name`` (publish, alias move, yank): an OMS signature
    whose one resource is the canonical statement and whose predicate carries it, as role
    ``release``. Returns the signature document the per-name catalogue stores."""
    from .manifest import canonical_json

    # carried as its canonical text: the in-toto predicate is a protobuf Struct, which would
    # turn the statement's integers into floats
    text = canonical_json(dict(body)).decode("utf-8")
    now = utc_timestamp()
    extra = {"signedAt": now, "role": STATEMENT_ROLE, "name": name, "statement": text}
    digest = sha256_bytes(text.encode("utf-8"))
    signed = signer.sign_payload(_payload(name, {STATEMENT_RESOURCE: digest}, [], extra, "sha256"))
    doc: dict[str, Any] = json.loads(signed)
    return doc


@dataclass(frozen=True)
class ParsedStatement:
    """A catalogue statement read from its signature document, not yet trusted."""

    body: dict[str, Any]
    sig: ParsedSignature
    role: str
    signed_at: dt.datetime


def parse_statement(doc: Any, where: str) -> ParsedStatement:
    """Read a statement's signature document; its signed resource must be the statement it
    carries (so the body cannot be swapped under the signature)."""
    sig = parse_signature_text(where, json.dumps(doc))
    stmt = sig.statement
    extra = (stmt.get("predicate") or {}).get(_PREDICATE_KEY)
    text = extra.get("statement") if isinstance(extra, Mapping) else None
    try:
        body = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(text, str):
        raise SignatureError(f"{where}: not a catalogue statement (no signed statement body)")
    try:
        signed = signed_digests(stmt)
    except (KeyError, TypeError, ValueError) as e:
        raise SignatureError(f"{where}: malformed statement signature: {e}") from None
    if signed != {STATEMENT_RESOURCE: sha256_bytes(text.encode("utf-8"))}:
        raise SignatureError(f"{where}: the statement does not match its signature")
    assert isinstance(extra, Mapping)
    role = extra.get("role")
    return ParsedStatement(body, sig, str(role), _signed_at(stmt))


def verify_statement(st: ParsedStatement, node: Node, name: str) -> list[SignerInfo]:
    """Check the statement's signature against ``node`` (the policy's catalogue signers for
    ``name`` and the statement's action); the role is the signed one, never a file name."""
    return node.evaluate(name, [Candidate(st.sig, st.role, st.signed_at)])


def __getattr__(name: str) -> object:
    # the X.509 and sigstore signers are imported when first asked for: verifying key signatures
    # never loads cryptography.x509 (docs/performance.md, first resolve)
    if name == "X509Signer":
        from ._signers.certificate import X509Signer

        return X509Signer
    if name == "SigstoreSigner":
        from ._signers.sigstore import SigstoreSigner

        return SigstoreSigner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
