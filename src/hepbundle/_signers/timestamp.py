"""RFC 3161 timestamps over signatures: ask a Time-Stamping Authority, and check a token.

A token proves that the signature bytes existed at the TSA's ``genTime``, so a grid certificate
that expired long after that still verifies "at signing time" (the reprocessing campaign case).
It is stored where sigstore bundles keep it, ``verificationMaterial.timestampVerificationData.
rfc3161Timestamps[].signedTimestamp`` (the DER ``TimeStampResp``), and covers the DSSE signature
bytes. Parsing and CMS verification are rfc3161-client's (sigstore's dependency): the TSA's
signature, its certificate chain up to a root the trust policy names (``tsa:``), the
``timeStamping`` extended key usage, and the message imprint.
"""

from __future__ import annotations

import datetime as dt
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import PolicyError, SignatureError, SigningError

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["request_timestamp", "verify_timestamp"]

_MAX_RESPONSE = 1 << 20


def request_timestamp(url: str, data: bytes, *, timeout: float = 30.0) -> bytes:
    """The DER ``TimeStampResp`` of ``url`` for ``data`` (SHA-256 imprint, nonce, the TSA's
    certificate requested), after checking it answers this request."""
    from rfc3161_client import TimestampRequestBuilder, decode_timestamp_response
    from rfc3161_client.tsp import PKIStatus

    req = TimestampRequestBuilder().data(data).nonce(nonce=True).cert_request(cert_request=True)
    request = req.build()
    http = urllib.request.Request(
        url,
        data=request.as_bytes(),
        headers={"Content-Type": "application/timestamp-query"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(http, timeout=timeout) as r:
            body: bytes = r.read(_MAX_RESPONSE + 1)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise SigningError(f"timestamp authority {url}: {getattr(e, 'reason', e)}") from None
    if len(body) > _MAX_RESPONSE:
        raise SigningError(f"timestamp authority {url}: response larger than 1 MiB")
    try:
        resp = decode_timestamp_response(body)
    except ValueError as e:
        raise SigningError(f"timestamp authority {url}: not a timestamp response: {e}") from None
    if PKIStatus(resp.status) != PKIStatus.GRANTED:
        raise SigningError(f"timestamp authority {url} refused the request (status {resp.status})")
    if resp.tst_info.nonce != request.nonce:
        raise SigningError(f"timestamp authority {url}: the response answers another request")
    return body


def verify_timestamp(
    token: bytes, data: bytes, roots: Sequence[x509.Certificate], where: str
) -> dt.datetime:
    """The time ``token`` proves ``data`` (signature bytes) existed, checked against the TSA
    roots; raises :class:`SignatureError` (malformed, other data) or :class:`PolicyError`
    (TSA not trusted)."""
    from rfc3161_client import VerificationError, VerifierBuilder, decode_timestamp_response

    try:
        resp = decode_timestamp_response(token)
    except ValueError as e:
        raise SignatureError(f"{where}: malformed RFC 3161 timestamp: {e}") from None
    if not roots:
        raise PolicyError(
            f"{where} carries an RFC 3161 timestamp, but the trust policy names no TSA",
            hint="add the TSA's root certificate to the policy: tsa: {ca: tsa-root.pem}",
        )
    builder = VerifierBuilder()
    for root in roots:
        builder = builder.add_root_certificate(root)
    try:
        builder.build().verify_message(resp, data)
    except VerificationError as e:
        text = str(e)
        cls = (
            SignatureError
            if "imprint" in text.lower() or "message" in text.lower()
            else PolicyError
        )
        raise cls(f"{where}: RFC 3161 timestamp refused: {text}") from None
    gen = resp.tst_info.gen_time
    return gen if gen.tzinfo else gen.replace(tzinfo=dt.UTC)
