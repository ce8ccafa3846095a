"""Shared helpers of the benchmarks: timing, peak RSS of a child process, data generation."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
PY = sys.executable


def cpu_summary() -> str:
    """CPU model, CPUs this process may use, and the flags that decide hashing speed."""
    model, flags = platform.processor() or "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    shown = [f for f in ("sha_ni", "avx2", "avx512f", "avx512vl", "aes", "vaes") if f in flags]
    return f"{model}, {len(os.sched_getaffinity(0))} CPUs, flags: {' '.join(shown) or 'none'}"


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, as the docs quote them."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def best_of(n: int, fn: Callable[[], T]) -> tuple[float, T]:
    """Best wall time of ``n`` runs (the least disturbed by the other load on the machine)."""
    best = float("inf")
    result: T
    for _ in range(n):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


# Linux keeps a process's peak RSS across fork + exec, so a child forked from this (large)
# process would report at least our own peak. A fresh launcher starts the measured command as its
# own child (forked from the launcher's small image) and reports RUSAGE_CHILDREN after it exits.
_LAUNCHER = """
import resource, subprocess, sys, time
with open(sys.argv[1], "wb") as out:
    t0 = time.perf_counter()
    rc = subprocess.run(sys.argv[2:], stdout=out).returncode
    wall = time.perf_counter() - t0
print(wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, rc)
"""


def run_child(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Run a command; return (wall seconds, its own peak RSS in bytes, its stdout)."""
    with tempfile.NamedTemporaryFile() as out:
        p = subprocess.run(
            [PY, "-c", _LAUNCHER, out.name, *argv], env=env, capture_output=True, text=True
        )
        fields = p.stdout.split()
        if p.returncode != 0 or len(fields) != 3 or fields[2] != "0":
            raise SystemExit(f"{argv[:4]} failed: {p.stderr[-2000:]}")
        return float(fields[0]), int(fields[1]), Path(out.name).read_text()


def write_random(path: Path, size: int, block: int = 1 << 20) -> None:
    """A file of ``size`` real random bytes (no sparse holes; page cache gets real data)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(block, left)
            f.write(os.urandom(n))
            left -= n


def warm(paths: list[Path]) -> None:
    """Read every file once so all contenders start from the same (warm) page cache."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 22):
                pass


def self_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
