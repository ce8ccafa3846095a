"""The provenance record written beside every NPZ made by ``root2npz`` (``<out>.provenance.json``).

Normative schema: ``bundle-spec/v1/npz-provenance.schema.json``. A bundle's data reference
embeds this record, so a reader can tell which ROOT files (by adler32 — the checksum XRootD
and Rucio use — and SHA-256), which selection and which software produced the NPZ it trains on,
and check the NPZ itself by size and SHA-256 (:func:`check_npz`).
"""

from __future__ import annotations

import json
import os
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._base import __version__, created_timestamp, write_atomic
from ..digest import FileDigest, data_checksums, hash_file
from ..errors import DataError, SpecError
from ..manifest import canonical_json
from ..remote.xrootd import is_root_url
from ..remote.xrootd import stat as xrootd_stat
from ..spec import validate

__all__ = [
    "MEDIA_TYPE",
    "SCHEMA",
    "InputRecord",
    "check_npz",
    "checksum_input",
    "is_url",
    "read_record",
    "write_record",
]

MEDIA_TYPE = "application/vnd.hepbundle.npz-provenance.v1+json"
SCHEMA = "npz-provenance.schema.json"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(name: str) -> bool:
    """True for ``root://…``, ``https://…``, ``file://…`` and the like (handed to uproot as is)."""
    return bool(_URL.match(name))


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One input file: where, how big, its checksums (None when not readable from here)."""

    path: str
    size: int | None
    adler32: str | None
    sha256: str | None
    tree: str | None = None
    entries: int | None = None
    #: ``TTree`` or ``RNTuple``: which kind of object ``tree`` names in this file
    kind: str | None = None
    #: where size and adler32 come from: ``local`` (read here) or ``xrootd`` (the server's
    #: checksum query); None when neither was possible
    checksum_source: str | None = None

    def with_entries(self, *, tree: str, kind: str, entries: int) -> InputRecord:
        return replace(self, tree=tree, kind=kind, entries=entries)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "adler32": self.adler32,
            "sha256": self.sha256,
            "tree": self.tree,
            "kind": self.kind,
            "entries": self.entries,
            "checksumSource": self.checksum_source,
        }


def checksum_input(name: str) -> InputRecord:
    """Size, adler32 and SHA-256 of a local input in one read. A ``root://`` input's size and
    adler32 are the XRootD server's (its checksum query: no second read over the network; no
    SHA-256, which XRootD does not offer); any other URL is recorded as given."""
    if is_root_url(name):
        remote = xrootd_stat(name)
        return InputRecord(
            path=name,
            size=remote.size,
            adler32=remote.adler32,
            sha256=None,
            checksum_source="xrootd" if remote.adler32 else None,
        )
    if is_url(name):
        return InputRecord(path=name, size=None, adler32=None, sha256=None)
    got = data_checksums(name)
    return InputRecord(
        path=str(Path(name).absolute()),
        size=got.size,
        adler32=got.adler32,
        sha256=got.sha256,
        checksum_source="local",
    )


def write_record(
    path: Path,
    *,
    output: Path,
    output_digest: FileDigest,
    compressed: bool,
    inputs: Sequence[InputRecord],
    tree: str,
    kind: str,
    branches: Sequence[dict[str, Any]],
    cut: str | None,
    step_size: str | int,
    entries_in: int,
    entries_out: int,
    command: Sequence[str],
    versions: dict[str, str],
) -> dict[str, Any]:
    """Describe ``output`` (size and SHA-256 as written), validate, write atomically."""
    digest = output_digest
    record: dict[str, Any] = {
        "mediaType": MEDIA_TYPE,
        "created": created_timestamp(),
        "tool": {"name": "hepbundle data root2npz", "version": __version__},
        "command": list(command),
        "inputs": [i.to_json() for i in inputs],
        "tree": tree,
        "kind": kind,
        "branches": list(branches),
        "cut": cut,
        "stepSize": step_size,
        "entries": {"in": entries_in, "out": entries_out},
        "software": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            **versions,
        },
        "output": {
            "path": output.name,
            "size": digest.size,
            "sha256": digest.sha256,
            "compressed": compressed,
        },
    }
    validate(record, SCHEMA, filename=str(path))
    write_atomic(path, canonical_json(record))
    return record


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and validate a provenance record."""
    try:
        obj = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise DataError(f"provenance record {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(obj, dict) or obj.get("mediaType") != MEDIA_TYPE:
        raise DataError(f"{path}: not an NPZ provenance record (mediaType {MEDIA_TYPE})")
    try:
        validate(obj, SCHEMA, filename=str(path))
    except SpecError as e:
        raise DataError(str(e)) from None
    return obj


def check_npz(npz: str | os.PathLike[str], record: dict[str, Any]) -> str | None:
    """None when ``npz`` has the size and SHA-256 the record names, else what differs."""
    want = record["output"]
    p = Path(npz)
    if not p.is_file():
        return f"{p} does not exist"
    if p.stat().st_size != want["size"]:
        return f"{p} has {p.stat().st_size} bytes, the record says {want['size']}"
    got = hash_file(p).sha256
    if got != want["sha256"]:
        return f"{p} has sha256 {got[:12]}…, the record says {want['sha256'][:12]}…"
    return None
