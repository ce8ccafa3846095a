"""PNG of the worst-drifting features: reference vs new histograms on the reference bins."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..extras import require
from .drift import DriftReport

__all__ = ["plot_drift"]


def plot_drift(report: DriftReport, out: str | os.PathLike[str], top: int = 6) -> Path:
    """Draw the ``top`` worst features of ``report`` (normalised step histograms, under- and
    overflow in the title) into ``out`` (PNG, written to a temporary name and renamed)."""
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")  # batch nodes and CI have no display
    plt = require("matplotlib.pyplot")
    feats = [f for f in report.features if f.edges][: max(1, top)]
    ncols = min(3, max(1, len(feats)))
    nrows = max(1, -(-len(feats) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax in axes.flat[len(feats) :]:
        ax.set_visible(False)
    for ax, f in zip(axes.flat, feats, strict=False):
        edges = np.asarray(f.edges)
        for counts, label, style in ((f.ref_counts, "reference", "-"), (f.new_counts, "new", "--")):
            c = np.asarray(counts, dtype=np.float64)
            total = c.sum() or 1.0
            ax.stairs(c[1:-1] / total, edges, label=label, linestyle=style)
        under = f.new_counts[0] / max(1, sum(f.new_counts))
        over = f.new_counts[-1] / max(1, sum(f.new_counts))
        flag = " ALERT" if f.alerts else ""
        ax.set_title(
            f"{f.name}{flag}\nPSI {f.psi:.3f}  KS {f.ks:.3f}  shift {f.mean_shift:+.2f}σ"
            f"\nnew outside range: {under:.1%} below, {over:.1%} above",
            fontsize=8,
        )
        ax.legend(fontsize=7)
    fig.suptitle(f"drift of {report.data} vs {report.ref}", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=90)
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return out
