"""Everything a build or a publisher makes visible is world-readable (0644/0755) by construction:
published as root under a strict umask, then read and resolved by an unprivileged account."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import hepbundle
from hepbundle.repository import append_record, publish
from hepbundle.repository.layout import catalog_file, index_file

from .needs import missing
from .repo_fixtures import make_bundle

SRC = Path(hepbundle.__file__).resolve().parents[1]


@pytest.fixture
def strict_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A scratch directory other accounts may traverse (pytest's tmp_path is 0700)."""
    d = Path(tempfile.mkdtemp(prefix="hepbundle-perm-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _modes(root: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for p in root.rglob("*"):
        if not p.is_symlink():
            out[str(p.relative_to(root))] = stat.S_IMODE(p.stat().st_mode)
    return out


def _assert_public(root: Path) -> None:
    for rel, mode in _modes(root).items():
        full = root / rel
        want = 0o755 if full.is_dir() else 0o644
        assert mode == want, f"{full} is {oct(mode)}, want {oct(want)}"


def test_build_sign_publish_record_tarball_are_public_under_umask_077(
    public_tmp: Path, ec_key: tuple[Path, Path], strict_umask: None
) -> None:
    b = make_bundle(public_tmp, key=ec_key[0])
    _assert_public(b.root)
    repo = public_tmp / "repo"
    policy = hepbundle.TrustPolicy.from_flags(keys=[ec_key[1]])
    publish(b.root, repo, alias="prod", policy=policy)
    append_record(repo, "atlas/tauid", "1.0.0", "eval", {"auc": 0.9}, {"plot.png": b"png"})
    _assert_public(repo / "bundles")
    _assert_public(repo / "catalog")
    _assert_public(catalog_file(repo, "atlas/tauid").parent)
    out = public_tmp / "tar"
    publish(b.root, public_tmp / "base", backend="tarball", out=out, policy=policy)
    tars = sorted(out.glob("*.tar"))
    assert len(tars) == 3  # bundle, catalogue patch, repository.json of the new repository
    _assert_public(out)
    for t in tars:
        with tarfile.open(t) as tf:
            assert {m.mode for m in tf.getmembers()} <= {0o644, 0o755}


def _run_as_nobody(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(SRC),
        "HOME": str(cwd),
        "XDG_CACHE_HOME": str(cwd / "nobody-cache"),
        "LANG": "C.UTF-8",
    }
    cmd = [
        "setpriv",
        "--reuid=nobody",
        f"--regid={pwd.getpwnam('nobody').pw_gid}",
        "--clear-groups",
        "--",
        *args,
    ]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="publishing as root and reading as nobody needs root")
def test_an_unprivileged_account_resolves_and_reads_what_root_published(
    public_tmp: Path, ec_key: tuple[Path, Path], strict_umask: None
) -> None:
    if shutil.which("setpriv") is None:
        missing("needs setpriv (util-linux) to read as an unprivileged account")
    pub = public_tmp / "keys"
    pub.mkdir()
    pub.chmod(0o755)
    shutil.copyfile(ec_key[1], pub / "signing-key.pub")
    (pub / "signing-key.pub").chmod(0o644)
    b = make_bundle(public_tmp, key=ec_key[0])
    repo = public_tmp / "repo"
    policy = hepbundle.TrustPolicy.from_flags(keys=[ec_key[1]])
    publish(b.root, repo, alias="prod", policy=policy)
    out = public_tmp / "tar"
    publish(b.root, public_tmp / "base", backend="tarball", out=out, policy=policy)
    home = public_tmp / "nobody-home"
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    key = str(pub / "signing-key.pub")
    script = f"""
import sqlite3, sys, tarfile, glob
import hepbundle
from pathlib import Path
pol = hepbundle.TrustPolicy.from_flags(keys=[Path({key!r})])
b = hepbundle.resolve("atlas/tauid@prod", repos=[{str(repo)!r}], policy=pol)
print(b.path("model/model.onnx").read_bytes()[:4].hex())
con = sqlite3.connect("file:{index_file(repo, "atlas")}?mode=ro", uri=True)
print(con.execute("select count(*) from versions").fetchone()[0])
for t in sorted(glob.glob("{out}/*.tar")):
    with tarfile.open(t) as tf:
        for m in tf.getmembers():
            if m.isfile():
                tf.extractfile(m).read()
print("tar ok")
"""
    r = _run_as_nobody(sys.executable, "-c", script, cwd=home)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["00010203", "1", "tar", "ok"]
    hb = [sys.executable, "-m", "hepbundle"]
    r = _run_as_nobody(
        *hb,
        "path",
        "atlas/tauid@prod",
        "model/model.onnx",
        "--key",
        key,
        "--repo",
        str(repo),
        cwd=home,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(repo / "bundles/atlas/tauid/1.0.0/model/model.onnx")
    for cmd in (["show", "atlas/tauid@prod"], ["find", "tau"], ["versions", "atlas/tauid"]):
        r = _run_as_nobody(*hb, *cmd, "--repo", str(repo), cwd=home)
        assert r.returncode == 0, (cmd, r.stderr)
        assert "1.0.0" in r.stdout
