"""Read a Vitis-AI deployment: compiled ``.xmodel``, DPU arch/fingerprint and quantizer outputs.

``vai_c_xir``/``vai_c_tensorflow2`` write ``<net>.xmodel``, ``meta.json`` (target DPU, runner
library, kernels) and ``md5sum.txt`` into the output directory; the DPU is named by
``arch.json`` (``{"fingerprint": "0x…"}`` or ``{"target": "DPUCZDX8G_ISA1_B4096"}``). The
quantizer leaves ``quantize_result/`` (vai_q_pytorch: ``*_int.xmodel``, ``quant_info.json``) or a
``quantized*.h5`` (vai_q_tensorflow2). The compiled xmodel is the firmware; the quantized model
is the model it came from; the md5 the compiler recorded is checked against the file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..errors import ToolError
from ._files import FpgaCapture, compact, read_json, read_json_object, role_of, walk

__all__ = ["capture_vitis_ai"]


def capture_vitis_ai(project_dir: Path, to: str) -> FpgaCapture:
    """The ``fpga`` section and files of the Vitis-AI output ``project_dir``, placed at ``to``."""
    files = list(walk(project_dir))
    compiled = [(p, rel) for p, rel in files if rel.endswith(".xmodel") and not _is_quantizer(rel)]
    if not compiled:
        raise ToolError(
            f"{project_dir} has no compiled .xmodel: not a Vitis-AI compiler output",
            hint="run vai_c_xir / vai_c_tensorflow2 and point at its --output_dir",
        )
    meta_json = read_json_object(project_dir / "meta.json")
    arch = _arch(project_dir)
    md5 = _md5sums(project_dir / "md5sum.txt")
    out = FpgaCapture()
    xmodels = []
    for path, rel in files:
        role = "model" if _is_quantizer(rel) else role_of(rel)
        if rel.endswith(".xmodel") and not _is_quantizer(rel):
            role = "firmware"
            data = path.read_bytes()
            digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
            expected = md5.get(path.name)
            if expected is not None and expected != digest:
                raise ToolError(
                    f"{path}: md5 {digest} differs from md5sum.txt ({expected})",
                    hint="the xmodel changed after compilation; recompile or restore it",
                )
            xmodels.append({"path": f"{to}/{rel}", "md5Checked": expected is not None})
            out.add(f"{to}/{rel}", data, role)
        else:
            out.add(f"{to}/{rel}", path.read_bytes(), role)
    quant = _quantizer(project_dir, files, to)
    section: dict[str, Any] = {
        "toolchain": "vitis-ai",
        "project": to,
        "tool": {"name": "vitis-ai", "version": meta_json.get("vitis_ai_version")},
        "dpu": {
            "target": meta_json.get("target") or arch.get("target"),
            "fingerprint": arch.get("fingerprint"),
            "runner": meta_json.get("lib"),
            "kernels": meta_json.get("kernel"),
        },
        "xmodels": xmodels,
        "quantizer": quant,
    }
    out.meta = compact(section)
    return out


def _is_quantizer(rel: str) -> bool:
    return rel.startswith("quantize_result/") or rel.rsplit("/", 1)[-1].startswith("quantized")


def _arch(project_dir: Path) -> dict[str, Any]:
    for candidate in sorted(project_dir.rglob("arch.json")):
        data = read_json(candidate)
        if isinstance(data, dict):
            return data
    return {}


def _md5sums(path: Path) -> dict[str, str]:
    """``md5sum``-format lines: ``<hex>  <file>``."""
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        digest, _, name = line.strip().partition(" ")
        if digest and name:
            out[Path(name.strip().lstrip("*")).name] = digest.lower()
    return out


def _quantizer(project_dir: Path, files: list[tuple[Path, str]], to: str) -> dict[str, Any]:
    models = [f"{to}/{rel}" for _, rel in files if _is_quantizer(rel) and not rel.endswith(".json")]
    info = read_json_object(project_dir / "quantize_result" / "quant_info.json")
    out: dict[str, Any] = {"models": models} if models else {}
    if info:
        out["info"] = f"{to}/quantize_result/quant_info.json"
        if "param" in info and isinstance(info["param"], dict):
            out["params"] = len(info["param"])
    return out
