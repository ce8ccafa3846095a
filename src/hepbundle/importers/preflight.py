"""What the real import would do with each planned version, found without building anything:
the dry-run's check of a plan against the repository and the trust policy.

For every planned bundle (:func:`check_plan`):

* already in the repository's catalogue: ``conflict`` when its files, as the store lists them,
  cannot be the published ones (a file added or removed, a size changed); when this node's
  records of the sources (the ones an import keeps, docs/migration.md) give every file's
  published digest, ``unchanged`` or ``metadata-changed`` (the store's metadata differs from
  the published manifest's); else ``published`` — the import compares the contents (the
  dry-run reads none);
* new: ``refused`` with the reason when publishing would refuse it — unsigned without
  ``allow_unsigned``, a trust policy without a rule for the name or whose rule does not accept
  the signer (checked with a real signature on a one-file probe bundle of that name, per policy
  rule), an alias needing approvals, a directory in its place that the catalogue does not
  know — else ``new``.

A probe signature is made with a key or an X.509 signer only: a sigstore signer would log it
publicly, so for one only the rule is looked up.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bundle import Bundle
from ..errors import HepbundleError
from ..policy import TrustPolicy, policy_from_env
from ..repository import make_publisher
from ..repository.catalog import read_name_catalog
from ..repository.layout import bundle_dir, is_repository
from ..repository.tree import check_place_free
from ..repository.trust import repository_policy
from ..signing import Signer
from .base import ImportPlan, PlannedBundle

__all__ = ["STATUSES", "Preflight", "check_plan"]

#: the statuses :func:`check_plan` gives, in the order the plan counts them
STATUSES = ("new", "refused", "unchanged", "published", "metadata-changed", "conflict")


@dataclass(frozen=True)
class Preflight:
    """What the import would do with one planned bundle (``status``: one of :data:`STATUSES`)
    and why."""

    ref: str
    origin: str
    status: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "origin": self.origin,
            "status": self.status,
            "detail": self.detail,
        }


def check_plan(
    plan: ImportPlan,
    repo: str | os.PathLike[str],
    *,
    backend: str = "local",
    signer: Signer | None = None,
    role: str | None = None,
    policy: TrustPolicy | None = None,
    allow_unsigned: bool = False,
) -> tuple[Preflight, ...]:
    """Each planned bundle of ``plan`` as the import into ``repo`` would find it (see the
    module docstring). Reads the catalogue, the published manifests and this node's records;
    writes nothing but a probe bundle in a temporary directory."""
    root = make_publisher(backend, repo).root
    exists = is_repository(root)
    given = repository_policy(root, policy) if exists else (policy or policy_from_env())
    probes: dict[int, str | None] = {}  # policy rule (by position) -> refusal of the signer
    out = []
    for pb in plan.bundles:
        published = _published(root, pb) if exists else None
        if published is not None:
            status, detail = _against(pb, published)
        else:
            refusal = _refusal(pb, root, exists, given, signer, role, allow_unsigned, probes)
            status, detail = ("new", "") if refusal is None else ("refused", refusal)
        out.append(Preflight(pb.ref, pb.origin, status, detail))
    return tuple(out)


def _published(root: Path, pb: PlannedBundle) -> Bundle | None:
    if pb.spec.version not in read_name_catalog(root, pb.spec.name, missing_ok=True).versions:
        return None
    return Bundle.load(bundle_dir(root, pb.spec.name, pb.spec.version))


def _against(pb: PlannedBundle, published: Bundle) -> tuple[str, str]:
    """A version in the catalogue: what the store's listing and this node's records say."""
    have = published.manifest.by_path
    planned = {f.dest for f in pb.files}
    problems = [f"{f.legacy or f.source} is new" for f in pb.files if f.dest not in have] + [
        f"{f.legacy or f.source} changed size ({f.size} B, published {have[f.dest].size} B)"
        for f in pb.files
        if f.dest in have and have[f.dest].size != f.size
    ]
    problems += [
        f"{e.legacy_path or e.path} was removed"
        for e in published.manifest.files
        if e.path not in planned and (e.legacy_path or pb.materialize is None)
    ]
    if problems:
        return "conflict", "; ".join(problems)
    changed = pb.metadata_changes(published.manifest.meta)
    meta = f"the store's {', '.join(changed)} changed since it was published" if changed else ""
    if _recorded(pb, published):
        return ("metadata-changed", meta) if changed else ("unchanged", "")
    return "published", "its files are compared with the published ones when importing" + (
        f" (and {meta})" if meta else ""
    )


def _recorded(pb: PlannedBundle, published: Bundle) -> bool:
    """Whether this node's records give every source file's published digest (the file's
    identity unchanged since it was hashed): then the import reads none of it."""
    from .run import _SOURCE_KEY, _source_records  # the records the import keeps and reads

    cache = _source_records()
    if cache is None or pb.source_root is None or pb.materialize is not None:
        return False
    have = published.manifest.by_path
    key = _SOURCE_KEY + published.manifest_digest
    for f in pb.files:
        path = pb.source_root / f.source
        try:
            st = path.stat()
        except OSError:
            return False
        if not cache.is_verified(key, f.dest, have[f.dest].digest, path, st):
            return False
    return True


def _refusal(
    pb: PlannedBundle,
    root: Path,
    exists: bool,
    policy: TrustPolicy | None,
    signer: Signer | None,
    role: str | None,
    allow_unsigned: bool,
    probes: dict[int, str | None],
) -> str | None:
    """Why publishing would refuse the new version ``pb`` (None: it would not)."""
    name = pb.spec.name
    try:
        check_place_free(root, name, pb.spec.version)
    except HepbundleError as e:
        return f"{e.message} ({e.hint})"
    if signer is None:
        if allow_unsigned:
            return None
        return "unsigned: the import signs with --key (or --cert), or publishes unsigned with --allow-unsigned"
    if policy is None:
        return "no trust policy to verify the signature with (--policy or HEPBUNDLE_POLICY)"
    for alias in pb.aliases:
        if policy.required_approvals(name, alias):
            return f"the trust policy requires approvals to point {name}@{alias} at a version"
    try:
        rule = policy.rule_for(name)
    except HepbundleError as e:
        return e.message
    at = policy.rules.index(rule)
    if at not in probes:
        probes[at] = _probe(name, signer, role, policy)
    return probes[at]


def _probe(name: str, signer: Signer, role: str | None, policy: TrustPolicy) -> str | None:
    """Whether ``policy`` accepts ``signer``'s signature on a bundle of ``name``: a real
    signature on a one-file bundle built in a temporary directory (None: accepted)."""
    from .._signers.sigstore import SigstoreSigner
    from ..builder import BuildOptions, build_from_spec
    from ..signing import sign, verify_signatures
    from ..spec import BundleSpec, FileRule

    if isinstance(signer, SigstoreSigner):
        return None  # never probed: the signature would be logged publicly
    with tempfile.TemporaryDirectory(prefix="hepbundle-probe-") as tmp:
        src = Path(tmp)
        (src / "probe.txt").write_bytes(b"what the trust policy accepts\n")
        spec = BundleSpec(
            path=src / "hepbundle.yaml",
            name=name,
            version="0.0.0-probe",
            files=(FileRule(pattern="probe.txt", role="docs"),),
        )
        try:
            bundle = build_from_spec(spec, BuildOptions(out=src / "bundle"))
            sign(bundle, signer, role=role)
            verify_signatures(Bundle.load(src / "bundle"), policy)
        except HepbundleError as e:
            return f"the trust policy does not accept the signer for {name}: {e.message}"
    return None
