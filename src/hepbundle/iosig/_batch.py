"""A batch of inputs read against an I/O signature: ``check`` (names, dtypes, shapes, allowed
ranges) and ``normalise`` (the recorded normalisation, features in the recorded order).

A batch is a mapping or a numpy structured array. A key (field) naming an input tensor gives
that tensor whole; otherwise an input with features is assembled from one column per feature
name. A plain array is the one input of a single-input model. numpy is imported at use.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import BatchError

if TYPE_CHECKING:
    import numpy as np

    from ._signature import Feature, IOSignature, Tensor

__all__ = ["IOReport", "check", "normalise"]

#: problems listed in one error line before the rest are counted
_LISTED = 20


@dataclass
class IOReport:
    """What :func:`check` found: ``problems`` (the batch does not fit the signature) and
    ``notes`` (keys it ignored). ``str()`` is one problem per line."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        if self.ok:
            return "the batch fits the I/O signature" + "".join(
                f"\n  note: {n}" for n in self.notes
            )
        return "\n".join([*self.problems, *(f"note: {n}" for n in self.notes)])

    def raise_for_problems(self, what: str = "batch") -> None:
        """Raise :class:`~hepbundle.errors.BatchError` listing every problem in one line."""
        if self.problems:
            listed = "; ".join(self.problems[:_LISTED])
            more = (
                f"; … and {len(self.problems) - _LISTED} more"
                if len(self.problems) > _LISTED
                else ""
            )
            raise BatchError(f"{what} does not fit the I/O signature: {listed}{more}", report=self)


class _Columns:
    """One input given as a column per feature: read like the stacked array (dtype, shape)
    without stacking it, which only :func:`normalise` does."""

    def __init__(self, cols: list[Any]) -> None:
        import numpy as np

        self.cols = cols
        self.dtype = np.result_type(*cols)
        self.shape = (*cols[0].shape, len(cols))
        self.ndim = len(self.shape)
        self.size = cols[0].size * len(cols)

    def stacked(self) -> Any:
        import numpy as np

        return np.stack(self.cols, axis=-1)


def _keys(batch: Any) -> list[str]:
    import numpy as np

    if isinstance(batch, Mapping):
        return [str(k) for k in batch]
    if isinstance(batch, np.ndarray) and batch.dtype.names:
        return list(batch.dtype.names)
    return []


def _gather(sig: IOSignature, batch: Any, report: IOReport) -> dict[str, tuple[Any, str]]:
    """Each input's array from the batch (a tensor, or columns stacked in the recorded order)."""
    import numpy as np

    if isinstance(batch, np.ndarray) and not batch.dtype.names:
        if len(sig.inputs) != 1:
            report.problems.append(
                f"a plain array for a model of {len(sig.inputs)} inputs "
                f"({', '.join(t.name for t in sig.inputs)}): pass a mapping name → array"
            )
            return {}
        return {sig.inputs[0].name: (batch, "tensor")}
    if not isinstance(batch, Mapping | np.ndarray):
        report.problems.append(
            f"a batch is a mapping name → array or a structured array, not {type(batch).__name__}"
        )
        return {}
    keys = _keys(batch)
    used: set[str] = set()
    out: dict[str, tuple[Any, str]] = {}
    for t in sig.inputs:
        if t.name in keys:
            out[t.name] = (np.asarray(batch[t.name]), "tensor")
            used.add(t.name)
            continue
        if not t.features:
            report.problems.append(f"input {t.name} is missing{_closest(t.name, keys)}")
            continue
        names = [f.name for f in t.features]
        absent = [n for n in names if n not in keys]
        if absent:
            report.problems.append(
                f"input {t.name}: no {'tensor ' + t.name + ' and no ' if len(absent) == len(names) else ''}"
                f"feature column{'s' if len(absent) > 1 else ''} {', '.join(absent[:8])}"
                + (f" (+{len(absent) - 8})" if len(absent) > 8 else "")
                + _closest(absent[0], [k for k in keys if k not in names])
            )
            continue
        used.update(names)
        if isinstance(batch, np.ndarray):
            order = [k for k in keys if k in names]
            if order != names:
                first = next(i for i, (a, b) in enumerate(zip(order, names, strict=True)) if a != b)
                report.problems.append(
                    f"input {t.name}: structured fields in the order {', '.join(order)}; the "
                    f"model expects {', '.join(names)} (field {first} is {order[first]}, should "
                    f"be {names[first]}; normalise() reorders by name)"
                )
        cols = [np.asarray(batch[n]) for n in names]
        shapes = {c.shape for c in cols}
        dtypes = {c.dtype for c in cols}
        if len(shapes) > 1:
            report.problems.append(
                f"input {t.name}: feature columns of different shapes {sorted(shapes)}"
            )
            continue
        if len(dtypes) > 1:
            report.problems.append(
                f"input {t.name}: feature columns of dtypes "
                + ", ".join(
                    f"{n} {c.dtype}"
                    for n, c in zip(names, cols, strict=True)
                    if c.dtype != cols[0].dtype
                )
                + f" beside {cols[0].dtype}"
            )
        out[t.name] = (_Columns(cols), "columns")
    ignored = [k for k in keys if k not in used]
    if ignored:
        report.notes.append(
            f"ignored {', '.join(ignored[:8])}"
            + (" …" if len(ignored) > 8 else "")
            + " (not an input or feature)"
        )
    return out


def _closest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check(sig: IOSignature, batch: Any, *, ranges: bool = True) -> IOReport:
    """Read ``batch`` against ``sig``: every input present, its dtype, rank and fixed sizes,
    symbolic dimensions of one size across inputs, and (``ranges``) every feature's values
    inside its allowed range, with no NaN. Returns the report; nothing is raised for a batch
    that does not fit (:meth:`IOReport.raise_for_problems`)."""
    from ._signature import format_shape

    report = IOReport()
    found = _gather(sig, batch, report)
    symbols: dict[str, tuple[int, str]] = {}
    for t in sig.inputs:
        if t.name not in found:
            continue
        x = found[t.name][0]
        dtype = "string" if x.dtype.kind in "US" else str(x.dtype)
        if dtype != t.dtype:
            report.problems.append(f"input {t.name}: dtype {dtype}, the model takes {t.dtype}")
        if x.ndim != len(t.shape):
            report.problems.append(
                f"input {t.name}: {x.ndim} axes {list(x.shape)}, the model takes "
                f"{len(t.shape)} {format_shape(t.shape)}"
            )
            continue
        for axis, (n, want) in enumerate(zip(x.shape, t.shape, strict=True)):
            if isinstance(want, int) and n != want:
                report.problems.append(
                    f"input {t.name}: axis {axis} has {n} elements, the model takes {want} "
                    f"(shape {list(x.shape)} for {format_shape(t.shape)})"
                )
            elif isinstance(want, str):
                seen = symbols.setdefault(want, (n, t.name))
                if seen[0] != n:
                    report.problems.append(
                        f"input {t.name}: {want} is {n}, but {seen[0]} in input {seen[1]}"
                    )
        if ranges and t.features and x.size and x.shape[-1] == len(t.features):
            report.problems += _range_problems(t, x)
    return report


def _range_problems(t: Tensor, x: np.ndarray | _Columns) -> list[str]:
    import numpy as np

    if x.dtype.kind not in "iuf":
        return []
    if isinstance(x, _Columns):
        columns = [c.reshape(-1) for c in x.cols]
    else:
        flat = x.reshape(-1, len(t.features))
        columns = [flat[:, i] for i in range(len(t.features))]
    lo = np.array([-np.inf if f.min is None else f.min for f in t.features])
    hi = np.array([np.inf if f.max is None else f.max for f in t.features])
    # two reductions, no temporary the size of the batch: a NaN propagates into min and max,
    # and only the features that fail are counted in detail
    with np.errstate(invalid="ignore"):
        if isinstance(x, _Columns):
            first = np.array([c.min() for c in columns])
            last = np.array([c.max() for c in columns])
        else:
            first, last = flat.min(axis=0), flat.max(axis=0)
        bad = [
            i
            for i in range(len(t.features))
            if np.isnan(first[i]) or np.isnan(last[i]) or first[i] < lo[i] or last[i] > hi[i]
        ]
    if not bad:
        return []
    nan, below, above, mins, maxs = {}, {}, {}, {}, {}
    with np.errstate(all="ignore"):
        for i in bad:
            col = columns[i].astype(np.float64)
            nan[i] = int(np.isnan(col).sum())
            below[i] = int((col < lo[i]).sum())
            above[i] = int((col > hi[i]).sum())
            mins[i] = float(np.nanmin(col)) if nan[i] < len(col) else float("nan")
            maxs[i] = float(np.nanmax(col)) if nan[i] < len(col) else float("nan")
    out = []
    n = len(columns[0])
    for i in bad:
        f = t.features[i]
        what = []
        if below[i] or above[i]:
            what.append(
                f"{below[i] + above[i]} of {n} values outside {f.range_text} "
                f"(seen [{mins[i]:g}, {maxs[i]:g}])"
            )
        if nan[i]:
            what.append(f"{nan[i]} NaN")
        hint = _hint(t.features, i, mins[i], maxs[i], bad)
        unit = f" [{f.unit}]" if f.unit else ""
        out.append(f"input {t.name} feature {i} {f.name}{unit}: {', '.join(what)}{hint}")
    return out


def _hint(features: tuple[Feature, ...], i: int, lo: float, hi: float, bad: list[int]) -> str:
    """Why a feature may be out of range: its values fit another misfit feature's range (the
    columns are in the wrong order), or they are about 1000× the range (a unit: MeV for GeV)."""

    def fits(f: Feature) -> bool:
        return (f.min is None or lo >= f.min) and (f.max is None or hi <= f.max)

    for j in bad:
        if j != i and fits(features[j]):
            return f" — fits the range of feature {j} {features[j].name}: columns out of order?"
    f = features[i]
    span = (
        max(abs(v) for v in (f.min, f.max) if v is not None)
        if (f.min, f.max) != (None, None)
        else 0
    )
    seen = max(abs(lo), abs(hi))
    if span and seen / span > 100:
        return f" — up to {seen / span:.0f}× the range: is it in {f.unit or 'the recorded unit'}?"
    return ""


def normalise(sig: IOSignature, batch: Any) -> dict[str, np.ndarray]:
    """Every input as the model takes it: the tensor given, or the feature columns stacked in the
    recorded order, cast to the input's dtype, with each feature's recorded normalisation applied.
    :class:`~hepbundle.errors.BatchError` if an input cannot be assembled (``check`` says why)."""
    import numpy as np

    report = IOReport()
    found = _gather(sig, batch, report)
    report.problems = [p for p in report.problems if "structured fields in the order" not in p]
    report.raise_for_problems()
    out: dict[str, np.ndarray] = {}
    for t in sig.inputs:
        x = found[t.name][0]
        fresh = isinstance(x, _Columns)  # the stack is ours to normalise in place
        if isinstance(x, _Columns):
            x = x.stacked()
        norms = [f.normalisation for f in t.features]
        try:
            target = np.dtype(t.dtype) if t.dtype not in ("string", "bfloat16") else None
        except TypeError:
            target = None
        if any(norms) and x.shape[-1:] == (len(norms),):
            # in the input's own float type (what the model computes in), else float64
            work = target if target is not None and target.kind == "f" else np.dtype("float64")
            a = np.array([n.coefficients[0] if n else 1.0 for n in norms], dtype=work)
            b = np.array([n.coefficients[1] if n else 0.0 for n in norms], dtype=work)
            x = x.astype(work, copy=not (fresh and x.dtype == work))
            np.multiply(x, a, out=x)
            np.add(x, b, out=x)
        out[t.name] = x.astype(target, copy=False) if target is not None else x
    return out
