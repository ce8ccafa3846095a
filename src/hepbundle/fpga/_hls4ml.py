"""Read a written hls4ml project: configuration, per-layer firmware settings, synthesis reports.

What hls4ml wrote is the ground truth, so besides ``hls4ml_config.yml`` the reader looks at the
generated firmware: the layer calls in ``firmware/<project>.cpp`` (which weights each layer uses
and whether they are top-level memory ports), the config structs in ``parameters.h`` (strategy,
reuse factor, ``store_weights_in_bram``) and the resolved ``ap_fixed`` types in ``defines.h``.
Synthesis results are parsed with hls4ml's own report readers.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

from ..errors import ToolError
from ..extras import optional
from ._files import FpgaCapture, compact, hls4ml_config, role_of, walk

__all__ = ["capture_hls4ml", "firmware_layers", "synthesis_report"]

_CALL = re.compile(r"nnet::(\w+)<([^;]*?)>\s*\(([^;]*?)\);\s*//\s*(\S+)")
_STRUCT = re.compile(r"struct\s+(\w+)\s*:\s*nnet::(\w+)\s*\{(.*?)\n\};", re.S)
_CONST = re.compile(r"static\s+const\s+[\w:]+\s+(\w+)\s*=\s*([^;]+);")
_TYPEDEF = re.compile(r"typedef\s+(.+?)\s+(\w+);")
_LOAD = re.compile(r"load_weights_from_txt<\s*(\w+)\s*,\s*(\d+)\s*>\s*\(\s*(\w+)\s*,")
_ARG_NAME = re.compile(r"(\w+)\s*\[")
_BRAM_PORTS = re.compile(r"#pragma\s+HLS\s+INTERFACE\s+bram\s+port\s*=\s*([\w, ]+)")
#: what the generated Vivado project directory keeps that is worth packing (not the GBs of
#: intermediate HDL and logs): the solution list and the C synthesis / co-simulation reports
_PRJ_KEEP = re.compile(
    r"^[^/]+_prj/([^/]+\.app|[^/]+/(syn|sim)/report/[^/]+|[^/]+/impl/ip/[^/]+\.zip)$"
)


def capture_hls4ml(project_dir: Path, to: str) -> FpgaCapture:
    """The ``fpga`` section and files of the hls4ml project in ``project_dir``, placed at
    bundle path ``to``."""
    cfg = hls4ml_config(project_dir)
    name = str(cfg.get("ProjectName") or "myproject")
    out = FpgaCapture()
    prj_dir = f"{name}_prj/"

    def keep(rel: str) -> bool:
        return not rel.startswith(prj_dir) or bool(_PRJ_KEEP.match(rel))

    for path, rel in walk(project_dir, keep):
        out.add(f"{to}/{rel}", path.read_bytes(), role_of(rel))
    hls = cfg.get("HLSConfig") or {}
    model_cfg = hls.get("Model") or {}
    source = _source_model(cfg, project_dir, to)
    section: dict[str, Any] = {
        "toolchain": "hls4ml",
        "project": to,
        "projectName": name,
        # the written project does not say which hls4ml wrote it (its 'Version' is the
        # user's project version): record the one installed at capture, and say so
        "tool": {"name": "hls4ml", "version": _installed_version(), "versionSource": "installed"},
        "projectVersion": None if cfg.get("Version") is None else str(cfg["Version"]),
        "backend": cfg.get("Backend"),
        "ioType": cfg.get("IOType"),
        "part": cfg.get("Part"),
        "board": cfg.get("Board"),
        "clock": {
            "periodNs": _number(cfg.get("ClockPeriod")),
            "uncertainty": cfg.get("ClockUncertainty"),
        },
        "model": {
            "precision": _precision(model_cfg.get("Precision")),
            "reuseFactor": model_cfg.get("ReuseFactor"),
            "strategy": model_cfg.get("Strategy"),
            "bramFactor": model_cfg.get("BramFactor"),
        },
        "inputs": _shapes(cfg.get("InputShapes")),
        "outputs": _shapes(cfg.get("OutputShapes")),
        "layers": firmware_layers(project_dir, cfg),
        "sourceModel": source,
    }
    report = synthesis_report(project_dir, str(cfg.get("Backend") or "Vivado"))
    if report:
        section["synthesis"] = report
    out.meta = compact(section)
    return out


def firmware_layers(project_dir: Path, cfg: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One entry per layer call in the generated top function, in dataflow order: function,
    config (strategy, reuse factor, sizes, ``store_weights_in_bram``), weights with their
    ``ap_fixed`` type and size, and whether each weight is a top-level memory port."""
    cfg = cfg if cfg is not None else hls4ml_config(project_dir)
    name = str(cfg.get("ProjectName") or "myproject")
    fw = project_dir / "firmware"
    top = _read(fw / f"{name}.cpp")
    params = _read(fw / "parameters.h")
    types = {m.group(2): m.group(1) for m in _TYPEDEF.finditer(_read(fw / "defines.h"))}
    structs = {
        m.group(1): (m.group(2), {k: v.strip() for k, v in _CONST.findall(m.group(3))})
        for m in _STRUCT.finditer(params)
    }
    loads = {m.group(3): (m.group(1), int(m.group(2))) for m in _LOAD.finditer(top)}
    # weights hls4ml moved out of the design (BramFactor) are arguments of the top function
    sig = re.search(rf"void\s+{re.escape(name)}\s*\(([^)]*)\)", top)
    ports = {m.group(1) for m in _ARG_NAME.finditer(sig.group(1))} if sig else set()
    ports |= {p.strip() for m in _BRAM_PORTS.finditer(top) for p in m.group(1).split(",")}
    layer_cfg = (cfg.get("HLSConfig") or {}).get("LayerName") or {}
    layers = []
    for m in _CALL.finditer(top):
        func, targs, args, lname = m.groups()
        struct = targs.split(",")[-1].strip()
        kind, consts = structs.get(struct, ("", {}))
        weights = []
        for w in [a.strip() for a in args.split(",")][2:]:
            wtype, size = loads.get(w, (None, None))
            weights.append(
                {
                    "name": w,
                    "type": types.get(wtype or "", wtype),
                    "size": size,
                    "port": w in ports,
                }
            )
        declared = layer_cfg.get(lname) or {}
        layers.append(
            {
                "name": lname,
                "function": func,
                "config": kind,
                "strategy": _strategy(consts.get("strategy")),
                "reuseFactor": _number(consts.get("reuse_factor")),
                "storeWeightsInBram": consts.get("store_weights_in_bram") == "true",
                "nIn": _number(consts.get("n_in")),
                "nOut": _number(consts.get("n_out")),
                "precision": _precision(declared.get("Precision")),
                "weights": weights,
            }
        )
    return layers


def synthesis_report(project_dir: Path, backend: str) -> dict[str, Any]:
    """Synthesis/co-simulation results from hls4ml's report readers, normalised; empty when
    the project was never synthesised (or the backend has no reader here)."""
    raw = _hls4ml_report(project_dir, backend)
    if not raw:
        return {}
    out: dict[str, Any] = {"reader": f"hls4ml.report ({backend})"}
    cs = raw.get("CSynthesisReport") or {}
    if cs:
        out["latency"] = {
            "bestCycles": _number(cs.get("BestLatency")),
            "worstCycles": _number(cs.get("WorstLatency")),
        }
        out["interval"] = {
            "min": _number(cs.get("IntervalMin")),
            "max": _number(cs.get("IntervalMax")),
        }
        out["timing"] = {
            "targetNs": _number(cs.get("TargetClockPeriod")),
            "estimatedNs": _number(cs.get("EstimatedClockPeriod")),
        }
        out["resources"] = {
            k: _number(v) for k, v in cs.items() if k in ("LUT", "FF", "DSP", "BRAM_18K", "URAM")
        }
        out["available"] = {
            k[len("Available") :]: _number(v) for k, v in cs.items() if k.startswith("Available")
        }
    if raw.get("VivadoSynthReport"):
        out["vivadoSynth"] = {k: _number(v) for k, v in raw["VivadoSynthReport"].items()}
    if raw.get("CosimReport"):
        out["cosim"] = {k: _number(v) for k, v in raw["CosimReport"].items()}
    return out


def _hls4ml_report(project_dir: Path, backend: str) -> dict[str, Any]:
    b = backend.lower()
    if b not in ("vivado", "vitis", "vivadoaccelerator"):
        return {}  # Quartus/oneAPI/Catapult readers need their tools' directory layouts
    name = str(hls4ml_config(project_dir).get("ProjectName") or "myproject")
    sln = project_dir / f"{name}_prj"
    if not (project_dir / "project.tcl").is_file() or not any(
        (sln / app).is_file() for app in ("vivado_hls.app", "hls.app")
    ):
        return {}
    report = optional("hls4ml.report")
    if report is None:
        return {}
    parse_vivado_report = report.parse_vivado_report
    # the reader prints progress to stdout; keep it off our (JSON) output
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            report = parse_vivado_report(str(project_dir))
        # NameError: hls4ml 1.x reads the backend from project.tcl and fails with an
        # UnboundLocalError when the file has no "set backend" line
        except (IndexError, AttributeError, ValueError, OSError, NameError) as e:
            raise ToolError(
                f"hls4ml could not parse the synthesis report in {sln}: {e!r}",
                hint="check that project.tcl names the backend (set backend …) and that "
                "solution*/syn/report/*_csynth.xml is complete",
            ) from None
    return report or {}


def _source_model(cfg: dict[str, Any], project_dir: Path, to: str) -> str | None:
    for key in ("KerasModel", "OnnxModel", "PytorchModel"):
        value = cfg.get(key)
        if isinstance(value, str) and value:
            candidate = Path(value).name
            if (project_dir / candidate).is_file():
                return f"{to}/{candidate}"
    for ext in ("keras", "h5", "onnx"):
        found = sorted(project_dir.glob(f"*.{ext}"))
        if found:
            return f"{to}/{found[0].name}"
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _precision(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return None if value is None else str(value)


def _shapes(value: Any) -> dict[str, list[int]] | None:
    if not isinstance(value, dict):
        return None
    return {str(k): [int(d) for d in v] for k, v in value.items() if isinstance(v, list)}


def _strategy(value: str | None) -> str | None:
    return None if value is None else value.removeprefix("nnet::")


def _number(value: Any) -> Any:
    """Reports give numbers as text ('5.00', '12', 'undef'); keep text that is not a number."""
    if value is None or isinstance(value, int | float):
        return value
    s = str(value).strip()
    for conv in (int, float):
        try:
            return conv(s)
        except ValueError:
            continue
    return s


def _installed_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hls4ml")
    except PackageNotFoundError:
        return None
