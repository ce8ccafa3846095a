"""Sigstore keyless signing (Fulcio certificate + Rekor entry, with ambient CI OIDC credentials)
and its offline verification against a pinned or given trust root.

sigstore-python and model_signing are imported inside the functions that need them, so that
importing :mod:`hepbundle.signing` (for key or X.509 signatures) does not load them."""

from __future__ import annotations

import functools
import json
import logging
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from ..errors import PolicyError, SignatureError, SigningError, SpecError
from . import ParsedSignature, SignatureKind

if TYPE_CHECKING:
    from .statement import Payload

__all__ = ["SigstoreSigner", "load_trusted_root", "signer_identity", "verify_sigstore"]

# the production trusted root that the installed sigstore release pins; used without any network
_PINNED = "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
_TRUST_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.clienttrustconfig"
_OIDC_ISSUER_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")


class SigstoreSigner:
    """Keyless signing: an OIDC identity token (explicit, or ambient in GitHub/GitLab CI) buys a
    short-lived Fulcio certificate; the signature is logged in Rekor. Needs the network."""

    kind: SignatureKind = "sigstore"

    def __init__(
        self,
        identity_token: str | None = None,
        *,
        trust_config: Path | None = None,
        staging: bool = False,
    ) -> None:
        self.identity_token = identity_token
        self.trust_config = trust_config
        self.staging = staging

    def describe(self) -> str:
        return "sigstore " + ("(explicit token)" if self.identity_token else "(ambient OIDC)")

    def sign_payload(self, payload: Payload) -> str:
        from model_signing._signing import sign_sigstore as _oms_sigstore
        from sigstore.errors import Error as SigstoreError

        # urllib3 logs every retry of an unreachable host as a WARNING: the failure is ours to say
        net_log = logging.getLogger("urllib3")
        level = net_log.level
        net_log.setLevel(logging.ERROR)
        try:
            signer = _oms_sigstore.Signer(
                identity_token=self.identity_token,
                use_ambient_credentials=True,
                use_staging=self.staging,
                trust_config=self.trust_config,
            )
            text: str = signer.sign(payload.upstream()).bundle.to_json()
        except (SigstoreError, OSError, ValueError) as e:
            raise _signing_failure(e) from None
        finally:
            net_log.setLevel(level)
        return text


_NETWORK_ERRORS = ("NameResolutionError", "NewConnectionError", "ConnectTimeoutError",
                   "MaxRetryError", "ConnectionError", "DownloadError", "gaierror")  # fmt: skip
_HINT = "keyless signing needs network access to Fulcio, Rekor and the sigstore TUF root, and an OIDC token"


def _signing_failure(e: BaseException) -> SigningError:
    """One line for a failed keyless signing: no network, no OIDC token, or sigstore's own
    message (first sentence, whitespace collapsed); never a retry log or a bug-report link."""
    chain: list[BaseException] = []
    x: BaseException | None = e
    while x is not None and len(chain) < 20:
        chain.append(x)
        x = x.__cause__ or x.__context__
    names = {c.__name__ for x in chain for c in type(x).__mro__}
    if names & set(_NETWORK_ERRORS):
        hosts = [getattr(getattr(x, "conn", None), "host", None) for x in chain]
        host = next((str(h) for h in hosts if h), "the sigstore services")
        return SigningError(
            f"sigstore signing failed: no network (cannot reach {host})", hint=_HINT
        )
    text = " ".join(str(getattr(e, "diagnostics", lambda: str(e))()).split())
    if "IdentityError" in names or "token" in text.lower():
        return SigningError(
            f"sigstore signing failed: no usable OIDC identity token ({text.split('. ')[0]})",
            hint="pass --identity-token, or run where an ambient OIDC token exists (CI)",
        )
    return SigningError(f"sigstore signing failed: {text.split('. ')[0].rstrip('.')}", hint=_HINT)


@functools.cache
def _pinned_root() -> Any:
    from sigstore.models import TrustedRoot

    path = resources.files("sigstore") / "_store" / _PINNED / "trusted_root.json"
    return TrustedRoot.from_file(str(path))


def load_trusted_root(path: Path | None) -> Any:
    """A sigstore ``TrustedRoot`` from a client trust config or trusted-root JSON file; the
    production root pinned by the installed sigstore release when ``path`` is None."""
    if path is None:
        return _pinned_root()
    from sigstore.models import ClientTrustConfig, TrustedRoot

    try:
        text = path.read_text(encoding="utf-8")
        media_type = str(json.loads(text).get("mediaType", ""))
        if media_type.startswith(_TRUST_CONFIG_MEDIA_TYPE):
            return ClientTrustConfig.from_json(text).trusted_root
        return TrustedRoot.from_file(str(path))
    except OSError as e:
        raise SpecError(f"cannot read trust config {path}: {e.strerror}") from None
    except Exception as e:  # sigstore raises pydantic/ValueError/its own errors for bad roots
        raise SpecError(f"{path} is not a sigstore trust config or trusted root: {e}") from None


def signer_identity(sig: ParsedSignature) -> tuple[str, str]:
    """The (identity, OIDC issuer) the Fulcio certificate claims (unverified)."""
    cert = sig.chain[0]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(v) for v in san.get_values_for_type(x509.RFC822Name)] + [
            str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)
        ]
    except x509.ExtensionNotFound:
        names = []
    try:
        # Fulcio writes the issuer twice; the original extension holds the raw UTF-8 string
        ext = cert.extensions.get_extension_for_oid(_OIDC_ISSUER_OID).value
        issuer = bytes(getattr(ext, "value", b"")).decode("utf-8", "replace")
    except x509.ExtensionNotFound:
        issuer = ""
    return (names[0] if names else "?"), issuer


def verify_sigstore(sig: ParsedSignature, trusted_root: Any, identity: str, issuer: str) -> None:
    """Run the real sigstore verifier (certificate chain to Fulcio, SCT, Rekor inclusion proof
    and signed checkpoint, integrated time inside the certificate's validity, DSSE signature)
    with an identity + issuer policy."""
    who, claimed_issuer = signer_identity(sig)
    if (who, claimed_issuer) != (identity, issuer):
        raise PolicyError(
            f"{sig.name}: sigstore signer {who} (issuer {claimed_issuer or '?'}) is not "
            f"{identity} (issuer {issuer})"
        )
    from sigstore.errors import VerificationError as SigstoreVerificationError
    from sigstore.verify import Verifier, policy

    verifier = Verifier(trusted_root=trusted_root)
    try:
        verifier.verify_dsse(sig.sigstore_bundle, policy.Identity(identity=identity, issuer=issuer))
    except SigstoreVerificationError as e:
        raise SignatureError(f"{sig.name}: sigstore verification failed: {e}") from None
