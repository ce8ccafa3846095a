"""The cvmfs backend's command protocol (through a recording ``cvmfs_server`` stand-in) and the
tarball backend's ingestible layout. No real CVMFS server runs here: see docs/repository.md."""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import tarfile
from pathlib import Path

import pytest

import hepbundle
from hepbundle.errors import RepositoryError
from hepbundle.policy import TrustPolicy
from hepbundle.repository import publish, read_name_catalog, read_repository, set_alias, yank

from .repo_fixtures import check_invariants, make_bundle

REPO = "ml.cern.ch"


class Standin:
    """The installed stand-in: where its mount root is, and what it was asked."""

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        bindir = tmp / "bin"
        bindir.mkdir()
        exe = bindir / "cvmfs_server"
        source = (Path(__file__).parent / "cvmfs_standin.py").read_text()
        exe.write_text(f"#!{sys.executable}\n{source}")
        exe.chmod(0o755)
        self.state = tmp / "standin-state"
        self.mount = tmp / "cvmfs"
        (self.mount / REPO).mkdir(parents=True)
        monkeypatch.setenv("PATH", f"{bindir}:{__import__('os').environ['PATH']}")
        monkeypatch.setenv("STANDIN_STATE", str(self.state))
        monkeypatch.setenv("HEPBUNDLE_CVMFS_ROOT", str(self.mount))
        monkeypatch.setenv("HEPBUNDLE_LOCK_DIR", str(tmp / "locks"))
        self.monkeypatch = monkeypatch

    @property
    def root(self) -> Path:
        return self.mount / REPO

    def calls(self) -> list[dict[str, object]]:
        log = self.state / "calls.jsonl"
        return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []

    def commands(self) -> list[str]:
        return [" ".join(c["argv"][:1]) for c in self.calls()]  # type: ignore[index]

    def assert_clean(self) -> None:
        assert not any(c.get("violation") for c in self.calls()), self.calls()
        assert not (self.state / f"{REPO}.open").exists(), "a transaction was left open"


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Standin:
    return Standin(tmp_path, monkeypatch)


@pytest.fixture
def policy(ec_key: tuple[Path, Path]) -> TrustPolicy:
    p = TrustPolicy.from_flags(keys=[ec_key[1]])
    assert p is not None
    return p


def _signed(tmp: Path, key: Path, version: str, payload: bytes = b"w") -> hepbundle.Bundle:
    return make_bundle(tmp, version=version, payload=payload, key=key)


@pytest.mark.cvmfs
def test_publish_protocol_and_published_tree(
    standin: Standin, tmp_path: Path, ec_key: tuple[Path, Path], policy: TrustPolicy
) -> None:
    b = _signed(tmp_path, ec_key[0], "1.0.0")
    res = publish(b.root, REPO, backend="cvmfs", policy=policy, alias="prod")
    assert res.status == "published" and res.repository == REPO
    calls = standin.calls()
    assert [c["argv"] for c in calls] == [
        ["transaction", REPO],
        ["publish", "-a", "atlas.tauid-1.0.0", "-m", calls[1]["argv"][4], REPO],  # type: ignore[index]
    ]
    assert f"atlas/tauid@1.0.0 (manifest sha256:{b.manifest_digest})" in calls[1]["argv"][4]  # type: ignore[index]
    standin.assert_clean()
    # what was published is a complete repository with no staging or lock files in it
    assert not (standin.root / ".hepbundle-staging").exists()
    assert not list(standin.root.rglob("*.lock"))
    assert check_invariants(standin.root) == {"atlas/tauid": {"1.0.0"}}
    # publishing the same again needs no transaction at all
    assert publish(b.root, REPO, backend="cvmfs", policy=policy).status == "unchanged"
    assert len(standin.calls()) == 2
    # alias and yank go through a transaction each
    publish(_signed(tmp_path, ec_key[0], "1.1.0").root, REPO, backend="cvmfs", policy=policy)
    set_alias("atlas/tauid@1.1.0", "prod", REPO, backend="cvmfs")
    yank("atlas/tauid@1.0.0", "superseded", REPO, backend="cvmfs")
    assert standin.commands() == ["transaction", "publish"] * 4
    cat = read_name_catalog(standin.root, "atlas/tauid")
    assert cat.aliases == {"prod": "1.1.0"} and cat.versions["1.0.0"].yanked == "superseded"
    assert read_repository(standin.root)["serial"] == 4
    standin.assert_clean()
    check_invariants(standin.root)


@pytest.mark.cvmfs
@pytest.mark.parametrize("where", ["inside", "publish"])
def test_any_failure_aborts_and_the_tree_stays_as_published(
    standin: Standin,
    tmp_path: Path,
    ec_key: tuple[Path, Path],
    policy: TrustPolicy,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    publish(_signed(tmp_path, ec_key[0], "1.0.0").root, REPO, backend="cvmfs", policy=policy)
    before = sorted(str(p.relative_to(standin.root)) for p in standin.root.rglob("*"))
    if where == "inside":
        import hepbundle.repository.tree as tree

        def disk_full(*a: object, **k: object) -> int:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(tree, "bump_serial", disk_full)
    else:
        monkeypatch.setenv("STANDIN_FAIL", "publish")
    with pytest.raises((OSError, RepositoryError)):
        publish(_signed(tmp_path, ec_key[0], "1.1.0").root, REPO, backend="cvmfs", policy=policy)
    expected = (
        ["transaction", "abort"] if where == "inside" else ["transaction", "publish", "abort"]
    )
    assert standin.commands()[-len(expected) :] == expected
    assert standin.calls()[-1]["argv"] == ["abort", "-f", REPO]
    after = sorted(str(p.relative_to(standin.root)) for p in standin.root.rglob("*"))
    assert after == before
    standin.assert_clean()


@pytest.mark.cvmfs
def test_standin_catches_a_write_outside_a_transaction(
    standin: Standin, tmp_path: Path, ec_key: tuple[Path, Path], policy: TrustPolicy
) -> None:
    publish(_signed(tmp_path, ec_key[0], "1.0.0").root, REPO, backend="cvmfs", policy=policy)
    (standin.root / "stray.txt").write_text("written with no transaction open")
    with pytest.raises(RepositoryError, match="written outside a transaction"):
        publish(_signed(tmp_path, ec_key[0], "1.1.0").root, REPO, backend="cvmfs", policy=policy)
    assert standin.calls()[-1]["violation"] is True


@pytest.mark.cvmfs
def test_busy_transaction_is_reported_and_not_aborted(
    standin: Standin, tmp_path: Path, ec_key: tuple[Path, Path], policy: TrustPolicy
) -> None:
    standin.state.mkdir(parents=True, exist_ok=True)
    (standin.state / f"{REPO}.open").write_text("someone else")
    with pytest.raises(RepositoryError, match="exit 17") as e:
        publish(_signed(tmp_path, ec_key[0], "1.0.0").root, REPO, backend="cvmfs", policy=policy)
    assert "another transaction is open" in str(e.value)
    assert standin.commands() == ["transaction"]  # never abort someone else's transaction
    assert (standin.state / f"{REPO}.open").read_text() == "someone else"


@pytest.mark.cvmfs
def test_lease_must_cover_what_is_written_and_is_passed_through(
    standin: Standin, tmp_path: Path, ec_key: tuple[Path, Path], policy: TrustPolicy
) -> None:
    b = _signed(tmp_path, ec_key[0], "1.0.0")
    with pytest.raises(RepositoryError, match="lease /bundles/atlas does not cover"):
        publish(b.root, REPO, backend="cvmfs", policy=policy, lease="bundles/atlas")
    assert standin.calls() == []
    publish(b.root, REPO, backend="cvmfs", policy=policy, lease="/")
    assert standin.calls()[0]["argv"] == ["transaction", REPO]


@pytest.mark.cvmfs
def test_missing_cvmfs_server_is_one_clear_error(
    tmp_path: Path, ec_key: tuple[Path, Path], policy: TrustPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("HEPBUNDLE_CVMFS_ROOT", str(tmp_path / "cvmfs"))
    with pytest.raises(RepositoryError, match="cvmfs_server not found"):
        publish(_signed(tmp_path, ec_key[0], "1.0.0").root, REPO, backend="cvmfs", policy=policy)


# --- tarball ----------------------------------------------------------------------------------


def test_tarball_layout_and_ingest_emulation(
    tmp_path: Path, ec_key: tuple[Path, Path], policy: TrustPolicy
) -> None:
    base = tmp_path / "repo"
    publish(_signed(tmp_path, ec_key[0], "1.0.0").root, base, policy=policy, alias="prod")
    before = {p: p.read_bytes() for p in base.rglob("*") if p.is_file()}
    b = _signed(tmp_path, ec_key[0], "1.1.0")
    out = tmp_path / "out"
    res = publish(b.root, base, backend="tarball", policy=policy, out=out, alias="prod")
    assert res.status == "written" and res.serial == 2
    assert {p: p.read_bytes() for p in base.rglob("*") if p.is_file()} == before  # untouched
    assert sorted(p.name for p in out.iterdir()) == [
        "atlas.tauid-1.1.0.bundle.tar",
        "atlas.tauid-1.1.0.catalog.tar",
    ]
    assert res.commands == (
        "cvmfs_server ingest --tar_file atlas.tauid-1.1.0.bundle.tar "
        "--base_dir bundles/atlas/tauid <repository>",
        "cvmfs_server ingest --tar_file atlas.tauid-1.1.0.catalog.tar --base_dir catalog "
        "<repository>",
    )
    with tarfile.open(res.artifacts["bundle_tar"]) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == [*sorted(names[:-1]), "1.1.0/.cvmfscatalog"]
        assert set(names) == {
            "1.1.0/.cvmfscatalog",
            "1.1.0/hepbundle.json",
            "1.1.0/hepbundle.sig",
            "1.1.0/model/model.onnx",
        }
        assert all(m.isfile() and m.mtime == 0 and m.uid == 0 for m in members)
    with tarfile.open(res.artifacts["catalog_tar"]) as tar:
        assert sorted(tar.getnames()) == ["atlas/tauid.json", "index.sqlite", "repository.json"]
    # ingest emulated: unpack under the two base directories of a copy of the repository
    ingested = tmp_path / "ingested"
    shutil.copytree(base, ingested)
    with tarfile.open(res.artifacts["bundle_tar"]) as tar:
        tar.extractall(ingested / "bundles/atlas/tauid", filter="data")
    with tarfile.open(res.artifacts["catalog_tar"]) as tar:
        tar.extractall(ingested / "catalog", filter="data")
    assert check_invariants(ingested) == {"atlas/tauid": {"1.0.0", "1.1.0"}}
    assert read_name_catalog(ingested, "atlas/tauid").aliases == {"prod": "1.1.0"}
    assert read_repository(ingested)["serial"] == 2
    with sqlite3.connect(ingested / "catalog/index.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM versions").fetchone() == (2,)


def test_tarball_is_reproducible_and_noop_when_published(tmp_path: Path) -> None:
    b = make_bundle(tmp_path, version="1.0.0")
    one = publish(
        b.root, tmp_path / "none", backend="tarball", allow_unsigned=True, out=tmp_path / "a"
    )
    two = publish(
        b.root, tmp_path / "none", backend="tarball", allow_unsigned=True, out=tmp_path / "b"
    )
    assert (
        Path(one.artifacts["bundle_tar"]).read_bytes()
        == Path(two.artifacts["bundle_tar"]).read_bytes()
    )
    assert not (tmp_path / "none").exists()
    repo = tmp_path / "repo"
    publish(b.root, repo, allow_unsigned=True)
    res = publish(b.root, repo, backend="tarball", allow_unsigned=True, out=tmp_path / "c")
    assert res.status == "unchanged" and res.artifacts == {} and not (tmp_path / "c").exists()
