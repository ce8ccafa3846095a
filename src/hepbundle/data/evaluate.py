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
from ..errors import DataError, ToolError
from . import metrics as _metrics
from ._npz import iter_npz_chunks, npz_members

if TYPE_CHECKING:
    from ..bundle import Bundle

__all__ = [
    "ENTRY_POINT_GROUP",
    "EvalResult",
    "available_metrics",
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
    """Run ``bundle``'s model on ``data`` (features ``inputs``, default every numeric array
    but ``labels``), compute ``metric_names`` against array ``labels``, compare with the
    manifest's metrics of the same names (|new − recorded| ≤ ``tolerance``)."""
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
    features = list(inputs) if inputs else [n for n in members if n != labels]
    missing = [f for f in features if f not in members]
    if missing:
        raise DataError(f"{data} has no input array {missing[0]!r}; arrays: {', '.join(members)}")
    kind, model_file, predict = _runner(bundle, runner, allow_unsigned)
    scores = run_model(predict, data, features)
    y = np.concatenate(list(iter_npz_chunks(data, labels))) if members[labels].shape[0] else None
    if y is None or len(y) != len(scores):
        raise DataError(f"{data}: {labels!r} has a different number of rows than the inputs")
    values = {m: float(table[m](y, scores)) for m in metric_names}
    return EvalResult(
        ref=bundle.ref,
        manifest_digest=bundle.manifest_digest,
        data=os.fspath(data),
        data_sha256=hash_file(data).sha256,
        runner=kind,
        model_file=model_file,
        samples=len(y),
        metrics=values,
        comparison=tuple(_compare(values, bundle.manifest.meta.get("metrics"), tolerance)),
        tolerance=tolerance,
    )


def run_model(
    predict: Callable[[npt.NDArray[np.float32]], Any],
    data: str | os.PathLike[str],
    features: Sequence[str],
) -> npt.NDArray[np.float64]:
    """Model scores on ``data``: the feature arrays side by side as float32 columns, fed in
    chunks; a (N, 1) output is flattened."""
    out = [np.asarray(predict(x), dtype=np.float64) for x in _feature_chunks(data, features)]
    if not out:
        raise DataError(f"{data} has no rows")
    scores = np.concatenate(out)
    return scores.reshape(len(scores)) if scores.ndim == 2 and scores.shape[1] == 1 else scores


def _feature_chunks(
    data: str | os.PathLike[str], features: Sequence[str]
) -> Iterator[npt.NDArray[np.float32]]:
    streams = [iter_npz_chunks(data, f, rows=_ROWS) for f in features]
    for parts in zip(*streams, strict=True):
        cols = [p.reshape(len(p), -1).astype(np.float32) for p in parts]
        yield np.concatenate(cols, axis=1)


def _runner(
    bundle: Bundle, runner: str, allow_unsigned: bool = False
) -> tuple[str, str, Callable[[npt.NDArray[np.float32]], Any]]:
    """(runner kind, model file, predict function) for ``runner`` (auto: ONNX if the bundle
    has an ONNX model, else Keras)."""
    from ..loaders import find_model_file, keras_model, onnx_session

    has = {f.path.rsplit(".", 1)[-1].lower() for f in bundle.files()}
    if runner == "auto":
        runner = "onnx" if "onnx" in has else "keras" if has & {"keras", "h5"} else ""
        if not runner:
            raise DataError(f"{bundle.ref} has no ONNX or Keras model to evaluate")
    if runner == "onnx":
        path = find_model_file(bundle, (".onnx",))
        session = onnx_session(bundle, path)
        first = session.get_inputs()[0].name
        if len(session.get_inputs()) != 1:
            raise DataError(f"{bundle.ref}: {path} has several inputs; only one is supported")
        return runner, path, lambda x: session.run(None, {first: x})[0]
    if runner == "keras":
        path = find_model_file(bundle, (".keras", ".h5"))
        model = keras_model(bundle, path)
        return runner, path, lambda x: model.predict(x, verbose=0)
    if runner == "hls4ml":
        from ..fpga.emulation import hls4ml_model

        model = hls4ml_model(bundle, allow_unsigned=allow_unsigned)
        return runner, "hls4ml emulation", lambda x: model.predict(np.ascontiguousarray(x))
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
