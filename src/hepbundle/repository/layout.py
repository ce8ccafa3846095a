"""Where things live inside a repository tree, in both repository formats.

Format 2 (written by this version; everything one namespace's publish writes lies under
``bundles/<ns>``, so one CVMFS gateway lease on ``R/bundles/<ns>`` covers it)::

    <root>/
      catalog/repository.json               format 2, repository name (written at creation only)
      bundles/<ns>/.cvmfscatalog            the namespace is its own nested CVMFS catalog
      bundles/<ns>/<name>/<version>/        one bundle (immutable), with an empty .cvmfscatalog
      bundles/<ns>/_catalog/namespace.json  the namespace's monotonically increasing serial
      bundles/<ns>/_catalog/<name>.json     versions, aliases, yanked marks of one name
      bundles/<ns>/_catalog/<name>.records/ evaluation records appended to versions
      bundles/<ns>/_catalog/index.sqlite    the namespace's shard of the search index
      bundles/<ns>/_catalog/index-recent.sqlite  its recent rows (what a publish writes)
      bundles/<ns>/.hepbundle-staging/      hidden work area of publishers

Format 1 (read, and migrated by :mod:`.migration`): the per-name files in ``catalog/<ns>/``, one
``catalog/index.sqlite``, the serial in ``catalog/repository.json``, ``.hepbundle-staging/`` at
the root. Bundle paths are the same in both. The normative description is
``bundle-spec/repository.md``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._base import utc_timestamp, write_atomic
from .._json import read_json
from ..errors import FormatError, HepbundleError, RepositoryError
from ..filemodes import make_dirs, publish_mode
from ..manifest import canonical_json
from .refs import split_name

if TYPE_CHECKING:
    from ..bundle import Bundle

__all__ = [
    "BUNDLES_DIR",
    "CATALOG_DIR",
    "CATALOG_SUBDIR",
    "CVMFS_CATALOG_MARKER",
    "FORMAT_VERSION",
    "INDEX_FILE",
    "RECENT_INDEX_FILE",
    "REPOSITORY_FILE",
    "REPOSITORY_MEDIA_TYPE",
    "STAGING_DIR",
    "bump_serial",
    "bundle_dir",
    "bundle_relpath",
    "catalog_dir",
    "catalog_file",
    "ensure_namespace",
    "ensure_repository",
    "index_file",
    "index_files",
    "is_repository",
    "namespaces",
    "read_repository",
    "records_root",
    "repository_format",
    "serial_of",
    "staging_dir",
    "staging_dirs",
    "written_paths",
]

BUNDLES_DIR = "bundles"
CATALOG_DIR = "catalog"
#: format 2: the catalogue directory inside ``bundles/<ns>`` (no name can start with ``_``)
CATALOG_SUBDIR = "_catalog"
NAMESPACE_FILE = "namespace.json"
#: format 1's one index (format 2 has one per namespace, see :func:`index_file`)
INDEX_FILE = "catalog/index.sqlite"
#: format 1's recent shard of that index (see :mod:`.index`)
RECENT_INDEX_FILE = "catalog/index-recent.sqlite"
REPOSITORY_FILE = "catalog/repository.json"
STAGING_DIR = ".hepbundle-staging"
CVMFS_CATALOG_MARKER = ".cvmfscatalog"
MEDIA_TYPE_V1 = "application/vnd.hepbundle.repository.v1+json"
REPOSITORY_MEDIA_TYPE = "application/vnd.hepbundle.repository.v2+json"
NAMESPACE_MEDIA_TYPE = "application/vnd.hepbundle.namespace.v1+json"
FORMAT_VERSION = 2
_FORMATS = {MEDIA_TYPE_V1: 1, REPOSITORY_MEDIA_TYPE: 2}


def bundle_relpath(name: str, version: str) -> str:
    """``bundles/<ns>/<name>/<version>``: where a version lives, relative to the root."""
    ns, short = split_name(name)
    return f"{BUNDLES_DIR}/{ns}/{short}/{version}"


def bundle_dir(repo_root: Path, name: str, version: str) -> Path:
    """Absolute directory of ``name@version`` inside ``repo_root`` (whether or not it exists)."""
    return Path(repo_root) / bundle_relpath(name, version)


def repository_format(repo_root: Path) -> int:
    """1 or 2; the format a new repository gets (2) where there is none yet."""
    path = Path(repo_root) / REPOSITORY_FILE
    try:
        st = path.stat()
    except OSError:
        return FORMAT_VERSION
    return _format_of(str(path), st.st_ino, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _format_of(path: str, ino: int, mtime_ns: int, size: int) -> int:
    del ino, mtime_ns, size  # the cache key: a rewritten repository.json is read again
    return _FORMATS[read_repository(Path(path).parent.parent)["mediaType"]]


def namespace_dir(repo_root: Path, ns: str) -> Path:
    return Path(repo_root) / BUNDLES_DIR / ns


def catalog_dir(repo_root: Path, ns: str) -> Path:
    """Where the per-name files of namespace ``ns`` are: ``bundles/<ns>/_catalog`` (format 2)
    or ``catalog/<ns>`` (format 1)."""
    if repository_format(repo_root) == 1:
        return Path(repo_root) / CATALOG_DIR / ns
    return namespace_dir(repo_root, ns) / CATALOG_SUBDIR


def catalog_file(repo_root: Path, name: str) -> Path:
    """The per-name catalogue file of ``name``: ``<catalog dir>/<name>.json``."""
    ns, short = split_name(name)
    return catalog_dir(repo_root, ns) / f"{short}.json"


def records_root(repo_root: Path, name: str) -> Path:
    """``<catalog dir>/<name>.records``: evaluation records of every version of ``name``."""
    ns, short = split_name(name)
    return catalog_dir(repo_root, ns) / f"{short}.records"


def index_file(repo_root: Path, ns: str) -> Path:
    """The index (shard) holding namespace ``ns``."""
    if repository_format(repo_root) == 1:
        return Path(repo_root) / INDEX_FILE
    return catalog_dir(repo_root, ns) / "index.sqlite"


def namespaces(repo_root: Path) -> list[str]:
    """Every namespace with a catalogue directory, sorted (directory listings only)."""
    root = Path(repo_root)
    if repository_format(root) == 1:
        base = root / CATALOG_DIR
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    base = root / BUNDLES_DIR
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / CATALOG_SUBDIR).is_dir())


def index_files(repo_root: Path) -> list[tuple[str | None, Path]]:
    """(namespace, index file) of every index a search reads: format 1's single index (namespace
    None), or format 2's shards (one per namespace, where it exists)."""
    if repository_format(repo_root) == 1:
        return [(None, Path(repo_root) / INDEX_FILE)]
    return [(ns, index_file(repo_root, ns)) for ns in namespaces(repo_root)]


def staging_dir(repo_root: Path, ns: str | None) -> Path:
    """The publishers' work area for namespace ``ns``: ``bundles/<ns>/.hepbundle-staging``
    (format 2; inside the namespace's lease) or the root's ``.hepbundle-staging`` (format 1)."""
    if repository_format(repo_root) == 1 or ns is None:
        return Path(repo_root) / STAGING_DIR
    return namespace_dir(repo_root, ns) / STAGING_DIR


def staging_dirs(repo_root: Path, only: Iterable[str] | None = None) -> list[Path]:
    """Every work area a recovery looks at (those of the namespaces ``only``, when given)."""
    root = Path(repo_root)
    out = [root / STAGING_DIR] if only is None or repository_format(root) == 1 else []
    if repository_format(root) == 2:
        base = root / BUNDLES_DIR
        names = (
            list(only)
            if only is not None
            else sorted(p.name for p in base.iterdir() if p.is_dir())
            if base.is_dir()
            else []
        )
        out += [base / ns / STAGING_DIR for ns in names]
    return [d for d in out if d.is_dir()]


def written_paths(repo_root: Path, ns: str) -> list[str]:
    """Everything a publish or catalogue change in namespace ``ns`` writes, relative to the
    root: what a CVMFS lease must cover. Format 2: ``bundles/<ns>`` alone."""
    if repository_format(repo_root) == 1:
        return [
            f"{BUNDLES_DIR}/{ns}",
            f"{CATALOG_DIR}/{ns}",
            INDEX_FILE,
            RECENT_INDEX_FILE,
            REPOSITORY_FILE,
            STAGING_DIR,
        ]
    return [f"{BUNDLES_DIR}/{ns}"]


def is_repository(repo_root: Path) -> bool:
    return (Path(repo_root) / REPOSITORY_FILE).is_file()


def read_repository(repo_root: Path) -> dict[str, Any]:
    """Parse ``catalog/repository.json`` (format 1 or 2); :class:`RepositoryError` if
    ``repo_root`` is none, :class:`FormatError` for a format this version does not read."""
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
    if not isinstance(obj, dict) or obj.get("mediaType") not in _FORMATS:
        found = obj.get("mediaType") if isinstance(obj, dict) else None
        raise FormatError(
            f"{path}: unknown repository format {found!r}; this hepbundle reads "
            f"{MEDIA_TYPE_V1} and {REPOSITORY_MEDIA_TYPE}",
            hint="upgrade hepbundle",
        )
    return obj


def ensure_repository(
    repo_root: Path, *, identity: str | None = None, fmt: int = FORMAT_VERSION
) -> dict[str, Any]:
    """Create the empty layout (format ``fmt``) if ``repo_root`` has none yet; return
    repository.json."""
    root = Path(repo_root)
    if is_repository(root):
        return read_repository(root)
    for d in (BUNDLES_DIR, CATALOG_DIR):
        make_dirs(root / d)
    doc: dict[str, Any] = {
        "mediaType": MEDIA_TYPE_V1 if fmt == 1 else REPOSITORY_MEDIA_TYPE,
        "format": fmt,
        "name": identity or root.name,
        "created": utc_timestamp(),
        "updated": utc_timestamp(),
    }
    if fmt == 1:
        doc["serial"] = 0
    write_atomic(root / REPOSITORY_FILE, canonical_json(doc))
    return doc


def ensure_namespace(repo_root: Path, ns: str) -> None:
    """Format 2: create ``bundles/<ns>/_catalog`` (and the namespace's nested-catalog marker)."""
    if repository_format(repo_root) == 1:
        return
    cat = catalog_dir(repo_root, ns)
    if not cat.is_dir():
        make_dirs(cat)
        marker = cat.parent / CVMFS_CATALOG_MARKER
        marker.touch()
        publish_mode(marker)  # readable by every account whatever the umask


def serial_of(repo_root: Path, ns: str) -> int:
    """The serial a change in namespace ``ns`` last produced: the namespace's own (format 2)
    or the repository's (format 1); 0 before the first."""
    if repository_format(repo_root) == 1:
        return int(read_repository(repo_root).get("serial", 0))
    path = catalog_dir(repo_root, ns) / NAMESPACE_FILE
    try:
        obj = read_json(path)
    except FileNotFoundError:
        return 0
    if not isinstance(obj, dict) or obj.get("mediaType") != NAMESPACE_MEDIA_TYPE:
        raise FormatError(f"{path}: unknown namespace file format", hint="upgrade hepbundle")
    serial = obj.get("serial")
    if type(serial) is not int or serial < 0:
        raise FormatError(
            f"{path}: serial must be a non-negative integer, not {str(serial)[:40]!r}",
            hint="restore namespace.json from the repository's history or a replica",
        )
    return serial


def bump_serial(repo_root: Path, ns: str, *, tmp_dir: Path | None = None) -> int:
    """Increase the serial of namespace ``ns`` (format 1: of the repository) by one; the caller
    holds the repository lock. Return the new one."""
    root = Path(repo_root)
    if repository_format(root) == 1:
        doc = read_repository(root)
        doc["serial"] = int(doc.get("serial", 0)) + 1
        doc["updated"] = utc_timestamp()
        write_atomic(root / REPOSITORY_FILE, canonical_json(doc), tmp_dir=tmp_dir)
        return int(doc["serial"])
    serial = serial_of(root, ns) + 1
    doc = {
        "mediaType": NAMESPACE_MEDIA_TYPE,
        "namespace": ns,
        "serial": serial,
        "updated": utc_timestamp(),
    }
    write_atomic(catalog_dir(root, ns) / NAMESPACE_FILE, canonical_json(doc), tmp_dir=tmp_dir)
    return serial


def repository_of(bundle: Bundle) -> Path | None:
    """The repository root when ``bundle`` is the published copy inside one
    (``<root>/bundles/<ns>/<name>/<version>`` of a repository), else None."""
    return repository_of_dir(bundle.root, bundle.name, bundle.version)


def repository_of_dir(root: Path, name: str, version: str) -> Path | None:
    """:func:`repository_of` the bundle ``name@version`` in directory ``root``."""
    if len(root.parents) < 4:
        return None
    repo = root.parents[3]
    try:
        same = is_repository(repo) and bundle_dir(repo, name, version) == root
    except HepbundleError:
        return None
    return repo if same else None
