"""One hashing pass per byte on the way into a repository, with every guarantee kept: nothing
unverified is signed or published (docs/design.md, "One hashing pass per byte")."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import hepbundle
from hepbundle import digest
from hepbundle.errors import IntegrityError
from hepbundle.policy import TrustPolicy
from hepbundle.repository import publish, read_name_catalog
from hepbundle.repository.layout import staging_dir
from hepbundle.signing import KeySigner, sign

from .repo_fixtures import rewrite_same_size_keep_mtime as _rewrite_same_size_keep_mtime


class Reads:
    """Bytes hashed by each digest entry point, wherever it is called from."""

    def __init__(self) -> None:
        self.hashed = 0
        self.copied = 0


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Reads]:
    import hepbundle.builder as bundle_mod
    import hepbundle.integrity as integrity_mod
    import hepbundle.repository._publishers.tarball as tarball_mod
    import hepbundle.repository.tree as tree_mod

    r = Reads()
    real_hash, real_copy = digest.hash_file, digest.copy_and_hash

    def hash_file(path: Any, *a: Any, **kw: Any) -> digest.FileDigest:
        d = real_hash(path, *a, **kw)
        r.hashed += d.size
        return d

    def copy_and_hash(src: Any, dst: Any, *a: Any, **kw: Any) -> digest.FileDigest:
        d = real_copy(src, dst, *a, **kw)
        r.copied += d.size
        return d

    class HashingReader(digest.HashingReader):
        def digest(self) -> digest.FileDigest:
            d = super().digest()
            r.copied += d.size
            return d

    monkeypatch.setattr(integrity_mod, "hash_file", hash_file)
    monkeypatch.setattr(bundle_mod, "copy_and_hash", copy_and_hash)
    monkeypatch.setattr(tree_mod, "copy_and_hash", copy_and_hash)
    monkeypatch.setattr(tarball_mod, "HashingReader", HashingReader)
    yield r


def _payload(b: hepbundle.Bundle) -> int:
    return sum(f.size for f in b.manifest.files)


@pytest.fixture(params=["node-cache", "no-cache"])
def cache(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test with the node verification cache, then with ``HEPBUNDLE_NO_CACHE=1``."""
    if request.param == "no-cache":
        monkeypatch.setenv("HEPBUNDLE_NO_CACHE", "1")
    return str(request.param)


def test_build_sign_publish_reads_each_byte_twice_at_most(
    model_dir: Path, tmp_path: Path, ec_key: tuple[Path, Path], reads: Reads, cache: str
) -> None:
    """build (copy+hash) → sign → publish (copy+hash into the repository): 2× the payload with
    the node cache; without it `sign` of a directory hashes once more (3×), while signing the
    Bundle object the build returned still reads nothing."""
    b = hepbundle.build(model_dir, tmp_path / "b")
    n = _payload(b)
    assert (reads.copied, reads.hashed) == (n, 0)
    sign(b.root, KeySigner(ec_key[0]))
    assert reads.hashed == (0 if cache == "node-cache" else n)
    reads.hashed = 0
    sign(b, KeySigner(ec_key[0]), role="release")  # the object the build returned
    assert reads.hashed == 0
    res = publish(b.root, tmp_path / "repo", policy=TrustPolicy.from_flags(keys=[ec_key[1]]))
    assert res.status == "published"
    # the build's copy + the repository's copy of the payload, plus the manifest and signatures
    meta = sum(p.stat().st_size for p in b.root.glob("hepbundle*"))
    assert reads.hashed == 0 and reads.copied == 2 * n + meta
    published = hepbundle.Bundle.load(res.path)
    assert published.verify().ok
    assert read_name_catalog(tmp_path / "repo", b.name).resolve(None).signers == res.signers


def test_sign_after_a_change_hashes_and_refuses(
    built: hepbundle.Bundle, ec_key: tuple[Path, Path], reads: Reads
) -> None:
    """The build's records vouch only for files that provably did not change: a same-size rewrite
    with the mtime set back moves the ctime, so sign hashes it and refuses."""
    _rewrite_same_size_keep_mtime(built.root / "model" / "weights.bin")
    with pytest.raises(IntegrityError, match="refusing to sign.*modified model/weights.bin"):
        sign(built.root, KeySigner(ec_key[0]))
    assert reads.hashed == built.manifest.file("model/weights.bin").size
    with pytest.raises(IntegrityError, match="modified model/weights.bin"):
        sign(built, KeySigner(ec_key[0]))
    assert not (built.root / "hepbundle.sig").exists()


def test_publish_refuses_a_file_changed_after_signing(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path], tmp_path: Path, reads: Reads
) -> None:
    """Publishing does not verify beforehand and then copy: it verifies the bytes as it copies
    them, so a change after signing is refused and nothing becomes visible."""
    _rewrite_same_size_keep_mtime(signed.root / "model" / "weights.bin")
    repo = tmp_path / "repo"
    with pytest.raises(IntegrityError, match=r"model/weights.bin changed while being copied"):
        publish(signed.root, repo, policy=TrustPolicy.from_flags(keys=[ec_key[1]]))
    assert reads.hashed == 0
    assert not list(repo.glob("bundles/**/hepbundle.json"))
    assert not any(staging_dir(repo, signed.manifest.namespace).iterdir())


def test_publish_refuses_a_signature_swapped_after_its_check(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path], tmp_path: Path
) -> None:
    """The signature files copied into the repository must be the bytes whose signature was
    checked: one replaced in between (here: by a valid signature of another key) is refused."""
    from hepbundle.repository.catalog import VersionRecord
    from hepbundle.repository.publish import PublishRequest, make_publisher, verify_for_publish

    policy = TrustPolicy.from_flags(keys=[ec_key[1]])
    b = hepbundle.Bundle.load(signed.root)
    signers = verify_for_publish(b, policy=policy, contents=False)
    other, _ = hepbundle.signing.generate_key(tmp_path / "other.pem")
    sign(signed.root, KeySigner(other), force=True)
    publisher = make_publisher("local", tmp_path / "repo")
    request = PublishRequest(b, VersionRecord.from_bundle(b, signers=signers))
    with pytest.raises(IntegrityError, match=r"hepbundle.sig changed while being copied"):
        publisher.publish(request)
    assert not list((tmp_path / "repo").glob("bundles/**/hepbundle.json"))


@pytest.mark.parametrize(
    ("damage", "kind"),
    [
        (lambda r: (r / "model" / "extra.bin").write_bytes(b"x"), "extra model/extra.bin"),
        (lambda r: (r / "MODEL_CARD.md").unlink(), "missing MODEL_CARD.md"),
        (
            lambda r: (
                (r / "MODEL_CARD.md").unlink(),
                os.symlink("/etc/hostname", r / "MODEL_CARD.md"),
            ),
            "path MODEL_CARD.md",
        ),
    ],
)
def test_publish_layout_problems_refused_before_anything_is_written(
    signed: hepbundle.Bundle,
    ec_key: tuple[Path, Path],
    tmp_path: Path,
    damage: Callable[[Path], object],
    kind: str,
) -> None:
    damage(signed.root)
    with pytest.raises(IntegrityError, match=kind):
        publish(signed.root, tmp_path / "repo", policy=TrustPolicy.from_flags(keys=[ec_key[1]]))
    assert not (tmp_path / "repo").exists()


def test_tarball_backend_verifies_as_it_packs(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path], tmp_path: Path, reads: Reads
) -> None:
    """The tarball backend hashes every file as it streams it into the archive (one read of
    each byte, no verification pass before) and compares it with what was verified: a change
    after signing is refused and no tar is left, under its name or a temporary one."""
    policy = TrustPolicy.from_flags(keys=[ec_key[1]])
    res = publish(signed.root, tmp_path / "repo", backend="tarball", out=tmp_path / "ok",
                  policy=policy)  # fmt: skip
    meta = sum(p.stat().st_size for p in signed.root.glob("hepbundle*"))
    assert res.status == "written" and (reads.hashed, reads.copied) == (0, _payload(signed) + meta)
    import tarfile

    with tarfile.open(res.artifacts["bundle_tar"]) as tar:
        packed = tar.extractfile("1.2.0/model/weights.bin")
        assert packed is not None
        assert packed.read() == (signed.root / "model" / "weights.bin").read_bytes()
    _rewrite_same_size_keep_mtime(signed.root / "model" / "weights.bin")
    with pytest.raises(IntegrityError, match="model/weights.bin changed while being copied"):
        publish(signed.root, tmp_path / "repo", backend="tarball", out=tmp_path / "tar",
                policy=policy)  # fmt: skip
    assert reads.hashed == 0 and not list((tmp_path / "tar").glob("*.tar*"))
    assert not list((tmp_path / "tar").glob(".*"))


def test_build_with_a_key_signs_in_the_same_process_reading_each_byte_once(
    model_dir: Path, tmp_path: Path, ec_key: tuple[Path, Path], reads: Reads
) -> None:
    """`hepbundle build --key` = build + sign of the Bundle the build returned: the payload is
    copied (and hashed) once, signing reads none of it, and the result verifies under the key;
    a key that cannot sign is refused before anything is built."""
    from click.testing import CliRunner

    from hepbundle.cli import main

    out = tmp_path / "b"
    r = CliRunner().invoke(main, ["build", str(model_dir), "-o", str(out), "--key", str(ec_key[0])])
    assert r.exit_code == 0, r.output
    assert "signed atlas/tauid@1.2.0 as primary by key sha256:" in r.output
    b = hepbundle.open(out, policy=TrustPolicy.from_flags(keys=[ec_key[1]]))
    assert [s.kind for s in b.signature] == ["key"]
    assert (reads.copied, reads.hashed) == (_payload(b), 0)
    r = CliRunner().invoke(
        main, ["build", str(model_dir), "-o", str(tmp_path / "c"), "--key", str(ec_key[1])]
    )
    assert r.exit_code != 0 and "is a public key, not a private key" in r.output
    assert not (tmp_path / "c").exists()


def test_build_publish_copies_each_byte_once(
    model_dir: Path,
    tmp_path: Path,
    ec_key: tuple[Path, Path],
    reads: Reads,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`hepbundle build --key K --publish REPO`: built in REPO's staging area, signed, and moved
    into place after publish's checks: the payload is read, hashed and written once (not
    copied again into the repository); the published version verifies byte for byte and no
    work directory is left; --alias points at it."""
    from click.testing import CliRunner

    from hepbundle.cli import main
    from hepbundle.repository.layout import staging_dirs

    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"version: 1\nrules:\n  - namespace: '*'\n    signers:\n      - key: {ec_key[1]}\n"
    )
    monkeypatch.setenv("HEPBUNDLE_POLICY", str(policy))
    repo = tmp_path / "repo"
    args = ["build", str(model_dir), "--key", str(ec_key[0]), "--publish", str(repo)]
    r = CliRunner().invoke(main, [*args, "--alias", "prod"])
    assert r.exit_code == 0, r.output
    assert f"published atlas/tauid@1.2.0 -> {repo / 'bundles/atlas/tauid/1.2.0'}" in r.output
    b = hepbundle.resolve("atlas/tauid@prod", repos=[repo], verify="full")
    assert b.verify().ok and [s.kind for s in b.signature] == ["key"]
    assert (reads.copied, reads.hashed) == (_payload(b), 0)
    assert [list(d.iterdir()) for d in staging_dirs(repo)] == [[]]
    r = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--publish builds into the repository" in r.output


def test_build_sign_publish_move_writes_each_byte_once(
    model_dir: Path, tmp_path: Path, ec_key: tuple[Path, Path], reads: Reads, cache: str
) -> None:
    """build → sign → publish --move: the build's copy is the only one; with the node cache
    neither sign nor publish reads a payload byte (the build's records vouch for the moved
    files), without it each of them hashes the payload once (the Bundle objects here are
    reopened from the paths, as three commands would)."""
    b = hepbundle.build(model_dir, tmp_path / "b")
    n = _payload(b)
    sign(b.root, KeySigner(ec_key[0]))
    res = publish(
        b.root, tmp_path / "repo", policy=TrustPolicy.from_flags(keys=[ec_key[1]]), move=True
    )
    assert res.status == "published" and not b.root.exists()
    assert (reads.copied, reads.hashed) == (n, 0 if cache == "node-cache" else 2 * n)
    reads.hashed = 0
    assert hepbundle.Bundle.load(res.path).verify().ok and reads.hashed == n


def test_publish_move_refuses_a_file_changed_after_the_build(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path], tmp_path: Path, reads: Reads
) -> None:
    """The build's record no longer matches a file rewritten after it (same size, mtime set
    back: the ctime moved), so publish --move hashes that file, and only it, where it landed,
    and refuses it: nothing published, the bundle back where it was."""
    _rewrite_same_size_keep_mtime(signed.root / "model" / "weights.bin")
    repo = tmp_path / "repo"
    with pytest.raises(IntegrityError, match=r"modified model/weights.bin"):
        publish(signed.root, repo, policy=TrustPolicy.from_flags(keys=[ec_key[1]]), move=True)
    assert (reads.hashed, reads.copied) == (signed.manifest.file("model/weights.bin").size, 0)
    assert not list(repo.glob("bundles/**/hepbundle.json"))
    assert (signed.root / "hepbundle.json").is_file()
