"""The searchable SQLite index: one row per version, one per alias.

Format 2 repositories keep one shard per namespace (``bundles/<ns>/_catalog/index.sqlite``: a
publish rewrites only the shard of its namespace, and a search reads every shard); format 1 has
one ``catalog/index.sqlite``. The schema is the same. It is derived data: every row comes from a
per-name catalogue file, and :func:`rebuild_index` writes a fresh file from all per-name files
and renames it into place.

**The recent shard.** A CVMFS publish re-processes every changed file whole, and every client
re-fetches it, so a publish must not change a file that grows with the repository. Beside each
index lives ``index-recent.sqlite``: a publish writes there only the rows of the names it
touched that differ from the index (the new version, the old head's flag, a moved alias) and
"gone" marks for rows the index has and the catalogue no longer has. Readers attach it and see
the index with those rows replaced (temporary views named like the tables, so every query reads
the merged rows); once it holds more than :data:`RECENT_MAX_ROWS` rows, or more than one row
per :data:`RECENT_SHARE` of the index, the publish folds it into the index in the same SQLite
transaction (atomic over both files) and empties it — a rewrite of the large file every few
hundred publishes instead of at each. The recent shard applies to the index whose token
(table ``shard``) it names: a rebuilt index has a new token, and triggers clear the token when
anything but a fold writes the index (an older hepbundle), so a stale recent shard is never
applied; writers then rebuild the index from the per-name files.

Writers use ``journal_mode=DELETE`` so no ``-wal``/``-shm`` file exists next to a published index,
and the rollback journal is gone once a transaction commits; readers of a read-only tree (a CVMFS
mount) open it with ``mode=ro&immutable=1`` so SQLite never tries to lock or write beside it.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .._base import fsync_dir, syncing
from .._json import read_json
from ..errors import FormatError, HepbundleError, RepositoryError
from ..filemodes import make_dirs, publish_mode
from ..limits import MAX_MANIFEST_BYTES, clip
from ..manifest import MANIFEST_FILENAME
from ..validity import OPEN_END, Context, Scope, covers_recorded
from ._crash import crash_point
from .catalog import NameCatalog, VersionRecord, list_names, read_name_catalog
from .layout import RECENT_INDEX_FILE, index_file, index_files, namespaces, repository_format
from .refs import version_key

__all__ = [
    "INDEX_FORMAT",
    "RECENT_FILE",
    "RECENT_MAX_ROWS",
    "RECENT_SHARE",
    "FindHit",
    "FindQuery",
    "LegacyHit",
    "build_index_file",
    "dump_index",
    "find",
    "find_legacy",
    "open_index",
    "rebuild_index",
    "recent_file",
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
# Added without a format bump too: the validity scopes the catalogue records (bundle-spec/
# validity.md), for ``find --valid-for``. ``scopes`` holds each version's section as recorded
# (compact JSON), ``iovs`` its lookup rows, each with the keys of all the version's rows (one
# per line, sorted: which keys its scope restricts) (``Scope.index_rows``): run and time intervals
# (lo, hi inclusive) in the bin of :func:`_bin`, and the literal starts of glob patterns. A
# search finds the candidates through the two indexes of ``iovs`` and judges them on
# ``scopes`` with hepbundle.validity.
_VALIDITY_SCHEMA = """
CREATE TABLE IF NOT EXISTS scopes (
    name TEXT NOT NULL, version TEXT NOT NULL, validity TEXT NOT NULL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS iovs (
    name TEXT NOT NULL, version TEXT NOT NULL, n INTEGER NOT NULL, key TEXT NOT NULL,
    level INTEGER, bin INTEGER, lo INTEGER, hi INTEGER, prefix TEXT, keys TEXT NOT NULL,
    PRIMARY KEY (name, version, n)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS iovs_interval ON iovs (key, level, bin, lo, hi, keys);
CREATE INDEX IF NOT EXISTS iovs_prefix ON iovs (key, prefix, keys);
"""
#: interval levels of :func:`_bin` (an interval is at most OPEN_END + 1 < 2**63 long)
_LEVELS = range(64)
_SEP = "\n"  # list separator inside a column; never part of a name, tag or identity

#: the recent shard beside an index (``index-recent.sqlite``; see the module docstring)
RECENT_FILE = Path(RECENT_INDEX_FILE).name
#: ``PRAGMA user_version`` of the recent shard
RECENT_FORMAT = 1
#: a publish folds the recent shard into the index when it would hold more rows than this …
RECENT_MAX_ROWS = 256
#: … or more than one row per this many versions of the index (small indexes fold at once)
RECENT_SHARE = 8
#: (table, key columns) of every table the recent shard overlays
_TABLES = (
    ("versions", ("name", "version")),
    ("aliases", ("name", "alias")),
    ("legacy_paths", ("legacy", "name", "version")),
    ("scopes", ("name", "version")),
    ("iovs", ("name", "version", "n")),
)
# Added without a format bump (readers of format 1 ignore them): the index's token, which the
# recent shard must name to apply, and triggers clearing it on any write but a fold's.
_SHARD_STATEMENTS = [
    "CREATE TABLE shard (token TEXT)",
    "INSERT INTO shard VALUES (NULL)",
    *(
        f"CREATE TRIGGER shard_{t}_{op.lower()} AFTER {op} ON {t} "
        "BEGIN UPDATE shard SET token = NULL; END"
        for t, _ in _TABLES
        for op in ("INSERT", "UPDATE", "DELETE")
    ),
]
#: where each table's key columns are in its rows
_KEY_POSITIONS = {
    "versions": (0, 2), "aliases": (0, 1), "legacy_paths": (0, 1, 2), "scopes": (0, 1),
    "iovs": (0, 1, 2),
}  # fmt: skip
_RECENT_SCHEMA = (
    "".join(
        f"CREATE TABLE gone_{t} ({', '.join(f'{k} TEXT NOT NULL' for k in keys)}, "
        f"PRIMARY KEY ({', '.join(keys)})) WITHOUT ROWID;\n"
        for t, keys in _TABLES
    )
    + "CREATE TABLE base (token TEXT NOT NULL);\n"
)


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
    #: only versions whose recorded validity scope covers this context: per name the one
    #: ``ns/name@valid`` picks (with ``all_versions``: every one; bundle-spec/validity.md)
    valid_for: Context | None = None


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
    #: the recorded validity scope (filled for a ``valid_for`` search)
    validity: Mapping[str, Any] | None = None

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
            **({"validity": dict(self.validity)} if self.validity is not None else {}),
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
    conn = sqlite3.connect(_ro_uri(path, readonly), uri=True)
    _check_format(conn, path)
    try:
        _overlay_recent(conn, path, readonly)
    except BaseException:
        conn.close()
        raise
    return conn


def _ro_uri(path: Path, readonly: bool) -> str:
    return f"{path.absolute().as_uri()}?mode=ro" + ("&immutable=1" if readonly else "")


def recent_file(index: Path) -> Path:
    """The recent shard beside the index file ``index``."""
    return index.with_name(RECENT_FILE)


def _overlay_recent(conn: sqlite3.Connection, path: Path, readonly: bool) -> None:
    """Attach the recent shard of ``path`` when it applies to this index, and shadow each table
    by a temporary view of the merged rows: the index's rows that the recent shard neither
    replaces nor marks gone, plus the recent shard's. Both files are read in one transaction
    (their shared locks held together), so a fold in between is never half seen."""
    recent = recent_file(path)
    if not recent.is_file():
        return
    conn.execute("ATTACH ? AS recent", (_ro_uri(recent, readonly),))
    conn.execute("BEGIN")
    if not _recent_applies(conn):
        return
    tables = _tables(conn, "main")
    for table, keys in _TABLES:
        if table not in tables:
            continue
        match = " AND ".join(f"x.{k} = m.{k}" for k in keys)
        conn.execute(
            f"CREATE TEMP VIEW {table} AS SELECT * FROM main.{table} m "
            f"WHERE NOT EXISTS (SELECT 1 FROM recent.{table} x WHERE {match}) "
            f"AND NOT EXISTS (SELECT 1 FROM recent.gone_{table} x WHERE {match}) "
            f"UNION ALL SELECT * FROM recent.{table}"
        )


def _tables(conn: sqlite3.Connection, schema: str) -> set[str]:
    return {
        r[0] for r in conn.execute(f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'")
    }


def _token(conn: sqlite3.Connection) -> str | None:
    """The index's token (None: none yet, or cleared by a write that was not a fold)."""
    if "shard" not in _tables(conn, "main"):
        return None
    row = conn.execute("SELECT token FROM main.shard").fetchone()
    return None if row is None else row[0]


def _recent_applies(conn: sqlite3.Connection) -> bool:
    """Whether the attached recent shard is of this hepbundle's format and names the token of
    the index it is attached to."""
    (fmt,) = conn.execute("PRAGMA recent.user_version").fetchone()
    if fmt != RECENT_FORMAT:
        raise FormatError(
            f"recent index shard format {fmt}, this hepbundle reads {RECENT_FORMAT}",
            hint="run: hepbundle catalog rebuild",
        )
    missing = {t for t, _ in _TABLES} & _tables(conn, "main") - _tables(conn, "recent")
    if missing:
        raise FormatError(
            f"the recent index shard has no table {sorted(missing)[0]}: it was written by an "
            "older hepbundle",
            hint="run: hepbundle catalog rebuild",
        )
    token = _token(conn)
    base = conn.execute("SELECT token FROM recent.base").fetchone()
    return token is not None and base is not None and base[0] == token


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
    shards = sorted(
        ((ns, p) for ns, p in index_files(repo_root) if ns is None or p.is_file()),
        key=lambda s: f"{s[0]}/",  # the order of their names ("atlas-b/x" < "atlas/x")
    )
    return [p for _, p in shards] or [index_file(repo_root, "_")]


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
    conn.executescript(_SCHEMA + _LEGACY_SCHEMA + _VALIDITY_SCHEMA)
    conn.execute(f"PRAGMA user_version={INDEX_FORMAT}")


Row = tuple[Any, ...]
#: table → key → row: what one name has (or should have) in each table
Rows = dict[str, dict[Row, Row]]


@contextmanager
def writable_index(repo_root: Path, ns: str) -> Iterator[sqlite3.Connection]:
    """The index holding namespace ``ns`` open for writing, with its recent shard attached as
    ``recent`` when there is one (the caller holds the repository lock). Rebuilt from the
    per-name files first if it is missing, or if a recent shard exists that may hold rows the
    index lacks (damaged, or the index was written by an older hepbundle), so it is never
    partial; a recent shard of an earlier index (a rebuild) is removed."""
    path = index_file(repo_root, ns)
    recent = recent_file(path)

    def rebuild() -> None:
        names = _names_in(repo_root, ns if repository_format(repo_root) == 2 else None)
        build_index_file(repo_root, path, names)

    if not path.is_file():
        rebuild()
    conn = _connect_rw(path)
    try:
        _check_format(conn, path)
        if "iovs" not in _tables(conn, "main"):  # written before validity search: complete it
            conn.close()
            rebuild()
            conn = _connect_rw(path)
        if recent.is_file():
            state = _recent_state(conn, recent)
            if state != "applies":
                conn.close()
                if state == "lost":
                    rebuild()  # removes the recent shard
                recent.unlink(missing_ok=True)
                conn = _connect_rw(path)
        if _token(conn) is None:  # an index of an older hepbundle: give it a token
            _new_token(conn, transaction=True)
        yield conn
    finally:
        conn.close()


def _recent_state(conn: sqlite3.Connection, recent: Path) -> str:
    """Attach ``recent``: ``applies`` (kept attached), ``stale`` (of an earlier index, which is
    complete without it) or ``lost`` (damaged, or the index was changed behind it: the index
    may lack its rows)."""
    try:
        conn.execute("ATTACH ? AS recent", (str(recent),))
        if _recent_applies(conn):
            return "applies"
    except (sqlite3.DatabaseError, FormatError):
        return "lost"
    return "stale" if _token(conn) is not None else "lost"


def _new_token(conn: sqlite3.Connection, *, transaction: bool) -> str:
    """Give the index (and the attached recent shard) a fresh token; creates the ``shard``
    table and its triggers in an index that has none."""
    token = secrets.token_hex(8)
    if transaction:
        conn.execute("BEGIN IMMEDIATE")
    try:
        if "shard" not in _tables(conn, "main"):
            for stmt in _SHARD_STATEMENTS:
                conn.execute(stmt)
        conn.execute("UPDATE main.shard SET token = ?", (token,))
        if _attached(conn):
            conn.execute("UPDATE recent.base SET token = ?", (token,))
        if transaction:
            conn.execute("COMMIT")
    except BaseException:
        if transaction:
            conn.execute("ROLLBACK")
        raise
    return token


def _attached(conn: sqlite3.Connection) -> bool:
    return any(r[1] == "recent" for r in conn.execute("PRAGMA database_list"))


def upsert_name(conn: sqlite3.Connection, catalog: NameCatalog, root: Path | None = None) -> None:
    """Replace the rows of one name in a single transaction; the legacy-path rows too when the
    bundles are under ``root`` (a catalogue-only patch leaves them to ``rebuild_index``)."""
    upsert_names(conn, [catalog], root)


def upsert_names(
    conn: sqlite3.Connection, catalogs: Sequence[NameCatalog], root: Path | None = None
) -> None:
    """Give every name in ``catalogs`` its rows in ONE transaction (a batch publish): in the
    recent shard, as the differences from the index, unless the recent shard would pass its
    bound; then the names' rows go into the index and the recent shard is folded into it (see
    the module docstring). ``conn`` is from :func:`writable_index`."""
    has_recent = _attached(conn)
    names = list(dict.fromkeys(c.name for c in catalogs))
    wanted = {c.name: _rows_of(conn, c, root, has_recent) for c in catalogs}
    indexed = {n: {t: _current(conn, "main", t, n) for t, _ in _TABLES} for n in names}
    deltas = {n: _delta(wanted[n], indexed[n]) for n in names}
    size = sum(len(rows) + len(gone) for d in deltas.values() for rows, gone in d.values())
    if has_recent:
        size += _recent_size(conn, names)
    (count,) = conn.execute("SELECT count(*) FROM main.versions").fetchone()
    direct = size > RECENT_MAX_ROWS or size * RECENT_SHARE > count
    if size == 0 and not has_recent:
        return  # the index has these rows already (it was just built from the per-name files)
    if not direct and not has_recent:
        _create_recent(conn)
        has_recent = True
    conn.execute("BEGIN IMMEDIATE")
    try:
        if has_recent:
            _forget_recent(conn, names)
        if direct:
            for n in names:
                _put_rows(conn, n, wanted[n])
            if has_recent:
                _fold(conn)
            _new_token(conn, transaction=False)
        else:
            for n in names:
                for table, (rows, gone) in deltas[n].items():
                    _insert(conn, f"recent.{table}", rows)
                    _insert(conn, f"recent.gone_{table}", gone)
        crash_point("index-uncommitted")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _insert(conn: sqlite3.Connection, table: str, rows: Sequence[Row]) -> None:
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        conn.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", rows)


def _current(conn: sqlite3.Connection, schema: str, table: str, name: str) -> dict[Row, Row]:
    """The rows ``name`` has in ``schema.table``, keyed."""
    gone = table.startswith("gone_")  # a gone_ table's rows are keys
    pos = () if gone else _KEY_POSITIONS[table]
    rows = conn.execute(f"SELECT * FROM {schema}.{table} WHERE name = ?", (name,)).fetchall()
    return {(tuple(r) if gone else tuple(r[i] for i in pos)): tuple(r) for r in rows}


def _delta(wanted: Rows, indexed: Rows) -> dict[str, tuple[list[Row], list[Row]]]:
    """Per table: the wanted rows the index does not have as they are, and the keys of the
    index's rows that are no longer wanted."""
    return {
        t: (
            [r for k, r in wanted[t].items() if indexed[t].get(k) != r],
            [k for k in indexed[t] if k not in wanted[t]],
        )
        for t, _ in _TABLES
    }


def _recent_size(conn: sqlite3.Connection, leaving: Sequence[str]) -> int:
    """Rows of the recent shard but those of the names ``leaving`` (about to be rewritten)."""
    marks = ", ".join("?" * len(leaving))
    return sum(
        conn.execute(
            f"SELECT count(*) FROM recent.{prefix}{t} WHERE name NOT IN ({marks})", leaving
        ).fetchone()[0]
        for t, _ in _TABLES
        for prefix in ("", "gone_")
    )


def _forget_recent(conn: sqlite3.Connection, names: Sequence[str]) -> None:
    for n in names:
        for t, _ in _TABLES:
            conn.execute(f"DELETE FROM recent.{t} WHERE name = ?", (n,))
            conn.execute(f"DELETE FROM recent.gone_{t} WHERE name = ?", (n,))


def _put_rows(conn: sqlite3.Connection, name: str, wanted: Rows) -> None:
    """Replace the rows of ``name`` in the index itself."""
    for t, _ in _TABLES:
        conn.execute(f"DELETE FROM main.{t} WHERE name = ?", (name,))
        _insert(conn, f"main.{t}", list(wanted[t].values()))


def _fold(conn: sqlite3.Connection) -> None:
    """Apply the recent shard to the index and empty it (inside the caller's transaction)."""
    for t, keys in _TABLES:
        cols = ", ".join(keys)
        conn.execute(
            f"DELETE FROM main.{t} WHERE ({cols}) IN "
            f"(SELECT {cols} FROM recent.{t} UNION ALL SELECT {cols} FROM recent.gone_{t})"
        )
        conn.execute(f"INSERT INTO main.{t} SELECT * FROM recent.{t}")
        conn.execute(f"DELETE FROM recent.{t}")
        conn.execute(f"DELETE FROM recent.gone_{t}")


def _create_recent(conn: sqlite3.Connection) -> None:
    """Write an empty recent shard naming the index's token beside it, and attach it."""
    main = Path(next(r[2] for r in conn.execute("PRAGMA database_list") if r[1] == "main"))
    token = _token(conn)
    assert token is not None  # writable_index gave the index one
    path = recent_file(main)
    fd, tmp = tempfile.mkstemp(prefix=".index-recent.sqlite.tmp-", dir=path.parent)
    publish_mode(tmp, fd=fd)
    os.close(fd)
    try:
        with closing(_connect_rw(Path(tmp))) as new:
            # small pages: a dozen tables and indexes of a few rows each, re-published whole
            new.execute("PRAGMA page_size=1024")
            new.executescript(_SCHEMA + _LEGACY_SCHEMA + _VALIDITY_SCHEMA + _RECENT_SCHEMA)
            new.execute("INSERT INTO base VALUES (?)", (token,))
            new.execute(f"PRAGMA user_version={RECENT_FORMAT}")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    conn.execute("ATTACH ? AS recent", (str(path),))


def _version_rows(cat: NameCatalog) -> dict[Row, Row]:
    ns = cat.name.split("/", 1)[0]
    head = _head(cat)
    rows = {}
    for r in cat.versions.values():
        search = _SEP.join(
            [cat.name, r.version, r.summary, *r.authors, r.framework, *r.tags, *r.datasets]
        ).casefold()
        rows[(cat.name, r.version)] = (
            cat.name, ns, r.version, version_key(r.version), int(r.prerelease),
            r.manifest_digest, r.path, r.created, r.published, r.summary,
            _SEP.join(r.authors), r.framework, r.license, _SEP.join(r.tags),
            _SEP.join(r.datasets), _SEP.join(r.signers), r.yanked, r.yanked_time, search,
            int(r.version == head),
        )  # fmt: skip
    return rows


def _rows_of(conn: sqlite3.Connection, cat: NameCatalog, root: Path | None, recent: bool) -> Rows:
    """The rows ``cat`` gives each table. A version's legacy paths come from its manifest under
    ``root`` when it is first indexed (manifests never change); versions indexed before keep
    theirs, and without ``root`` (a catalogue-only patch) no manifest is read."""
    versions = _version_rows(cat)
    aliases = {(cat.name, a): (cat.name, a, v) for a, v in cat.aliases.items()}
    legacy, indexed = (_merged(conn, t, cat.name, recent) for t in ("legacy_paths", "versions"))
    legacy = {k: r for k, r in legacy.items() if (k[1], k[2]) in versions}
    if root is not None:
        fresh = [r for r in cat.versions.values() if (cat.name, r.version) not in indexed]
        legacy.update(_legacy_rows(cat.name, fresh, root))
    return {"versions": versions, "aliases": aliases, "legacy_paths": legacy, **_scope_rows(cat)}


def _scope_rows(cat: NameCatalog) -> Rows:
    """The ``scopes`` and ``iovs`` rows of the versions of ``cat`` that record a validity scope;
    an unreadable scope gets its ``scopes`` row but no ``iovs`` rows (never a candidate, as
    ``@valid`` never picks it)."""
    scopes: dict[Row, Row] = {}
    iovs: dict[Row, Row] = {}
    for r in cat.versions.values():
        if not r.validity:
            continue
        scopes[(cat.name, r.version)] = (cat.name, r.version, _compact(r.validity))
        try:
            rows = Scope.from_json(r.validity).index_rows()
        except FormatError:
            continue
        keys = _SEP.join(sorted({row[0] for row in rows}))
        for n, (key, lo, hi, prefix) in enumerate(rows):
            if lo is not None and hi is not None:  # a run beyond OPEN_END is judged by Scope
                lo, hi = min(lo, OPEN_END), min(hi, OPEN_END)
            level, where = _bin(lo, hi) if lo is not None and hi is not None else (None, None)
            iovs[(cat.name, r.version, n)] = (
                cat.name, r.version, n, key, level, where, lo, hi, prefix, keys,
            )  # fmt: skip
    return {"scopes": scopes, "iovs": iovs}


def _bin(lo: int, hi: int) -> tuple[int, int]:
    """The (level, bin) an interval [lo, hi] is indexed under: level L is the bit length of
    hi - lo, so the interval is shorter than 2**L and lies in bins lo >> L and the next. A
    point p is then in an interval of level L only if its bin is p >> L or the one before: a
    lookup is two index ranges per level (:func:`_valid_rows`), whatever the intervals' lengths,
    instead of a scan of every interval starting before p."""
    level = (hi - lo).bit_length()
    return level, lo >> level


def _merged(conn: sqlite3.Connection, table: str, name: str, recent: bool) -> dict[Row, Row]:
    """The rows ``name`` has in ``table`` as readers see them (the index and the recent shard)."""
    rows = _current(conn, "main", table, name)
    if recent:
        for k in _current(conn, "recent", f"gone_{table}", name):
            rows.pop(k, None)
        rows.update(_current(conn, "recent", table, name))
    return rows


def _compact(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _names_in(repo_root: Path, ns: str | None) -> list[str]:
    return [n for n in list_names(repo_root) if ns is None or n.split("/", 1)[0] == ns]


def rebuild_index(repo_root: Path, *, work_dir: Path | None = None) -> int:
    """Write every index (format 2: every namespace's shard) anew from the per-name files and
    rename each over the old one (its recent shard removed); return the number of versions
    indexed. ``work_dir`` (same file system) holds a file while it grows."""
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
    place, with a new token, so a recent shard beside it no longer applies; it is removed);
    return the number of versions indexed."""
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
                _put_rows(conn, name, _rows_of(conn, cat, repo_root, False))
                count += len(cat.versions)
            _new_token(conn, transaction=False)  # the triggers exist from here on
            conn.execute("COMMIT")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    recent_file(path).unlink(missing_ok=True)
    fsync_dir(path.parent)
    return count


def _legacy_rows(name: str, records: Sequence[VersionRecord], root: Path) -> dict[Row, Row]:
    """``<namespace>:<legacyPath>`` → bundle file, for every version of ``records`` whose
    manifest is under ``root``."""
    ns = name.split("/", 1)[0]
    rows: dict[Row, Row] = {}
    for r in records:
        try:
            doc = read_json(root / r.path / MANIFEST_FILENAME, limit=MAX_MANIFEST_BYTES)
            files = doc["files"]
        except (OSError, HepbundleError, KeyError, TypeError):
            continue  # not on this tree (catalogue-only patch) or not a bundle: nothing to map
        for f in files:
            if isinstance(f, dict) and f.get("legacyPath"):
                row = (f"{ns}:{f['legacyPath']}", name, r.version, f["path"])
                rows[row[:3]] = row
    return rows


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
    under: str = "",
    readonly: bool | None = None,
) -> list[LegacyHit]:
    """The bundle files recorded under ``legacy`` (``<namespace>:<legacy path>``), or under every
    legacy path of ``namespace`` (only those below the directory ``under``, if given); per legacy
    path best first: released before pre-release, higher version first. Yanked versions are left
    out."""
    if (legacy is None) == (namespace is None):
        raise ValueError("give exactly one of legacy and namespace")
    # every legacy path starting with `low` sorts before `high` (its last character + 1)
    low = f"{namespace}:{under}/" if under else f"{namespace}:"
    high = low[:-1] + chr(ord(low[-1]) + 1)
    cond, params = (
        ("l.legacy = ?", (legacy,))
        if legacy is not None
        else ("l.legacy >= ? AND l.legacy < ?", (low, high))
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
    are left out unless ``include_yanked``. ``valid_for`` searches by validity scope instead of
    the head (:func:`_valid_rows`)."""
    where, params = _where(query)
    sql = (
        "SELECT name, version, summary, framework, authors, tags, signers, published, "
        "manifest_sha256, path, yanked, sort_key, prerelease FROM versions"
        + (f" WHERE {' AND '.join(where)}" if where else "")
    )
    sql += " ORDER BY name, sort_key DESC LIMIT ?"
    rows: list[Any] = []
    aliases: dict[tuple[str, str], list[str]] = {}
    # one shard per namespace (format 2), in the order of their names: the first `limit` hits
    # of the shards in turn are the first `limit` of all
    for path in _shards(repo_root):
        left = query.limit - len(rows)
        if left <= 0:
            break
        with _reading(repo_root, path, readonly) as conn:
            if query.valid_for is None:
                found = [(*r, None) for r in conn.execute(sql, [*params, left])]
            else:
                found = _valid_rows(conn, path, replace(query, limit=left), where, params)
            rows += found
            aliases.update(_aliases_of(conn, {r[0] for r in found}))
    return [
        FindHit(
            name=r[0], version=r[1], summary=r[2], framework=r[3], authors=_split(r[4]),
            tags=_split(r[5]), signers=_split(r[6]), published=r[7], manifest_digest=r[8],
            path=r[9], yanked=r[10], aliases=tuple(sorted(aliases.get((r[0], r[1]), ()))),
            validity=r[13],
        )
        for r in rows
    ]  # fmt: skip


def _valid_rows(
    conn: sqlite3.Connection, path: Path, query: FindQuery, where: list[str], params: list[Any]
) -> list[tuple[Any, ...]]:
    """The rows of a ``valid_for`` search in one index, the parsed scope as the last column.

    1. Candidates: per probe of the context (:meth:`Context.index_probes`) the versions with a
       matching ``iovs`` row, found through the table's indexes: an interval containing the run
       or time (two bins per level, :func:`_bin`), a glob whose literal start the value starts
       with.
    2. A candidate that some probe did not match but whose scope restricts that probe's key
       (``iovs.keys``) is dropped: excluded (the rows match a superset of what the scope
       matches, so nothing the scope covers is dropped).
    3. The rest, per name in order and newest first, are judged on their recorded scope by
       :func:`~hepbundle.validity.covers_recorded`, exactly as ``@valid`` judges them, until
       ``query.limit`` hits.

    Only single-table queries with parameters, so that each reaches the table's indexes through
    the recent shard's views (a join or a correlated subquery on a view scans it)."""
    ctx = query.valid_for
    assert ctx is not None
    if "iovs" not in _tables(conn, "main"):
        raise RepositoryError(
            f"{path} predates validity search (no table iovs)",
            hint="run: hepbundle catalog rebuild",
        )
    probes = ctx.index_probes()
    # per candidate: a bit per probe it matched, and the keys its scope restricts
    matched: dict[tuple[str, str], int] = {}
    restricts: dict[tuple[str, str], str] = {}
    for bit, (keys, point, starts) in enumerate(probes):
        in_keys = f"key IN ({_marks(keys)})"
        rows = "SELECT name, version, keys FROM iovs WHERE "
        if point is None:
            sql = f"{rows}{in_keys} AND prefix IN ({_marks(starts)})"
            args: list[Any] = [*keys, *starts]
        else:  # one index range per level and bin (a row-value IN is not an index range)
            point = min(point, OPEN_END)  # the index clamps its intervals alike
            one = f"{rows}{in_keys} AND level = ? AND bin IN (?, ?) AND lo <= ? AND hi >= ?"
            sql = " UNION ALL ".join([one] * len(_LEVELS))
            args = [
                x
                for level in _LEVELS
                for x in (*keys, level, point >> level, (point >> level) - 1, point, point)
            ]
        for name, version, restricted in conn.execute(sql, args):
            matched[(name, version)] = matched.get((name, version), 0) | 1 << bit
            restricts[(name, version)] = restricted
    by_keys: dict[str, int] = {}  # a version's restricted keys → the probes they restrict

    def restricted_probes(text: str) -> int:
        if text not in by_keys:
            have = set(text.split(_SEP))
            by_keys[text] = sum(1 << b for b, (ks, _, _) in enumerate(probes) if have & set(ks))
        return by_keys[text]

    # excluded: restricts the key of a probe it did not match (rows of that key, none matching)
    candidates = [
        ref for ref, bits in matched.items() if not restricted_probes(restricts[ref]) & ~bits
    ]
    by_name: dict[str, list[str]] = {}
    for name, version in candidates:
        by_name.setdefault(name, []).append(version)
    filters = "".join(f" AND {w}" for w in where)
    out: list[tuple[Any, ...]] = []
    for name in sorted(by_name):
        versions = by_name[name]
        for r in conn.execute(  # newest first, read as far as judged
            "SELECT name, version, summary, framework, authors, tags, signers, published, "
            "manifest_sha256, path, yanked, sort_key, prerelease FROM versions "
            f"WHERE name = ? AND version IN ({_marks(versions)}){filters} ORDER BY sort_key DESC",
            [name, *versions, *params],
        ):
            (text,) = conn.execute(
                "SELECT validity FROM scopes WHERE name = ? AND version = ?", r[:2]
            ).fetchone()
            scope = json.loads(text)
            if covers_recorded(scope, ctx, f"{name}@{r[1]}: validity"):
                out.append((*r, scope))
                if not query.all_versions:
                    break  # the newest covering version is the one @valid picks
        if len(out) >= query.limit:
            break
    return out[: query.limit]


def _marks(items: Sequence[Any]) -> str:
    return ", ".join("?" * len(items))


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
    if q.valid_for is not None and not q.all_versions:
        where.append("yanked IS NULL AND prerelease = 0")  # what @valid chooses among
    elif not q.include_yanked:
        where.append("yanked IS NULL")
    if not q.all_versions and q.valid_for is None:
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


def dump_index(repo_root: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables derived from the per-name files alone (versions, aliases, scopes,
    iovs; not the legacy paths, which come from the manifests), sorted: to compare an
    incrementally maintained index with a rebuilt one."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table, _ in _TABLES:
        if table == "legacy_paths":
            continue
        rows: list[tuple[Any, ...]] = []
        for path in _shards(repo_root):
            with _reading(repo_root, path, None) as conn:
                rows += conn.execute(f"SELECT * FROM {table}").fetchall()
        pos = _KEY_POSITIONS[table]
        out[table] = sorted(rows, key=lambda r: tuple(r[i] for i in pos))
    return out
