"""Read a FINN ``build_dataflow`` output directory: bitfile, driver, estimates, step timings.

Layout written by ``finn.builder.build_dataflow`` (FINN 0.9–0.10)::

    <output_dir>/
      time_per_step.json            step name → seconds, in execution order
      final_hw_config.json          folding (PE/SIMD, FIFO depths) per layer
      report/estimate_*.json        layer cycles, layer resources, network performance
      report/ooc_synth_and_timing.json, post_synth_resources.json, rtlsim_performance.json
      intermediate_models/<step>.onnx
      bitfile/finn-accel.{bit,hwh,xclbin}
      driver/driver.py …            the PYNQ driver (runtime_weights/ included)
      deploy/                       bitfile + driver again, for the board (not packed twice)
      stitched_ip/                  Vivado project (not packed; GBs of intermediates)

plus, when built with ``build_dataflow_directory``, ``dataflow_build_config.json`` next to it.
Only the final intermediate ONNX is packed: it is the graph the hardware implements.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ToolError
from ._files import FpgaCapture, compact, read_json, read_json_object, role_of, walk

__all__ = ["capture_finn"]

_PACKED_DIRS = ("report/", "bitfile/", "driver/")
_TOP_FILES = (
    "time_per_step.json",
    "final_hw_config.json",
    "auto_folding_config.json",
    "build_dataflow.log",
    "dataflow_build_config.json",
)


def capture_finn(build_dir: Path, to: str) -> FpgaCapture:
    """The ``fpga`` section and files of the FINN build output ``build_dir``, placed at ``to``."""
    steps_file = build_dir / "time_per_step.json"
    if not steps_file.is_file():
        raise ToolError(
            f"{build_dir} has no time_per_step.json: not a FINN build_dataflow output directory",
            hint="point at the output_dir of build_dataflow_cfg",
        )
    steps = read_json(steps_file)
    if not isinstance(steps, dict):
        raise ToolError(f"{steps_file} is not a JSON object of step timings")
    final_onnx = _final_model(build_dir, list(steps))
    keep_onnx = f"intermediate_models/{final_onnx.name}" if final_onnx else None

    def keep(rel: str) -> bool:
        return rel.startswith(_PACKED_DIRS) or rel in _TOP_FILES or rel == keep_onnx

    out = FpgaCapture()
    for path, rel in walk(build_dir, keep):
        out.add(f"{to}/{rel}", path.read_bytes(), role_of(rel))
    cfg = _build_config(build_dir)
    section: dict[str, Any] = {
        "toolchain": "finn",
        "project": to,
        "tool": {"name": "finn", "version": cfg.get("finn_version")},
        "part": cfg.get("fpga_part"),
        "board": cfg.get("board"),
        "shellFlow": cfg.get("shell_flow_type"),
        "clock": {"periodNs": cfg.get("synth_clk_period_ns")},
        "steps": [{"name": str(k), "seconds": float(v)} for k, v in steps.items()],
        "finalModel": f"{to}/{keep_onnx}" if keep_onnx else None,
        "estimates": _estimates(build_dir / "report"),
    }
    out.meta = compact(section)
    return out


def _final_model(build_dir: Path, steps: list[str]) -> Path | None:
    """The ONNX of the last executed step that saved one (FINN saves one per step)."""
    inter = build_dir / "intermediate_models"
    for step in reversed(steps):
        candidate = inter / f"{step}.onnx"
        if candidate.is_file():
            return candidate
    found = sorted(inter.glob("*.onnx"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _build_config(build_dir: Path) -> dict[str, Any]:
    for candidate in (
        build_dir / "dataflow_build_config.json",
        build_dir.parent / "dataflow_build_config.json",
    ):
        if candidate.is_file():
            cfg = read_json(candidate)
            return cfg if isinstance(cfg, dict) else {}
    return {}


def _estimates(report: Path) -> dict[str, Any]:
    """Network performance, total and per-layer resources and cycles, and post-synthesis
    numbers when the build got that far."""
    out: dict[str, Any] = {}
    perf = read_json_object(report / "estimate_network_performance.json")
    if perf:
        out["network"] = {
            "criticalPathCycles": perf.get("critical_path_cycles"),
            "maxCycles": perf.get("max_cycles"),
            "maxCyclesNode": perf.get("max_cycles_node_name"),
            "throughputFps": perf.get("estimated_throughput_fps"),
            "latencyNs": perf.get("estimated_latency_ns"),
        }
    res = read_json_object(report / "estimate_layer_resources.json")
    if res:
        total = res.get("total") or {}
        out["resources"] = {k: v for k, v in total.items() if not k.endswith("_efficiency")}
        out["layers"] = {
            name: {k: v for k, v in r.items() if not k.endswith("_efficiency")}
            for name, r in res.items()
            if name != "total" and isinstance(r, dict)
        }
    cycles = read_json_object(report / "estimate_layer_cycles.json")
    if cycles:
        for name, n in cycles.items():
            out.setdefault("layers", {}).setdefault(name, {})["cycles"] = n
    for name, key in (
        ("ooc_synth_and_timing.json", "outOfContextSynth"),
        ("post_synth_resources.json", "postSynth"),
        ("rtlsim_performance.json", "rtlsim"),
    ):
        data = read_json_object(report / name)
        if data:
            out[key] = data
    return out
