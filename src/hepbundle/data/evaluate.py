"""Evaluate a bundle's model on NPZ data: run it, compute metrics, compare with the recorded ones.

The model runs through the bundle's framework loaders (ONNX Runtime, Keras, or the hls4ml C++
emulation), fed in row chunks streamed from the NPZ. Metrics are plain functions
``metric(y_true, y_score) -> float`` looked up by name: the built-ins of
:mod:`hepbundle.data.metrics`, and any an experiment registers under the entry-point group
``hepbundle.evaluators`` (``[project.entry-points."hepbundle.evaluators"] my_eff =
"mypkg.metrics:signal_eff_at_1pct"``). The result is compared with the metrics recorded in the
manifest (absolute tolerance) and can be kept as an ``evaluation`` record in the repository.
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._base import write_atomic
from ..errors import DataError, HepbundleError, ToolError
from . import metrics as _metrics
from ._npz import NpzMember, iter_npz_chunks, npz_members

if TYPE_CHECKING:
    from ..bundle import Bundle

__all__ = [
    "ENTRY_POINT_GROUP",
    "EvalResult",
    "ModelInput",
    "available_metrics",
    "choose_inputs",
    "evaluate",
    "keep_result",
    "run_model",
]

ENTRY_POINT_GROUP = "hepbundle.evaluators"
RECORD_KIND = "evaluation"
Metric = Callable[[npt.NDArray[Any], npt.NDArray[Any]], float]
_ROWS = 1 << 15


@functools.cache
def available_metrics() -> dict[str, Metric]:
    """Metric name → function: the built-ins, then the ``hepbundle.evaluators`` entry points
    (an installed plug-in may add names; a broken one is reported when it is used)."""
    found: dict[str, Metric] = dict(_metrics.BUILTIN)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, functools.partial(_load_entry_point, ep))
    return found


def _load_entry_point(
    ep: importlib.metadata.EntryPoint, y: npt.NDArray[Any], s: npt.NDArray[Any]
) -> float:
    try:
        fn = ep.load()
    except (ImportError, AttributeError) as e:
        raise ToolError(f"evaluator {ep.name!r} ({ep.value}) cannot be loaded: {e}") from None
    return float(fn(y, s))


@dataclass(frozen=True)
class EvalResult:
    """Metrics of one evaluation and their comparison with the manifest's recorded metrics."""

    ref: str
    manifest_digest: str
    data: str
    data_sha256: str
    runner: str
    model_file: str
    samples: int
    metrics: Mapping[str, float]
    comparison: tuple[Mapping[str, Any], ...]
    tolerance: float

    @property
    def regressions(self) -> list[Mapping[str, Any]]:
        return [c for c in self.comparison if not c["within"]]

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "manifestDigest": f"sha256:{self.manifest_digest}",
            "data": {"path": self.data, "sha256": self.data_sha256, "samples": self.samples},
            "runner": self.runner,
            "model": self.model_file,
            "metrics": dict(self.metrics),
            "comparison": [dict(c) for c in self.comparison],
            "tolerance": self.tolerance,
            "passed": not self.regressions,
        }


@dataclass(frozen=True)
class ModelInput:
    """One input of the model: its name and the values per row (None when not fixed)."""

    name: str
    width: int | None


@dataclass(frozen=True)
class _Runner:
    kind: str
    model_file: str
    inputs: tuple[ModelInput, ...]
    predict: Callable[[list[npt.NDArray[np.float32]]], Any]


def evaluate(
    bundle: Bundle,
    data: str | os.PathLike[str],
    labels: str,
    *,
    metric_names: Sequence[str] = ("auc", "accuracy"),
    inputs: Sequence[str] | None = None,
    runner: str = "auto",
    tolerance: float = 0.01,
    allow_unsigned: bool = False,
) -> EvalResult:
    """Run ``bundle``'s model on ``data``, compute ``metric_names`` against array ``labels``,
    compare with the manifest's metrics of the same names (|new − recorded| ≤ ``tolerance``).

    The arrays fed to the model are ``inputs`` (in model order; several arrays side by side
    when the model has one input), else chosen from the model's own inputs: the arrays named
    like them, else for a one-input model the only array with as many values per row, else
    every array but ``labels`` when together they have that many. A choice that does not fit
    the model's input widths is refused before the model runs (:class:`DataError`).
    """
    from ..digest import hash_file

    table = available_metrics()
    unknown = [m for m in metric_names if m not in table]
    if unknown:
        raise DataError(
            f"unknown metric {unknown[0]!r}; available: {', '.join(sorted(table))}",
            hint=f"register more under the entry-point group {ENTRY_POINT_GROUP!r}",
        )
    members = npz_members(data)
    if labels not in members:
        raise DataError(f"{data} has no labels array {labels!r}; arrays: {', '.join(members)}")
    if inputs:
        missing = [f for f in inputs if f not in members]
        if missing:
            raise DataError(
                f"{data} has no input array {missing[0]!r}; arrays: {', '.join(members)}"
            )
    run = _runner(bundle, runner, allow_unsigned)
    groups = choose_inputs(run.inputs, members, labels, inputs, where=f"{data}")
    scores = run_model(run.predict, data, groups, model=f"{bundle.ref}: {run.model_file}")
    y = np.concatenate(list(iter_npz_chunks(data, labels))) if members[labels].shape[0] else None
    if y is None or len(y) != len(scores):
        raise DataError(f"{data}: {labels!r} has a different number of rows than the inputs")
    values = {m: float(table[m](y, scores)) for m in metric_names}
    return EvalResult(
        ref=bundle.ref,
        manifest_digest=bundle.manifest_digest,
        data=os.fspath(data),
        data_sha256=hash_file(data).sha256,
        runner=run.kind,
        model_file=run.model_file,
        samples=len(y),
        metrics=values,
        comparison=tuple(_compare(values, bundle.manifest.meta.get("metrics"), tolerance)),
        tolerance=tolerance,
    )


def _row_width(m: NpzMember) -> int:
    return math.prod(m.shape[1:]) if len(m.shape) > 1 else 1


def choose_inputs(
    model_inputs: Sequence[ModelInput],
    members: Mapping[str, NpzMember],
    labels: str,
    explicit: Sequence[str] | None,
    *,
    where: str,
) -> list[list[str]]:
    """The NPZ arrays for each model input (several side by side for one input); see
    :func:`evaluate`. Every refusal is one :class:`DataError` line naming what would fit."""

    def described(names: Sequence[str]) -> str:
        return ", ".join(f"{n} ({_row_width(members[n])} per row)" for n in names) or "(none)"

    model_desc = ", ".join(
        f"{i.name} ({i.width if i.width is not None else 'any number of'} values per row)"
        for i in model_inputs
    )
    hint = "choose the arrays with --inputs A,B,… (in model order)"
    usable = [n for n, m in members.items() if n != labels and m.dtype.kind in "biuf" and m.shape]
    if explicit:
        if len(model_inputs) == 1:
            groups = [list(explicit)]
        elif len(explicit) == len(model_inputs):
            groups = [[n] for n in explicit]
        else:
            raise DataError(
                f"the model takes {len(model_inputs)} inputs ({model_desc}); "
                f"--inputs names {len(explicit)} arrays",
                hint="give one array per model input, in model order",
            )
    elif all(i.name in members for i in model_inputs):
        groups = [[i.name] for i in model_inputs]
    elif len(model_inputs) == 1:
        width = model_inputs[0].width
        same = [n for n in usable if _row_width(members[n]) == width]
        if width is None and len(usable) == 1:
            groups = [usable]
        elif width is not None and len(same) == 1:
            groups = [same]
        elif width is not None and sum(_row_width(members[n]) for n in usable) == width:
            groups = [usable]
        else:
            raise DataError(
                f"cannot tell which arrays of {where} feed the model's input {model_desc}: "
                f"it has {described(usable)}",
                hint=hint,
            )
    else:
        raise DataError(
            f"the model's inputs {model_desc} are not arrays of {where} (it has "
            f"{described(usable)})",
            hint=hint,
        )
    for inp, names in zip(model_inputs, groups, strict=True):
        bad = [n for n in names if members[n].dtype.kind not in "biuf" or not members[n].shape]
        if bad:
            raise DataError(f"{where}: array {bad[0]!r} is not a numeric array of rows")
        got = sum(_row_width(members[n]) for n in names)
        if inp.width is not None and got != inp.width:
            raise DataError(
                f"the model's input {inp.name} takes {inp.width} values per row; "
                f"{described(names)} give {got}",
                hint=hint,
            )
    rows = {members[n].shape[0] for names in groups for n in names}
    if len(rows) > 1:
        raise DataError(f"{where}: the input arrays have different numbers of rows")
    return groups


def run_model(
    predict: Callable[[list[npt.NDArray[np.float32]]], Any],
    data: str | os.PathLike[str],
    groups: Sequence[Sequence[str]],
    *,
    model: str = "the model",
) -> npt.NDArray[np.float64]:
    """Model scores on ``data``: for each model input, its arrays side by side as float32
    columns, fed in chunks; a (N, 1) output is flattened. A model that refuses its inputs is
    one :class:`DataError` line."""
    out = []
    for xs in _feature_chunks(data, groups):
        try:
            y = predict(xs)
        except HepbundleError:
            raise
        except Exception as e:  # ONNX Runtime / Keras / ctypes errors: one line, not a traceback
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DataError(f"{model} refused the inputs: {first}") from None
        out.append(np.asarray(y, dtype=np.float64))
    if not out:
        raise DataError(f"{data} has no rows")
    scores = np.concatenate(out)
    return scores.reshape(len(scores)) if scores.ndim == 2 and scores.shape[1] == 1 else scores


def _feature_chunks(
    data: str | os.PathLike[str], groups: Sequence[Sequence[str]]
) -> Iterator[list[npt.NDArray[np.float32]]]:
    flat = [n for g in groups for n in g]
    streams = [iter_npz_chunks(data, f, rows=_ROWS) for f in flat]
    for parts in zip(*streams, strict=True):
        cols = iter(p.reshape(len(p), -1).astype(np.float32) for p in parts)
        yield [np.concatenate([next(cols) for _ in g], axis=1) for g in groups]


def _dim(d: Any) -> int | None:
    return d if isinstance(d, int) and not isinstance(d, bool) and d > 0 else None


def _width(shape: Sequence[Any]) -> int | None:
    dims = [_dim(d) for d in list(shape)[1:]]
    return math.prod(d for d in dims if d is not None) if None not in dims else None


def _runner(bundle: Bundle, runner: str, allow_unsigned: bool = False) -> _Runner:
    """The model of ``runner`` (auto: ONNX if the bundle has an ONNX model, else Keras), with
    its inputs as the model itself declares them."""
    from ..loaders import find_model_file, keras_model, onnx_session

    has = {f.path.rsplit(".", 1)[-1].lower() for f in bundle.files()}
    if runner == "auto":
        runner = "onnx" if "onnx" in has else "keras" if has & {"keras", "h5"} else ""
        if not runner:
            raise DataError(f"{bundle.ref} has no ONNX or Keras model to evaluate")
    if runner == "onnx":
        path = find_model_file(bundle, (".onnx",))
        session = onnx_session(bundle, path)
        names = [i.name for i in session.get_inputs()]
        ins = tuple(ModelInput(i.name, _width(i.shape)) for i in session.get_inputs())
        return _Runner(
            runner, path, ins, lambda xs: session.run(None, dict(zip(names, xs, strict=True)))[0]
        )
    if runner == "keras":
        path = find_model_file(bundle, (".keras", ".h5"))
        model = keras_model(bundle, path)
        ins = tuple(
            ModelInput(str(getattr(t, "name", f"input_{i}")), _width(tuple(t.shape)))
            for i, t in enumerate(model.inputs)
        )
        return _Runner(
            runner, path, ins, lambda xs: model.predict(xs[0] if len(xs) == 1 else xs, verbose=0)
        )
    if runner == "hls4ml":
        from ..fpga.emulation import hls4ml_model

        emu = hls4ml_model(bundle, allow_unsigned=allow_unsigned)
        ins = tuple(ModelInput(p.name, p.size) for p in emu.inputs)

        def predict(xs: list[npt.NDArray[np.float32]]) -> Any:
            arrays = [np.ascontiguousarray(x) for x in xs]
            out = emu.predict(arrays[0] if len(arrays) == 1 else arrays)
            return out[0] if isinstance(out, list) else out

        return _Runner(runner, "hls4ml emulation", ins, predict)
    raise DataError(f"unknown runner {runner!r}; use auto, onnx, keras or hls4ml")


def _compare(
    values: Mapping[str, float], recorded: Any, tolerance: float
) -> Iterator[dict[str, Any]]:
    """One row per metric also recorded in the manifest (a list of {name, value} entries)."""
    if not isinstance(recorded, list):
        return
    for entry in recorded:
        if not isinstance(entry, Mapping) or entry.get("name") not in values:
            continue
        old = entry.get("value")
        if not isinstance(old, int | float):
            continue
        new = values[entry["name"]]
        diff = new - float(old)
        yield {
            "name": entry["name"],
            "split": entry.get("split"),
            "recorded": float(old),
            "value": new,
            "diff": diff,
            "within": math.isfinite(diff) and abs(diff) <= tolerance,
        }


def keep_result(
    bundle: Bundle,
    result: EvalResult,
    *,
    out: str | os.PathLike[str] | None = None,
    signer: Any = None,
) -> dict[str, str]:
    """Write ``result`` as JSON to ``out`` when given, and append it as an ``evaluation``
    record (signed when ``signer`` is given) when ``bundle`` is the published copy in a
    repository. Returns where it went (``{"out": …, "record": …}``)."""
    from ..manifest import canonical_json
    from ..repository.records import record_for_bundle, recordable_repo

    recordable_repo(bundle, signer=signer)  # refuse to sign into nothing before writing anything
    payload = result.to_json()
    where: dict[str, str] = {}
    if out is not None:
        write_atomic(Path(out), canonical_json(payload))
        where["out"] = os.fspath(out)
    rec = record_for_bundle(bundle, RECORD_KIND, payload, signer=signer)
    if rec is not None:
        where["record"] = str(rec.path)
    return where
