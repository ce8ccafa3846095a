"""Signing and signature verification of bundles (interface; implemented by the signing issue).

The contract the layers above rely on:

* :func:`verify_signatures` checks every signature file of a bundle against its manifest and the
  trust policy **without hashing payload files** (the signed statement's file digests must equal
  the manifest's; the manifest's own digest must equal hepbundle.json's), and returns who signed.
  Raises :class:`~hepbundle.errors.SignatureError` (``unsigned``, malformed, invalid) or
  :class:`~hepbundle.errors.PolicyError`.
* :func:`is_signed` tells whether a bundle carries a signature at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import SignatureError

if TYPE_CHECKING:
    from .bundle import Bundle

__all__ = ["SIGNATURE_FILENAME", "SignerInfo", "is_signed", "verify_signatures"]

SIGNATURE_FILENAME = "hepbundle.sig"


@dataclass(frozen=True)
class SignerInfo:
    """Who signed: kind (``key``, ``x509``, ``sigstore``), identity string, and details."""

    kind: str
    identity: str
    details: Any = None


def is_signed(bundle: Bundle) -> bool:
    return (bundle.root / SIGNATURE_FILENAME).is_file()


def verify_signatures(bundle: Bundle, policy: Any = None) -> list[SignerInfo]:
    """Verify the bundle's signatures against ``policy``; see the module docstring."""
    if not is_signed(bundle):
        raise SignatureError(f"{bundle.ref} is unsigned ({SIGNATURE_FILENAME} is missing)")
    raise SignatureError("signature verification is not implemented yet")
