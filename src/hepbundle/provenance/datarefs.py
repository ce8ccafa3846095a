"""Typed data references: Rucio DIDs, local/EOS files, CERN Open Data records, NPZ datasets.

Each ``data:`` entry of a spec is checked for form (the JSON Schema does the patterns) and, where
the data is reachable from here, for content: a readable file is hashed (size, SHA-256, adler32)
and a checksum the spec gives that does not match is an error naming the YAML line. A Rucio DID
is resolved through ``rucio-clients`` only when a Rucio server is configured; otherwise what the
spec gives is recorded with ``resolved: false`` and the reason.
"""

from __future__ import annotations

import functools
import json
import os
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..digest import data_checksums
from ..errors import BuildError, SpecError

__all__ = ["NPZ_RECORD_SUFFIX", "TYPES", "Where", "check_data_refs", "rucio_configured"]

#: the provenance record our ROOT→NPZ tool writes beside ``<out>.npz``
NPZ_RECORD_SUFFIX = ".provenance.json"

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_OPENDATA_RECORD = re.compile(r"^(?:https?://opendata\.cern\.ch/record/)?(\d+)/?$")
# keys every typed reference may carry besides its own
_COMMON = ("type", "split", "description")

#: ``where(*keys)`` → the ``file:line: `` prefix of a spec field, for error messages
Where = Callable[..., str]


def check_data_refs(refs: Sequence[Mapping[str, Any]], base: Path, where: Where) -> list[Any]:
    """The manifest's ``data`` list for the spec's ``data:`` entries (in order).
    ``where(i, key)`` gives the ``file:line: `` prefix of entry ``i`` (and one of its keys)."""
    out = []
    for i, ref in enumerate(refs):
        kind = str(ref.get("type"))
        check = TYPES.get(kind)
        if check is None:
            raise SpecError(
                f"{where(i, 'type')}data[{i}].type: unknown data reference type {kind!r} "
                f"(expected one of: {', '.join(TYPES)})"
            )
        rec = check(ref, base, functools.partial(where, i), i)
        rec = {"type": kind, **rec}
        for key in _COMMON[1:]:
            if key in ref:
                rec[key] = ref[key]
        out.append(rec)
    return out


def _rucio(ref: Mapping[str, Any], base: Path, where: Callable[[str], str], i: int) -> Any:
    del base
    did = str(ref["did"])
    scope, _, name = did.partition(":")
    rec: dict[str, Any] = {"did": did, "scope": scope, "name": name}
    rec.update(_given(ref, where, i))
    if "rse" in ref:
        rec["rse"] = ref["rse"]
    resolved, reason = _resolve_did(scope, name)
    if resolved is None:
        if "bytes" not in rec or "adler32" not in rec:
            raise SpecError(
                f"{where('did')}data[{i}]: Rucio DID {did} needs 'bytes:' and 'adler32:' "
                f"because it cannot be resolved here ({reason})",
                hint=f"copy them from: rucio list-files {did}",
            )
        rec.update(resolved=False, reason=reason)
        return rec
    for key, value in resolved.items():
        if key in rec and value is not None and rec[key] != value:
            raise SpecError(
                f"{where(key)}data[{i}].{key}: {rec[key]} does not match Rucio's {value} for {did}"
            )
        if value is not None:
            rec[key] = value
    rec.update(resolved=True)
    return rec


def rucio_configured() -> str | None:
    """The Rucio configuration file in effect, as rucio-clients would find it, or None."""
    candidates = [os.environ.get("RUCIO_CONFIG")]
    if os.environ.get("RUCIO_HOME"):
        candidates.append(os.path.join(os.environ["RUCIO_HOME"], "etc", "rucio.cfg"))
    candidates += ["/opt/rucio/etc/rucio.cfg"]
    if os.environ.get("VIRTUAL_ENV"):
        candidates.append(os.path.join(os.environ["VIRTUAL_ENV"], "etc", "rucio.cfg"))
    return next((c for c in candidates if c and os.path.isfile(c)), None)


def _resolve_did(scope: str, name: str) -> tuple[dict[str, Any] | None, str]:
    """Rucio's bytes/adler32/md5 for the DID, or None and why it was not asked."""
    cfg = rucio_configured()
    if cfg is None:
        return None, "no Rucio server configured (RUCIO_CONFIG / RUCIO_HOME)"
    try:
        from rucio.client.didclient import DIDClient
        from rucio.common.exception import RucioException
    except ImportError:
        return None, f"rucio-clients is not installed (configuration {cfg} found)"
    try:
        meta = DIDClient().get_metadata(scope=scope, name=name)
    except RucioException as e:
        raise BuildError(f"Rucio could not resolve {scope}:{name}: {e}") from None
    return {"bytes": meta.get("bytes"), "adler32": meta.get("adler32"), "md5": meta.get("md5")}, ""


def _file(ref: Mapping[str, Any], base: Path, where: Callable[[str], str], i: int) -> Any:
    path = str(ref["path"])
    rec: dict[str, Any] = {"path": path}
    if _URL.match(path):
        # root://eosuser.cern.ch//eos/…: reading it here would copy the data over the network
        return {**rec, **_given(ref, where, i), "verified": False, "reason": "remote URL, not read"}
    local = Path(path) if os.path.isabs(path) else base / path
    if not local.is_file():
        if os.path.isabs(path):  # e.g. /eos/… where EOS is not mounted: record what is given
            return {
                **rec,
                **_given(ref, where, i),
                "verified": False,
                "reason": "not readable here",
            }
        raise SpecError(f"{where('path')}data[{i}].path: {local} does not exist")
    return {**rec, **_checked(local, ref, where, i)}


def _given(ref: Mapping[str, Any], where: Callable[[str], str], i: int) -> dict[str, Any]:
    """The checksums the spec gives, lower-cased; a number means YAML read unquoted digits
    (``adler32: 00001234`` is the integer 1234, ``01234567`` even octal): refuse it."""
    out: dict[str, Any] = {}
    for k in ("bytes", "sha256", "adler32", "md5"):
        if k not in ref:
            continue
        if k != "bytes" and not isinstance(ref[k], str):
            raise SpecError(
                f"{where(k)}data[{i}].{k}: YAML read this checksum as the number {ref[k]!r}",
                hint=f"quote it, e.g. {k}: '0000abcd'",
            )
        out[k] = ref[k] if k == "bytes" else ref[k].lower()
    return out


def _checked(local: Path, ref: Mapping[str, Any], where: Callable[[str], str], i: int) -> Any:
    """Hash ``local``; every checksum the spec gives must match."""
    try:
        got = data_checksums(local, md5="md5" in ref)
    except OSError as e:
        raise BuildError(f"cannot read data file {local}: {e.strerror}") from None
    actual = {"bytes": got.size, "sha256": got.sha256, "adler32": got.adler32, "md5": got.md5}
    for key, want in _given(ref, where, i).items():
        if str(want) != str(actual[key]):
            raise SpecError(
                f"{where(key)}data[{i}].{key}: {want} does not match {local} ({key} {actual[key]})",
                hint="the file changed since the reference was written, or the value is wrong",
            )
    return {k: v for k, v in actual.items() if v is not None} | {"verified": True}


def _opendata(ref: Mapping[str, Any], base: Path, where: Callable[[str], str], i: int) -> Any:
    del base
    rec: dict[str, Any] = {}
    if "doi" in ref:
        rec["doi"] = str(ref["doi"])
        rec["uri"] = f"https://doi.org/{rec['doi']}"
    if "record" in ref:
        m = _OPENDATA_RECORD.match(str(ref["record"]))
        if not m:
            raise SpecError(
                f"{where('record')}data[{i}].record: {ref['record']!r} is not a CERN Open Data "
                "record id (a number, or https://opendata.cern.ch/record/<number>)"
            )
        rec["record"] = int(m.group(1))
        rec.setdefault("uri", f"https://opendata.cern.ch/record/{rec['record']}")
    if not rec:
        raise SpecError(f"{where('type')}data[{i}]: an opendata reference needs doi: or record:")
    return rec


def _npz(ref: Mapping[str, Any], base: Path, where: Callable[[str], str], i: int) -> Any:
    path = str(ref["path"])
    local = Path(path) if os.path.isabs(path) else base / path
    if not local.is_file():
        raise SpecError(f"{where('path')}data[{i}].path: {local} does not exist")
    rec: dict[str, Any] = {"path": path, **_checked(local, ref, where, i)}
    rec["arrays"] = _npz_arrays(local, f"{where('path')}data[{i}].path: ")
    record_path = local.with_name(local.name + NPZ_RECORD_SUFFIX)
    if not record_path.is_file():
        rec["record"] = None
        rec["reason"] = f"no {record_path.name} beside the NPZ"
        return rec
    try:
        record = json.loads(record_path.read_bytes())
    except (OSError, ValueError) as e:
        raise SpecError(f"{where('path')}data[{i}]: cannot read {record_path}: {e}") from None
    output = record.get("output") if isinstance(record, dict) else None
    want = output.get("sha256") if isinstance(output, dict) else None
    if want is not None and want != rec["sha256"]:
        raise SpecError(
            f"{where('path')}data[{i}].path: {local} is not the NPZ its record {record_path.name} "
            f"describes (sha256 {rec['sha256'][:12]}…, the record says {str(want)[:12]}…)",
            hint="re-run the ROOT→NPZ conversion, or point at the matching NPZ",
        )
    rec["record"] = record  # embedded verbatim: its schema belongs to the data tool
    return rec


def _npz_arrays(local: Path, where: str) -> dict[str, Any]:
    """Name → {shape, dtype} from each member's ``.npy`` header, without reading the data."""
    import numpy as np

    out: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(local) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    shape, _, dtype = (
                        np.lib.format.read_array_header_1_0(f)
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0(f)
                    )
                out[info.filename[:-4]] = {"shape": list(shape), "dtype": dtype.str}
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise SpecError(f"{where}{local} is not a readable NPZ file: {e}") from None
    return out


TYPES: Mapping[str, Callable[[Mapping[str, Any], Path, Callable[[str], str], int], Any]] = {
    "rucio": _rucio,
    "file": _file,
    "opendata": _opendata,
    "npz": _npz,
}
