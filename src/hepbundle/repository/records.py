"""Evaluation records: small signed directories appended to a published version, never edited.

A record (an FPGA-vs-software comparison, an evaluation on a new dataset, …) lives in
``catalog/<ns>/<name>.records/<version>/<time>-<kind>/`` with ``record.json`` (kind, time,
the manifest digest of the version it is about, and a JSON payload) plus attachments such as a
PNG. Records are staged in a hidden sibling directory, signed there when a signer is given, and
renamed into place, so a reader sees a complete record or none; bundles themselves stay immutable.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._base import fsync_dir, utc_timestamp
from ..errors import FormatError, RepositoryError, SpecError
from ..filemodes import make_dirs, publish_tree
from ..manifest import canonical_json
from ..paths import check_collisions, check_relpath, is_reserved
from .catalog import read_name_catalog
from .layout import records_root, repository_of

if TYPE_CHECKING:
    from ..bundle import Bundle
    from ..policy import SignerInfo, TrustPolicy
    from ..signing import Signer
    from ._publishers.cvmfs import CvmfsServerPublisher

__all__ = [
    "RECORD_FILENAME",
    "RECORD_MEDIA_TYPE",
    "RecordRef",
    "append_record",
    "list_records",
    "record_for_bundle",
    "recordable_repo",
    "verify_record",
]

RECORD_FILENAME = "record.json"
RECORD_MEDIA_TYPE = "application/vnd.hepbundle.record.v1+json"
_KIND_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class RecordRef:
    """One stored record: where it is and what it says."""

    name: str
    version: str
    kind: str
    created: str
    manifest_digest: str
    path: Path
    payload: Mapping[str, Any]
    attachments: tuple[str, ...]
    signed: bool

    def attachment(self, relpath: str) -> Path:
        """Absolute path of one attachment."""
        if relpath not in self.attachments:
            raise RepositoryError(f"record {self.path.name} has no attachment {relpath!r}")
        return self.path / relpath


def append_record(
    repo_root: Path,
    name: str,
    version: str,
    kind: str,
    payload: Mapping[str, Any],
    attachments: Mapping[str, bytes] | None = None,
    signer: Signer | None = None,
    role: str | None = None,
) -> RecordRef:
    """Append a record about the published ``name@version``; return where it went.

    ``attachments`` maps record-relative paths (bundle path rules) to bytes. With a ``signer``
    the record directory is signed by :func:`hepbundle.signing.sign_directory` before it becomes
    visible, with the same signers bundles use.
    """
    if not _KIND_RE.match(kind):
        raise SpecError(f"record kind {kind!r} is not a lowercase word like 'fpga-compare'")
    attachments = dict(attachments or {})
    for rel in attachments:
        check_relpath(rel)
        if rel == RECORD_FILENAME or is_reserved(rel.split("/")[0]):
            raise SpecError(f"attachment name {rel!r} is reserved")
    check_collisions(attachments)
    record = read_name_catalog(repo_root, name).resolve(version)
    if record.version != version:
        raise RepositoryError(f"records attach to a version, not an alias: use {record.version}")
    now = time.time()
    created = utc_timestamp(now)
    doc = {
        "mediaType": RECORD_MEDIA_TYPE,
        "name": name,
        "version": version,
        "manifestSha256": record.manifest_digest,
        "kind": kind,
        "created": created,
        "payload": dict(payload),
        "attachments": sorted(attachments),
    }
    try:
        data = canonical_json(doc)
    except (TypeError, ValueError) as e:
        raise SpecError(f"record payload is not JSON-serialisable: {e}") from None
    parent = records_root(repo_root, name) / version
    make_dirs(parent)
    stage = Path(tempfile.mkdtemp(prefix=".tmp-", dir=parent))
    try:
        (stage / RECORD_FILENAME).write_bytes(data)
        for rel, content in attachments.items():
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            (stage / rel).write_bytes(content)
        if signer is not None:
            from ..signing import sign_directory  # loaded only to sign

            sign_directory(stage, signer, name=name, role=role)
        publish_tree(stage)
        final = _claim_name(parent, time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)), now, kind)
        os.rename(stage, final)
        fsync_dir(parent)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return _read_record(final)


def _claim_name(parent: Path, stamp: str, now: float, kind: str) -> Path:
    """``<time>.<microseconds>-<kind>``, with a counter if two records land in one microsecond."""
    base = f"{stamp}.{int(now * 1e6) % 1_000_000:06d}Z-{kind}"
    candidate, n = parent / base, 1
    while candidate.exists():
        n += 1
        candidate = parent / f"{base}-{n}"
    return candidate


def list_records(
    repo_root: Path, name: str, version: str, kind: str | None = None
) -> list[RecordRef]:
    """Records of ``name@version`` in the order they were appended (optionally of one ``kind``)."""
    parent = records_root(repo_root, name) / version
    if not parent.is_dir():
        return []
    out = [_read_record(d) for d in sorted(parent.iterdir()) if not d.name.startswith(".")]
    return [r for r in out if kind is None or r.kind == kind]


def _read_record(path: Path) -> RecordRef:
    source = path / RECORD_FILENAME
    try:
        doc = json.loads(source.read_bytes())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError(f"{source}: unreadable record: {e}") from None
    if not isinstance(doc, dict) or doc.get("mediaType") != RECORD_MEDIA_TYPE:
        raise FormatError(f"{source}: unknown record format", hint="upgrade hepbundle")
    return RecordRef(
        name=doc["name"],
        version=doc["version"],
        kind=doc["kind"],
        created=doc["created"],
        manifest_digest=doc["manifestSha256"],
        path=path,
        payload=doc["payload"],
        attachments=tuple(doc["attachments"]),
        signed=any(
            p.name.startswith("hepbundle.") and p.name.endswith(".sig") for p in path.iterdir()
        ),
    )


def verify_record(record: RecordRef, policy: TrustPolicy) -> list[SignerInfo]:
    """Check a record's signatures (every file hashed) against the policy rule of its name."""
    from ..signing import verify_directory

    return verify_directory(record.path, policy, name=record.name)


def recordable_repo(bundle: Bundle, *, signer: Signer | None = None) -> Path | None:
    """The repository whose catalogue entry records about ``bundle`` go to (None when the bundle
    is not the published copy in a repository). Asking to sign a record for a bundle without a
    catalogue entry is an error: the one place eval and fpga compare both say so."""
    repo = repository_of(bundle)
    if repo is None and signer is not None:
        raise RepositoryError(
            f"{bundle.root} is not a published bundle: there is no catalogue entry to sign a "
            "record into",
            hint="use the published copy (ns/name@version, or its directory in the repository)",
        )
    return repo


def record_for_bundle(
    bundle: Bundle,
    kind: str,
    payload: Mapping[str, Any],
    attachments: Mapping[str, bytes] | None = None,
    *,
    signer: Signer | None = None,
) -> RecordRef | None:
    """Append a ``kind`` record to ``bundle``'s catalogue entry when ``bundle`` is the published
    copy inside a repository (see :func:`recordable_repo`); None for a bundle elsewhere."""
    repo = recordable_repo(bundle, signer=signer)
    if repo is None:
        return None
    if not os.access(repo / "catalog", os.W_OK):
        stratum0 = _stratum0_publisher(repo)
        if stratum0 is not None:
            # a Stratum-0 whose /cvmfs/R is read-only outside transactions: append in one
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}"
            return stratum0.write(
                bundle.name,
                lambda root: append_record(
                    root, bundle.name, bundle.version, kind, payload, attachments, signer=signer
                ),
                message=f"hepbundle record {kind} for {bundle.name}@{bundle.version}",
                tag=f"{bundle.name}-{bundle.version}-{kind}-{stamp}",
            )
        # e.g. a client's /cvmfs mount: records are appended where the repository is written
        raise RepositoryError(
            f"cannot append a {kind} record: {repo}/catalog is read-only (a CVMFS client mount?)",
            hint="keep the report with --out, or run this where the repository is writable",
        )
    return append_record(
        repo, bundle.name, bundle.version, kind, payload, attachments, signer=signer
    )


def _stratum0_publisher(repo: Path) -> CvmfsServerPublisher | None:
    """The cvmfs publisher of ``repo`` when it is ``/cvmfs/<R>`` (``HEPBUNDLE_CVMFS_ROOT``) on a
    machine that has ``cvmfs_server``, i.e. a Stratum-0 or a gateway publisher."""
    from ._publishers.cvmfs import CvmfsServerPublisher, cvmfs_root

    try:
        on_cvmfs = repo.resolve().parent == cvmfs_root().resolve()
    except OSError:
        return None
    if not on_cvmfs or shutil.which("cvmfs_server") is None:
        return None
    return CvmfsServerPublisher(repo.name)
