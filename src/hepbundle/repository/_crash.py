"""Named crash points for fault-injection tests: ``HEPBUNDLE_CRASH_AT=<point>`` kills the process.


The crash tests run a publisher in a subprocess with this variable set and check the repository
invariants afterwards; SIGKILL gives the process no chance to clean up, like a power cut would
(minus the loss of unsynced page-cache data, which the fsyncs of the writers guard against).
"""

from __future__ import annotations

import os
import signal

from ..config import value

__all__ = ["CRASH_POINTS", "MIGRATE_CRASH_POINTS", "crash_point"]

#: every point the publish path passes, in order (the tests iterate over them)
CRASH_POINTS = (
    "locked",
    "mid-copy",
    "staged",
    "verified",
    "intent-written",
    "synced",
    "renamed",
    "catalogued",
    "index-uncommitted",
    "indexed",
    "serial-bumped",
    "cleaned",
)

#: the points a format 1 → 2 migration passes
MIGRATE_CRASH_POINTS = ("migrate-namespace", "migrate-switched")


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if ``HEPBUNDLE_CRASH_AT`` names this point."""
    if value("HEPBUNDLE_CRASH_AT") == name:  # one variable: every publish passes here often
        os.kill(os.getpid(), signal.SIGKILL)
