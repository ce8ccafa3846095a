"""Typed data references: Rucio DIDs, local/EOS files, CERN Open Data records, NPZ datasets.

Each ``data:`` entry of a spec is checked for form (the JSON Schema does the patterns) and, where
the data is reachable from here, for content: a readable file is hashed (size, SHA-256, adler32),
a ``root://`` file's size and adler32 are asked of its XRootD server, and a checksum the spec
gives that does not match is an error naming the YAML line. A Rucio DID is resolved through
``rucio-clients`` (:mod:`hepbundle.remote.rucio`) when a Rucio client configuration exists: its
type, size, checksums and file count are recorded, and the root:// replicas of a file DID are
checked against Rucio's record; otherwise what the spec gives is recorded with
``resolved: false`` and the reason.
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
from ..errors import BuildError, DataError, MissingExtraError, SpecError

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
    for key in ("rse", "imported"):
        if key in ref:
            rec[key] = ref[key]
    info, reason = _resolve_did(did, where, i)
    if info is None:
        if ("bytes" not in rec or "adler32" not in rec) and "imported" not in ref:
            raise SpecError(
                f"{where('did')}data[{i}]: Rucio DID {did} needs 'bytes:' and 'adler32:' "
                f"because it cannot be resolved here ({reason})",
                hint=f"copy them from: rucio list-files {did}",
            )
        rec.update(resolved=False, reason=reason)
        return rec
    if info.type != "file":
        for key in ("adler32", "md5"):
            if key in rec:
                raise SpecError(
                    f"{where(key)}data[{i}].{key}: {did} is a {info.type}; Rucio keeps "
                    f"{key} for files only (give bytes: for the total, or nothing)"
                )
    theirs = {"bytes": info.bytes, "adler32": info.adler32, "md5": info.md5}
    for key, value in theirs.items():
        if key in rec and value is not None and str(rec[key]).lower() != str(value).lower():
            what = "total bytes" if key == "bytes" and info.type != "file" else key
            raise SpecError(
                f"{where(key)}data[{i}].{key}: the spec says {rec[key]}, Rucio's {what} "
                f"for {did} is {value}",
                hint="the DID's content differs from what the spec was written for",
            )
        if value is not None:
            rec[key] = value
    rec.update(didType=info.type, files=info.files, resolved=True)
    if info.type == "file":
        rec["replicas"] = _check_replicas(did, info, where, i)
    return rec


#: root:// replicas of one file DID whose size and adler32 are checked at build time
MAX_REPLICAS_CHECKED = 3


def _check_replicas(did: str, info: Any, where: Callable[[str], str], i: int) -> list[Any]:
    """Ask the XRootD server behind each root:// replica (up to :data:`MAX_REPLICAS_CHECKED`)
    for size and adler32: a replica that differs from Rucio's record is a build error; one that
    cannot be reached is recorded as not checked."""
    from ..remote import rucio, xrootd

    try:
        reps = rucio.replicas(did)
    except DataError as e:
        return [{"checked": False, "reason": str(e)}]
    out: list[dict[str, Any]] = []
    for rse, pfn in reps.pfns:
        entry: dict[str, Any] = {"rse": rse, "pfn": pfn}
        if not xrootd.is_root_url(pfn):
            out.append({**entry, "checked": False, "reason": "not a root:// replica"})
            continue
        if sum(1 for o in out if o["checked"]) >= MAX_REPLICAS_CHECKED:
            out.append({**entry, "checked": False, "reason": "enough replicas checked"})
            continue
        try:
            got = xrootd.stat(pfn)
        except (DataError, MissingExtraError) as e:
            out.append({**entry, "checked": False, "reason": str(e)})
            continue
        pairs = (("bytes", got.size, info.bytes), ("adler32", got.adler32, info.adler32))
        for key, mine, recorded in pairs:
            if mine is not None and recorded is not None and str(mine) != str(recorded):
                raise BuildError(
                    f"{where('did')}data[{i}]: the replica of {did} on {rse} has {key} {mine}, "
                    f"Rucio records {recorded} ({pfn})",
                    hint="the replica is damaged or was replaced; tell the data managers",
                )
        if got.adler32 is None:
            out.append({**entry, "checked": False, "via": "xrootd", "reason": got.reason})
        else:
            out.append({**entry, "checked": True, "via": "xrootd"})
    return out


def rucio_configured() -> str | None:
    """The Rucio configuration file in effect, as rucio-clients would find it, or None."""
    from ..remote.rucio import configured

    return configured()


def _resolve_did(did: str, where: Callable[[str], str], i: int) -> tuple[Any, str]:
    """What Rucio says of ``did`` (a :class:`~hepbundle.remote.rucio.DidInfo`), or None and
    why Rucio was not asked. An unknown DID or a server that fails is a build error."""
    from ..remote import rucio

    cfg = rucio.configured()
    if cfg is None:
        return None, "no Rucio server configured (RUCIO_CONFIG / RUCIO_HOME)"
    try:
        return rucio.did_info(did), ""
    except MissingExtraError:
        return None, f"rucio-clients is not installed (configuration {cfg} found)"
    except rucio.DidNotFound as e:
        raise BuildError(
            f"{where('did')}data[{i}].did: {e}", hint=f"Rucio configuration: {cfg}"
        ) from None
    except DataError as e:
        raise BuildError(f"{where('did')}data[{i}].did: {e}", hint=e.hint) from None


def _file(ref: Mapping[str, Any], base: Path, where: Callable[[str], str], i: int) -> Any:
    path = str(ref["path"])
    rec: dict[str, Any] = {"path": path}
    if _URL.match(path):
        from ..remote import xrootd

        if xrootd.is_root_url(path):
            return {**rec, **_remote_checked(path, ref, where, i)}
        # https://…: reading it here would copy the data over the network
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
    return {**rec, **_in_checkout(path, local), **_checked(local, ref, where, i)}


def _in_checkout(path: str, local: Path) -> dict[str, str]:
    """``checkoutPath``: where a relative ``path`` (relative to the spec's directory) lies in
    the git checkout that holds it, so that a re-training on another checkout, from any
    directory, finds it (:func:`hepbundle.reproduce.check`); nothing for an absolute path or a
    file outside any checkout."""
    if os.path.isabs(path):
        return {}
    top = _toplevel(local.parent.resolve())
    if top is None:
        return {}
    try:
        return {"checkoutPath": local.resolve().relative_to(top).as_posix()}
    except ValueError:  # a symlink leading out of the checkout
        return {}


@functools.lru_cache(maxsize=64)
def _toplevel(directory: Path) -> Path | None:
    from ._git import git_output

    try:
        out = git_output(["rev-parse", "--show-toplevel"], directory, ok=(0, 128))
    except BuildError:  # git is not installed: no checkout to name
        return None
    text = out.decode(errors="replace").strip()
    return Path(text).resolve() if text else None


def _remote_checked(url: str, ref: Mapping[str, Any], where: Callable[[str], str], i: int) -> Any:
    """Size and adler32 of a ``root://`` file from its XRootD server (no data read); what the
    spec gives must match. SHA-256 and MD5 cannot be asked of XRootD: kept as given."""
    from ..remote import xrootd

    given = _given(ref, where, i)
    try:
        got = xrootd.stat(url)
    except MissingExtraError as e:
        return {**given, "verified": False, "reason": str(e)}
    except DataError as e:
        raise BuildError(f"{where('path')}data[{i}].path: {e}", hint=e.hint) from None
    actual = {"bytes": got.size, "adler32": got.adler32}
    for key, want in given.items():
        have = actual.get(key)
        if have is not None and str(want) != str(have):
            raise SpecError(
                f"{where(key)}data[{i}].{key}: the spec says {want}, the XRootD server has "
                f"{key} {have} for {url}",
                hint="the file changed since the reference was written, or the value is wrong",
            )
    rec = {**given, **{k: v for k, v in actual.items() if v is not None}}
    rec["checksumSource"] = "xrootd"
    if got.adler32 is None:
        return {**rec, "verified": False, "reason": f"size only: {got.reason}"}
    return {**rec, "verified": True}


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
    rec: dict[str, Any] = {
        "path": path,
        **_in_checkout(path, local),
        **_checked(local, ref, where, i),
    }
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
