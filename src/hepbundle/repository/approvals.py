"""Role-based sign-off: signed approvals of a published version, required to move an alias.

``hepbundle approve atlas/tauid@1.3.0 --as physics-validation --key pv.pem`` appends an
``approval`` record to the version (``catalog/<ns>/<name>.records/<version>/``): ``record.json``
names the role and the version's manifest digest, and the record is signed as a co-signature of
that role (``hepbundle.<role>.sig``; the role is inside the signed statement, never taken from
the file name). A trust policy rule may require approvals to move an alias::

    approvals:
      prod:
        physics-validation: {x509: {ca_dir: /etc/grid-security/certificates,
                                    subject: "/DC=ch/DC=cern/OU=Users/CN=atlas-tau-conv*/*"}}
        release: {key: keys/atlas-release.pub.pem}

and :func:`check_approvals` (run by ``alias`` before anything is written, and again by every
resolve of the alias, :mod:`hepbundle.resolver`) refuses a move, or a resolve, that lacks a valid
approval for each role.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PolicyError, SigningError, VerificationError
from .catalog import read_name_catalog
from .records import RecordRef, append_record, list_records

if TYPE_CHECKING:
    from ..policy import Node, TrustPolicy
    from ..signing import Signer

__all__ = ["APPROVAL_KIND", "approve", "check_approvals", "valid_approvals"]

log = logging.getLogger("hepbundle")

APPROVAL_KIND = "approval"


def _one_rule(name: str, node: Node, source: str) -> TrustPolicy:
    from ..policy import Rule, TrustPolicy

    return TrustPolicy((Rule(name, node),), source=source)


def _valid(record: RecordRef, role: str, node: Node, digest: str) -> bool:
    """Whether ``record`` is a valid ``role`` approval of the manifest ``digest`` by ``node``."""
    from ..signing import verify_directory

    if record.payload.get("role") != role or record.manifest_digest != digest:
        return False
    try:
        signers = verify_directory(
            record.path, _one_rule(record.name, node, f"approvals for {role}"), name=record.name
        )
    except VerificationError as e:
        log.info("approval %s (%s) does not count: %s", record.path.name, role, e)
        return False
    # the signature that satisfied the rule must be the one signed as this role
    return any((s.details or {}).get("role") == role for s in signers)


def valid_approvals(
    root: Path, name: str, version: str, roles: Mapping[str, Node]
) -> dict[str, RecordRef]:
    """Role → a valid approval record of ``name@version``, for the roles that have one."""
    digest = read_name_catalog(root, name).resolve(version).manifest_digest
    records = list_records(root, name, version, APPROVAL_KIND)
    out: dict[str, RecordRef] = {}
    for role, node in roles.items():
        for rec in records:
            if _valid(rec, role, node, digest):
                out[role] = rec
                break
    return out


def check_approvals(
    root: Path,
    name: str,
    version: str,
    alias: str,
    policy: TrustPolicy | None,
    *,
    resolving: bool = False,
) -> None:
    """Refuse pointing ``alias`` at ``name@version`` unless every role the policy requires for
    that alias has a valid approval. ``resolving``: the alias already points there and a job is
    resolving it (the approvals are re-checked on every resolve, not only when the alias moved)."""
    if policy is None:
        return
    roles = policy.required_approvals(name, alias)
    if not roles:
        return
    have = valid_approvals(root, name, version, roles)
    missing = [r for r in roles if r not in have]
    if not missing:
        return
    if resolving:
        raise PolicyError(
            f"{name}@{alias} points at {version}, which lacks the approvals the trust policy "
            f"requires for {alias} ({', '.join(roles)}); missing: {', '.join(missing)}",
            hint=f"do not use it; the repository operator restores or re-collects the approvals "
            f"(hepbundle approve {name}@{version} --as ROLE) or moves {alias} back",
        )
    raise PolicyError(
        f"moving {name}@{alias} to {version} needs approvals by "
        f"{', '.join(roles)}; missing: {', '.join(missing)}",
        hint=f"each role signs off with: hepbundle approve {name}@{version} --as ROLE --key KEY",
    )


def approve(
    root: Path, name: str, version: str, role: str, signer: Signer, policy: TrustPolicy | None
) -> RecordRef:
    """Append a signed ``role`` approval of ``name@version``. When the policy names who may
    approve as ``role`` (for any alias), a signer it would not accept is refused up front."""
    from ..signing import signature_name

    signature_name(role)  # a role must be a plain word; raises SigningError otherwise
    if role == "primary":
        raise SigningError("an approval's role cannot be 'primary'", hint="e.g. --as release")
    rec = append_record(
        root, name, version, APPROVAL_KIND, {"role": role}, signer=signer, role=role
    )
    if policy is not None:
        nodes = [
            roles[role]
            for alias in (policy.rule_for(name).approvals or {})
            for roles in [policy.required_approvals(name, alias)]
            if role in roles
        ]
        if nodes and not any(_valid(rec, role, n, rec.manifest_digest) for n in nodes):
            import shutil

            shutil.rmtree(rec.path)
            raise PolicyError(
                f"{signer.describe()} is not allowed to approve {name} as {role!r}",
                hint="the trust policy's approvals name who may sign off in this role",
            )
    log.warning("approved %s@%s as %s (%s)", name, version, role, signer.describe())
    return rec
