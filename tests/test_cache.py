"""The node-local verification cache: repeat checks skip hashing, and it never vouches for
changed content (docs/verification-cache.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import hepbundle
from hepbundle.cache import VerificationCache, _cvmfs_key, parse_mountinfo
from hepbundle.errors import IntegrityError


def cached_open(built: hepbundle.Bundle, cache_dir: Path) -> hepbundle.Bundle:
    b = hepbundle.Bundle.load(built.root)
    b.cache = VerificationCache(cache_dir)
    return b


def test_second_verification_hashes_nothing(built: hepbundle.Bundle, tmp_path: Path) -> None:
    first = cached_open(built, tmp_path / "c").verify()
    assert first.ok and first.cached == 0 and first.bytes > 0
    again = cached_open(built, tmp_path / "c").verify()  # a new process would read the same file
    assert again.ok and again.cached == len(built.manifest.files) and again.bytes == 0


def _same_size_change_keep_mtime(p: Path) -> None:
    st = p.stat()
    data = bytearray(p.read_bytes())
    data[0] ^= 0xFF
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # a tamperer resets mtime; ctime still moves


@pytest.mark.parametrize("how", ["rewrite-same-size-reset-mtime", "replace-file"])
def test_changed_content_never_vouched_for(
    built: hepbundle.Bundle, tmp_path: Path, how: str
) -> None:
    assert cached_open(built, tmp_path / "c").verify().ok
    target = built.root / "model" / "model.onnx"
    if how == "replace-file":
        data = bytearray(target.read_bytes())
        data[-1] ^= 1
        tmp = target.with_name("x.tmp")
        tmp.write_bytes(bytes(data))
        os.replace(tmp, target)  # new inode
    else:
        _same_size_change_keep_mtime(target)
    b = cached_open(built, tmp_path / "c")
    report = b.verify()
    assert report.of_kind("modified") == ["model/model.onnx"]
    with pytest.raises(IntegrityError):
        cached_open(built, tmp_path / "c").path("model/model.onnx")


def test_lazy_path_uses_cache(built: hepbundle.Bundle, tmp_path: Path) -> None:
    cached_open(built, tmp_path / "c").path("model/model.onnx")
    b = cached_open(built, tmp_path / "c")
    b.path("model/model.onnx")
    entries = b.cache._entries(b.manifest_digest)  # type: ignore[union-attr]
    assert set(entries) == {"model/model.onnx"}


def test_other_manifest_digest_does_not_match(built: hepbundle.Bundle, tmp_path: Path) -> None:
    cache = VerificationCache(tmp_path / "c")
    p = built.root / "model" / "model.onnx"
    e = built.manifest.file("model/model.onnx")
    cache.record(built.manifest_digest, [(e.path, e.digest, p, p.stat())])
    assert cache.is_verified(built.manifest_digest, e.path, e.digest, p, p.stat())
    assert not cache.is_verified("0" * 64, e.path, e.digest, p, p.stat())
    assert not cache.is_verified(built.manifest_digest, e.path, "f" * 64, p, p.stat())


@pytest.mark.parametrize("damage", ["garbage", "not-private", "unwritable"])
def test_broken_cache_falls_back_to_hashing(
    built: hepbundle.Bundle, tmp_path: Path, damage: str
) -> None:
    c = tmp_path / "c"
    assert cached_open(built, c).verify().ok
    (cache_file,) = list((c / "verified").rglob("*.json"))
    if damage == "garbage":
        cache_file.write_bytes(b"\x00{not json")
    elif damage == "not-private":
        cache_file.chmod(0o666)
    else:
        cache_file.unlink()
        for d in (cache_file.parent, c / "verified"):
            d.chmod(0o500)
    try:
        r = cached_open(built, c).verify()
        assert r.ok and r.cached == 0 and r.bytes > 0
        if damage == "unwritable" and os.getuid() != 0:
            assert not cache_file.exists()
    finally:
        for d in (cache_file.parent, c / "verified"):
            d.chmod(0o700)


def test_mountinfo_recognises_only_cvmfs2_fuse() -> None:
    text = (
        "36 25 0:32 / /cvmfs/atlas.cern.ch ro,nosuid,nodev,relatime shared:19 - fuse cvmfs2 ro,user_id=0\n"
        "37 25 0:33 / /cvmfs/sft.cern.ch ro,relatime - fuse cvmfs2 ro\n"
        "38 25 0:34 / /cvmfs/fake.cern.ch rw,relatime - fuse sshfs rw\n"
        "39 25 8:1 / /home rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "40 25 0:35 / /eos/user rw - fuse eosxd rw\n"
    )
    assert set(parse_mountinfo(text)) == {"/cvmfs/atlas.cern.ch", "/cvmfs/sft.cern.ch"}


def test_xattrs_ignored_off_cvmfs(tmp_path: Path) -> None:
    """A user.hash on a local file system is writable by its owner and proves nothing."""
    p = tmp_path / "f"
    p.write_bytes(b"x")
    try:
        os.setxattr(p, "user.hash", b"da39a3ee5e6b4b0d3255bfef95601890afd80709")
        os.setxattr(p, "user.revision", b"42")
        os.setxattr(p, "user.fqrn", b"atlas.cern.ch")
    except OSError:
        pytest.skip("this file system has no user xattrs")
    assert _cvmfs_key(str(p)) is None


def test_mountinfo_recognises_a_stratum0() -> None:
    """CVMFS notes: on a Stratum-0 /cvmfs/R is an overlay over /var/spool/cvmfs/R/rdonly, a FUSE
    mount whose source is the repository name. Trusted only while the overlay is read-only (no
    transaction: inside one, changed files sit in a plain writable upper directory)."""
    fuse = (
        "101 27 0:52 / /var/spool/cvmfs/hepbundle.test/rdonly ro,nosuid,nodev,relatime "
        "shared:60 - fuse hepbundle.test ro,user_id=0,group_id=0,allow_other\n"
    )
    overlay = (
        "102 27 0:53 / /cvmfs/hepbundle.test {mode},relatime shared:61 - overlay "
        "overlay_hepbundle.test {mode},lowerdir=/var/spool/cvmfs/hepbundle.test/rdonly,"
        "upperdir=/var/spool/cvmfs/hepbundle.test/scratch/current,"
        "workdir=/var/spool/cvmfs/hepbundle.test/ofs_workdir\n"
    )
    published = parse_mountinfo(fuse + overlay.format(mode="ro"))
    assert published == ("/var/spool/cvmfs/hepbundle.test/rdonly", "/cvmfs/hepbundle.test")
    in_transaction = parse_mountinfo(fuse + overlay.format(mode="rw"))
    assert in_transaction == ("/var/spool/cvmfs/hepbundle.test/rdonly",)
    # a FUSE file system named like a repository elsewhere, or an overlay over anything else: no
    assert parse_mountinfo(fuse.replace("/var/spool/cvmfs/hepbundle.test/rdonly", "/mnt/x")) == ()
    other = overlay.format(mode="ro").replace("lowerdir=/var/spool", "lowerdir=/srv")
    assert parse_mountinfo(fuse + other) == ("/var/spool/cvmfs/hepbundle.test/rdonly",)
