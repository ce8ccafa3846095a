"""A recording stand-in for ``cvmfs_server`` (no CVMFS server package exists on these machines).

Installed by the tests as an executable named ``cvmfs_server`` on PATH. It logs every call, keeps
the transaction state of each repository, and enforces what the real server does and what our
publisher must respect (see the CVMFS notes):

* ``transaction REPO[/PATH]`` fails with exit 17 while one is open; otherwise it first checks that
  the tree under ``$HEPBUNDLE_CVMFS_ROOT/REPO`` equals the last published snapshot (nothing was
  written outside a transaction);
* ``publish [-a TAG] [-m MSG] REPO`` and ``abort -f REPO`` need an open transaction; publish
  snapshots the tree, abort restores the snapshot (files written inside vanish);
* ``STANDIN_FAIL=<subcommand>`` makes that subcommand fail (exit 1), to exercise the abort path.

Every violation is logged with ``"violation"`` and exits 99, so a test sees it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

STATE = Path(os.environ["STANDIN_STATE"])
MOUNT = Path(os.environ["HEPBUNDLE_CVMFS_ROOT"])


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    if root.exists():
        for p in sorted(root.rglob("*")):
            rel = str(p.relative_to(root))
            out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def log(entry: dict[str, object]) -> None:
    with open(STATE / "calls.jsonl", "a") as f:
        f.write(json.dumps({**entry, "time": time.time()}) + "\n")


def die(code: int, message: str, argv: list[str], violation: bool = False) -> None:
    log({"argv": argv, "exit": code, "error": message, "violation": violation})
    print(message, file=sys.stderr)
    raise SystemExit(code)


def main(argv: list[str]) -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    if not argv:
        die(2, "usage: cvmfs_server COMMAND", argv)
    cmd, args = argv[0], argv[1:]
    repo = args[-1].split("/", 1)[0] if args else ""
    tree, published, is_open = MOUNT / repo, STATE / f"{repo}.published", STATE / f"{repo}.open"
    if cmd == os.environ.get("STANDIN_FAIL"):
        die(1, f"{cmd}: simulated failure", argv)
    if cmd == "transaction":
        if is_open.exists():
            die(17, "another transaction is already open", argv)
        before = (
            json.loads(published.with_suffix(".json").read_text()) if published.exists() else {}
        )
        if snapshot(tree) != before:
            die(99, "the repository was written outside a transaction", argv, violation=True)
        is_open.write_text(args[0])
    elif cmd == "publish":
        if not is_open.exists():
            die(99, "publish without an open transaction", argv, violation=True)
        if len(args) != 5 or args[0] != "-a" or args[2] != "-m":
            die(99, f"unexpected publish arguments {args}", argv, violation=True)
        shutil.rmtree(published, ignore_errors=True)
        if tree.exists():
            shutil.copytree(tree, published)
        published.with_suffix(".json").write_text(json.dumps(snapshot(tree)))
        is_open.unlink()
    elif cmd == "abort":
        if args[:1] != ["-f"]:
            die(99, "abort without -f would ask a question", argv, violation=True)
        if not is_open.exists():
            die(99, "abort without an open transaction", argv, violation=True)
        shutil.rmtree(tree, ignore_errors=True)
        if published.exists():
            shutil.copytree(published, tree)
        is_open.unlink()
    else:
        die(2, f"unknown command {cmd}", argv)
    log({"argv": argv, "exit": 0})


if __name__ == "__main__":
    main(sys.argv[1:])
