"""Drift of new data against a bundle's reference profile: PSI, KS, mean and width shifts.

New data is streamed through the same two passes as the profile (moments, then histograms on
the *reference* bin edges plus under/overflow), so both sides are binned identically and memory
stays bounded. Per feature:

* PSI over reference deciles (fine bins grouped so each group holds ~10 % of the reference;
  under/overflow join the outer groups; empty shares floored at 1e-4);
* KS: the largest CDF difference at the fine bin edges (a lower bound of the unbinned
  statistic, exact to one fine bin);
* mean shift in reference standard deviations, and the ratio of standard deviations.

A feature alerts when any metric crosses its threshold; the report ranks features by how far
past (or close to) a threshold they are.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import DataError
from .profile import Column, chunks_of, column_views, histograms, moments

__all__ = [
    "DEFAULT_THRESHOLDS",
    "DriftReport",
    "FeatureDrift",
    "compare",
    "ks_statistic",
    "parse_thresholds",
    "psi",
]

#: alert thresholds; 'mean' is |shift| in reference σ, 'width' is |log(σ_new/σ_ref)|
DEFAULT_THRESHOLDS: Mapping[str, float] = {"psi": 0.2, "ks": 0.1}
_KNOWN = ("psi", "ks", "mean", "width")
_EPS = 1e-4
_GROUPS = 10


def parse_thresholds(text: str | None) -> dict[str, float]:
    """``"psi=0.2,ks=0.1,mean=0.5"`` → mapping; unnamed metrics keep their defaults."""
    out = dict(DEFAULT_THRESHOLDS)
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if key not in _KNOWN or not sep:
            raise DataError(
                f"--threshold {item.strip()!r}: expected NAME=VALUE with NAME one of "
                f"{', '.join(_KNOWN)}"
            )
        try:
            out[key] = float(value)
        except ValueError:
            raise DataError(f"--threshold {item.strip()!r}: {value!r} is not a number") from None
    return out


def psi(ref: npt.NDArray[np.int64], new: npt.NDArray[np.int64]) -> float:
    """Population stability index of two histograms on the same bins (with under/overflow)."""
    total_ref, total_new = ref.sum(), new.sum()
    if total_ref == 0 or total_new == 0:
        return math.nan
    start = (np.cumsum(ref) - ref) / total_ref
    group = np.minimum((start * _GROUPS + 1e-9).astype(np.int64), _GROUPS - 1)
    p = np.bincount(group, weights=ref, minlength=_GROUPS) / total_ref
    q = np.bincount(group, weights=new, minlength=_GROUPS) / total_new
    used = (p > 0) | (q > 0)
    p, q = np.maximum(p[used], _EPS), np.maximum(q[used], _EPS)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_statistic(ref: npt.NDArray[np.int64], new: npt.NDArray[np.int64]) -> float:
    """Largest distance between the two binned CDFs."""
    if ref.sum() == 0 or new.sum() == 0:
        return math.nan
    return float(np.max(np.abs(np.cumsum(ref) / ref.sum() - np.cumsum(new) / new.sum())))


@dataclass(frozen=True)
class FeatureDrift:
    """The drift metrics of one feature, and which thresholds it crossed."""

    name: str
    kind: str
    psi: float
    ks: float
    mean_shift: float
    width_ratio: float
    count_ref: int
    count_new: int
    alerts: tuple[str, ...]
    score: float
    #: histograms incl. under/overflow on the reference edges (for plots; not in JSON)
    edges: Sequence[float] = field(default=(), repr=False)
    ref_counts: Sequence[int] = field(default=(), repr=False)
    new_counts: Sequence[int] = field(default=(), repr=False)

    def to_json(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return None if math.isnan(v) or math.isinf(v) else round(v, 6)

        return {
            "name": self.name,
            "kind": self.kind,
            "psi": num(self.psi),
            "ks": num(self.ks),
            "meanShift": num(self.mean_shift),
            "widthRatio": num(self.width_ratio),
            "countRef": self.count_ref,
            "countNew": self.count_new,
            "alerts": list(self.alerts),
        }


@dataclass(frozen=True)
class DriftReport:
    """Every feature's drift, worst first, with the thresholds used."""

    ref: str
    data: str
    thresholds: Mapping[str, float]
    features: tuple[FeatureDrift, ...]
    skipped: tuple[str, ...] = ()

    @property
    def alerts(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.alerts]

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "data": self.data,
            "thresholds": dict(self.thresholds),
            "alert": bool(self.alerts),
            "alerts": [f.name for f in self.alerts],
            "features": [f.to_json() for f in self.features],
            "skipped": list(self.skipped),
        }


def compare(
    profile: Mapping[str, Any],
    data: str | os.PathLike[str],
    *,
    outputs: str | os.PathLike[str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    ref: str = "",
) -> DriftReport:
    """Compare ``data`` (NPZ of the same arrays as the profile's inputs), and ``outputs`` (NPZ
    of model outputs) when given, with ``profile``."""
    thr = dict(DEFAULT_THRESHOLDS if thresholds is None else thresholds)
    results: list[FeatureDrift] = []
    skipped: list[str] = []
    for kind, source in (("input", data), ("output", outputs)):
        feats = [f for f in profile["features"] if f["kind"] == kind]
        if not feats:
            continue
        if source is None:
            skipped += [f["name"] for f in feats]
            continue
        results += _compare_source(feats, source, kind, thr)
    results.sort(key=lambda f: (-f.score, f.name))
    return DriftReport(ref, os.fspath(data), thr, tuple(results), tuple(skipped))


def _compare_source(
    feats: Sequence[Mapping[str, Any]],
    source: str | os.PathLike[str],
    kind: str,
    thr: Mapping[str, float],
) -> list[FeatureDrift]:
    arrays = list(dict.fromkeys(f["array"] for f in feats))
    cols = {c.name: c for c in column_views(source, arrays)}
    missing = [f["name"] for f in feats if f["name"] not in cols]
    if missing:
        raise DataError(
            f"{source} has no feature {missing[0]!r} of the reference profile",
            hint="the new data must have the arrays (and columns) the profile was made from",
        )
    out = []
    for array in arrays:
        group = [f for f in feats if f["array"] == array]
        width = [c for c in cols.values() if c.array == array]
        src = chunks_of(source, array, width[0].flatten)
        mom = moments(src)
        if mom is None:
            raise DataError(f"{source}: array {array!r} has no rows")
        edges = _edges_per_column(group, width)
        hists = histograms(src, edges)
        for f in group:
            j = cols[f["name"]].column or 0
            ref_counts = np.concatenate([[0], np.asarray(f["counts"], dtype=np.int64), [0]])
            out.append(
                _metrics(f, ref_counts, hists[j], float(mom.mean[j]), float(mom.std[j]), kind, thr)
            )
    return out


def _edges_per_column(
    group: Sequence[Mapping[str, Any]], width: Sequence[Column]
) -> list[npt.NDArray[np.float64]]:
    """Reference edges for each column of the new array (columns not profiled: one dummy bin)."""
    edges = [np.array([0.0, 1.0]) for _ in width]
    for f in group:
        edges[f["column"] or 0] = np.asarray(f["edges"], dtype=np.float64)
    return edges


def _metrics(
    f: Mapping[str, Any],
    ref_counts: npt.NDArray[np.int64],
    new_counts: npt.NDArray[np.int64],
    mean: float,
    std: float,
    kind: str,
    thr: Mapping[str, float],
) -> FeatureDrift:
    ref_std = float(f["std"])
    shift = (
        (mean - float(f["mean"])) / ref_std
        if ref_std > 0
        else (0.0 if mean == f["mean"] else math.inf)
    )
    ratio = std / ref_std if ref_std > 0 else (1.0 if std == 0 else math.inf)
    values = {
        "psi": psi(ref_counts, new_counts),
        "ks": ks_statistic(ref_counts, new_counts),
        "mean": abs(shift),
        "width": abs(math.log(ratio)) if 0 < ratio < math.inf else math.inf,
    }
    ratios = {k: values[k] / t for k, t in thr.items() if t > 0 and not math.isnan(values[k])}
    alerts = tuple(sorted(k for k, r in ratios.items() if r >= 1.0))
    return FeatureDrift(
        name=f["name"],
        kind=kind,
        psi=values["psi"],
        ks=values["ks"],
        mean_shift=shift,
        width_ratio=ratio,
        count_ref=int(f["count"]),
        count_new=int(new_counts.sum()),
        alerts=alerts,
        score=max(ratios.values(), default=0.0),
        edges=tuple(float(e) for e in f["edges"]),
        ref_counts=tuple(int(c) for c in ref_counts),
        new_counts=tuple(int(c) for c in new_counts),
    )
