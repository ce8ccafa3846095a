"""Reference profiles of training data: per-feature moments and fine histograms, in bounded memory.

A profile is computed from NPZ arrays in two streaming passes over row chunks (never a whole
array in memory): pass 1 merges per-chunk count, mean and M2 (Chan et al., numerically stable)
and min/max; pass 2 fills a fixed histogram of :data:`FINE_BINS` equal bins between min and max
(one bin per value for integer features of small range). Quantiles are read off the cumulative
histogram, so they are exact to one fine bin width. ``profile.json`` (schema
``bundle-spec/v1/profile.schema.json``) is what ``hepbundle build --profile-from`` packs and
what ``hepbundle drift`` compares new data against.

Features: a 1-D array is one feature; a 2-D array with at most :data:`MAX_COLUMNS` columns
(e.g. a jagged branch padded to N) gives one feature per column, ``name[i]``; anything larger
is profiled as the flat distribution of all its values.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._base import __version__, created_timestamp
from ..digest import hash_file
from ..errors import DataError
from ..manifest import canonical_json
from ..spec import validate
from ._npz import iter_npz_chunks, npz_members

__all__ = [
    "FINE_BINS",
    "MAX_COLUMNS",
    "MEDIA_TYPE",
    "Moments",
    "binned_counts",
    "column_views",
    "moments",
    "profile_bytes",
    "profile_npz",
]

MEDIA_TYPE = "application/vnd.hepbundle.profile.v1+json"
SCHEMA = "profile.schema.json"
FINE_BINS = 200
MAX_COLUMNS = 32
QUANTILES = np.linspace(0.0, 1.0, 101)
_ROWS = 1 << 16

F64 = npt.NDArray[np.float64]
Chunks = Callable[[], Iterator[F64]]


@dataclass(frozen=True)
class Column:
    """One feature: NPZ array, column (or None for 1-D / flattened), and its display name."""

    array: str
    column: int | None
    name: str
    dtype: np.dtype[Any]
    flatten: bool = False


def column_views(npz: str | os.PathLike[str], arrays: Sequence[str] | None = None) -> list[Column]:
    """The features of ``npz`` (all numeric arrays, or those named), in array order."""
    members = npz_members(npz)
    if arrays:
        missing = [a for a in arrays if a not in members]
        if missing:
            raise DataError(
                f"{npz} has no array {missing[0]!r}; arrays: {', '.join(members) or '(none)'}"
            )
    out: list[Column] = []
    for name in arrays or list(members):
        m = members[name]
        if m.dtype.kind not in "biuf":
            if arrays:
                raise DataError(f"{npz}: array {name!r} of dtype {m.dtype} is not numeric")
            continue
        if len(m.shape) == 1:
            out.append(Column(name, None, name, m.dtype))
        elif len(m.shape) == 2 and m.shape[1] <= MAX_COLUMNS:
            out += [Column(name, i, f"{name}[{i}]", m.dtype) for i in range(m.shape[1])]
        else:
            out.append(Column(name, None, name, m.dtype, flatten=True))
    if not out:
        raise DataError(f"{npz} has no numeric arrays to profile")
    return out


def chunks_of(npz: str | os.PathLike[str], array: str, flatten: bool) -> Chunks:
    """A re-startable source of float64 2-D chunks (rows × columns) of one NPZ array."""

    def gen() -> Iterator[F64]:
        for c in iter_npz_chunks(npz, array, rows=_ROWS):
            c64 = np.asarray(c, dtype=np.float64)
            yield c64.reshape(-1, 1) if flatten or c64.ndim == 1 else c64.reshape(len(c64), -1)

    return gen


@dataclass
class Moments:
    """Finite count, non-finite count, mean, M2, min, max per column, merged chunk by chunk."""

    n: F64
    bad: F64
    mean: F64
    m2: F64
    lo: F64
    hi: F64

    @property
    def std(self) -> F64:
        return np.sqrt(np.divide(self.m2, self.n, out=np.zeros_like(self.m2), where=self.n > 0))


def moments(chunks: Chunks) -> Moments | None:
    """Pass 1 over ``chunks``; None when there are no rows."""
    acc: Moments | None = None
    for c in chunks():
        finite = np.isfinite(c)
        n = finite.sum(axis=0).astype(np.float64)
        x = np.where(finite, c, 0.0)
        mean = np.divide(x.sum(axis=0), n, out=np.zeros_like(n), where=n > 0)
        m2 = (np.where(finite, c - mean, 0.0) ** 2).sum(axis=0)
        lo = np.where(finite, c, np.inf).min(axis=0, initial=np.inf)
        hi = np.where(finite, c, -np.inf).max(axis=0, initial=-np.inf)
        bad = (~finite).sum(axis=0).astype(np.float64)
        if acc is None:
            acc = Moments(n, bad, mean, m2, lo, hi)
            continue
        tot = acc.n + n
        delta = mean - acc.mean
        w = np.divide(n, tot, out=np.zeros_like(n), where=tot > 0)
        acc.m2 = acc.m2 + m2 + delta**2 * acc.n * w
        acc.mean = acc.mean + delta * w
        acc.n, acc.bad = tot, acc.bad + bad
        acc.lo, acc.hi = np.minimum(acc.lo, lo), np.maximum(acc.hi, hi)
    return acc


def fine_edges(lo: float, hi: float, integer: bool) -> F64:
    """Histogram edges of one feature: one bin per value for small-range integers, else
    :data:`FINE_BINS` equal bins; a constant feature gets one bin around its value."""
    if not np.isfinite(lo):
        return np.array([0.0, 1.0])
    if integer and hi - lo < FINE_BINS:
        return np.arange(lo - 0.5, hi + 1.0, 1.0)
    if hi <= lo:
        return np.array([lo - 0.5, lo + 0.5])
    return np.linspace(lo, hi, FINE_BINS + 1)


def binned_counts(x: F64, edges: F64) -> npt.NDArray[np.int64]:
    """Counts of finite ``x`` in [underflow, bin 1 … bin N, overflow]; the last bin includes
    its upper edge, like ``np.histogram``."""
    x = x[np.isfinite(x)]
    idx = np.searchsorted(edges, x, side="right")
    idx[x == edges[-1]] = len(edges) - 1
    return np.bincount(idx, minlength=len(edges) + 1).astype(np.int64)


def histograms(chunks: Chunks, edges: Sequence[F64]) -> list[npt.NDArray[np.int64]]:
    """Pass 2: per column, counts with under/overflow on that column's edges."""
    acc = [np.zeros(len(e) + 1, dtype=np.int64) for e in edges]
    for c in chunks():
        for j, e in enumerate(edges):
            acc[j] += binned_counts(c[:, j], e)
    return acc


def quantiles(edges: F64, counts: npt.NDArray[np.int64]) -> list[float]:
    """:data:`QUANTILES` of a histogram (counts without under/overflow), linear within bins."""
    total = counts.sum()
    if total == 0:
        return []
    cdf = np.concatenate([[0.0], np.cumsum(counts) / total])
    # np.interp needs increasing x: drop the flat stretches of empty bins
    keep = np.concatenate([[True], np.diff(cdf) > 0])
    return [float(v) for v in np.interp(QUANTILES, cdf[keep], edges[keep])]


def profile_columns(
    cols: Sequence[Column], npz: str | os.PathLike[str], kind: str
) -> list[dict[str, Any]]:
    """Profile entries of ``cols`` of ``npz``; arrays are streamed twice, one array at a time."""
    out: list[dict[str, Any]] = []
    by_array: dict[str, list[Column]] = {}
    for c in cols:
        by_array.setdefault(c.array, []).append(c)
    for array, group in by_array.items():
        src = chunks_of(npz, array, group[0].flatten)
        mom = moments(src)
        if mom is None:
            raise DataError(f"{npz}: array {array!r} has no rows to profile")
        integer = group[0].dtype.kind in "biu"
        # column_views gives every column of a 2-D array, in order: chunk column j = group[j]
        edges = [fine_edges(float(mom.lo[j]), float(mom.hi[j]), integer) for j in range(len(group))]
        hists = histograms(src, edges)
        for j, c in enumerate(group):
            e, counts = edges[j], hists[j][1:-1]
            out.append(
                {
                    "name": c.name,
                    "kind": kind,
                    "array": c.array,
                    "column": c.column,
                    "dtype": np.lib.format.dtype_to_descr(c.dtype),
                    "count": int(mom.n[j]),
                    "nonFinite": int(mom.bad[j]),
                    "min": float(mom.lo[j]),
                    "max": float(mom.hi[j]),
                    "mean": float(mom.mean[j]),
                    "std": float(mom.std[j]),
                    "edges": [float(v) for v in e],
                    "counts": [int(v) for v in counts],
                    "quantiles": quantiles(e, counts),
                }
            )
    return out


def profile_npz(
    npz: str | os.PathLike[str],
    features: Sequence[str] | None = None,
    *,
    outputs: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """The profile of ``features`` (NPZ array names; default all numeric arrays) of ``npz``,
    plus, when given, of every array of the ``outputs`` NPZ (model outputs on the same data)."""
    cols = column_views(npz, features)
    entries = profile_columns(cols, npz, "input")
    sources = [_source(npz)]
    if outputs is not None:
        entries += profile_columns(column_views(outputs), outputs, "output")
        sources.append(_source(outputs))
    prof: dict[str, Any] = {
        "mediaType": MEDIA_TYPE,
        "created": created_timestamp(),
        "tool": {"name": "hepbundle", "version": __version__},
        "sources": sources,
        "quantiles": [float(q) for q in QUANTILES],
        "features": entries,
    }
    validate(prof, SCHEMA, filename="profile.json")
    return prof


def _source(p: str | os.PathLike[str]) -> dict[str, Any]:
    d = hash_file(p)
    return {"path": Path(p).name, "size": d.size, "sha256": d.sha256}


def profile_bytes(profile: dict[str, Any]) -> bytes:
    """The canonical bytes of ``profile.json``."""
    return canonical_json(profile)
