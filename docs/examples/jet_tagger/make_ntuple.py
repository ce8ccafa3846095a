"""Write a toy jet-tagging ntuple with uproot: 16 features, 5 classes (g, q, W, Z, t).

    python make_ntuple.py OUT.root --entries 20000 [--shift 0.0] [--seed 1]

Each class has its own mean vector; ``--shift`` moves some features of every jet to mimic changed
detector conditions (used by the drift step of the pipeline).
"""

from __future__ import annotations

import argparse

import numpy as np

FEATURES = [f"j_f{i:02d}" for i in range(16)]
CLASSES = ["g", "q", "W", "Z", "t"]


def make(entries: int, seed: int, shift: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(12345).normal(scale=0.45, size=(len(CLASSES), len(FEATURES)))
    label = rng.integers(0, len(CLASSES), size=entries).astype(np.int32)
    x = centres[label] + rng.normal(size=(entries, len(FEATURES)))
    x[:, :4] += shift  # a calorimeter-scale-like shift on the first four features
    out = {name: x[:, i].astype(np.float32) for i, name in enumerate(FEATURES)}
    out["label"] = label
    return out


def main() -> None:
    import uproot

    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--entries", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shift", type=float, default=0.0)
    args = ap.parse_args()
    data = make(args.entries, args.seed, args.shift)
    with uproot.recreate(args.out) as f:
        # mktree: a classic TTree (plain assignment writes an RNTuple in recent uproot)
        f.mktree("jets", {k: v.dtype for k, v in data.items()}, title="toy jets").extend(data)


if __name__ == "__main__":
    main()
