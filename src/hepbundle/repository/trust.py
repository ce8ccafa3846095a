"""The repository trust root: the trust policy a repository carries, and how a node accepts it.

``catalog/trust.json`` (``bundle-spec/repository.md``, ``trust-root.schema.json``) holds the
policy every reader of the repository applies when it was given none: which signers may sign
which bundle names, and which may sign catalogue statements. It is self-contained (public keys
and CA certificates inline as PEM), so its SHA-256 pins all of it. It is written by
``hepbundle repo init`` or by the first publish into a new repository, and changed only by
``hepbundle repo trust-root set``, which appends the change to ``catalog/trust-log.jsonl``.

A file in a directory proves nothing by itself, so a reader accepts a trust root only when

* the site pins it: ``HEPBUNDLE_TRUST_ROOT`` lists digests (``sha256:<hex>``) or files whose
  bytes are the trust root, separated by commas; when set, nothing else is accepted;
* the repository is on a CernVM-FS client mount (``/proc/self/mountinfo`` says ``fuse`` from
  ``cvmfs2``): the file then comes through CVMFS's signature chain (catalogs signed by the
  repository key the site installed in ``/etc/cvmfs/keys``), like every other file there;
* this node accepted it once (trust on first use, explicitly: ``hepbundle repo trust REPO``, or
  implicitly by the operator's ``repo init`` on this node), recorded in the node cache's
  ``known-repositories.json`` like ssh's ``known_hosts``; a different trust root under an
  accepted repository name is then refused until accepted again.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._base import utc_timestamp, write_atomic
from ..cache import cache_directory, cvmfs_mount_of
from ..errors import FormatError, PolicyError, RepositoryError
from ..filemodes import FILE_MODE, publish_mode
from ..manifest import canonical_json
from ..policy import TrustPolicy
from .layout import read_repository

__all__ = [
    "TRUST_LOG_FILE",
    "TRUST_ROOT_ENV",
    "TRUST_ROOT_FILE",
    "TRUST_ROOT_MEDIA_TYPE",
    "TrustRoot",
    "accept_trust_root",
    "known_repositories_file",
    "read_trust_root",
    "repository_policy",
    "trust_root_for",
    "write_trust_root",
]

log = logging.getLogger("hepbundle")

TRUST_ROOT_FILE = "catalog/trust.json"
TRUST_LOG_FILE = "catalog/trust-log.jsonl"
TRUST_ROOT_MEDIA_TYPE = "application/vnd.hepbundle.trust-root.v1+json"
TRUST_ROOT_ENV = "HEPBUNDLE_TRUST_ROOT"
_MAX_BYTES = 4 << 20  # a trust root is a few keys and certificates, never megabytes


@dataclass(frozen=True)
class TrustRoot:
    """A repository's trust policy, with its digest and what authenticated it on this node
    (``pinned``, ``cvmfs``, ``accepted``)."""

    repository: str
    root: Path
    digest: str
    policy: TrustPolicy
    authenticated_by: str

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "path": str(self.root),
            "sha256": self.digest,
            "authenticatedBy": self.authenticated_by,
        }


def _document(repository: str, policy: TrustPolicy) -> bytes:
    return canonical_json(
        {
            "mediaType": TRUST_ROOT_MEDIA_TYPE,
            "repository": repository,
            "policy": policy.to_json(),
        }
    )


def _parse(root: Path, data: bytes) -> tuple[str, TrustPolicy]:
    from ..spec import validate

    where = str(root / TRUST_ROOT_FILE)
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"{where}: not valid JSON: {e}") from None
    validate(obj, "trust-root.schema.json", filename=where)
    policy = TrustPolicy.from_data(obj["policy"], base=root / "catalog", source=where)
    return str(obj["repository"]), policy


def read_trust_root(root: Path) -> tuple[bytes, str] | None:
    """The trust root's bytes and ``sha256:<hex>`` digest, or None when the repository has none."""
    path = Path(root) / TRUST_ROOT_FILE
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise PolicyError(f"cannot read the trust root {path}: {e.strerror}") from None
    if len(data) > _MAX_BYTES:
        raise FormatError(f"{path}: larger than {_MAX_BYTES >> 20} MiB; not a trust root")
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def write_trust_root(
    root: Path, policy: TrustPolicy, *, reason: str, tmp_dir: Path | None = None
) -> str:
    """Write ``catalog/trust.json`` (the caller holds the repository lock) and append the change
    to ``catalog/trust-log.jsonl``; return the new digest. The operator's command is logged."""
    if not reason.strip():
        raise RepositoryError("a trust root change needs a reason", hint="pass --reason 'why'")
    name = str(read_repository(root)["name"])
    data = _document(name, policy)
    _parse(root, data)  # what a reader will accept, checked before anything is written
    old = read_trust_root(root)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if old is not None and old[1] == digest:
        return digest
    entry = {
        "time": utc_timestamp(),
        "operator": _operator(),
        "reason": reason,
        "previous": old[1] if old else None,
        "sha256": digest,
    }
    write_atomic(root / TRUST_ROOT_FILE, data, tmp_dir=tmp_dir)
    fd = os.open(root / TRUST_LOG_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    with os.fdopen(fd, "ab") as f:
        publish_mode(root / TRUST_LOG_FILE, fd=fd)  # readable by every job, whatever the umask
        f.write(json.dumps(entry, sort_keys=True, separators=(",", ":")).encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())
    log.warning(
        "trust root of %s %s: %s (%s, by %s)",
        root,
        "changed" if old else "created",
        digest,
        reason,
        entry["operator"],
    )
    return digest


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def known_repositories_file() -> Path:
    """The node's accepted trust roots (in the node cache directory, like ``known_hosts``)."""
    return cache_directory() / "known-repositories.json"


def _known() -> dict[str, Any]:
    try:
        obj = json.loads(known_repositories_file().read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise PolicyError(
            f"{known_repositories_file()} is unreadable ({e}); accepted trust roots unknown",
            hint="repair or remove it, then accept repositories again: hepbundle repo trust",
        ) from None
    return obj if isinstance(obj, dict) else {}


def accept_trust_root(root: Path) -> TrustRoot:
    """Record the repository's current trust root as accepted on this node (trust on first use,
    asked for explicitly); return it. Replaces an earlier acceptance of the same repository."""
    got = read_trust_root(root)
    if got is None:
        raise PolicyError(
            f"{root} has no trust root ({TRUST_ROOT_FILE})",
            hint="the operator writes one with: hepbundle repo init --policy FILE",
        )
    data, digest = got
    name, policy = _parse(root, data)
    known = _known()
    known[name] = {
        "sha256": digest,
        "path": str(Path(root).absolute()),
        "accepted": utc_timestamp(),
    }
    target = known_repositories_file()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(canonical_json(known))
    os.replace(tmp, target)
    log.warning("accepted trust root %s of repository %s (%s)", digest, name, root)
    _cached.cache_clear()
    return TrustRoot(name, Path(root), digest, policy, "accepted")


def repository_policy(root: Path, policy: TrustPolicy | None = None) -> TrustPolicy | None:
    """The policy a writer of ``root`` applies: ``policy``, else ``HEPBUNDLE_POLICY``, else the
    repository's (accepted) trust root, else None."""
    from ..policy import policy_from_env

    chosen = policy or policy_from_env()
    if chosen is not None:
        return chosen
    found = trust_root_for(root) if (Path(root) / TRUST_ROOT_FILE).exists() else None
    return found.policy if found is not None else None


def _pins() -> set[str] | None:
    from .. import config

    if not config.is_set(TRUST_ROOT_ENV):
        return None
    raw = config.value(TRUST_ROOT_ENV) or ""
    pins: set[str] = set()
    for item in (x.strip() for x in raw.split(",")):
        if not item:
            continue
        if item.startswith("sha256:") and len(item) == 71:
            pins.add(item.lower())
            continue
        try:
            pins.add("sha256:" + hashlib.sha256(Path(item).read_bytes()).hexdigest())
        except OSError as e:
            raise PolicyError(
                f"{TRUST_ROOT_ENV}: cannot read {item}: {e.strerror}",
                hint="list sha256:<hex> digests or trust root files, separated by commas",
            ) from None
    if not pins:
        raise PolicyError(f"{TRUST_ROOT_ENV} is set but names no trust root")
    return pins


def trust_root_for(root: Path) -> TrustRoot | None:
    """The repository's trust root if this node accepts it; None if the repository has none.

    Raises :class:`PolicyError` when it has one that is not pinned, not on CVMFS and not
    accepted here, or that differs from the one accepted (see the module docstring).
    """
    got = read_trust_root(root)
    if got is None:
        return None
    data, digest = got
    try:
        known_mtime = known_repositories_file().stat().st_mtime_ns
    except OSError:
        known_mtime = 0
    from .. import config

    env = (config.value(TRUST_ROOT_ENV), config.is_set(TRUST_ROOT_ENV), known_mtime)
    return _cached(str(Path(root).absolute()), digest, data, env)


@functools.lru_cache(maxsize=16)
def _cached(root_text: str, digest: str, data: bytes, env: tuple[object, ...]) -> TrustRoot:
    """The acceptance decision, once per process for the same file, pins and accepted list."""
    del env  # part of the cache key only
    root = Path(root_text)
    pins = _pins()
    name, policy = _parse(root, data)
    if pins is not None:
        if digest not in pins:
            raise PolicyError(
                f"trust root of {root} is {digest}, which {TRUST_ROOT_ENV} does not pin",
                hint="the repository's trust policy changed, or this is not the repository the "
                "site pinned: ask its operator, then update the pin",
            )
        return TrustRoot(name, root, digest, policy, "pinned")
    mount = cvmfs_mount_of(str(root / TRUST_ROOT_FILE))
    if mount is not None:
        log.debug("trust root of %s authenticated by the CVMFS mount %s", root, mount)
        return TrustRoot(name, root, digest, policy, "cvmfs")
    known = _known().get(name)
    if known is None:
        raise PolicyError(
            f"the trust root of repository {name!r} ({root}) is not accepted on this node",
            hint=f"check its digest {digest} with the repository operator, then accept it once "
            f"with: hepbundle repo trust {root}   (or pin it: {TRUST_ROOT_ENV}={digest})",
        )
    if known.get("sha256") != digest:
        raise PolicyError(
            f"the trust root of repository {name!r} ({root}) CHANGED: it is {digest}, this node "
            f"accepted {known.get('sha256')} on {known.get('accepted')}",
            hint="someone may be impersonating the repository; if its operator changed the "
            f"trust policy (see {TRUST_LOG_FILE}), accept it again: hepbundle repo trust {root}",
        )
    return TrustRoot(name, root, digest, policy, "accepted")
