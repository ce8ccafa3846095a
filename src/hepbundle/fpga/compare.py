"""Bit-accurate comparison: float model vs hls4ml C++ emulation vs hardware/co-sim outputs.

Three sets of outputs on the same inputs: the float model the firmware was made from (Keras or
ONNX from the bundle), the bit-accurate emulation compiled with g++ from the packed project, and,
when given, outputs captured on a hardware test bed or from RTL co-simulation. Per output:

* emulation vs hardware: fraction of bit-exact values, fraction within ``hardware_atol``,
  max abs difference, argmax agreement — the firmware must compute what the emulation computes;
* float vs emulation: max/mean abs difference and argmax (decision) agreement — what the
  quantisation costs.

:class:`Tolerance` turns those numbers into pass/fail, so ``hepbundle fpga compare`` can gate
CI. The report (JSON + PNG) is appended to the bundle's catalogue entry as an evaluation record.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._base import write_atomic
from ..bundle import Bundle
from ..digest import hash_file
from ..errors import ToolError
from ..manifest import canonical_json
from ..regular import open_regular
from .emulation import hls4ml_model
from .tolerance import DEFAULT_MAX_RELATIVE_DIFF, DEFAULT_MIN_ARGMAX_AGREEMENT, Tolerance

__all__ = [
    "DEFAULT_MAX_RELATIVE_DIFF",
    "DEFAULT_MIN_ARGMAX_AGREEMENT",
    "RECORD_KIND",
    "CompareReport",
    "OutputComparison",
    "Tolerance",
    "compare_bundle",
    "compare_outputs",
    "decode_fixed",
    "load_npz",
    "record_report",
]

RECORD_KIND = "fpga-compare"
_DEFAULT_TOLERANCE = Tolerance()
_FLOAT_SUFFIXES = (".keras", ".h5", ".onnx")
_FIXED = re.compile(r"ap_(u?)(fixed|int)<\s*(\d+)\s*(?:,\s*(-?\d+))?")


@dataclass
class OutputComparison:
    """The numbers for one model output, and why it failed (empty when it passed)."""

    name: str
    samples: int
    width: int
    float_vs_emulation: dict[str, float] | None = None
    emulation_vs_hardware: dict[str, float] | None = None
    failures: list[str] = field(default_factory=list)
    #: differences kept for the plot, not serialised
    diffs: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("diffs")
        d["passed"] = not self.failures
        return d


@dataclass
class CompareReport:
    """Everything one comparison found, with what it ran on."""

    ref: str
    manifest_sha256: str
    inputs: dict[str, str]
    float_model: str | None
    emulation: str
    hardware: dict[str, str] | None
    tolerance: Tolerance
    outputs: list[OutputComparison]

    @property
    def passed(self) -> bool:
        return all(not o.failures for o in self.outputs)

    @property
    def failures(self) -> list[str]:
        return [f"{o.name}: {msg}" for o in self.outputs for msg in o.failures]

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "manifestSha256": self.manifest_sha256,
            "inputs": self.inputs,
            "floatModel": self.float_model,
            "emulation": self.emulation,
            "hardware": self.hardware,
            "tolerance": asdict(self.tolerance),
            "passed": self.passed,
            "outputs": [o.to_json() for o in self.outputs],
        }


def compare_outputs(
    name: str,
    emulation: np.ndarray,
    *,
    float_out: np.ndarray | None = None,
    hardware: np.ndarray | None = None,
    tolerance: Tolerance = _DEFAULT_TOLERANCE,
) -> OutputComparison:
    """Compare one output's arrays (samples × values) and apply ``tolerance``."""
    emu = _as_2d(emulation)
    res = OutputComparison(name=name, samples=emu.shape[0], width=emu.shape[1])
    if float_out is not None:
        ref = _check_shape(_as_2d(float_out), emu, f"float model output {name}")
        diff = emu - ref
        max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
        scale = _output_range(ref)
        res.float_vs_emulation = {
            "maxAbsDiff": max_abs,
            "meanAbsDiff": float(np.mean(np.abs(diff))) if diff.size else 0.0,
            "argmaxAgreement": _decision_agreement(ref, emu),
            "floatRange": scale,
            "maxRelativeDiff": max_abs / scale,
        }
        res.diffs["emulation - float"] = diff.ravel()
        t = tolerance
        agree = res.float_vs_emulation["argmaxAgreement"]
        if t.min_argmax_agreement is not None and agree < t.min_argmax_agreement:
            res.failures.append(
                f"float vs emulation argmax agreement {agree:.4f} < {t.min_argmax_agreement:g}"
            )
        if t.float_atol is not None and max_abs > t.float_atol:
            res.failures.append(f"float vs emulation max |diff| {max_abs:.6g} > {t.float_atol:g}")
        rel = res.float_vs_emulation["maxRelativeDiff"]
        if t.max_relative_diff is not None and rel > t.max_relative_diff:
            res.failures.append(
                f"float vs emulation max |diff| {max_abs:.6g} is {rel:.3g} of the float output's "
                f"range {scale:.6g} (allowed {t.max_relative_diff:g})"
            )
    if hardware is not None:
        hw = _check_shape(_as_2d(hardware), emu, f"hardware output {name}")
        diff = hw - emu
        absd = np.abs(diff)
        within = float(np.mean(absd <= tolerance.hardware_atol)) if diff.size else 1.0
        res.emulation_vs_hardware = {
            "bitExactFraction": float(np.mean(hw == emu)) if diff.size else 1.0,
            "withinToleranceFraction": within,
            "maxAbsDiff": float(np.max(absd)) if diff.size else 0.0,
            "mismatchedSamples": int(np.sum(np.any(absd > tolerance.hardware_atol, axis=1))),
            "argmaxAgreement": _decision_agreement(emu, hw),
        }
        res.diffs["hardware - emulation"] = diff.ravel()
        if within < tolerance.min_agreement:
            res.failures.append(
                f"only {within:.4%} of hardware values within {tolerance.hardware_atol:g} of "
                f"the emulation (need {tolerance.min_agreement:.4%})"
            )
    return res


def compare_bundle(
    bundle: Bundle,
    inputs_npz: Path,
    *,
    hardware_npz: Path | None = None,
    tolerance: Tolerance = _DEFAULT_TOLERANCE,
    build_dir: Path | None = None,
    float_model: bool = True,
    allow_unsigned: bool = False,
) -> CompareReport:
    """Run the float model and the emulation of ``bundle`` on ``inputs_npz`` and compare them
    with each other and with ``hardware_npz`` (one array per output)."""
    float_path = _float_model_path(bundle) if float_model else None
    if float_path is None and hardware_npz is None:
        raise ToolError(
            f"{bundle.ref}: nothing to compare the emulation with: "
            + (
                "the float model is switched off"
                if not float_model
                else "the bundle packs no float model"
            )
            + " and no hardware outputs were given",
            hint="give hardware outputs (--hardware-outputs) or compare with the float model",
        )
    emu = hls4ml_model(bundle, build_dir=build_dir, allow_unsigned=allow_unsigned)
    in_names = [p.name for p in emu.inputs]
    out_names = [p.name for p in emu.outputs]
    xs = load_npz(inputs_npz, in_names, what="inputs")
    # the double bridge: float32 would round fixed-point outputs wider than 24 significant bits
    x64 = [np.asarray(x, dtype=np.float64) for x in xs]
    emu_outs = _as_list(emu.predict(x64[0] if len(x64) == 1 else x64))
    float_outs = _run_float(bundle, float_path, xs) if float_path else None
    if float_outs is not None and len(float_outs) != len(emu_outs):
        raise ToolError(
            f"{float_path} has {len(float_outs)} outputs, the firmware {len(emu_outs)}",
            hint="pack the model the firmware was converted from",
        )
    hw_outs = load_npz(hardware_npz, out_names, what="hardware outputs") if hardware_npz else None
    encoding = "values"
    if hw_outs is not None and any(np.issubdtype(h.dtype, np.integer) for h in hw_outs):
        # test beds dump the output words as integers: read them as the firmware's port type
        types = [p.type for p in emu.outputs]
        hw_outs = [
            decode_fixed(h, t, name) for h, t, name in zip(hw_outs, types, out_names, strict=True)
        ]
        encoding = "raw words: " + ", ".join(str(t) for t in types)
    outputs = [
        compare_outputs(
            name,
            emu_outs[i],
            float_out=float_outs[i] if float_outs is not None else None,
            hardware=hw_outs[i] if hw_outs is not None else None,
            tolerance=tolerance,
        )
        for i, name in enumerate(out_names)
    ]
    return CompareReport(
        ref=bundle.ref,
        manifest_sha256=bundle.manifest_digest,
        inputs={"path": str(inputs_npz), "sha256": hash_file(inputs_npz).sha256},
        float_model=float_path,
        emulation=f"hls4ml C++ emulation of {emu.project}, compiled with g++",
        hardware=(
            {
                "path": str(hardware_npz),
                "sha256": hash_file(hardware_npz).sha256,
                "encoding": encoding,
            }
            if hardware_npz
            else None
        ),
        tolerance=tolerance,
        outputs=outputs,
    )


def decode_fixed(raw: np.ndarray, ctype: str | None, port: str = "output") -> np.ndarray:
    """Values of raw ``ap_fixed<W,I>`` / ``ap_ufixed`` / ``ap_int`` / ``ap_uint`` words (the
    low W bits of each integer, two's complement when signed)."""
    m = _FIXED.search(ctype or "")
    if m is None:
        raise ToolError(
            f"hardware {port} is given as integers, but the firmware port type {ctype!r} is not "
            "an ap_fixed/ap_int type",
            hint="give the hardware outputs as floating-point values",
        )
    unsigned, kind, width = m.group(1) == "u", m.group(2), int(m.group(3))
    integer = width if kind == "int" else int(m.group(4))
    if width > 62:
        raise ToolError(f"{ctype} words are wider than 62 bits; give values instead")
    v = np.asarray(raw).astype(np.int64) & ((1 << width) - 1)
    if not unsigned:
        v = np.where(v >= 1 << (width - 1), v - (1 << width), v)
    return v.astype(np.float64) / 2.0 ** (width - integer)


def load_npz(path: Path, names: Sequence[str], *, what: str) -> list[np.ndarray]:
    """One array per name from an NPZ file: by name, or the only array when one is expected."""
    try:
        with open_regular(path) as f:
            loaded = np.load(f, allow_pickle=False)
            if isinstance(loaded, np.ndarray):  # a .npy file: one array
                arrays = {"arr_0": loaded}
            else:
                with loaded as z:
                    arrays = {k: np.asarray(z[k]) for k in z.files}
    except EOFError:
        raise ToolError(f"cannot read {what} {path}: the file is empty") from None
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ToolError(f"cannot read {what} {path}: {e}") from None
    for k, a in arrays.items():
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise ToolError(
                f"{what} {path}: array {k!r} holds {a.dtype} values, not numbers",
                hint="save numeric arrays (float or integer)",
            )
    if all(n in arrays for n in names):
        return [arrays[n] for n in names]
    if len(names) == 1 and len(arrays) == 1:
        return list(arrays.values())
    raise ToolError(
        f"{what} {path} has arrays {', '.join(sorted(arrays)) or '(none)'}; expected "
        f"{', '.join(names)}",
        hint="save one array per port, named as in the firmware (or a single array)",
    )


def record_report(
    bundle: Bundle,
    report: CompareReport,
    png: bytes | None,
    *,
    out_dir: Path | None = None,
    signer: Any = None,
) -> dict[str, str]:
    """Keep the report: in ``out_dir`` (report.json, report.png) when given, and appended as a
    signed ``fpga-compare`` evaluation record when the bundle lies in a repository.
    Returns where it went (``{"dir": …, "record": …}``)."""
    from ..repository.records import record_for_bundle, recordable_repo

    recordable_repo(bundle, signer=signer)  # refuse to sign into nothing before writing anything
    payload = report.to_json()
    attachments = {"report.png": png} if png else {}
    where: dict[str, str] = {}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, data in {"report.json": canonical_json(payload), **attachments}.items():
            write_atomic(out_dir / name, data)
        where["dir"] = str(out_dir)
    rec = record_for_bundle(bundle, RECORD_KIND, payload, attachments, signer=signer)
    if rec is not None:
        where["record"] = str(rec.path)
    return where


def _float_model_path(bundle: Bundle) -> str | None:
    fpga = bundle.manifest.meta.get("fpga")
    source = fpga.get("sourceModel") if isinstance(fpga, Mapping) else None
    if isinstance(source, str) and source.endswith(_FLOAT_SUFFIXES):
        return source
    found = [f.path for f in bundle.files("model") if f.path.endswith(_FLOAT_SUFFIXES)]
    return found[0] if found else None


def _run_float(bundle: Bundle, relpath: str, xs: Sequence[np.ndarray]) -> list[np.ndarray]:
    from ..loaders import keras_model, onnx_session

    x32 = [np.asarray(x, dtype=np.float32) for x in xs]
    if relpath.endswith(".onnx"):
        sess = onnx_session(bundle, relpath)
        names = [i.name for i in sess.get_inputs()]
        if len(names) != len(x32):
            raise ToolError(f"{relpath} takes {len(names)} inputs, got {len(x32)}")
        return _as_list(sess.run(None, dict(zip(names, x32, strict=True))))
    model = keras_model(bundle, relpath)
    return _as_list(model.predict(x32[0] if len(x32) == 1 else x32, verbose=0))


def _as_list(out: Any) -> list[np.ndarray]:
    return [np.asarray(o) for o in out] if isinstance(out, list | tuple) else [np.asarray(out)]


def _as_2d(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(a.shape[0], -1) if a.ndim else a.reshape(1, 1)


def _check_shape(a: np.ndarray, emu: np.ndarray, what: str) -> np.ndarray:
    if a.shape != emu.shape:
        raise ToolError(
            f"{what} has shape {a.shape}, the emulation {emu.shape}",
            hint="use the same inputs, in the same order, for every run",
        )
    return a


def _output_range(a: np.ndarray) -> float:
    """The spread of an output (max - min); its largest magnitude for a constant one, 1 for 0."""
    if not a.size:
        return 1.0
    spread = float(np.max(a) - np.min(a))
    return spread or float(np.max(np.abs(a))) or 1.0


def _decision_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Argmax agreement for multi-class outputs; for one value, agreement of the sign of
    (x - 0.5) for scores in [0, 1] and of x otherwise (a cut at the natural threshold)."""
    if a.shape[0] == 0:
        return 1.0
    if a.shape[1] > 1:
        return float(np.mean(np.argmax(a, axis=1) == np.argmax(b, axis=1)))
    cut = 0.5 if (a.min() >= 0 and a.max() <= 1) else 0.0
    return float(np.mean((a[:, 0] > cut) == (b[:, 0] > cut)))
