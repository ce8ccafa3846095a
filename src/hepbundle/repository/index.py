"""The searchable SQLite index: one row per version, one per alias.

Format 2 repositories keep one shard per namespace (``bundles/<ns>/_catalog/index.sqlite``: a
publish rewrites only the shard of its namespace, and a search reads every shard); format 1 has
one ``catalog/index.sqlite``. The schema is the same. It is derived data: every row comes from a per-name catalogue file, a publish replaces only the
rows of the name it touched (so its cost does not grow with the repository), and
:func:`rebuild_index` writes a fresh file from all per-name files and renames it into place.
Writers use ``journal_mode=DELETE`` so no ``-wal``/``-shm`` file exists next to a published index,
and the rollback journal is gone once a transaction commits; readers of a read-only tree (a CVMFS
mount) open it with ``mode=ro&immutable=1`` so SQLite never tries to lock or write beside it.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._base import fsync_dir, syncing
from .._json import read_json
from ..errors import FormatError, HepbundleError, RepositoryError
from ..filemodes import make_dirs, publish_mode
from ..limits import MAX_MANIFEST_BYTES, clip
from ..manifest import MANIFEST_FILENAME
from ._crash import crash_point
from .catalog import NameCatalog, list_names, read_name_catalog
from .layout import index_file, index_files, namespaces, repository_format
from .refs import version_key

__all__ = [
    "INDEX_FORMAT",
    "FindHit",
    "FindQuery",
    "LegacyHit",
    "build_index_file",
    "dump_index",
    "find",
    "find_legacy",
    "open_index",
    "rebuild_index",
    "upsert_name",
    "upsert_names",
    "writable_index",
]

#: ``PRAGMA user_version`` of the index format this code reads and writes
INDEX_FORMAT = 1

_SCHEMA = """
CREATE TABLE versions (
    name TEXT NOT NULL, namespace TEXT NOT NULL, version TEXT NOT NULL, sort_key TEXT NOT NULL,
    prerelease INTEGER NOT NULL, manifest_sha256 TEXT NOT NULL, path TEXT NOT NULL,
    created TEXT NOT NULL, published TEXT NOT NULL, summary TEXT NOT NULL, authors TEXT NOT NULL,
    framework TEXT NOT NULL, license TEXT NOT NULL, tags TEXT NOT NULL, datasets TEXT NOT NULL,
    signers TEXT NOT NULL, yanked TEXT, yanked_time TEXT, search TEXT NOT NULL,
    head INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;
CREATE INDEX versions_namespace ON versions (namespace);
CREATE INDEX versions_framework ON versions (framework);
CREATE INDEX versions_head ON versions (name) WHERE head = 1;
CREATE TABLE aliases (
    name TEXT NOT NULL, alias TEXT NOT NULL, version TEXT NOT NULL, PRIMARY KEY (name, alias)
) WITHOUT ROWID;
"""
# Added without a format bump: readers of format 1 ignore the extra table, and a writer creates
# it in an older index; its rows come from the manifests' ``legacyPath`` (imported stores).
_LEGACY_SCHEMA = """
CREATE TABLE IF NOT EXISTS legacy_paths (
    legacy TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL, path TEXT NOT NULL,
    PRIMARY KEY (legacy, name, version)
) WITHOUT ROWID;
"""
_SEP = "\n"  # list separator inside a column; never part of a name, tag or identity


@dataclass(frozen=True)
class FindQuery:
    """Search filters; every given filter must match (case-insensitive)."""

    text: str | None = None
    name: str | None = None
    namespace: str | None = None
    author: str | None = None
    framework: str | None = None
    dataset: str | None = None
    tag: str | None = None
    signer: str | None = None
    all_versions: bool = False
    include_yanked: bool = False
    limit: int = 100


@dataclass(frozen=True)
class FindHit:
    """One matching version."""

    name: str
    version: str
    summary: str
    framework: str
    authors: tuple[str, ...]
    tags: tuple[str, ...]
    signers: tuple[str, ...]
    published: str
    manifest_digest: str
    path: str
    yanked: str | None
    aliases: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": f"{self.name}@{self.version}",
            "summary": self.summary,
            "framework": self.framework,
            "authors": list(self.authors),
            "tags": list(self.tags),
            "signers": list(self.signers),
            "published": self.published,
            "manifest_sha256": self.manifest_digest,
            "path": self.path,
            "yanked": self.yanked,
            "aliases": list(self.aliases),
        }


def open_index(
    repo_root: Path, *, readonly: bool | None = None, ns: str | None = None
) -> sqlite3.Connection:
    """Open the index holding namespace ``ns`` (format 1: the one index) for reading.
    ``readonly`` (default: when its directory is not writable, as on a CVMFS mount) opens it
    ``immutable``: no locks, no journal, no writes."""
    if ns is None and repository_format(repo_root) == 2:
        raise ValueError("a format-2 repository has one index per namespace: give ns")
    return _open(repo_root, index_file(repo_root, ns or "_"), readonly)


def _open(repo_root: Path, path: Path, readonly: bool | None) -> sqlite3.Connection:
    if not path.is_file():
        raise RepositoryError(
            f"{repo_root} has no catalogue index ({path.relative_to(repo_root)})",
            hint="run: hepbundle catalog rebuild --repo " + str(repo_root),
        )
    if readonly is None:
        readonly = not os.access(path.parent, os.W_OK)
    uri = f"{path.absolute().as_uri()}?mode=ro" + ("&immutable=1" if readonly else "")
    conn = sqlite3.connect(uri, uri=True)
    _check_format(conn, path)
    return conn


@contextmanager
def _reading(repo_root: Path, path: Path, readonly: bool | None) -> Iterator[sqlite3.Connection]:
    """The index (shard) ``path`` open for reading; a damaged one (not a database, tables
    missing, corrupt pages) is one :class:`RepositoryError` saying how to recover, never an
    sqlite3 traceback."""
    try:
        with closing(_open(repo_root, path, readonly)) as conn:
            yield conn
    except sqlite3.Error as e:
        raise RepositoryError(
            f"{path} is damaged: {clip(str(e), 200)}",
            hint=f"run: hepbundle catalog rebuild --repo {repo_root}",
        ) from None


def _shards(repo_root: Path) -> list[Path]:
    """Every index a search reads: format 1's one, or format 2's existing shards; at least one
    path (a missing one makes :func:`_open` say there is no index)."""
    paths = [p for ns, p in index_files(repo_root) if ns is None or p.is_file()]
    return paths or [index_file(repo_root, "_")]


def _check_format(conn: sqlite3.Connection, path: Path) -> None:
    (fmt,) = conn.execute("PRAGMA user_version").fetchone()
    if fmt != INDEX_FORMAT:
        conn.close()
        raise FormatError(
            f"{path}: index format {fmt}, this hepbundle reads {INDEX_FORMAT}",
            hint="run: hepbundle catalog rebuild",
        )


def _connect_rw(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute(f"PRAGMA synchronous={'FULL' if syncing() else 'OFF'}")
    return conn


def _create(conn: sqlite3.Connection) -> None:
    conn.executescript(_SCHEMA + _LEGACY_SCHEMA)
    conn.execute(f"PRAGMA user_version={INDEX_FORMAT}")


@contextmanager
def writable_index(repo_root: Path, ns: str) -> Iterator[sqlite3.Connection]:
    """The index holding namespace ``ns`` open for writing (the caller holds the repository
    lock); rebuilt from the per-name files first if it is missing, so it is never partial."""
    path = index_file(repo_root, ns)
    if not path.is_file():
        build_index_file(
            repo_root, path, _names_in(repo_root, ns if repository_format(repo_root) == 2 else None)
        )
    with closing(_connect_rw(path)) as conn:
        _check_format(conn, path)
        conn.executescript(_LEGACY_SCHEMA)
        yield conn


def upsert_name(conn: sqlite3.Connection, catalog: NameCatalog, root: Path | None = None) -> None:
    """Replace the rows of one name in a single transaction; the legacy-path rows too when the
    bundles are under ``root`` (a catalogue-only patch leaves them to ``rebuild_index``)."""
    upsert_names(conn, [catalog], root)


def upsert_names(
    conn: sqlite3.Connection, catalogs: Sequence[NameCatalog], root: Path | None = None
) -> None:
    """Replace the rows of every name in ``catalogs`` in ONE transaction (a batch publish)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for catalog in catalogs:
            _replace_rows(conn, catalog)
            if root is not None:
                _replace_legacy_rows(conn, catalog, root)
        crash_point("index-uncommitted")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _replace_rows(conn: sqlite3.Connection, cat: NameCatalog) -> None:
    ns = cat.name.split("/", 1)[0]
    conn.execute("DELETE FROM versions WHERE name = ?", (cat.name,))
    conn.execute("DELETE FROM aliases WHERE name = ?", (cat.name,))
    head = _head(cat)
    rows = []
    for r in cat.versions.values():
        search = _SEP.join(
            [cat.name, r.version, r.summary, *r.authors, r.framework, *r.tags, *r.datasets]
        ).casefold()
        rows.append(
            (
                cat.name, ns, r.version, version_key(r.version), int(r.prerelease),
                r.manifest_digest, r.path, r.created, r.published, r.summary,
                _SEP.join(r.authors), r.framework, r.license, _SEP.join(r.tags),
                _SEP.join(r.datasets), _SEP.join(r.signers), r.yanked, r.yanked_time, search,
                int(r.version == head),
            )
        )  # fmt: skip
    conn.executemany(f"INSERT INTO versions VALUES ({', '.join('?' * 20)})", rows)
    conn.executemany(
        "INSERT INTO aliases VALUES (?, ?, ?)",
        [(cat.name, a, v) for a, v in cat.aliases.items()],
    )


def _names_in(repo_root: Path, ns: str | None) -> list[str]:
    return [n for n in list_names(repo_root) if ns is None or n.split("/", 1)[0] == ns]


def rebuild_index(repo_root: Path, *, work_dir: Path | None = None) -> int:
    """Write every index (format 2: every namespace's shard) anew from the per-name files and
    rename each over the old one; return the number of versions indexed. ``work_dir`` (same
    file system) holds a file while it grows."""
    if repository_format(repo_root) == 1:
        return build_index_file(
            repo_root, index_file(repo_root, "_"), list_names(repo_root), work_dir
        )
    return sum(
        build_index_file(repo_root, index_file(repo_root, ns), _names_in(repo_root, ns), work_dir)
        for ns in namespaces(repo_root)
    )


def build_index_file(
    repo_root: Path, path: Path, names: Sequence[str], work_dir: Path | None = None
) -> int:
    """Write the index file ``path`` anew from the per-name files of ``names`` (renamed into
    place); return the number of versions indexed."""
    make_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=".index.sqlite.tmp-", dir=work_dir or path.parent)
    publish_mode(tmp, fd=fd)  # jobs under other accounts query the index
    os.close(fd)
    count = 0
    try:
        with closing(_connect_rw(Path(tmp))) as conn:
            _create(conn)
            conn.execute("BEGIN")
            for name in names:
                cat = read_name_catalog(repo_root, name)
                _replace_rows(conn, cat)
                _replace_legacy_rows(conn, cat, repo_root)
                count += len(cat.versions)
            conn.execute("COMMIT")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return count


def _replace_legacy_rows(conn: sqlite3.Connection, cat: NameCatalog, root: Path) -> None:
    """``<namespace>:<legacyPath>`` → bundle file, for every version whose manifest is there."""
    ns = cat.name.split("/", 1)[0]
    conn.execute("DELETE FROM legacy_paths WHERE name = ?", (cat.name,))
    rows = []
    for r in cat.versions.values():
        try:
            doc = read_json(root / r.path / MANIFEST_FILENAME, limit=MAX_MANIFEST_BYTES)
            files = doc["files"]
        except (OSError, HepbundleError, KeyError, TypeError):
            continue  # not on this tree (catalogue-only patch) or not a bundle: nothing to map
        rows += [
            (f"{ns}:{f['legacyPath']}", cat.name, r.version, f["path"])
            for f in files
            if isinstance(f, dict) and f.get("legacyPath")
        ]
    conn.executemany("INSERT OR REPLACE INTO legacy_paths VALUES (?, ?, ?, ?)", rows)


@dataclass(frozen=True)
class LegacyHit:
    """A bundle file recorded under a legacy path (``atlas:tauRecTools/R22/model.json``)."""

    legacy: str
    name: str
    version: str
    path: str


def find_legacy(
    repo_root: Path,
    legacy: str | None = None,
    *,
    namespace: str | None = None,
    readonly: bool | None = None,
) -> list[LegacyHit]:
    """The bundle files recorded under ``legacy`` (``<namespace>:<legacy path>``), or under every
    legacy path of ``namespace``; per legacy path best first: released before pre-release,
    higher version first. Yanked versions are left out."""
    if (legacy is None) == (namespace is None):
        raise ValueError("give exactly one of legacy and namespace")
    cond, params = (
        ("l.legacy = ?", (legacy,))
        if legacy is not None
        else ("l.legacy >= ? AND l.legacy < ?", (f"{namespace}:", f"{namespace};"))
    )
    sql = (
        "SELECT l.legacy, l.name, l.version, l.path FROM legacy_paths l "
        "JOIN versions v ON v.name = l.name AND v.version = l.version "
        f"WHERE {cond} AND v.yanked IS NULL "
        "ORDER BY l.legacy, v.prerelease, v.sort_key DESC, l.name"
    )
    ns = (legacy or "").split(":", 1)[0] if legacy is not None else namespace
    assert ns is not None
    if repository_format(repo_root) == 2 and not index_file(repo_root, ns).is_file():
        if not any(p.is_file() for _, p in index_files(repo_root)):
            _open(repo_root, index_file(repo_root, ns), readonly)  # raises: no index at all
        return []  # the namespace has no shard: nothing was published under it
    with _reading(repo_root, index_file(repo_root, ns), readonly) as conn:
        has_table = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'legacy_paths'"
        ).fetchone()
        rows = conn.execute(sql, params).fetchall() if has_table else []
    return [LegacyHit(*r) for r in rows]


def find(repo_root: Path, query: FindQuery, *, readonly: bool | None = None) -> list[FindHit]:
    """Search the index. By default only the *head* of each name is searched (the version
    ``ns/name`` resolves to: its highest non-yanked release, see :func:`_head`), so one hit per
    name and no scan of old versions; ``all_versions`` searches every version. Yanked versions
    are left out unless ``include_yanked``."""
    where, params = _where(query)
    sql = (
        "SELECT name, version, summary, framework, authors, tags, signers, published, "
        "manifest_sha256, path, yanked, sort_key, prerelease FROM versions"
        + (f" WHERE {' AND '.join(where)}" if where else "")
    )
    sql += " ORDER BY name, sort_key DESC LIMIT ?"
    params.append(query.limit)
    rows: list[Any] = []
    aliases: dict[tuple[str, str], list[str]] = {}
    for path in _shards(repo_root):  # one per namespace (format 2): merge, then cut
        with _reading(repo_root, path, readonly) as conn:
            found = conn.execute(sql, params).fetchall()
            rows += found
            aliases.update(_aliases_of(conn, {r[0] for r in found}))
    rows = sorted(rows, key=lambda r: (r[0], _desc(r[11])))[: query.limit]
    return [
        FindHit(
            name=r[0], version=r[1], summary=r[2], framework=r[3], authors=_split(r[4]),
            tags=_split(r[5]), signers=_split(r[6]), published=r[7], manifest_digest=r[8],
            path=r[9], yanked=r[10], aliases=tuple(sorted(aliases.get((r[0], r[1]), ()))),
        )
        for r in rows
    ]  # fmt: skip


def _desc(key: str) -> tuple[int, ...]:
    """A sort key that orders ``key`` strings descending."""
    return (*tuple(-ord(c) for c in key), 1)


def _where(q: FindQuery) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []

    def like(column: str, value: str) -> None:
        where.append(f"{column} LIKE ? ESCAPE '\\'")
        params.append("%" + _escape_like(value) + "%")

    for word in (q.text or "").split():
        like("search", word.casefold())
    if q.name:
        like("name", q.name)
    if q.namespace:
        where.append("namespace = ?")
        params.append(q.namespace.casefold())
    if q.author:
        like("authors", q.author)
    if q.framework:
        where.append("framework = ? COLLATE NOCASE")
        params.append(q.framework)
    if q.dataset:
        like("datasets", q.dataset)
    if q.tag:
        # a whole tag, not a substring of one
        where.append("(char(10) || tags || char(10)) LIKE ? ESCAPE '\\'")
        params.append(f"%\n{_escape_like(q.tag)}\n%")
    if q.signer:
        like("signers", q.signer)
    if not q.include_yanked:
        where.append("yanked IS NULL")
    if not q.all_versions:
        where.append("head = 1")
    return where, params


def _head(cat: NameCatalog) -> str | None:
    """The version a name's default search row is: the highest non-yanked release, else the
    highest non-yanked pre-release, else (everything yanked) the highest version."""
    latest = cat.latest()
    if latest is not None:
        return latest.version
    ordered = cat.sorted_versions()
    live = [r for r in ordered if not r.yanked]
    return (live or ordered)[-1].version if ordered else None


def _escape_like(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _split(s: str) -> tuple[str, ...]:
    return tuple(s.split(_SEP)) if s else ()


def _aliases_of(conn: sqlite3.Connection, names: set[str]) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for chunk in _chunks(sorted(names), 500):
        marks = ", ".join("?" * len(chunk))
        for name, alias, version in conn.execute(
            f"SELECT name, alias, version FROM aliases WHERE name IN ({marks})", chunk
        ):
            out.setdefault((name, version), []).append(alias)
    return out


def _chunks(items: Sequence[str], n: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def dump_index(repo_root: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every row, sorted (to compare an incrementally maintained index with a rebuilt one)."""
    versions: list[tuple[Any, ...]] = []
    aliases: list[tuple[Any, ...]] = []
    for path in _shards(repo_root):
        with _reading(repo_root, path, None) as conn:
            versions += conn.execute("SELECT * FROM versions ORDER BY name, version").fetchall()
            aliases += conn.execute("SELECT * FROM aliases ORDER BY name, alias").fetchall()
    return sorted(versions, key=lambda r: (r[0], r[2])), sorted(aliases, key=lambda r: r[:2])
