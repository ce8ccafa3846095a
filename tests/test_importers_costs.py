"""What an import costs per file and per batch, counted (never timed): the system calls that
look at each file, and the node-cache and catalogue files written (issue 21 finding 8)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import hepbundle
from hepbundle.importers import plan_import
from hepbundle.importers.run import ImportOptions, run_import
from hepbundle.policy import TrustPolicy
from hepbundle.signing import KeySigner

from .import_fixtures import make_groupdata, policy_env

__all__ = ["policy_env"]  # fixture re-export

#: 2 packages × 2 versions × 5 files in two subdirectories: 4 bundles, 20 files
FILES = {
    f"Pkg{i}/00-0{j}-00/d{k % 2}/w{k}.bin": bytes([i, j, k]) * (1000 + k)
    for i in range(2)
    for j in (1, 2)
    for k in range(5)
}


def _counting(
    monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...] = ("stat", "lstat")
) -> Counter[str]:
    """Every ``os.stat``/``os.lstat`` of a path (not of a descriptor), by path; pathlib's
    ``stat``/``exists``/``is_dir`` and ``os.path``'s checks go through these."""
    seen: Counter[str] = Counter()
    for name in names:
        real: Callable[..., Any] = getattr(os, name)

        def counted(path: Any, *a: Any, _real: Callable[..., Any] = real, **kw: Any) -> Any:
            if not isinstance(path, int):
                seen[os.fspath(path)] += 1
            return _real(path, *a, **kw)

        monkeypatch.setattr(os, name, counted)
    return seen


def test_each_file_is_looked_at_a_bounded_number_of_times(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each source file is stat'ed at most 3 times by the import after the plan (the build's
    one look, and the identity before and after the build that proves the store did not change
    under it; was 8), and each file of a new bundle at most twice before it is moved into place
    (the signing check and the check just before the move, against the identity the build
    recorded as it wrote the file; was 5), and at least once: nothing unlooked-at is
    published."""
    src = make_groupdata(tmp_path / "GD", FILES)
    repo = tmp_path / "repo"
    plan = plan_import("atlas-groupdata", src)
    assert len(plan.bundles) == 4
    seen = _counting(monkeypatch)
    report = run_import(
        plan,
        ImportOptions(repo=repo, signer=KeySigner(ec_key[0]), compat_tree=tmp_path / "compat"),
    )
    monkeypatch.undo()
    assert report.count("published") == 4
    per_source = [seen[str(src / rel)] for rel in FILES]
    assert max(per_source) <= 3, per_source
    staged: Counter[str] = Counter()  # <work dir>/bundle/<path> → stats before the move
    for path, n in seen.items():
        if "/.hepbundle-staging/" in path and path.endswith(".bin"):
            staged[path] += n
    assert len(staged) == len(FILES), sorted(staged)  # every payload file was looked at
    assert max(staged.values()) <= 2, staged
    policy = TrustPolicy.from_flags(keys=[ec_key[1]])
    for rel, data in FILES.items():
        pkg, ver, sub, name = rel.split("/")
        v = ".".join(str(int(x)) for x in ver.split("-"))
        b = hepbundle.resolve(f"atlas/{pkg.lower()}@{v}", repos=[repo], policy=policy)
        assert b.path(f"{sub}/{name}").read_bytes() == data
