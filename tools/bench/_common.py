"""Shared helpers of the benchmarks: timing, peak RSS of a child process, data generation."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def best_of(n: int, fn: Callable[[], T]) -> tuple[float, T]:
    """Best wall time of ``n`` runs (the least disturbed by the other load on the machine)."""
    best = float("inf")
    result: T
    for _ in range(n):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def run_child(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Run a command; return (wall seconds, peak RSS of that child in bytes, its stdout).

    Peak RSS comes from ``wait4``'s rusage of exactly this child (Linux reports KiB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{argv[:4]} failed: {err.read().decode()}")
        return wall, usage.ru_maxrss * 1024, out.read().decode()


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


PY = sys.executable
