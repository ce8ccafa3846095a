"""Histogram PNG of a comparison: per output, emulation − float and hardware − emulation.

matplotlib is used headless (Agg) and only imported here; the figure goes to bytes so the caller
decides where it lands (a file, an evaluation record attachment).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from ..extras import require

if TYPE_CHECKING:
    from .compare import CompareReport

__all__ = ["render_png"]


def render_png(report: CompareReport) -> bytes:
    """One row per output, one panel per difference kind, counts on a log scale."""
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")  # batch nodes and CI have no display
    plt = require("matplotlib.pyplot")
    kinds = sorted({k for o in report.outputs for k in o.diffs}) or ["(nothing compared)"]
    rows = max(1, len(report.outputs))
    fig, axes = plt.subplots(
        rows, len(kinds), figsize=(4.5 * len(kinds), 3.2 * rows), squeeze=False
    )
    try:
        for r, out in enumerate(report.outputs):
            for c, kind in enumerate(kinds):
                ax = axes[r][c]
                diff = out.diffs.get(kind)
                if diff is None or diff.size == 0:
                    ax.set_axis_off()
                    continue
                span = float(np.max(np.abs(diff)))
                bins = np.linspace(-span, span, 61) if span > 0 else np.linspace(-1, 1, 3)
                ax.hist(diff, bins=bins, color="tab:red" if out.failures else "tab:blue")
                ax.set_yscale("log")
                ax.set_title(f"{out.name}: {kind}", fontsize=9)
                ax.set_xlabel("difference")
        verdict = "PASS" if report.passed else "FAIL"
        fig.suptitle(f"{report.ref} — {verdict}", fontsize=10)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
    finally:
        plt.close(fig)
    return buf.getvalue()
