"""What an import costs per file and per batch, counted (never timed): the system calls that
look at each file, the publishes of a chunked import, and what a killed import keeps and a
re-run does not read again (issue 21 finding 8)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import hepbundle
import hepbundle.importers.run as run_mod
from hepbundle.cli import main
from hepbundle.importers import plan_import
from hepbundle.importers.run import ImportOptions, run_import
from hepbundle.policy import TrustPolicy
from hepbundle.repository.catalog import list_names, read_name_catalog
from hepbundle.repository.layout import staging_dirs
from hepbundle.signing import KeySigner

from .import_fixtures import count_source_hashes, make_groupdata, policy_env

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


def _refs(files: dict[str, bytes]) -> list[tuple[str, str, str]]:
    """(ref, bundle path, legacy path) of each file of a GroupData tree of ``Pkg/00-0j-00/…``."""
    out = []
    for rel in files:
        pkg, ver, rest = rel.split("/", 2)
        v = ".".join(str(int(x)) for x in ver.split("-"))
        out.append((f"atlas/{pkg.lower()}@{v}", rest, rel))
    return out


def test_publishes_in_chunks_of_publish_every(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """4 new versions with ``publish_every=3``: two publishes (3, then 1), in plan order; by
    default (1000 versions, 30 s) one publish for the whole import."""
    src = make_groupdata(tmp_path / "GD", FILES)
    batches: list[list[str]] = []
    real = run_mod.publish_many

    def publish_many(bundles: list[hepbundle.Bundle], *a: Any, **kw: Any) -> Any:
        batches.append([b.ref for b in bundles])
        return real(bundles, *a, **kw)

    monkeypatch.setattr(run_mod, "publish_many", publish_many)
    plan = plan_import("atlas-groupdata", src)
    refs = [b.ref for b in plan.bundles]
    opts = ImportOptions(repo=tmp_path / "chunked", signer=KeySigner(ec_key[0]), publish_every=3)
    assert run_import(plan, opts).count("published") == 4
    assert batches == [refs[:3], refs[3:]]
    batches.clear()
    opts = ImportOptions(repo=tmp_path / "whole", signer=KeySigner(ec_key[0]))
    assert run_import(plan, opts).count("published") == 4
    assert batches == [refs]


def test_a_killed_import_keeps_its_published_chunks_and_the_rerun_resumes(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real SIGKILL after the first chunk of 2 of 6 new versions was published: those 2 stay
    published, whole and verifiable, nothing of the rest is visible; the re-run publishes the
    other 4, reads no byte of the 2 (``unchanged`` from the node's records of the sources) and
    leaves no work directory, like the killed run's."""
    files = {f"Pkg{i}/00-0{j}-00/d/w{k}.bin": os.urandom(20_000 + k) for i in range(3)
             for j in (1, 2) for k in range(3)}  # fmt: skip
    src = make_groupdata(tmp_path / "GD", files)
    repo, scratch, cache = tmp_path / "repo", tmp_path / "scratch", tmp_path / "cache"
    scratch.mkdir()
    args = ["import", "atlas-groupdata", str(src), "--repo", str(repo), "--key", str(ec_key[0]),
            "--work-dir", str(scratch), "--publish-every", "2"]  # fmt: skip
    env = {
        **os.environ,
        "HEPBUNDLE_CRASH_AT": "import-chunk-published",
        "HEPBUNDLE_CACHE_DIR": str(cache),
    }
    p = subprocess.run(
        [sys.executable, "-m", "hepbundle", *args], env=env, capture_output=True, check=False
    )
    assert p.returncode == -signal.SIGKILL, p.stderr
    published = {(n, v) for n in list_names(repo) for v in read_name_catalog(repo, n).versions}
    first = sorted({ref for ref, _, _ in _refs(files)})[:2]
    assert published == {tuple(r.split("@")) for r in first}
    policy = TrustPolicy.from_flags(keys=[ec_key[1]])
    for ref in first:
        hepbundle.resolve(ref, repos=[repo], verify="full", policy=policy)
    ns = repo / "bundles" / "atlas"
    placed = sorted(str(d.relative_to(ns)) for d in ns.glob("pkg*/*"))
    assert placed == ["pkg0/0.1.0", "pkg0/0.2.0"]  # nothing of the chunk after it is visible
    monkeypatch.setenv("HEPBUNDLE_CACHE_DIR", str(cache))
    hashed = count_source_hashes(monkeypatch)
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "4 published, 2 unchanged" in r.output
    assert hashed == []  # what the killed run published was not read again
    assert list(scratch.iterdir()) == []
    assert [list(d.iterdir()) for d in staging_dirs(repo)] == [[]] * len(staging_dirs(repo))
    for ref, path, rel in _refs(files):
        b = hepbundle.resolve(ref, repos=[repo], verify="full", policy=policy)
        assert b.path(path).read_bytes() == files[rel]
