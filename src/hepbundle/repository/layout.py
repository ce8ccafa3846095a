"""Where things live inside a repository tree, and the crash-safe way to write a file there.

::

    <root>/
      bundles/<ns>/<name>/<version>/   one bundle (immutable), with an empty .cvmfscatalog marker
      catalog/<ns>/<name>.json         versions, aliases, yanked marks of one name
      catalog/<ns>/<name>.records/     evaluation records appended to versions (append-only)
      catalog/index.sqlite             searchable index of every version (rebuildable)
      catalog/repository.json          format version + monotonically increasing serial
      .hepbundle-staging/              hidden work area of publishers (never part of a release)

The normative description is ``bundle-spec/repository.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._base import utc_timestamp, write_atomic
from .._json import read_json
from ..errors import FormatError, HepbundleError, RepositoryError
from ..filemodes import make_dirs
from ..manifest import canonical_json
from .refs import split_name

if TYPE_CHECKING:
    from ..bundle import Bundle

__all__ = [
    "BUNDLES_DIR",
    "CATALOG_DIR",
    "CVMFS_CATALOG_MARKER",
    "INDEX_FILE",
    "REPOSITORY_FILE",
    "REPOSITORY_MEDIA_TYPE",
    "STAGING_DIR",
    "bump_serial",
    "bundle_dir",
    "bundle_relpath",
    "catalog_file",
    "ensure_repository",
    "is_repository",
    "read_repository",
    "records_root",
]

BUNDLES_DIR = "bundles"
CATALOG_DIR = "catalog"
INDEX_FILE = "catalog/index.sqlite"
REPOSITORY_FILE = "catalog/repository.json"
STAGING_DIR = ".hepbundle-staging"
CVMFS_CATALOG_MARKER = ".cvmfscatalog"
REPOSITORY_MEDIA_TYPE = "application/vnd.hepbundle.repository.v1+json"
FORMAT_VERSION = 1


def bundle_relpath(name: str, version: str) -> str:
    """``bundles/<ns>/<name>/<version>``: where a version lives, relative to the root."""
    ns, short = split_name(name)
    return f"{BUNDLES_DIR}/{ns}/{short}/{version}"


def bundle_dir(repo_root: Path, name: str, version: str) -> Path:
    """Absolute directory of ``name@version`` inside ``repo_root`` (whether or not it exists)."""
    return Path(repo_root) / bundle_relpath(name, version)


def catalog_file(repo_root: Path, name: str) -> Path:
    """``catalog/<ns>/<name>.json``."""
    ns, short = split_name(name)
    return Path(repo_root) / CATALOG_DIR / ns / f"{short}.json"


def records_root(repo_root: Path, name: str) -> Path:
    """``catalog/<ns>/<name>.records``: evaluation records of every version of ``name``."""
    ns, short = split_name(name)
    return Path(repo_root) / CATALOG_DIR / ns / f"{short}.records"


def is_repository(repo_root: Path) -> bool:
    return (Path(repo_root) / REPOSITORY_FILE).is_file()


def read_repository(repo_root: Path) -> dict[str, Any]:
    """Parse ``catalog/repository.json``; :class:`RepositoryError` if ``repo_root`` is none."""
    path = Path(repo_root) / REPOSITORY_FILE
    try:
        obj = read_json(path)
    except FileNotFoundError:
        raise RepositoryError(
            f"{repo_root} is not a hepbundle repository ({REPOSITORY_FILE} is missing)",
            hint="publish a bundle into it first, or set --repo / HEPBUNDLE_REPO",
        ) from None
    if (
        isinstance(obj, dict)
        and "serial" in obj
        and (type(obj["serial"]) is not int or obj["serial"] < 0)
    ):
        raise FormatError(
            f"{path}: serial must be a non-negative integer, not {str(obj['serial'])[:40]!r}",
            hint="restore repository.json from the repository's history or a replica",
        )
    if not isinstance(obj, dict) or obj.get("mediaType") != REPOSITORY_MEDIA_TYPE:
        found = obj.get("mediaType") if isinstance(obj, dict) else None
        raise FormatError(
            f"{path}: unknown repository format {found!r}; this hepbundle reads "
            f"{REPOSITORY_MEDIA_TYPE}",
            hint="upgrade hepbundle",
        )
    return obj


def ensure_repository(repo_root: Path, *, identity: str | None = None) -> dict[str, Any]:
    """Create the empty layout (serial 0) if ``repo_root`` has none yet; return repository.json."""
    root = Path(repo_root)
    if is_repository(root):
        return read_repository(root)
    for d in (BUNDLES_DIR, CATALOG_DIR):
        make_dirs(root / d)
    doc: dict[str, Any] = {
        "mediaType": REPOSITORY_MEDIA_TYPE,
        "format": FORMAT_VERSION,
        "name": identity or root.name,
        "serial": 0,
        "created": utc_timestamp(),
        "updated": utc_timestamp(),
    }
    write_atomic(root / REPOSITORY_FILE, canonical_json(doc))
    return doc


def bump_serial(repo_root: Path, *, tmp_dir: Path | None = None) -> int:
    """Increase the serial by one (the caller holds the repository lock); return the new one."""
    doc = read_repository(repo_root)
    doc["serial"] = int(doc.get("serial", 0)) + 1
    doc["updated"] = utc_timestamp()
    write_atomic(Path(repo_root) / REPOSITORY_FILE, canonical_json(doc), tmp_dir=tmp_dir)
    return int(doc["serial"])


def repository_of(bundle: Bundle) -> Path | None:
    """The repository root when ``bundle`` is the published copy inside one
    (``<root>/bundles/<ns>/<name>/<version>`` of a repository), else None."""
    root = bundle.root
    if len(root.parents) < 4:
        return None
    repo = root.parents[3]
    try:
        same = is_repository(repo) and bundle_dir(repo, bundle.name, bundle.version) == root
    except HepbundleError:
        return None
    return repo if same else None
