"""Benchmark of `hepbundle data root2npz` against bare uproot + np.savez, in one run.

    python tools/bench/root2npz.py [--workdir /tmp/hb-bench-root2npz] [--entries 1000000]
                                   [--kind ttree|rntuple|both] [--throughput-only]

Input: a TTree of ``--entries`` entries × 17 branches (9 float32, 4 float64, 4 int32; uproot's
default compression), and a second one 5× larger; with ``--kind rntuple`` (or ``both``) also the
same columns as an RNTuple (what ``f["Events"] = {...}`` writes), read by both contenders. Throughput: best of ``--repeat`` interleaved
in-process runs of ``root2npz`` (which also checksums the inputs and hashes the output) against
the baseline ``uproot.open(f)["Events"].arrays(library="np")`` + ``np.savez`` on the same file.
Peak RSS: each contender as a grandchild process (RUSAGE_CHILDREN of a fresh launcher) on the
1× and 5× input, at each of ``--rss-steps``. Page cache is warm for every contender.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import uproot
from _common import PY, best_of, run_child, warm

from hepbundle.data.root2npz import root2npz

BRANCHES = [f"f{i}" for i in range(9)] + [f"d{i}" for i in range(4)] + [f"i{i}" for i in range(4)]
_TYPES = {"f": np.float32, "d": np.float64, "i": np.int32}

# VmHWM is the peak RSS of the current memory image, which exec replaces: clean in a child
TRACE = """
import sys
from hepbundle.data.root2npz import root2npz
done = [0]
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
def chunk(n):
    done[0] += n
    print(done[0], hwm(), flush=True)
root2npz([sys.argv[1]], "Events", sys.argv[2].split(","), sys.argv[3], step_size=sys.argv[4],
         command=[], progress=chunk)
"""

BASELINE = """
import sys, numpy as np, uproot
arrays = uproot.open(sys.argv[1])["Events"].arrays(library="np")
np.savez(sys.argv[2], **arrays)
"""


def make_input(path: Path, entries: int, seed: int = 0, kind: str = "ttree") -> Path:
    rng = np.random.default_rng(seed)
    step = 200_000

    def chunk(n: int) -> dict[str, np.ndarray]:
        return {
            b: (
                rng.integers(0, 1000, n).astype(np.int32)
                if b[0] == "i"
                else rng.normal(0, 1, n).astype(_TYPES[b[0]])
            )
            for b in BRANCHES
        }

    with uproot.recreate(path) as f:
        if kind == "rntuple":
            f["Events"] = chunk(min(step, entries))  # a dict: uproot writes an RNTuple
            for lo in range(step, entries, step):
                f["Events"].extend(chunk(min(step, entries - lo)))
            return path
        t = f.mktree("Events", {b: _TYPES[b[0]] for b in BRANCHES})
        for lo in range(0, entries, step):
            t.extend(chunk(min(step, entries - lo)))
    return path


def baseline(src: Path, out: Path) -> None:
    arrays = uproot.open(src)["Events"].arrays(library="np")
    np.savez(out, **arrays)


def peak_rss(argv: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in bytes) of ``argv`` (see _common.run_child)."""
    wall, rss, _ = run_child(argv)
    return wall, rss


def throughput(src: Path, kind: str, args: argparse.Namespace, work: Path) -> None:
    """Interleaved best-of runs of both contenders on ``src``; prints the ratio."""
    mib = src.stat().st_size / 2**20
    print(
        f"{kind} input: {args.entries:,} entries x {len(BRANCHES)} branches, {mib:.1f} MiB on disk"
    )
    # interleaved, best of --repeat: both contenders see the same moments of a shared machine;
    # CPU seconds (all threads of this process) too: on a loaded machine wall time mostly
    # measures the other jobs
    t_base = t_ours = c_base = c_ours = float("inf")

    def ours() -> None:
        root2npz([src], "Events", BRANCHES, work / "ours.npz", step_size=args.step_size, command=[])

    for _ in range(args.repeat):
        c0 = time.process_time()
        t_base = min(t_base, best_of(1, lambda: baseline(src, work / "base.npz"))[0])
        c1 = time.process_time()
        t_ours = min(t_ours, best_of(1, ours)[0])
        c2 = time.process_time()
        c_base, c_ours = min(c_base, c1 - c0), min(c_ours, c2 - c1)
    ref = np.load(work / "base.npz")
    got = np.load(work / "ours.npz")
    assert all(np.array_equal(ref[b], got[b]) for b in BRANCHES), "outputs differ"
    rate = args.entries / 1e6
    print(f"{kind} baseline arrays()+savez : {t_base:6.2f} s  {rate / t_base:6.2f} M entries/s")
    print(f"{kind} hepbundle root2npz      : {t_ours:6.2f} s  {rate / t_ours:6.2f} M entries/s")
    print(f"{kind} throughput ratio        : {t_base / t_ours:.2f}x of baseline (target >= 0.8)")
    print(f"{kind} CPU seconds             : baseline {c_base:.2f}, root2npz {c_ours:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5, help="interleaved throughput runs")
    ap.add_argument("--step-size", default="100MB", help="step size of the throughput runs")
    ap.add_argument("--rss-steps", default="10MB,50MB,100MB", help="step sizes of the RSS runs")
    ap.add_argument("--kind", choices=["ttree", "rntuple", "both"], default="both")
    ap.add_argument("--throughput-only", action="store_true", help="skip the peak-RSS runs")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hb-bench-root2npz-"))
    work.mkdir(parents=True, exist_ok=True)
    kinds = ["ttree", "rntuple"] if args.kind == "both" else [args.kind]
    small = work / "small.root"
    large = work / "large.root"
    if "ttree" in kinds and not small.exists():
        make_input(small, args.entries)
    if "ttree" in kinds and not large.exists():
        make_input(large, 5 * args.entries, seed=1)
    inputs = {"ttree": small} if "ttree" in kinds else {}
    large_rn = work / "large-rntuple.root"
    if "rntuple" in kinds:
        inputs["rntuple"] = work / "small-rntuple.root"
        if not inputs["rntuple"].exists():
            make_input(inputs["rntuple"], args.entries, kind="rntuple")
        if not large_rn.exists():
            make_input(large_rn, 5 * args.entries, seed=1, kind="rntuple")
    warm([p for p in (small, large, *inputs.values()) if p.exists()])
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    for kind in kinds:
        throughput(inputs[kind], kind, args, work)
    if args.throughput_only:
        return

    script = work / "baseline.py"
    script.write_text(BASELINE)
    _, floor = peak_rss([PY, "-c", "import numpy, uproot, awkward, hepbundle.cli"])
    print(f"peak RSS of the imports alone: {floor / 2**20:.0f} MiB")
    runs = [("ttree 1x", small), ("ttree 5x", large)] if "ttree" in kinds else []
    runs += (
        [("rntuple 1x", inputs["rntuple"]), ("rntuple 5x", large_rn)] if "rntuple" in kinds else []
    )
    for label, src in runs:
        out = work / f"bchild-{label.replace(' ', '-')}.npz"
        bwall, brss = peak_rss([PY, str(script), str(src), str(out)])
        line = f"peak RSS {label}: baseline {brss / 2**20:6.0f} MiB ({bwall:4.1f} s)"
        for step in args.rss_steps.split(","):
            cmd = [PY, "-m", "hepbundle", "data", "root2npz", str(src), "-t", "Events"]
            cmd += ["-b", ",".join(BRANCHES), "--step-size", step]
            wall, rss = peak_rss([*cmd, "-o", str(out.with_name("child.npz"))])
            line += f" | root2npz step {step}: {rss / 2**20:4.0f} MiB ({wall:4.1f} s)"
        print(line)
    if "ttree" not in kinds:
        return
    step = args.rss_steps.split(",")[-1]
    trace = subprocess.run(
        [PY, "-c", TRACE, str(large), ",".join(BRANCHES), str(work / "trace.npz"), step],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    points = [(int(a), int(b)) for a, b in zip(trace[::2], trace[1::2], strict=True)]
    first_peak = next(n for n, m in points if m == points[-1][1])
    print(
        f"peak RSS during the 5x run at step {step} (in-process, VmHWM after each chunk): "
        + ", ".join(f"{n / 1e6:.1f}M:{m}" for n, m in points)
        + f" MiB; final peak first reached after {first_peak / 1e6:.1f}M of {points[-1][0] / 1e6:.1f}M entries"
    )
    if args.workdir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    sys.exit(main())
