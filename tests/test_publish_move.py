"""``hepbundle publish --move``: the bundle directory renamed into the repository, never copied
or hard-linked, with every check of a copying publish (repository/_move.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.cli import main
from hepbundle.errors import IntegrityError, RepositoryError
from hepbundle.policy import TrustPolicy
from hepbundle.repository import publish, publish_many, read_name_catalog
from hepbundle.repository.layout import staging_dirs

from .repo_fixtures import check_invariants, make_bundle
from .repo_fixtures import rewrite_same_size_keep_mtime as _rewrite_same_size_keep_mtime


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _no_work_dirs(repo: Path) -> bool:
    return all(not list(d.iterdir()) for d in staging_dirs(repo))


@pytest.fixture
def policy(ec_key: tuple[Path, Path]) -> TrustPolicy:
    return TrustPolicy.from_flags(keys=[ec_key[1]])


def test_move_publishes_the_directory_itself(
    signed: hepbundle.Bundle, policy: TrustPolicy, tmp_path: Path
) -> None:
    """The published files are the bundle's own inodes (renamed, one link each: not a copy,
    not a hard link); the bundle is gone from dist/, the version verifies and is catalogued."""
    before = _tree(signed.root)
    inode = (signed.root / "model" / "weights.bin").stat().st_ino
    repo = tmp_path / "repo"
    res = publish(signed.root, repo, policy=policy, move=True)
    assert res.status == "published"
    assert not signed.root.exists()
    final = Path(res.path)
    st = (final / "model" / "weights.bin").stat()
    assert (st.st_ino, st.st_nlink) == (inode, 1)
    assert {k: v for k, v in _tree(final).items() if k != ".cvmfscatalog"} == before
    assert hepbundle.Bundle.load(final).verify().ok
    assert read_name_catalog(repo, signed.name).resolve(None).signers == res.signers
    assert _no_work_dirs(repo)
    check_invariants(repo)


def _hard_link(root: Path, tmp: Path) -> None:
    os.link(root / "model" / "weights.bin", tmp / "elsewhere.bin")


def _empty_dir(root: Path, tmp: Path) -> None:
    (root / "model" / "empty").mkdir()


def _symlinked_sig(root: Path, tmp: Path) -> None:
    sig = root / "hepbundle.sig"
    (tmp / "sig").write_bytes(sig.read_bytes())
    sig.unlink()
    sig.symlink_to(tmp / "sig")


@pytest.mark.parametrize(
    ("damage", "refusal"),
    [
        (
            lambda r, t: _rewrite_same_size_keep_mtime(r / "model" / "weights.bin"),
            "modified model/weights.bin",
        ),
        (_hard_link, "model/weights.bin has 2 links"),
        (_empty_dir, "model/empty is not part of the bundle"),
        (lambda r, t: (r / "model" / "extra.bin").write_bytes(b"x"), "extra model/extra.bin"),
        (_symlinked_sig, "hepbundle.sig"),
    ],
    ids=["tampered", "hard-link", "empty-dir", "extra-file", "symlinked-signature"],
)
def test_move_refuses_what_it_cannot_vouch_for_and_puts_the_bundle_back(
    signed: hepbundle.Bundle,
    policy: TrustPolicy,
    tmp_path: Path,
    damage: Callable[[Path, Path], None],
    refusal: str,
) -> None:
    """A file changed after the build (same size, mtime set back: the ctime moved, so it is
    hashed and refused), a second link, an empty directory or extra file (a copy would not
    publish them), a symlinked signature: refused, nothing published, the bundle back in
    place as it was."""
    damage(signed.root, tmp_path)
    before = _tree(signed.root)
    repo = tmp_path / "repo"
    with pytest.raises((IntegrityError, RepositoryError), match=refusal):
        publish(signed.root, repo, policy=policy, move=True)
    assert _tree(signed.root) == before
    assert not list(repo.glob("bundles/**/hepbundle.json"))
    assert _no_work_dirs(repo)


def test_move_refuses_a_file_open_for_writing(
    signed: hepbundle.Bundle, policy: TrustPolicy, tmp_path: Path
) -> None:
    """A process still holding a payload file open for writing could change it after the move
    (a copy would have taken the bytes as they were): refused, the bundle put back; once the
    writer is gone the same publish goes through."""
    repo = tmp_path / "repo"
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys,time; f=open(sys.argv[1],'r+b'); print(1,flush=True); "
         "time.sleep(60)", str(signed.root / "model" / "weights.bin")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "1"
        with pytest.raises(IntegrityError, match="model/weights.bin is open for writing"):
            publish(signed.root, repo, policy=policy, move=True)
    finally:
        writer.kill()
        writer.communicate()
    assert (signed.root / "hepbundle.json").is_file()
    assert publish(signed.root, repo, policy=policy, move=True).status == "published"


def test_move_refuses_another_file_system(
    model_dir: Path, ec_key: tuple[Path, Path], policy: TrustPolicy, tmp_path: Path
) -> None:
    """A bundle on another file system than the repository (here /dev/shm, a tmpfs) is refused
    with a one-line error before anything is checked or moved: --move is never a silent copy."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another file system than the test's directory")
    import tempfile

    from hepbundle.signing import KeySigner, sign

    with tempfile.TemporaryDirectory(dir=shm) as d:
        b = hepbundle.build(model_dir, Path(d) / "b")
        sign(b, KeySigner(ec_key[0]))
        r = CliRunner().invoke(
            main,
            ["publish", str(b.root), "--repo", str(tmp_path / "repo"), "--key", str(ec_key[1]),
             "--move"],
        )  # fmt: skip
        assert r.exit_code == 2, r.output
        assert "--move needs the bundle on the repository's file system" in r.output
        assert "publish without --move to copy it" in r.output
        assert "Traceback" not in r.output and (b.root / "hepbundle.json").is_file()
    assert not (tmp_path / "repo" / "bundles").exists()


def test_move_refuses_a_symlink_and_a_bundle_inside_the_repository(
    signed: hepbundle.Bundle, policy: TrustPolicy, tmp_path: Path
) -> None:
    link = tmp_path / "link"
    link.symlink_to(signed.root)
    repo = tmp_path / "repo"
    with pytest.raises(RepositoryError, match="is a symlink; --move moves a bundle directory"):
        publish(link, repo, policy=policy, move=True)
    inside = repo / "mine"
    repo.mkdir()
    os.rename(signed.root, inside)
    with pytest.raises(RepositoryError, match="is inside the repository"):
        publish(inside, repo, policy=policy, move=True)
    assert (inside / "hepbundle.json").is_file()


def test_move_of_an_unchanged_version_leaves_the_bundle(
    signed: hepbundle.Bundle, policy: TrustPolicy, tmp_path: Path
) -> None:
    """Identical content already published: nothing to move, the bundle stays where it is."""
    import shutil

    repo = tmp_path / "repo"
    copy = tmp_path / "copy"
    shutil.copytree(signed.root, copy)
    assert publish(signed.root, repo, policy=policy, move=True).status == "published"
    assert publish(copy, repo, policy=policy, move=True).status == "unchanged"
    assert (copy / "hepbundle.json").is_file()


def test_move_batch_refused_puts_every_bundle_back(tmp_path: Path) -> None:
    """A batch whose second bundle is refused (a published version with other content) moves
    nothing; one refused while staging (tampered) puts the first, already moved, back too."""
    repo = tmp_path / "repo"
    publish(make_bundle(tmp_path / "a", version="1.0.0").root, repo, allow_unsigned=True)
    one = make_bundle(tmp_path / "b", version="1.1.0")
    other = make_bundle(tmp_path / "c", version="1.0.0", payload=b"different")
    with pytest.raises(RepositoryError, match="already published with different content"):
        publish_many([one.root, other.root], repo, allow_unsigned=True, move=True)
    assert (one.root / "hepbundle.json").is_file() and (other.root / "hepbundle.json").is_file()
    two = make_bundle(tmp_path / "d", name="atlas/other", version="1.0.0")
    _rewrite_same_size_keep_mtime(two.root / "model" / "model.onnx")
    with pytest.raises(IntegrityError, match="modified model/model.onnx"):
        publish_many([one.root, two.root], repo, allow_unsigned=True, move=True)
    assert (one.root / "hepbundle.json").is_file() and (two.root / "hepbundle.json").is_file()
    assert set(read_name_catalog(repo, "atlas/tauid").versions) == {"1.0.0"}
    check_invariants(repo)


def test_cli_move(signed: hepbundle.Bundle, ec_key: tuple[Path, Path], tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    args = ["publish", str(signed.root), "--repo", str(repo), "--key", str(ec_key[1]), "--move"]
    r = CliRunner().invoke(main, [*args, "--backend", "tarball"])
    assert r.exit_code == 2 and "--move publishes into a local repository" in r.output
    assert (signed.root / "hepbundle.json").is_file()
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert f"moved from {signed.root}" in r.output and not signed.root.exists()


_PUBLISH_MOVE = """
import sys
from hepbundle.repository import publish
publish(sys.argv[1], sys.argv[2], allow_unsigned=True, move=True)
"""


@pytest.mark.parametrize("point", ["locked", "staged", "intent-written", "synced", "renamed",
                                   "catalogued", "cleaned"])  # fmt: skip
def test_crash_during_a_move_keeps_the_bundle(tmp_path: Path, point: str) -> None:
    """SIGKILL at each point of a --move: before the version is visible the bundle is in dist/
    or, after the next writer's recovery, back there byte for byte; from the rename into place
    on it is published (and gone from dist/). Never lost, never half in both places."""
    repo = tmp_path / "repo"
    publish(make_bundle(tmp_path / "old", version="1.0.0").root, repo, allow_unsigned=True)
    new = make_bundle(tmp_path / "new", version="1.1.0")
    before = _tree(new.root)
    # this checkout's hepbundle, whatever the (shared, editable) environment points at
    src = str(Path(hepbundle.__file__).parents[1])
    env = {**os.environ, "HEPBUNDLE_CRASH_AT": point, "PYTHONPATH": src}
    proc = subprocess.run(
        [sys.executable, "-c", _PUBLISH_MOVE, str(new.root), str(repo)], env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    check_invariants(repo, settled=False)
    env.pop("HEPBUNDLE_CRASH_AT")
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from hepbundle.repository import recover; "
         "import json; print(json.dumps(recover(__import__('pathlib').Path(sys.argv[1]))))",
         str(repo)], env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    done = json.loads(proc.stdout)
    visible = "1.1.0" in read_name_catalog(repo, "atlas/tauid").versions
    assert visible == (point in ("renamed", "catalogued", "cleaned"))
    if visible:
        assert not new.root.exists()
    else:
        assert _tree(new.root) == before, done
        if point != "locked":
            assert any("put the bundle back" in m for m in done), done
    check_invariants(repo)


def test_a_crashed_move_whose_old_place_was_taken_is_put_beside_it(tmp_path: Path) -> None:
    """After a crash mid-move, something new at the bundle's old place (a rebuild) is not
    touched: recovery puts the bundle beside it (``<name>.unpublished-<hex>``), never deletes it."""
    repo = tmp_path / "repo"
    publish(make_bundle(tmp_path / "old", version="1.0.0").root, repo, allow_unsigned=True)
    new = make_bundle(tmp_path / "new", version="1.1.0")
    before = _tree(new.root)
    src = str(Path(hepbundle.__file__).parents[1])
    env = {**os.environ, "HEPBUNDLE_CRASH_AT": "synced", "PYTHONPATH": src}
    proc = subprocess.run(
        [sys.executable, "-c", _PUBLISH_MOVE, str(new.root), str(repo)], env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    new.root.mkdir()
    (new.root / "rebuilt").write_text("mine")
    from hepbundle.repository import recover

    done = recover(repo)
    (beside,) = new.root.parent.glob(f"{new.root.name}.unpublished-*")
    assert _tree(beside) == before
    assert any(f"put the bundle back in {beside}, its old place" in m for m in done), done
    assert _tree(new.root) == {"rebuilt": b"mine"}
    check_invariants(repo)


def test_a_bundle_that_cannot_be_put_back_is_kept_for_the_next_writer(
    signed: hepbundle.Bundle,
    policy: TrustPolicy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refused move whose bundle cannot be renamed back (here: its old place's directory
    cannot be made) keeps the work directory, bundle inside, instead of removing it; the next
    writer's recovery puts it back."""
    import hepbundle.repository._move as move_mod
    from hepbundle.repository import recover

    before = _tree(signed.root)
    _rewrite_same_size_keep_mtime(signed.root / "model" / "weights.bin")
    changed = _tree(signed.root)
    assert changed != before
    repo = tmp_path / "repo"

    def no_dirs(path: Path) -> Path:
        raise PermissionError(13, "Permission denied", str(path))

    real = move_mod.make_dirs
    monkeypatch.setattr(move_mod, "make_dirs", no_dirs)
    with pytest.raises(IntegrityError, match="modified model/weights.bin"):
        publish(signed.root, repo, policy=policy, move=True)
    assert not signed.root.exists()
    (kept,) = [w / "bundle" for d in staging_dirs(repo) for w in d.iterdir()]
    assert _tree(kept) == changed
    monkeypatch.setattr(move_mod, "make_dirs", real)
    done = recover(repo)
    assert f"put the bundle back in {signed.root} (nothing was published)" in done
    assert _tree(signed.root) == changed and _no_work_dirs(repo)
