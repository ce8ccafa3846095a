"""Crash safety and concurrency of the local backend, with real processes.

A publisher is SIGKILLed at each named crash point (``HEPBUNDLE_CRASH_AT``); the repository must
then hold the old catalogue or the new one with the version fully present, and the next writer
must finish or discard what was left. Eight publishers racing on one repository lose nothing, and
of two different bundles under one version exactly one wins.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import hepbundle
from hepbundle.repository import FindQuery, find, publish, publish_many, read_name_catalog
from hepbundle.repository._crash import CRASH_POINTS
from hepbundle.repository.index import recent_file
from hepbundle.repository.layout import index_file, serial_of, staging_dir

from .repo_fixtures import check_invariants, make_bundle

_PUBLISH = """
import json, sys
from hepbundle.errors import HepbundleError
from hepbundle.repository import publish
try:
    r = publish(sys.argv[1], sys.argv[2], allow_unsigned=True, alias=sys.argv[3] or None)
    print(json.dumps({"status": r.status, "recovered": list(r.recovered)}))
except HepbundleError as e:
    print(json.dumps({"error": str(e)}))
"""

#: points at or after which the new version has reached its final place
_VISIBLE_FROM = CRASH_POINTS.index("renamed")


def _spawn(
    bundle: Path, repo: Path, alias: str = "", crash: str | None = None
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "HEPBUNDLE_CRASH_AT"}
    if crash:
        env["HEPBUNDLE_CRASH_AT"] = crash
    return subprocess.Popen(
        [sys.executable, "-c", _PUBLISH, str(bundle), str(repo), alias],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_sigkill_at_every_point_leaves_old_or_new_state(tmp_path: Path, point: str) -> None:
    repo = tmp_path / "repo"
    publish(make_bundle(tmp_path, version="1.0.0").root, repo, allow_unsigned=True, alias="prod")
    serial_before = serial_of(repo, "atlas")
    new = make_bundle(tmp_path, version="1.1.0")

    proc = _spawn(new.root, repo, "prod", crash=point)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"did not crash at {point}: {err}"

    # right after the crash: every catalogued version is complete, the catalogue is old or new
    cat = read_name_catalog(repo, "atlas/tauid")
    state = (set(cat.versions), cat.aliases["prod"])
    assert state in [({"1.0.0"}, "1.0.0"), ({"1.0.0", "1.1.0"}, "1.1.0")]
    check_invariants(repo, settled=False)

    # the next writer finishes (or discards) the interrupted publish, then does its own
    proc = _spawn(make_bundle(tmp_path, version="1.2.0").root, repo)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["status"] == "published"
    versions = check_invariants(repo)["atlas/tauid"]
    visible = CRASH_POINTS.index(point) >= _VISIBLE_FROM
    assert versions == ({"1.0.0", "1.1.0", "1.2.0"} if visible else {"1.0.0", "1.2.0"})
    assert read_name_catalog(repo, "atlas/tauid").aliases["prod"] == (
        "1.1.0" if visible else "1.0.0"
    )
    assert serial_of(repo, "atlas") > serial_before
    if point not in ("locked", "cleaned"):
        assert result["recovered"], "the interrupted publish left nothing to recover?"


@pytest.mark.parametrize("mode", ["recent", "fold"])
@pytest.mark.parametrize("point", ["catalogued", "index-uncommitted", "indexed", "serial-bumped"])
def test_sigkill_in_a_large_shard_with_its_recent_shard(
    tmp_path: Path, point: str, mode: str
) -> None:
    """The same with a shard large enough that a publish writes its recent shard (``recent``),
    or fills the recent shard past its bound so that it is folded into the index (``fold``)."""
    repo = tmp_path / "repo"
    base = [make_bundle(tmp_path, version=f"1.{i}.0").root for i in range(40)]
    publish_many(base, repo, allow_unsigned=True)
    before = 3 if mode == "fold" else 0  # 3 publishes with an alias: 5 recent rows; 6 fold
    for k in range(before):
        publish(
            make_bundle(tmp_path, version=f"2.{k}.0").root, repo, allow_unsigned=True, alias="prod"
        )
    index = index_file(repo, "atlas")
    old_index = index.read_bytes()
    assert recent_file(index).is_file() == (mode == "fold")
    proc = _spawn(make_bundle(tmp_path, version="3.0.0").root, repo, "prod", crash=point)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"did not crash at {point}: {err}"
    heads = [h.version for h in find(repo, FindQuery())]  # readers: the old state or the new
    old_head = f"2.{before - 1}.0" if before else "1.39.0"
    assert heads in ([old_head], ["3.0.0"])
    check_invariants(repo, settled=False)
    proc = _spawn(make_bundle(tmp_path, version="3.1.0").root, repo)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert [h.version for h in find(repo, FindQuery())] == ["3.1.0"]
    assert check_invariants(repo)["atlas/tauid"] >= {"3.0.0", "3.1.0"}  # index == rebuild
    folded = index.read_bytes() != old_index
    assert folded == (mode == "fold")


def test_stale_staging_is_cleaned_and_reported(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    publish(make_bundle(tmp_path, version="1.0.0").root, repo, allow_unsigned=True)
    junk = staging_dir(repo, "atlas") / "x.y@2.0.0.abcd" / "bundle"
    junk.mkdir(parents=True)
    (junk / "half.bin").write_bytes(b"\0" * 10)
    res = publish(make_bundle(tmp_path, version="1.1.0").root, repo, allow_unsigned=True)
    assert res.recovered == ("removed stale staging area x.y@2.0.0.abcd",)
    check_invariants(repo)


@pytest.mark.slow
def test_eight_concurrent_publishers(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    bundles = [make_bundle(tmp_path, version=f"1.{i}.0") for i in range(6)]
    bundles += [make_bundle(tmp_path, version="9.0.0", payload=p) for p in (b"a", b"b")]
    procs = [_spawn(b.root, repo, "prod") for b in bundles]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    assert [r.get("status") for r in results[:6]] == ["published"] * 6
    racing = results[6:]
    assert sorted(r.get("status", "refused") for r in racing) == ["published", "refused"]
    loser = next(r for r in racing if "error" in r)
    assert "already published with different content" in loser["error"]
    winner = bundles[6 + racing.index(next(r for r in racing if "status" in r))]
    cat = read_name_catalog(repo, "atlas/tauid")
    assert set(cat.versions) == {f"1.{i}.0" for i in range(6)} | {"9.0.0"}
    assert cat.versions["9.0.0"].manifest_digest == winner.manifest_digest
    assert len(cat.alias_history) == 7 and serial_of(repo, "atlas") == 7
    check_invariants(repo)


def _bundle_of(tmp_path: Path, version: str, n_files: int) -> Path:
    """A real bundle of ``n_files`` payload files."""
    src = tmp_path / "src" / f"{version}-{n_files}"
    for i in range(n_files):
        (src / "model" / f"part-{i:03d}.bin").parent.mkdir(parents=True, exist_ok=True)
        (src / "model" / f"part-{i:03d}.bin").write_bytes(os.urandom(100) + bytes([i % 256]))
    (src / "hepbundle.yaml").write_text(
        f"name: atlas/tauid\nversion: {version}\nsummary: s\nauthors: [A <a@b.c>]\n"
        "files:\n  - path: model\n    role: weights\n"
    )
    return hepbundle.build(src, tmp_path / "dist" / version).root


def test_a_batch_is_made_durable_by_one_sync_before_anything_is_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Durability is one syncfs per batch, not an fsync per file: the sync of the staged copies
    runs before the first version becomes visible, a second one after the renames and before
    the catalogue names them; the number of fsyncs does not grow with the files published."""
    import hepbundle.repository.tree as tree_mod
    from hepbundle import _base

    repo = tmp_path / "repo"
    seen: list[tuple[set[str], set[str]]] = []
    real_sync = _base.sync_filesystem

    def sync(path: Path) -> None:
        real_sync(path)  # the real syncfs(2)
        visible = {p.name for p in repo.glob("bundles/atlas/tauid/*")}
        seen.append(
            (visible, set(read_name_catalog(repo, "atlas/tauid", missing_ok=True).versions))
        )

    fsyncs: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    small = [_bundle_of(tmp_path, v, 1) for v in ("1.0.0", "1.1.0")]
    large = [_bundle_of(tmp_path, v, 60) for v in ("2.0.0", "2.1.0")]
    publish(_bundle_of(tmp_path, "0.1.0", 1), repo, allow_unsigned=True)  # creates the repository
    monkeypatch.setattr(tree_mod, "sync_filesystem", sync)
    monkeypatch.setattr(os, "fsync", fsync)
    publish_many(small, repo, allow_unsigned=True)
    old = {"0.1.0"}
    assert seen == [(old, old), (old | {"1.0.0", "1.1.0"}, old)]
    n_small = len(fsyncs)
    seen.clear()
    fsyncs.clear()
    publish_many(large, repo, allow_unsigned=True)
    old |= {"1.0.0", "1.1.0"}
    assert seen == [(old, old), (old | {"2.0.0", "2.1.0"}, old)]
    assert len(fsyncs) == n_small  # 120 payload files: not one fsync more than for 2
    check_invariants(repo)


def test_a_live_work_dir_survives_recovery_and_a_dead_ones_does_not(tmp_path: Path) -> None:
    """An import builds in the staging area outside the lock (LiveWorkDir): another writer's
    recovery leaves a directory a live process holds, and removes it once the holder is
    SIGKILLed."""
    from hepbundle.repository.tree import LiveWorkDir

    repo = tmp_path / "repo"
    publish(make_bundle(tmp_path, version="1.0.0").root, repo, allow_unsigned=True)
    with LiveWorkDir.in_staging(repo, "atlas", "mine") as mine:
        (mine.path / "bundle").mkdir()
        res = publish(make_bundle(tmp_path, version="1.1.0").root, repo, allow_unsigned=True)
        assert res.recovered == () and (mine.path / "bundle").is_dir()
    assert not mine.path.exists()  # closing removes it
    code = (
        "import sys, time\nfrom pathlib import Path\n"
        "from hepbundle.repository.tree import LiveWorkDir\n"
        "w = LiveWorkDir.in_staging(Path(sys.argv[1]), 'atlas', 'theirs')\n"
        "print(w.path, flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(repo)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    theirs = Path(proc.stdout.readline().strip())
    res = publish(make_bundle(tmp_path, version="1.2.0").root, repo, allow_unsigned=True)
    assert res.recovered == () and theirs.is_dir()  # held by a live process
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    res = publish(make_bundle(tmp_path, version="1.3.0").root, repo, allow_unsigned=True)
    assert res.recovered == (f"removed stale staging area {theirs.name}",)
    assert not theirs.exists()
    check_invariants(repo)


def test_a_sweep_never_takes_a_live_work_dir_before_it_is_held(tmp_path: Path) -> None:
    """A LiveWorkDir is created under a hidden name, locked, then renamed: a sweep in another
    process (recover, remove_stale) running between the creation and the lock finds nothing it
    may remove. Real sweeps are run at that very moment (an audit hook on the open of the new
    directory, which comes before its flock) and at the rename; an unheld hidden directory a
    dead process left is removed once older than CREATING_SECONDS, a young or held one is not."""
    import fcntl
    import time

    from hepbundle.repository.tree import (
        CREATING_SECONDS,
        HIDDEN_PREFIX,
        LiveWorkDir,
        recover,
    )

    repo = tmp_path / "repo"
    publish(make_bundle(tmp_path, version="1.0.0").root, repo, allow_unsigned=True)
    staging = staging_dir(repo, "atlas")
    created: list[str] = []
    seen: list[tuple[str, bool]] = []  # (event, the new directory survived the sweeps)
    busy = False
    watching = True

    def sweep(new: Path, event: str) -> None:
        nonlocal busy
        busy = True
        try:
            recover(repo)
            LiveWorkDir.remove_stale(staging, "mine.")
            seen.append((event, new.is_dir()))
        finally:
            busy = False

    def hook(event: str, args: tuple[object, ...]) -> None:
        if busy or not watching:
            return
        if event == "os.mkdir" and Path(str(args[0])).parent == staging:
            created.append(str(args[0]))
        elif event == "open" and created and str(args[0]) == created[-1]:
            sweep(Path(created[-1]), "created, not yet locked")
        elif event == "os.rename" and created and str(args[0]) == created[-1]:
            sweep(Path(created[-1]), "locked, before the rename")

    sys.addaudithook(hook)  # an audit hook stays for the process: it acts only below
    with LiveWorkDir.in_staging(repo, "atlas", "mine") as mine:
        assert [Path(c).name.startswith(HIDDEN_PREFIX + "mine.") for c in created] == [True]
        assert seen == [("created, not yet locked", True), ("locked, before the rename", True)]
        assert mine.path.name == Path(created[0]).name.removeprefix(HIDDEN_PREFIX)
        assert mine.path.is_dir() and not Path(created[0]).exists()
        # held under its final name: the sweeps leave it
        assert recover(repo) == [] and LiveWorkDir.remove_stale(staging, "mine.") == []
        assert mine.path.is_dir()
    watching = False

    # what a process killed between creating and locking leaves: removed once old enough
    old = time.time() - CREATING_SECONDS - 5
    left = staging / f"{HIDDEN_PREFIX}mine.dead"
    young = staging / f"{HIDDEN_PREFIX}mine.young"
    held = staging / f"{HIDDEN_PREFIX}mine.held"
    for d in (left, young, held):
        d.mkdir()
    os.utime(left, (old, old))
    os.utime(held, (old, old))
    fd = os.open(held, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert recover(repo) == [f"removed stale staging area {left.name}"]
        assert not left.exists() and young.is_dir() and held.is_dir()
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        (scratch / f"{HIDDEN_PREFIX}hepbundle-import-dead").mkdir()
        (scratch / f"{HIDDEN_PREFIX}hepbundle-import-young").mkdir()
        os.utime(scratch / f"{HIDDEN_PREFIX}hepbundle-import-dead", (old, old))
        assert LiveWorkDir.remove_stale(scratch, "hepbundle-import-") == [
            f"{HIDDEN_PREFIX}hepbundle-import-dead"
        ]
        assert (scratch / f"{HIDDEN_PREFIX}hepbundle-import-young").is_dir()
    finally:
        os.close(fd)
    os.utime(young, (old, old))
    assert sorted(recover(repo)) == sorted(
        f"removed stale staging area {d.name}" for d in (held, young)
    )
    check_invariants(repo)
