"""Capture an FPGA project into a bundle: dispatch by toolchain, describe bitstreams, pair builds.

Two entry points share one path:

* :func:`capture` — a project directory and a toolchain (``hepbundle fpga capture``,
  ``hepbundle build --fpga-project``);
* :func:`capture_section` — the ``fpga:`` section of ``hepbundle.yaml``
  (``{toolchain: hls4ml, project: hls4ml_prj, to: firmware/hls4ml, bitstreams: [...]}``),
  called by the build.

Both return the manifest ``fpga`` section (validated against ``bundle-spec/v1/fpga.schema.json``)
and the files to pack as bundle path → (bytes, role).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..digest import sha256_bytes
from ..errors import SpecError, ToolError
from ..paths import check_relpath
from ..spec import validate
from ._files import BITSTREAM_SUFFIXES, FpgaCapture
from ._finn import capture_finn
from ._hls4ml import capture_hls4ml
from ._vitis_ai import capture_vitis_ai
from .bitstreams import describe, firmware_build_id

__all__ = ["DEFAULT_TO", "TOOLCHAINS", "capture", "capture_section"]

#: toolchain name → reader of its project directory
TOOLCHAINS: Mapping[str, Callable[[Path, str], FpgaCapture]] = {
    "hls4ml": capture_hls4ml,
    "finn": capture_finn,
    "vitis-ai": capture_vitis_ai,
}
#: where each toolchain's project lands in the bundle unless told otherwise
DEFAULT_TO = {"hls4ml": "firmware/hls4ml", "finn": "firmware/finn", "vitis-ai": "firmware/vitis-ai"}
_PAIRED_ROLES = ("firmware", "bitstream", "weights")


def capture(
    project_dir: str | os.PathLike[str],
    toolchain: str,
    *,
    to: str | None = None,
    bitstreams: Sequence[Mapping[str, Any]] = (),
    base_dir: Path | None = None,
) -> FpgaCapture:
    """Read the ``toolchain`` project at ``project_dir`` into an :class:`FpgaCapture`.

    ``bitstreams`` declares facts the images cannot carry (board, build host…): each entry has a
    ``path`` relative to ``base_dir`` (default: the project); a declared image outside the
    project is packed under ``<to>/bitstreams/``.
    """
    reader = TOOLCHAINS.get(toolchain)
    if reader is None:
        raise ToolError(
            f"unknown FPGA toolchain {toolchain!r}", hint=f"use one of {', '.join(TOOLCHAINS)}"
        )
    project = Path(project_dir)
    if not project.is_dir():
        raise ToolError(f"FPGA project {project} is not a directory")
    to = (to or DEFAULT_TO[toolchain]).strip("/")
    check_relpath(to)
    cap = reader(project, to)
    declared = _declared(bitstreams, base_dir or project, project, to, cap)
    cap.meta["bitstreams"] = [
        describe(dest, data, declared.get(dest))
        for dest, (data, role) in sorted(cap.files.items())
        if role == "bitstream"
    ]
    if not cap.meta["bitstreams"]:
        del cap.meta["bitstreams"]
    cap.meta["firmwareBuild"] = _pairing(cap)
    validate(cap.meta, "fpga.schema.json", filename=f"fpga section of {project}")
    return cap


def capture_section(
    spec_fpga: Mapping[str, Any], base_dir: Path
) -> tuple[dict[str, Any], dict[str, tuple[bytes, str]]]:
    """The build's hook: the manifest ``fpga`` section and files for the spec's ``fpga:``
    section, paths relative to ``base_dir`` (the spec's directory)."""
    toolchain = spec_fpga.get("toolchain")
    project = spec_fpga.get("project")
    if not isinstance(toolchain, str) or not isinstance(project, str):
        raise SpecError(
            "fpga: needs 'toolchain' (hls4ml, finn or vitis-ai) and 'project' (a directory)"
        )
    cap = capture(
        base_dir / project,
        toolchain,
        to=spec_fpga.get("to"),
        bitstreams=spec_fpga.get("bitstreams") or (),
        base_dir=base_dir,
    )
    for key in ("board", "part"):
        if spec_fpga.get(key):
            cap.meta[key] = spec_fpga[key]
    return cap.meta, cap.files


def _declared(
    bitstreams: Sequence[Mapping[str, Any]],
    base_dir: Path,
    project: Path,
    to: str,
    cap: FpgaCapture,
) -> dict[str, Mapping[str, Any]]:
    """Declared bitstream facts by bundle path, packing declared images outside the project."""
    out: dict[str, Mapping[str, Any]] = {}
    for decl in bitstreams:
        src = (base_dir / str(decl.get("path", ""))).resolve()
        if not src.is_file() or not src.name.lower().endswith(BITSTREAM_SUFFIXES):
            raise ToolError(
                f"declared bitstream {decl.get('path')!r} is not a bitstream file under {base_dir}",
                hint=f"give the path of a {'/'.join(BITSTREAM_SUFFIXES)} file",
            )
        try:
            dest = f"{to}/{src.relative_to(project.resolve()).as_posix()}"
        except ValueError:
            dest = f"{to}/bitstreams/{src.name}"
            cap.add(dest, src.read_bytes(), "bitstream")
        out[dest] = decl
    return out


def _pairing(cap: FpgaCapture) -> dict[str, Any]:
    """Which firmware build belongs to which model: the build id over every firmware,
    weights and bitstream file, next to the digest of the source model it was made from."""
    digests = {
        p: sha256_bytes(data) for p, (data, role) in cap.files.items() if role in _PAIRED_ROLES
    }
    out: dict[str, Any] = {"id": firmware_build_id(digests.items()), "files": len(digests)}
    source = cap.meta.get("sourceModel") or cap.meta.get("finalModel")
    if isinstance(source, str) and source in cap.files:
        out["sourceModel"] = {"path": source, "sha256": sha256_bytes(cap.files[source][0])}
    return out
