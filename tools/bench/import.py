"""Benchmark of `hepbundle import atlas-groupdata` against a plain `cp -r` of the same tree, in one run.

    python tools/bench/import.py [--files 20000] [--total 2GiB] [--packages 50] [--workdir DIR]

Synthesises a GroupData-like tree: ``--packages`` packages × 8 versioned subdirectories (so
``packages × 8`` bundles), ``--files`` files of mixed sizes (about 70 % under 64 KiB, 25 % up to
1 MiB, the rest large, scaled so the sum is ``--total``) in nested subdirectories, random bytes.
Then, with a warm page cache for both: `cp -r` of the tree, and the import as a child process
(`hepbundle import` with EC-key signing, a key trust policy and a compat tree) into an empty
repository; reports wall time, files/s, MiB/s, the child's peak RSS and the ratio to `cp -r`.
A second import of the unchanged tree measures the idempotent re-run (hash + compare only).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _common import PY, cpu_summary, load_average, run_child, warm, write_random

from hepbundle.signing import generate_key

_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    t = text.lower().removesuffix("ib").removesuffix("b")
    return int(float(t[:-1]) * _UNITS[t[-1]]) if t and t[-1] in _UNITS else int(t)


def sizes(n: int, total: int, rng: random.Random) -> list[int]:
    raw = []
    for _ in range(n):
        r = rng.random()
        if r < 0.70:
            raw.append(rng.randint(1 << 10, 64 << 10))
        elif r < 0.95:
            raw.append(rng.randint(64 << 10, 1 << 20))
        else:
            raw.append(rng.randint(8 << 20, 64 << 20))
    scale = total / sum(raw)
    return [max(1, int(s * scale)) for s in raw]


def make_tree(root: Path, n: int, total: int, packages: int) -> list[Path]:
    rng = random.Random(20261125)
    paths = []
    for i, size in enumerate(sizes(n, total, rng)):
        pkg = f"Package{i % packages:03d}"
        version = f"00-{(i // packages) % 8:02d}-00"
        sub = f"sub{(i // (packages * 8)) % 5}"
        p = root / pkg / version / sub / f"file{i:06d}.bin"
        write_random(p, size)
        paths.append(p)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--total", type=parse_size, default=2 << 30)
    ap.add_argument("--packages", type=int, default=50)
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hb-bench-import-", dir=args.workdir))
    try:
        src = work / "GroupData"
        t0 = time.perf_counter()
        paths = make_tree(src, args.files, args.total, args.packages)
        total = sum(p.stat().st_size for p in paths)
        print(f"tree: {len(paths)} files, {total / 2**30:.2f} GiB, {args.packages * 8} bundles "
              f"(made in {time.perf_counter() - t0:.0f} s)")  # fmt: skip
        key, pub = generate_key(work / "key.pem")
        policy = work / "policy.yaml"
        policy.write_text(
            f"version: 1\nrules:\n  - namespace: '*'\n    signers:\n      - key: {pub}\n"
        )
        env = {**os.environ, "HEPBUNDLE_POLICY": str(policy)}
        print(f"CPU: {cpu_summary()}; load average before: {load_average()}")
        warm(paths)
        t0 = time.perf_counter()
        subprocess.run(["cp", "-r", str(src), str(work / "copy")], check=True)
        subprocess.run(["sync"], check=True)
        cp = time.perf_counter() - t0
        shutil.rmtree(work / "copy")
        subprocess.run(["sync"], check=True)
        warm(paths)
        argv = [PY, "-m", "hepbundle", "import", "atlas-groupdata", str(src), "--repo",
                str(work / "repo"), "--key", str(key), "--compat-tree", str(work / "compat")]  # fmt: skip
        t0 = time.perf_counter()
        _, rss, out = run_child(argv, env)
        subprocess.run(["sync"], check=True)
        imp = time.perf_counter() - t0
        summary = out.strip().splitlines()[-1]
        rerun, _, out2 = run_child(argv, env)
        mib = total / 2**20
        print(
            f"cp -r + sync:       {cp:8.1f} s  {len(paths) / cp:8.0f} files/s  {mib / cp:7.0f} MiB/s"
        )
        print(f"import + sync:      {imp:8.1f} s  {len(paths) / imp:8.0f} files/s  {mib / imp:7.0f} MiB/s"
              f"  peak RSS {rss / 2**20:.0f} MiB")  # fmt: skip
        print(f"re-run (unchanged): {rerun:8.1f} s  {len(paths) / rerun:8.0f} files/s")
        print(f"ratio import / cp -r: {imp / cp:.1f}")
        print(f"import said: {summary}")
        print(f"re-run said: {out2.strip().splitlines()[-1]}")
        print(f"load average after: {load_average()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
