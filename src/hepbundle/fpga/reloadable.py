"""Which weights of an hls4ml firmware can change without re-synthesis, and which changes cannot.

Method (from the generated firmware, which is what was synthesised, not from intentions):

* a weight array that hls4ml made a top-level memory port of the top function (``#pragma HLS
  INTERFACE bram port=…``, because the layer has more weights than ``BramFactor``) is read from a
  memory the host fills at run time: new values of the same shape and ``ap_fixed`` type load
  without a new bitstream → ``runtime``;
* with the ``Resource`` strategy (reuse factor > 1) the weights are ROMs whose contents are part
  of the bitstream → ``bitstream``: a new bitstream is needed, though in principle not a new
  synthesis (patching memory initialisation, e.g. Vivado ``updatemem``, is not checked here);
* with the ``Latency`` strategy the weights are constants folded into the logic (multipliers by
  constants, zero weights pruned away) → ``resynthesis``.

Whatever the storage, changing shapes, precisions, reuse factor, strategy, I/O type, activation
tables, part or clock changes the circuit and needs a new synthesis and bitstream.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bundle import Bundle
from ..errors import ToolError
from ._files import hls4ml_config
from ._hls4ml import firmware_layers

__all__ = ["ALWAYS_REBUILD", "LayerReload", "ReloadReport", "reloadable", "reloadable_project"]

#: changes that force a new synthesis and bitstream whatever the weight storage
ALWAYS_REBUILD = (
    "layer shapes or architecture (adding, removing or resizing layers)",
    "any precision (ap_fixed type of weights, biases, results, accumulators)",
    "ReuseFactor, Strategy or BramFactor",
    "IOType (io_parallel / io_stream)",
    "activation lookup tables (TableSize, table precision)",
    "target part or clock period",
)
_WHY = {
    "runtime": "weights are top-level memory ports filled at run time (BramFactor exceeded)",
    "bitstream": "Resource strategy: weights are ROMs initialised in the bitstream",
    "resynthesis": "Latency strategy: weights are constants folded into the logic",
    "none": "no trainable weights",
}


_ORDER = ("none", "runtime", "bitstream", "resynthesis")


@dataclass(frozen=True)
class LayerReload:
    """How one layer's weights can be updated: per weight array, and the layer as a whole
    (the most demanding of its arrays: a layer whose kernel is a port but whose bias is a
    constant still needs a new synthesis to change the bias)."""

    name: str
    function: str
    update: str
    reason: str
    weights: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "function": self.function,
            "update": self.update,
            "reason": self.reason,
            "weights": [{"name": n, "update": u} for n, u in self.weights],
        }


@dataclass(frozen=True)
class ReloadReport:
    """Per-layer verdicts plus the changes that always need a new bitstream."""

    project: str
    io_type: str | None
    layers: tuple[LayerReload, ...]
    always_rebuild: tuple[str, ...] = field(default=ALWAYS_REBUILD)

    @property
    def runtime_weights(self) -> list[str]:
        """``layer.weight`` of every array that loads at run time."""
        return [f"{la.name}.{n}" for la in self.layers for n, u in la.weights if u == "runtime"]

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "ioType": self.io_type,
            "runtimeReloadable": self.runtime_weights,
            "layers": [layer.to_json() for layer in self.layers],
            "alwaysNewBitstream": list(self.always_rebuild),
        }


def classify(layer: dict[str, Any]) -> LayerReload:
    """The verdict for one entry of :func:`~hepbundle.fpga._hls4ml.firmware_layers`."""
    resource = str(layer.get("strategy") or "").lower() == "resource"
    per_weight = tuple(
        (
            str(w.get("name")),
            "runtime" if w.get("port") else ("bitstream" if resource else "resynthesis"),
        )
        for w in layer.get("weights", [])
        if isinstance(w, dict)
    )
    update = max((u for _, u in per_weight), key=_ORDER.index, default="none")
    reason = _WHY[update]
    ports = [n for n, u in per_weight if u == "runtime"]
    if ports and update != "runtime":
        reason += f"; {', '.join(ports)} alone would load at run time (a memory port)"
    return LayerReload(
        name=str(layer.get("name")),
        function=str(layer.get("function")),
        update=update,
        reason=reason,
        weights=per_weight,
    )


def reloadable_project(project_dir: str | os.PathLike[str]) -> ReloadReport:
    """Verdicts for the hls4ml project directory ``project_dir``."""
    project = Path(project_dir)
    cfg = hls4ml_config(project)
    layers = firmware_layers(project, cfg)
    if not layers:
        raise ToolError(
            f"found no layer calls in {project}/firmware: cannot tell what is reloadable",
            hint="is this a complete hls4ml project (firmware/<project>.cpp, parameters.h)?",
        )
    return ReloadReport(
        project=str(cfg.get("ProjectName") or "myproject"),
        io_type=cfg.get("IOType"),
        layers=tuple(classify(layer) for layer in layers),
    )


def reloadable(bundle: Bundle) -> ReloadReport:
    """Verdicts for the hls4ml project packed in ``bundle`` (its files verified first)."""
    from .emulation import hls4ml_project_dir

    prefix = hls4ml_project_dir(bundle)
    files = [f.path for f in bundle.manifest.files if f.path.startswith(prefix + "/")]
    bundle.verify(files).raise_for_problems(bundle.ref)
    return reloadable_project(bundle.root / prefix)
