"""The bundle manifest ``hepbundle.json``: identity, every payload file by digest, metadata.

Serialised canonically (sorted keys, two-space indent, UTF-8, LF, trailing newline) so that the
same inputs give the same bytes. The media type carries the format version; readers dispatch on
it through :data:`READERS` and reject versions they do not know. ``hashing.algorithm`` names the
digest algorithm of every file entry (``sha256`` or ``blake3``, through
:data:`hepbundle.digest.ALGORITHMS`); each entry carries its digest in the member of that name,
and an unknown algorithm is refused.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._json import parse_json
from .digest import ALGORITHMS, DEFAULT_ALGORITHM, algorithm, sha256_bytes
from .errors import FormatError, HepbundleError, NotABundleError, PathError, SpecError
from .limits import MAX_MANIFEST_BYTES, MAX_MANIFEST_FILES
from .paths import check_collisions, check_relpath, is_reserved
from .regular import read_regular

__all__ = [
    "HASHING",
    "MANIFEST_FILENAME",
    "MEDIA_TYPE_V1",
    "READERS",
    "FileEntry",
    "Manifest",
    "hashing_for",
    "read_manifest",
]

MANIFEST_FILENAME = "hepbundle.json"
MEDIA_TYPE_V1 = "application/vnd.hepbundle.manifest.v1+json"

_IGNORE = ("hepbundle.json", "hepbundle.sig", "hepbundle.*.sig", ".cvmfscatalog")


def hashing_for(alg: str = DEFAULT_ALGORITHM) -> dict[str, Any]:
    """The hashing parameters recorded in a manifest of digest algorithm ``alg`` (checked)."""
    return {"algorithm": algorithm(alg).name, "ignore": list(_IGNORE), "symlinks": "refuse"}


#: the hashing parameters of new bundles, recorded in every manifest so a verifier can recompute
HASHING: Mapping[str, Any] = hashing_for()

# identity fields in the order shown; everything else is metadata kept in ``Manifest.meta``
_CORE_KEYS = ("mediaType", "name", "version", "created", "hashing", "files")


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One payload file: its bundle-relative path, size in bytes, hex digest (in ``algorithm``,
    the manifest's), role, and the path it had in a legacy store."""

    path: str
    size: int
    digest: str
    role: str = "other"
    legacy_path: str | None = None
    algorithm: str = DEFAULT_ALGORITHM

    @property
    def sha256(self) -> str:
        """The hex SHA-256 of a SHA-256 bundle's entry; :class:`ValueError` for other algorithms
        (code that needs a digest of any algorithm reads :attr:`digest`)."""
        if self.algorithm != "sha256":
            raise ValueError(f"{self.path}: the manifest digest is {self.algorithm}, not sha256")
        return self.digest

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "path": self.path,
            "size": self.size,
            self.algorithm: self.digest,
            "role": self.role,
        }
        if self.legacy_path:
            d["legacyPath"] = self.legacy_path
        return d


@dataclass(frozen=True)
class Manifest:
    """A parsed ``hepbundle.json``. ``meta`` holds every other top-level field (summary, authors,
    metrics, provenance, data, fpga, …) as JSON values."""

    name: str
    version: str
    created: str
    files: tuple[FileEntry, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)
    media_type: str = MEDIA_TYPE_V1
    hashing: Mapping[str, Any] = field(default_factory=lambda: dict(HASHING))

    def __post_init__(self) -> None:
        alg = self.algorithm
        for f in self.files:
            if f.algorithm != alg:
                raise FormatError(
                    f"file entry {f.path!r} has a {f.algorithm} digest in a {alg} manifest"
                )
            check_relpath(f.path)
            if is_reserved(f.path):
                raise FormatError(f"manifest lists reserved file {f.path!r} as payload")
        check_collisions(f.path for f in self.files)

    @property
    def algorithm(self) -> str:
        """The digest algorithm of every file entry (``hashing.algorithm``), a known one."""
        return algorithm(str(self.hashing.get("algorithm"))).name

    @property
    def namespace(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def ref(self) -> str:
        """``namespace/name@version``."""
        return f"{self.name}@{self.version}"

    def file(self, path: str) -> FileEntry:
        """The entry for ``path``; :class:`KeyError` if the manifest does not list it."""
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)

    @property
    def by_path(self) -> dict[str, FileEntry]:
        return {f.path: f for f in self.files}

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = dict(self.meta)
        d.update(
            mediaType=self.media_type,
            name=self.name,
            version=self.version,
            created=self.created,
            hashing=dict(self.hashing),
            files=[f.to_json() for f in sorted(self.files, key=lambda f: f.path)],
        )
        return d

    def to_bytes(self) -> bytes:
        """Canonical serialisation: what goes into ``hepbundle.json``."""
        return canonical_json(self.to_json())

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical bytes; equals the digest of a freshly written hepbundle.json
        (the manifest digest is SHA-256 whatever the files' algorithm: it names the version in
        catalogues, lock files and caches)."""
        return sha256_bytes(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = MANIFEST_FILENAME) -> Manifest:
        """Parse and validate; dispatch on the media type."""
        obj = parse_json(data, source, limit=MAX_MANIFEST_BYTES)
        if not isinstance(obj, dict):
            raise FormatError(f"{source}: a manifest must be a JSON object")
        media_type = obj.get("mediaType")
        reader = READERS.get(str(media_type))
        if reader is None:
            raise FormatError(
                f"{source}: unknown manifest media type {media_type!r}; this hepbundle reads "
                f"{', '.join(READERS)}",
                hint="upgrade hepbundle to read newer formats",
            )
        return reader(obj, source)

    def with_meta(self, **updates: Any) -> Manifest:
        """A copy with metadata fields replaced (used while building)."""
        meta = dict(self.meta)
        meta.update({k: v for k, v in updates.items() if v not in (None, "", [], {}, ())})
        return Manifest(
            self.name, self.version, self.created, self.files, meta, self.media_type, self.hashing
        )


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, 2-space indent, UTF-8 (not ASCII-escaped), trailing newline."""
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _read_v1(obj: dict[str, Any], source: str) -> Manifest:
    # The file list is checked by _check_files (same rules as the schema's files.items, compiled
    # by hand): jsonschema costs ~150 µs per entry, which a 2000-file bundle would pay at every
    # open. Everything else goes through the normative schema. The digest algorithm is checked
    # first, so that a manifest of an algorithm added later is refused with that reason.
    hashing = obj.get("hashing")
    if isinstance(hashing, dict) and "algorithm" in hashing:
        try:
            algorithm(hashing["algorithm"])
        except FormatError as e:
            raise type(e)(f"{source}: hashing.algorithm: {e.message}", hint=e.hint) from None
    _validate_outside_files({**obj, "files": []}, source)
    alg = obj["hashing"]["algorithm"]
    _check_files(obj.get("files"), alg, source)
    files = tuple(
        FileEntry(
            path=f["path"],
            size=f["size"],
            digest=f[alg],
            role=f["role"],
            legacy_path=f.get("legacyPath"),
            algorithm=alg,
        )
        for f in obj["files"]
    )
    meta = {k: v for k, v in obj.items() if k not in _CORE_KEYS}
    return Manifest(
        name=obj["name"],
        version=obj["version"],
        created=obj["created"],
        files=files,
        meta=meta,
        media_type=obj["mediaType"],
        hashing=obj["hashing"],
    )


#: manifests (without their file list) that passed the schema in this process, as compact
#: JSON text with sorted keys (1 and 1.0, true and 1 stay distinct keys): a build reads back the manifest it wrote, and an import's compat tree reads the
#: same ones from the repository; jsonschema costs ~1.4 ms a manifest, the key ~20 µs
_SCHEMA_PASSED: dict[str, None] = {}
_SCHEMA_PASSED_MAX = 4096


def _validate_outside_files(obj: dict[str, Any], source: str) -> None:
    from .spec import validate  # spec imports nothing of ours above it; keep the edge lazy

    key = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    if key in _SCHEMA_PASSED:
        return
    try:
        validate(obj, "manifest.schema.json", filename=source)
    except SpecError as e:
        raise FormatError(str(e)) from None
    if len(_SCHEMA_PASSED) >= _SCHEMA_PASSED_MAX:
        _SCHEMA_PASSED.clear()  # bounded; one call, safe across threads
    _SCHEMA_PASSED[key] = None


_HEX256 = re.compile(r"[0-9a-f]{64}")


@functools.cache
def _roles() -> frozenset[str]:
    from .spec import schema

    return frozenset(schema("spec.schema.json")["$defs"]["role"]["enum"])


def _check_files(files: Any, alg: str, source: str) -> None:
    if not isinstance(files, list):
        raise FormatError(f"{source}: files: must be a list")
    if len(files) > MAX_MANIFEST_FILES:
        raise FormatError(
            f"{source}: {len(files):,} file entries, over the limit of {MAX_MANIFEST_FILES:,}",
            hint="see bundle-spec/README.md § Limits",
        )
    roles = _roles()
    required = {"path", "size", alg, "role"}
    allowed = required | {"legacyPath"}
    for i, f in enumerate(files):
        where = f"{source}: files[{i}]"
        if not isinstance(f, dict):
            raise FormatError(f"{where}: must be an object")
        if not f.keys() >= required or not f.keys() <= allowed:
            other = sorted((f.keys() - allowed) & set(ALGORITHMS))
            why = f" (a {other[0]} digest in a {alg} manifest)" if other else ""
            raise FormatError(
                f"{where}: must have exactly path, size, {alg}, role (and legacyPath){why}"
            )
        if not isinstance(f["path"], str) or not f["path"]:
            raise FormatError(f"{where}.path: must be a non-empty string")
        if type(f["size"]) is not int or f["size"] < 0:
            raise FormatError(f"{where}.size: must be a non-negative integer")
        if not isinstance(f[alg], str) or not _HEX256.fullmatch(f[alg]):
            raise FormatError(f"{where}.{alg}: must be 64 lowercase hex digits")
        if f["role"] not in roles:
            raise FormatError(f"{where}.role: {f['role']!r} is not a known role")
        if "legacyPath" in f:
            if not isinstance(f["legacyPath"], str):
                raise FormatError(f"{where}.legacyPath: must be a string")
            try:
                check_relpath(f["legacyPath"])
            except PathError as e:
                raise FormatError(f"{where}.legacyPath: {e}") from None


#: media type → reader; a new format version adds a reader here and keeps the old ones
READERS: dict[str, Callable[[dict[str, Any], str], Manifest]] = {MEDIA_TYPE_V1: _read_v1}


def sorted_entries(entries: Iterable[FileEntry]) -> tuple[FileEntry, ...]:
    return tuple(sorted(entries, key=lambda f: f.path))


def read_manifest(path: str | os.PathLike[str], where: str = "") -> tuple[Manifest, str]:
    """The manifest of the bundle at ``path`` and the SHA-256 of its bytes."""
    path = Path(path)
    mpath = path / MANIFEST_FILENAME if path.is_dir() else path
    try:
        data = read_regular(mpath, limit=MAX_MANIFEST_BYTES)
    except OSError as e:
        raise NotABundleError(
            f"{where}{path} is not a bundle: cannot read {mpath.name}: {e}", path=path
        ) from None
    except HepbundleError as e:  # over the size limit
        raise FormatError(f"{where}{e.message}", hint=e.hint) from None
    return Manifest.from_bytes(data, source=str(mpath)), sha256_bytes(data)
