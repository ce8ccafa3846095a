"""Describe bitstreams and platform files (.bit .bin .xclbin .xsa .pdi .sof) for hardware loaders.

Each image gets role ``bitstream`` and an entry in ``fpga.bitstreams`` with its sha256 (what a
loader checks before programming a device), format, and whatever the file itself says about
target part, tool version and build date: the Xilinx ``.bit`` header carries design name, part,
date and time; an ``.xclbin`` carries its platform VBNV. Facts a file cannot carry (board, build
host, tool) come from the declaration in ``hepbundle.yaml`` and win over what was parsed.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Iterable, Mapping
from io import BytesIO
from typing import Any

from ..digest import sha256_bytes
from ..errors import ToolError
from ._files import BITSTREAM_SUFFIXES

__all__ = ["describe", "firmware_build_id", "parse_bit_header"]

_BIT_SYNC = b"\x00\x09\x0f\xf0\x0f\xf0\x0f\xf0\x0f\xf0\x00\x00\x01"
_XCLBIN_MAGIC = b"xclbin2\x00"
# struct axlf: magic[8], signature_length i32, reserved[28], keyBlock[256], uniqueId u64, then
# axlf_header: length, timeStamp, featureRomTimeStamp (u64 each), versionPatch u16,
# versionMajor u8, versionMinor u8, mode u32, platformVBNV[64]
_XCLBIN_HEADER = struct.Struct("<8si28s256sQQQQHBBI64s")
_DECLARED_KEYS = ("part", "board", "tool", "toolVersion", "buildHost", "built", "platform")


def describe(path: str, data: bytes, declared: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``fpga.bitstreams[]`` entry for the image ``data`` packed at bundle path ``path``."""
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix not in BITSTREAM_SUFFIXES:
        raise ToolError(
            f"{path} is not a bitstream or platform file",
            hint=f"expected one of {', '.join(BITSTREAM_SUFFIXES)}",
        )
    entry: dict[str, Any] = {
        "path": path,
        "format": suffix[1:],
        "size": len(data),
        "sha256": sha256_bytes(data),
    }
    if suffix == ".bit":
        entry.update(parse_bit_header(data, path))
    elif suffix == ".xclbin":
        entry.update(_xclbin(data, path))
    elif suffix == ".xsa":
        entry.update(_xsa(data))
    for key in _DECLARED_KEYS:
        if declared and declared.get(key) is not None:
            entry[key] = declared[key]
    return entry


def parse_bit_header(data: bytes, where: str = "<bit>") -> dict[str, Any]:
    """Fields of a Xilinx ``.bit`` header: design, user ID, tool version, part, date+time.

    Layout: a 13-byte sync preamble, then keyed fields ``a``…``d`` (2-byte big-endian length,
    NUL-terminated text) and ``e`` (4-byte length of the configuration data)."""
    if not data.startswith(_BIT_SYNC):
        raise ToolError(f"{where}: not a Xilinx .bit file (no bitstream header)")
    pos, fields = len(_BIT_SYNC), {}
    try:
        while pos < len(data):
            key = chr(data[pos])
            if key == "e":
                (fields["e"],) = struct.unpack_from(">I", data, pos + 1)
                break
            (n,) = struct.unpack_from(">H", data, pos + 1)
            fields[key] = data[pos + 3 : pos + 3 + n].rstrip(b"\x00").decode("ascii")
            pos += 3 + n
    except (struct.error, UnicodeDecodeError):
        raise ToolError(f"{where}: truncated or malformed .bit header") from None
    out: dict[str, Any] = {}
    design = str(fields.get("a", ""))
    parts = design.split(";")
    if parts and parts[0]:
        out["design"] = parts[0]
    for item in parts[1:]:
        k, _, v = item.partition("=")
        if k == "Version":
            out["toolVersion"] = v
            out["tool"] = "Vivado"
        elif k == "UserID":
            out["userId"] = v
    if "b" in fields:
        out["part"] = str(fields["b"])
    if "c" in fields:
        out["built"] = f"{fields['c']} {fields.get('d', '')}".strip()
    return out


def _xclbin(data: bytes, where: str) -> dict[str, Any]:
    if not data.startswith(_XCLBIN_MAGIC) or len(data) < _XCLBIN_HEADER.size:
        raise ToolError(f"{where}: not an xclbin2 container")
    fields = _XCLBIN_HEADER.unpack_from(data)
    ts, patch, major, minor, vbnv = fields[6], fields[8], fields[9], fields[10], fields[12]
    return {
        "platform": vbnv.rstrip(b"\x00").decode("ascii", "replace"),
        "toolVersion": f"{major}.{minor}.{patch}",
        "tool": "Vitis (xclbinutil)",
        "uniqueId": fields[4],
        "timestamp": ts,
    }


def _xsa(data: bytes) -> dict[str, Any]:
    """An .xsa is a zip; Vivado writes ``xsa.json`` with the part, board and tool version."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as z:
            if "xsa.json" not in z.namelist():
                return {}
            meta = json.loads(z.read("xsa.json"))
    except (zipfile.BadZipFile, ValueError, KeyError):
        return {}
    out: dict[str, Any] = {}
    for src, dst in (("part", "part"), ("board", "board"), ("vivadoVersion", "toolVersion")):
        if isinstance(meta.get(src), str):
            out[dst] = meta[src]
    if "toolVersion" in out:
        out["tool"] = "Vivado"
    return out


def firmware_build_id(files: Iterable[tuple[str, str]]) -> str:
    """A stable id of one firmware build: sha256 over its sorted (bundle path, sha256) pairs.

    Stored next to the source model digest, it records which model and which firmware build
    belong together; any change to a firmware file or bitstream gives a new id."""
    return sha256_bytes("".join(f"{p}\0{d}\n" for p, d in sorted(files)).encode())
