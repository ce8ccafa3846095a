"""What the pages show beyond the catalogue's own fields, as plain values for the templates: the
firmware summary, evaluation records as readable tables, an FPGA comparison against its
thresholds, metrics across the versions of a name, the file a job loads, files grouped by role.

Pure functions of manifest metadata and record payloads: nothing here reads the repository.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..manifest import FileEntry

if TYPE_CHECKING:
    from .collect import VersionInfo

__all__ = [
    "FILES_OPEN",
    "Gate",
    "MetricSeries",
    "RecordBlock",
    "compare_gates",
    "files_by_role",
    "firmware_rows",
    "job_file",
    "metric_series",
    "record_blocks",
]

#: a role with more files than this is listed collapsed (an hls4ml project has ~100 files)
FILES_OPEN = 12

#: what the model-level strategy means for changing weights without a new synthesis
#: (hepbundle.fpga.reloadable gives the per-layer verdicts from the project's source)
_WEIGHT_UPDATES = {
    "latency": "needs a new synthesis: weights are constants folded into the logic (Latency)",
    "resource": "needs a new bitstream: weights are ROMs initialised in it (Resource)",
}


def humanize(key: str) -> str:
    """``float_vs_emulation`` → ``float vs emulation``, ``argmaxAgreement`` → ``argmax
    agreement``, ``manifestSha256`` → ``manifest sha256``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key).replace("_", " ")
    return re.sub(r"\s+", " ", spaced).strip().lower()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    if value is None:
        return "—"
    if isinstance(value, list) and all(not isinstance(v, Mapping | list) for v in value):
        return ", ".join(_text(v) for v in value) or "—"
    return json.dumps(value, sort_keys=True)


def _count(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def firmware_rows(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The firmware section: toolchain, target part and board, clock, precision, reuse and
    strategy, what a weight update needs, and from the synthesis reports latency, interval,
    timing and resources (used of available). Empty without an ``fpga`` section."""
    fpga = meta.get("fpga")
    if not isinstance(fpga, Mapping):
        return []
    rows: list[tuple[str, str]] = []
    tool = fpga.get("tool") or {}
    toolchain = " ".join(str(x) for x in (fpga.get("toolchain"), tool.get("version")) if x)
    if toolchain:
        rows.append(("Toolchain", toolchain))
    for label, key in (("Backend", "backend"), ("I/O type", "ioType"), ("Project", "project")):
        if fpga.get(key):
            rows.append((label, str(fpga[key])))
    for label, key in (("Part", "part"), ("Board", "board")):
        if fpga.get(key):
            rows.append((label, str(fpga[key])))
    clock = fpga.get("clock") or {}
    if clock.get("periodNs"):
        period = float(clock["periodNs"])
        rows.append(("Clock", f"{period:g} ns ({1000 / period:.0f} MHz)"))
    model = fpga.get("model") or {}
    precision = model.get("precision")
    if isinstance(precision, Mapping):
        precision = precision.get("default")
    if precision:
        rows.append(("Precision", str(precision)))
    if model.get("reuseFactor") is not None:
        rows.append(("Reuse factor", str(model["reuseFactor"])))
    strategy = str(model.get("strategy") or "")
    if strategy:
        rows.append(("Strategy", strategy))
        if strategy.lower() in _WEIGHT_UPDATES:
            rows.append(("Weight update", _WEIGHT_UPDATES[strategy.lower()]))
    syn = fpga.get("synthesis") or {}
    lat = syn.get("latency") or {}
    if lat:
        cycles = f"{lat.get('bestCycles', '?')}–{lat.get('worstCycles', '?')} cycles"
        if clock.get("periodNs") and isinstance(lat.get("worstCycles"), int):
            cycles += f" (≤ {lat['worstCycles'] * float(clock['periodNs']):g} ns)"
        rows.append(("Latency", cycles))
    interval = syn.get("interval") or {}
    if interval:
        rows.append(("Interval", f"{interval.get('min', '?')}–{interval.get('max', '?')} cycles"))
    timing = syn.get("timing") or {}
    if timing.get("estimatedNs") is not None:
        rows.append(
            ("Timing", f"{timing['estimatedNs']:g} ns estimated of {timing.get('targetNs', '?')}")
        )
    available = syn.get("available") or {}
    for res, used in sorted((syn.get("resources") or {}).items()):
        total = available.get(res)
        share = f" of {_count(total)} ({100 * used / total:.1f} %)" if total else ""
        rows.append((res, f"{_count(used)}{share}"))
    build = fpga.get("firmwareBuild") or {}
    if build.get("id"):
        rows.append(("Firmware build", f"{build['id'][:16]}… ({build.get('files', '?')} files)"))
    return rows


@dataclass(frozen=True)
class RecordBlock:
    """One table of a record: a title (empty: the record's own fields) and labelled rows."""

    title: str
    rows: list[tuple[str, str]] = field(default_factory=list)


def _rows(obj: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for k, v in obj.items():
        label = f"{prefix}{humanize(str(k))}"
        if isinstance(v, Mapping) and v:
            out += _rows(v, f"{label} · ")
        else:
            out.append((label, _text(v)))
    return out


def record_blocks(payload: Any) -> list[RecordBlock]:
    """A record's payload as readable tables: its scalar fields first, then one table per
    nested object (``tolerance``, ``data``), one per item of a list of objects (each output of
    an FPGA comparison, titled by its name), nested keys as ``float vs emulation · argmax
    agreement`` instead of ``outputs[0].float_vs_emulation.argmaxAgreement``."""
    if not isinstance(payload, Mapping):
        return [RecordBlock("", [("value", _text(payload))])]
    head = RecordBlock("")
    blocks = [head]
    for k, v in payload.items():
        if k == "passed":
            continue  # the record's heading carries the verdict
        if isinstance(v, list) and v and all(isinstance(i, Mapping) for i in v):
            for n, item in enumerate(v):
                title = f"{humanize(k)}: {item.get('name', n + 1)}"
                blocks.append(RecordBlock(title, _rows({x: y for x, y in item.items()})))
        elif isinstance(v, Mapping) and v:
            blocks.append(RecordBlock(humanize(k), _rows(v)))
        else:
            head.rows.append((humanize(k), _text(v)))
    return [b for b in blocks if b.rows]


@dataclass(frozen=True)
class Gate:
    """One threshold of an FPGA comparison, drawn as a bar (0–1) with the threshold marked."""

    output: str
    label: str
    value: float
    threshold: float
    higher_is_better: bool

    @property
    def passed(self) -> bool:
        return (
            self.value >= self.threshold if self.higher_is_better else self.value <= self.threshold
        )


def compare_gates(payload: Any) -> list[Gate]:
    """The gates an ``fpga-compare`` record applied, per output: argmax agreement (at least),
    max |diff| as a fraction of the float output's range (at most), hardware values within
    tolerance (at least); only those with a threshold and a value, all fractions in 0–1."""
    if not isinstance(payload, Mapping):
        return []
    tol = payload.get("tolerance") or {}
    gates: list[Gate] = []
    for out in payload.get("outputs") or []:
        if not isinstance(out, Mapping):
            continue
        name = str(out.get("name", ""))
        fve = out.get("float_vs_emulation") or {}
        evh = out.get("emulation_vs_hardware") or {}
        for label, source, key, limit, higher in (
            ("argmax agreement, float vs emulation", fve, "argmaxAgreement",
             tol.get("min_argmax_agreement"), True),
            ("max |diff| / float range", fve, "maxRelativeDiff", tol.get("max_relative_diff"),
             False),
            ("hardware within tolerance", evh, "withinToleranceFraction",
             tol.get("min_agreement"), True),
        ):  # fmt: skip
            value = source.get(key)
            if isinstance(value, int | float) and isinstance(limit, int | float):
                gates.append(Gate(name, label, float(value), float(limit), higher))
    return gates


@dataclass(frozen=True)
class MetricSeries:
    """One metric across the versions of a name (oldest first), in SVG user units."""

    label: str
    points: tuple[tuple[str, float, float, float], ...]  # version, value, x, y
    lo: float
    hi: float


#: the metrics chart's drawing width and height (SVG user units)
CHART_WIDTH, CHART_HEIGHT = 480.0, 120.0


def metric_series(versions: Sequence[VersionInfo]) -> list[MetricSeries]:
    """Each numeric metric (by name and split) recorded by two or more versions, as points
    from the oldest version (left) to the newest (right); yanked versions included."""
    ordered = list(reversed(versions))  # the collector lists newest first
    values: dict[str, dict[str, float]] = {}
    for v in ordered:
        for m in _metric_list(v.meta.get("metrics")):
            label = f"{m[0]} [{m[1]}]" if m[1] else m[0]
            values.setdefault(label, {})[v.version] = m[2]
    out = []
    for label, by_version in sorted(values.items()):
        if len(by_version) < 2:
            continue
        lo, hi = min(by_version.values()), max(by_version.values())
        span = (hi - lo) or 1.0
        step = CHART_WIDTH / max(len(ordered) - 1, 1)
        points = tuple(
            (
                v.version,
                by_version[v.version],
                round(i * step, 1),
                round(CHART_HEIGHT - (by_version[v.version] - lo) / span * CHART_HEIGHT, 1),
            )
            for i, v in enumerate(ordered)
            if v.version in by_version
        )
        out.append(MetricSeries(label, points, lo, hi))
    return out


def _metric_list(metrics: Any) -> list[tuple[str, str, float]]:
    rows: list[tuple[str, str, float]] = []
    if isinstance(metrics, Mapping):
        metrics = [{"name": k, "value": v} for k, v in metrics.items()]
    for m in metrics if isinstance(metrics, list) else ():
        value = m.get("value") if isinstance(m, Mapping) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            rows.append((str(m.get("name", "")), str(m.get("split") or ""), float(value)))
    return rows


def job_file(files: Sequence[FileEntry], meta: Mapping[str, Any]) -> str | None:
    """The FILE of ``hepbundle path REF FILE`` a job loads: the one ``model`` file outside an
    FPGA project, else the one ``model`` file, else (an FPGA bundle without one) the
    project's directory; None when it is ambiguous (several models: the page lists them)."""
    fpga = meta.get("fpga")
    project = str(fpga.get("project") or "") if isinstance(fpga, Mapping) else ""
    models = [f.path for f in files if f.role == "model"]
    outside = [p for p in models if not project or not p.startswith(f"{project}/")]
    for found in (outside, models):
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            return None
    return project or None


def files_by_role(files: Sequence[FileEntry]) -> list[tuple[str, list[FileEntry]]]:
    """The files grouped by role (model first, then by name), each group in path order."""
    groups: dict[str, list[FileEntry]] = {}
    for f in files:
        groups.setdefault(f.role, []).append(f)
    order = sorted(groups, key=lambda r: (r != "model", r))
    return [(r, sorted(groups[r], key=lambda f: f.path)) for r in order]
