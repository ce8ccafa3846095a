"""Signed provenance attestations: a bundle's SLSA statement signed with the bundle's signer kinds.

The attestation is a second signature beside the bundle's own (OMS) one: the same signers (EC
key, X.509 certificate, sigstore keyless) and the same file format (a sigstore bundle holding a
DSSE envelope), but the signed in-toto statement is the SLSA provenance v1 statement of
:mod:`hepbundle.provenance.slsa`, whose subject is the bundle's manifest digest. It is written
outside the bundle — a signed bundle is immutable — e.g. next to it or into a transparency log.
Verification checks that the statement names the bundle's manifest digest, then applies the trust
policy's rule for the bundle's name exactly as for the bundle's own signature.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format  # type: ignore[import-untyped]
from in_toto_attestation.v1 import statement_pb2

from ._base import write_atomic
from ._signers import parse_signature
from ._signers.statement import Payload
from .errors import SignatureError, SigningError
from .policy import Candidate, SignerInfo, TrustPolicy, policy_from_env
from .provenance import slsa
from .resolver import read_ref
from .signing import PRIMARY_ROLE, Signer

__all__ = ["VerifiedAttestation", "sign_provenance", "verify_provenance"]


@dataclass(frozen=True)
class VerifiedAttestation:
    """A provenance attestation whose signature and subject checked out."""

    statement: dict[str, Any]
    signers: list[SignerInfo]

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.statement["subject"],
            "predicateType": self.statement["predicateType"],
            "signers": [s.to_json() for s in self.signers],
        }


def sign_provenance(
    ref: str,
    signer: Signer,
    out: str | os.PathLike[str],
    *,
    repos: Sequence[str | os.PathLike[str]] | None = None,
    allow_yanked: bool = False,
) -> Path:
    """Sign the SLSA statement of the bundle REF names and write the attestation to ``out``
    (a new file: an existing one is never replaced)."""
    _, manifest, digest = read_ref(ref, repos=repos, allow_yanked=allow_yanked)
    target = Path(out)
    if target.exists():
        raise SigningError(f"{target} already exists", hint="choose another -o/--out")
    proto = json_format.ParseDict(slsa.statement(manifest, digest), statement_pb2.Statement())
    # the statement as protobuf's JSON writes it (the layout attestations always had)
    text = signer.sign_payload(Payload(json_format.MessageToJson(proto).encode("utf-8")))
    write_atomic(target, text.encode("utf-8"))
    return target


def verify_provenance(
    attestation: str | os.PathLike[str],
    ref: str,
    policy: TrustPolicy | None = None,
    *,
    repos: Sequence[str | os.PathLike[str]] | None = None,
    allow_yanked: bool = False,
) -> VerifiedAttestation:
    """Check that ``attestation`` is a SLSA provenance statement about the bundle REF names,
    signed by a signer the policy (default ``HEPBUNDLE_POLICY``) allows for the bundle's name."""
    policy = policy or policy_from_env()
    if policy is None:
        raise SignatureError(
            "no trust policy configured: the attestation's signature cannot be checked",
            hint="pass --policy or --key, or set HEPBUNDLE_POLICY",
        )
    _, manifest, digest = read_ref(ref, repos=repos, allow_yanked=allow_yanked)
    sig = parse_signature(Path(attestation))
    stmt = sig.statement
    if stmt.get("predicateType") != slsa.PREDICATE_TYPE:
        raise SignatureError(
            f"{sig.name}: not a SLSA provenance attestation "
            f"(predicate type {stmt.get('predicateType')!r})"
        )
    subjects = {
        (s.get("name"), (s.get("digest") or {}).get("sha256")) for s in stmt.get("subject") or []
    }
    if (manifest.ref, digest) not in subjects:
        raise SignatureError(
            f"{sig.name} is not about {manifest.ref} with manifest sha256:{digest[:12]}… "
            f"(it names {json.dumps(sorted(map(str, subjects)))})",
            hint="the bundle was rebuilt, or the attestation belongs to another bundle",
        )
    now = dt.datetime.now(dt.UTC)
    signers = policy.evaluate(manifest.name, [Candidate(sig, PRIMARY_ROLE, now)])
    return VerifiedAttestation(stmt, signers)
