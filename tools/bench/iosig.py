"""Benchmark of reading a batch against a bundle's I/O signature (bundle-spec/io.md).

    python tools/bench/iosig.py [--jets 1000000] [--repeat 5]

A 16-feature signature with a range and a normalisation on every feature. For a batch of
``--jets`` jets given as 16 float32 columns (what an NPZ or a ROOT tree gives), best of
``--repeat``: ``io.check`` (names, dtype, shape, ranges, NaN), ``io.normalise`` (stack in the
recorded order, normalise, cast) and, as the baseline measured in the same run, the numpy a job
writes by hand without a signature (``np.stack`` of the columns, then ``(x - mean) / std``).
Prints each time and its ratio to the baseline.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from _common import best_of

from hepbundle.iosig import IOSignature


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jets", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    names = [f"f{i:02d}" for i in range(16)]
    sig = IOSignature.from_json(
        {
            "inputs": [
                {
                    "name": "x",
                    "dtype": "float32",
                    "shape": ["N", 16],
                    "features": [
                        {
                            "name": n,
                            "normalisation": {"mean": 0.0, "std": 2.0},
                            "range": {"min": -10.0, "max": 10.0},
                        }
                        for n in names
                    ],
                }
            ],
            "outputs": [],
        }
    )
    rng = np.random.default_rng(0)
    cols = {n: rng.normal(size=args.jets).astype(np.float32) for n in names}

    def by_hand() -> np.ndarray:
        return (np.stack([cols[n] for n in names], axis=1) - 0.0) / 2.0

    base, _ = best_of(args.repeat, by_hand)
    check, report = best_of(args.repeat, lambda: sig.check(cols))
    assert report.ok, report
    norm, out = best_of(args.repeat, lambda: sig.normalise(cols))
    np.testing.assert_allclose(out["x"], by_hand(), rtol=1e-6)
    print(f"jets {args.jets:,} x 16 float32 columns; load average {os.getloadavg()[0]:.2f}")
    print(f"baseline (np.stack + (x - mean) / std by hand)  {base * 1e3:8.1f} ms  1.00x")
    print(
        f"io.check (names, dtype, shape, ranges, NaN)     {check * 1e3:8.1f} ms  {check / base:.2f}x"
    )
    print(
        f"io.normalise (stack, normalise, cast)           {norm * 1e3:8.1f} ms  {norm / base:.2f}x"
    )


if __name__ == "__main__":
    main()
