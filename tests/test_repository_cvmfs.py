"""The cvmfs backend's command protocol (through a recording ``cvmfs_server`` stand-in) and the
tarball backend's ingestible layout. No real CVMFS server runs here: see docs/repository.md."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

import hepbundle
from hepbundle.errors import RepositoryError, SignatureError
from hepbundle.policy import TrustPolicy
from hepbundle.repository import (
    list_records,
    publish,
    publish_many,
    read_name_catalog,
    set_alias,
    yank,
)
from hepbundle.repository._publishers.cvmfs import error_lines, safe_message
from hepbundle.repository.catalog import list_names
from hepbundle.repository.layout import index_file, serial_of

from .repo_fixtures import check_invariants, make_bundle

REPO = "ml.cern.ch"


class Standin:
    """The installed stand-in (tests/cvmfs_standin.py): one publisher machine's /cvmfs root, the
    repository state, and what it was asked."""

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch, repo: str = REPO) -> None:
        bindir = tmp / "bin"
        bindir.mkdir(exist_ok=True)
        self.exe = bindir / "cvmfs_server"
        source = (Path(__file__).parent / "cvmfs_standin.py").read_text()
        self.exe.write_text(f"#!{sys.executable}\n{source}")
        self.exe.chmod(0o755)
        self.state = tmp / "standin-state"
        self.mount = tmp / "cvmfs"
        self.repo = repo
        self.machines: list[Path] = []  # other publisher machines' /cvmfs roots (gateway tests)
        self.path = f"{bindir}:{os.environ['PATH']}:/usr/sbin:/usr/bin:/sbin:/bin"
        monkeypatch.setenv("PATH", self.path)
        monkeypatch.setenv("STANDIN_STATE", str(self.state))
        monkeypatch.setenv("HEPBUNDLE_CVMFS_ROOT", str(self.mount))
        monkeypatch.setenv("HEPBUNDLE_LOCK_DIR", str(tmp / "locks"))
        self.monkeypatch = monkeypatch
        try:
            self.run("mkfs", repo)
        except BaseException:
            self.close()
            raise

    def run(self, *argv: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        """Call the stand-in directly (as an operator would), outside hepbundle."""
        proc = subprocess.run(
            [str(self.exe), *argv],
            capture_output=True,
            text=True,
            env={**os.environ, "STANDIN_DIRECT": "1", **env, "PATH": self.path},
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"cvmfs_server {' '.join(argv)}: {proc.stderr}")
        return proc

    def close(self) -> None:
        # with this machine's PATH: a test may have emptied it, and the read-only bind mount
        # must never outlive the test (umount has to be found)
        self.run("rmfs", self.repo, check=False, PATH=self.path)

    @property
    def root(self) -> Path:
        return self.mount / self.repo

    @property
    def mode(self) -> str:
        """How the tree is read-only outside transactions: ``mount`` (EROFS), ``chmod``, ``none``."""
        files = list((self.state / "repos" / self.repo / "publishers").glob("*.json"))
        return str(json.loads(files[0].read_text())["readonly"]) if files else "none"

    def calls(self, everything: bool = False) -> list[dict[str, object]]:
        log = self.state / "calls.jsonl"
        out = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
        return out if everything else [c for c in out if not c.get("direct")]

    def commands(self) -> list[str]:
        return [" ".join(c["argv"][:1]) for c in self.calls()]  # type: ignore[index]

    def in_transaction(self) -> bool:
        return "in transaction" in self.run("list").stdout

    def assert_clean(self) -> None:
        assert not any(c.get("violation") for c in self.calls()), self.calls()
        assert not self.in_transaction(), "a transaction was left open"


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Standin]:
    s = Standin(tmp_path, monkeypatch)
    yield s
    s.close()


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
    message = f"hepbundle publish atlas/tauid@1.0.0 manifest sha256:{b.manifest_digest}"
    assert calls[1]["argv"][4] == message  # type: ignore[index]
    # [tags]: the whole message is the tag's description (the sync only sees its first word)
    table = standin.run("tag", "-l", REPO).stdout
    assert "atlas.tauid-1.0.0" in table and message in table
    sync = standin.state.joinpath("repos", REPO, "sync-argv").read_text().splitlines()
    assert sync[sync.index("-J") + 1 :] == message.split()  # -J gets "hepbundle", the rest trail
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
    assert serial_of(standin.root, "atlas") == 4
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
def test_the_tree_is_read_only_outside_a_transaction(
    standin: Standin, tmp_path: Path, ec_key: tuple[Path, Path], policy: TrustPolicy
) -> None:
    """[EROFS]: outside a transaction a write under /cvmfs/R fails; where the stand-in cannot
    mount (no privilege) its snapshot check catches a write that got through."""
    publish(_signed(tmp_path, ec_key[0], "1.0.0").root, REPO, backend="cvmfs", policy=policy)
    if standin.mode == "mount":
        with pytest.raises(OSError) as e:
            (standin.root / "stray.txt").write_text("written with no transaction open")
        assert e.value.errno == errno.EROFS
        return
    (standin.root / "stray.txt").write_text("written with no transaction open")
    with pytest.raises(RepositoryError, match="written outside a transaction"):
        publish(_signed(tmp_path, ec_key[0], "1.1.0").root, REPO, backend="cvmfs", policy=policy)
    assert standin.calls()[-1]["violation"] is True


@pytest.mark.cvmfs
def test_busy_transaction_is_reported_and_not_aborted(
    standin: Standin, tmp_path: Path, ec_key: tuple[Path, Path], policy: TrustPolicy
) -> None:
    standin.run("transaction", REPO)  # someone else on this Stratum-0
    start = len(standin.calls())
    assert "ml.cern.ch (stratum0 / local - in transaction)" in standin.run("list").stdout
    with pytest.raises(RepositoryError, match="exit 17") as e:
        publish(_signed(tmp_path, ec_key[0], "1.0.0").root, REPO, backend="cvmfs", policy=policy)
    assert "another transaction is already open" in str(e.value)
    assert "another transaction is open on this repository" in str(e.value)  # the hint
    assert [c["argv"][0] for c in standin.calls()[start:]] == ["transaction"]  # type: ignore[index]
    assert standin.in_transaction()  # never abort someone else's transaction
    standin.run("abort", "-f", REPO)


@pytest.mark.cvmfs
def test_lease_must_cover_what_is_written_and_is_passed_through(
    standin: Standin, tmp_path: Path, ec_key: tuple[Path, Path], policy: TrustPolicy
) -> None:
    """Format 2: a namespace's publish writes only under bundles/<ns>; creating the repository
    writes catalog/repository.json, which needs a lease on the root."""
    b = _signed(tmp_path, ec_key[0], "1.0.0")
    with pytest.raises(RepositoryError, match="lease /bundles/atlas does not cover catalog"):
        publish(b.root, REPO, backend="cvmfs", policy=policy, lease="bundles/atlas")
    assert standin.calls() == []
    publish(b.root, REPO, backend="cvmfs", policy=policy, lease="/")
    assert standin.calls()[0]["argv"] == ["transaction", REPO]
    newer = _signed(tmp_path, ec_key[0], "1.1.0")
    with pytest.raises(RepositoryError, match="lease /bundles/cms does not cover bundles/atlas"):
        publish(newer.root, REPO, backend="cvmfs", policy=policy, lease="bundles/cms")
    publish(newer.root, REPO, backend="cvmfs", policy=policy, lease="bundles/atlas")
    assert standin.calls()[-2]["argv"] == ["transaction", f"{REPO}/bundles/atlas"]
    set_alias("atlas/tauid@1.1.0", "prod", REPO, backend="cvmfs")
    assert check_invariants(standin.root) == {"atlas/tauid": {"1.0.0", "1.1.0"}}
    standin.assert_clean()


@pytest.mark.cvmfs
def test_missing_cvmfs_server_is_one_clear_error(
    tmp_path: Path, ec_key: tuple[Path, Path], policy: TrustPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("HEPBUNDLE_CVMFS_ROOT", str(tmp_path / "cvmfs"))
    with pytest.raises(RepositoryError, match="cvmfs_server not found"):
        publish(_signed(tmp_path, ec_key[0], "1.0.0").root, REPO, backend="cvmfs", policy=policy)


# --- what cvmfs_server does with its arguments (CVMFS notes: [quoting], [errors]) ---------------


@pytest.mark.cvmfs
def test_standin_runs_the_message_through_sh_like_the_real_server(
    standin: Standin, tmp_path: Path
) -> None:
    """The teeth of the tests below: unsanitised, ``$(…)`` runs and ``(`` breaks the publish."""
    marker = tmp_path / "pwned"
    standin.run("transaction", REPO)
    standin.run("publish", "-a", "t1", "-m", f"ok $(touch {marker})", REPO)
    assert marker.exists()
    standin.run("transaction", REPO)
    proc = standin.run(
        "publish", "-a", "t2", "-m", "publish a/b@1.0.0 (manifest x)", REPO, check=False
    )
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0] == 'sh: 1: Syntax error: "(" unexpected'
    assert "Synchronization failed" in lines and lines[-1].startswith("printf")  # echoed command
    assert error_lines(proc.stderr) == 'sh: 1: Syntax error: "(" unexpected; Synchronization failed'
    assert standin.in_transaction()  # a failed publish leaves the transaction open
    standin.run("abort", "-f", REPO)


HOSTILE = [
    "$(touch {marker})",
    "`touch {marker}`",
    "superseded; touch {marker}",
    "x && touch {marker}",
    "x | tee {marker}",
    "x > {marker}",
    "broken (see JIRA-1)",
    "line one\ntouch {marker}",
    '" ; touch {marker} ; "',
    "--help -rf ~ #",
]


@pytest.mark.cvmfs
def test_hostile_text_never_reaches_a_shell(
    standin: Standin, tmp_path: Path, ec_key: tuple[Path, Path], policy: TrustPolicy
) -> None:
    """A yank reason is free text that ends up in the publish message: it must stay data (on
    the code before the fix, the first reason created the marker, the parenthesis failed)."""
    publish(_signed(tmp_path, ec_key[0], "1.0.0").root, REPO, backend="cvmfs", policy=policy)
    marker = tmp_path / "pwned"
    for reason in HOSTILE:
        text = reason.format(marker=marker)
        yank("atlas/tauid@1.0.0", text, REPO, backend="cvmfs", force=True)  # re-yanks
        assert not marker.exists(), reason
        assert read_name_catalog(standin.root, "atlas/tauid").versions["1.0.0"].yanked == text
        message = standin.calls()[-1]["argv"][4]  # type: ignore[index]
        assert message == safe_message(f"hepbundle yank atlas/tauid@1.0.0: {text}")
        assert re.fullmatch(r"[A-Za-z0-9 ._:@/+=,-]+", message)
        assert not any(w.startswith("-") for w in message.split())
        assert message in standin.run("tag", "-l", REPO).stdout  # the description, intact
    standin.assert_clean()


@pytest.mark.cvmfs
def test_hostile_names_and_aliases_are_refused_before_cvmfs_server(
    standin: Standin, tmp_path: Path, ec_key: tuple[Path, Path], policy: TrustPolicy
) -> None:
    publish(_signed(tmp_path, ec_key[0], "1.0.0").root, REPO, backend="cvmfs", policy=policy)
    before = len(standin.calls())
    for alias in ("prod$(touch x)", "prod;id", "-rf", "prod (new)"):
        with pytest.raises(hepbundle.HepbundleError):
            set_alias("atlas/tauid@1.0.0", alias, REPO, backend="cvmfs")
    for ref in ("atlas/$(id)@1.0.0", "atlas/tau`id`", "atlas/x;id@1.0.0"):
        with pytest.raises(hepbundle.HepbundleError):
            yank(ref, "r", REPO, backend="cvmfs")
    for repo in ("ml.cern.ch;id", "$(id)", "-rf"):
        with pytest.raises(RepositoryError, match="is not a CVMFS repository name"):
            yank("atlas/tauid@1.0.0", "r", repo, backend="cvmfs")
    assert len(standin.calls()) == before


@pytest.mark.cvmfs
def test_errors_carry_cvmfs_servers_own_lines(
    standin: Standin, tmp_path: Path, ec_key: tuple[Path, Path], policy: TrustPolicy
) -> None:
    """[exit codes], [tags]: the codes and texts, and hepbundle showing the cause."""
    proc = standin.run("abort", "-f", REPO, check=False)
    assert (proc.returncode, proc.stderr.strip()) == (
        22,
        f"Repository {REPO} is not in a transaction",
    )
    proc = standin.run("publish", REPO, check=False)
    assert (proc.returncode, proc.stderr.strip()) == (
        1,
        f"Repository {REPO} is not in a transaction",
    )
    proc = standin.run("transaction", "other.cern.ch", check=False)
    assert (
        proc.returncode == 1
        and "Unable to find the configuration file 'server.conf'" in proc.stderr
    )
    b = _signed(tmp_path, ec_key[0], "1.0.0")
    with pytest.raises(
        RepositoryError, match="Unable to find the configuration file 'server.conf'"
    ):
        publish(
            b.root,
            "other.cern.ch",
            backend="cvmfs",
            policy=policy,
        )
    # a tag left over (say, from before a rollback): publish refuses it, hepbundle says so and aborts
    standin.run("transaction", REPO)
    standin.run("publish", "-a", "atlas.tauid-1.0.0", REPO)
    with pytest.raises(RepositoryError) as e:
        publish(b.root, REPO, backend="cvmfs", policy=policy)
    assert str(e.value).startswith(
        f"cvmfs_server publish {REPO} failed (exit 1): Tag name 'atlas.tauid-1.0.0' is already in use."
    )
    assert standin.commands()[-3:] == ["transaction", "publish", "abort"]
    standin.assert_clean()
    assert "atlas/tauid" not in str(list_names(standin.root))


# --- the repository as a client sees it ([xattrs], [mounts], [ingest]) --------------------------


@pytest.mark.cvmfs
def test_published_files_carry_the_clients_xattrs(standin: Standin) -> None:
    standin.run("transaction", REPO)
    small, big = standin.root / "small.bin", standin.root / "big.bin"
    small.write_bytes(b"hello" * 1000)
    big.write_bytes(os.urandom(9 << 20))
    standin.run("publish", "-a", "files", REPO)
    assert (
        os.getxattr(small, "user.hash").decode()
        == hashlib.sha1(zlib.compress(small.read_bytes())).hexdigest()
    )
    assert os.getxattr(small, "user.compression") == b"zlib"
    assert os.getxattr(small, "user.fqrn").decode() == REPO
    with pytest.raises(OSError) as e:
        os.getxattr(big, "user.hash")
    assert e.value.errno == errno.ENODATA  # chunked: no user.hash at all, not an empty one
    chunks = os.getxattr(big, "user.chunk_list").decode().splitlines()
    assert os.getxattr(big, "user.chunks") == b"2" and len(chunks) == 2
    assert [int(c.split(",")[1]) for c in chunks] == [0, 8 << 20]
    with pytest.raises(OSError):
        os.getxattr(standin.root, "user.revision")  # the root answers none
    revision = int(os.getxattr(small, "user.revision"))
    standin.run("transaction", REPO)
    (standin.root / "third").write_bytes(b"3")
    standin.run("publish", "-a", "more", "-Z", "none", REPO)
    assert int(os.getxattr(small, "user.revision")) == revision + 1
    third = standin.root / "third"
    assert os.getxattr(third, "user.hash").decode() == hashlib.sha1(b"3").hexdigest()
    assert os.getxattr(third, "user.compression") == b"none"


@pytest.mark.cvmfs
def test_node_cache_recognises_the_stratum0_layout(
    standin: Standin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[mounts]: /cvmfs/R on a Stratum-0 is an overlay over a FUSE mount named R, not cvmfs2."""
    import hepbundle.cache as cache

    standin.run("transaction", REPO)
    (standin.root / "f.bin").write_bytes(b"payload")
    during = standin.run("mountinfo", REPO).stdout
    standin.run("publish", "-a", "f", REPO)
    after = standin.run("mountinfo", REPO).stdout
    assert " - fuse ml.cern.ch ro," in after and " - overlay overlay_ml.cern.ch ro," in after
    assert str(standin.root) in cache.parse_mountinfo(after)
    # inside a transaction the overlay's upper layer is a plain writable directory: not trusted
    assert str(standin.root) not in cache.parse_mountinfo(during)
    monkeypatch.setattr(cache, "_cvmfs_mounts", lambda: cache.parse_mountinfo(after))
    key = cache._cvmfs_key(str(standin.root / "f.bin"))
    assert (
        key is not None
        and key[0] == REPO
        and key[2] == os.getxattr(standin.root / "f.bin", "user.hash").decode()
    )
    monkeypatch.setattr(cache, "_cvmfs_mounts", lambda: cache.parse_mountinfo(during))
    assert cache._cvmfs_key(str(standin.root / "f.bin")) is None


def _ingest_tarballs(standin: Standin, tmp_path: Path, key: Path, policy: TrustPolicy) -> None:
    """Publish atlas/tauid 1.0.0 (alias prod) with the tarball backend into tmp_path/out and run
    the ``cvmfs_server`` commands it prints against the stand-in, as an operator would."""
    res = publish(
        _signed(tmp_path, key, "1.0.0").root,
        standin.root,
        backend="tarball",
        policy=policy,
        out=tmp_path / "out",
        alias="prod",
    )
    for command in res.commands:
        argv = [*command.split()[1:-1], REPO]
        argv = [str(tmp_path / "out" / a) if a.endswith(".tar") else a for a in argv]
        standin.run(*argv)


@pytest.mark.cvmfs
def test_ingest_publishes_the_tarball_backend_output_in_one_step(
    standin: Standin, tmp_path: Path, ec_key: tuple[Path, Path], policy: TrustPolicy
) -> None:
    """[ingest]: the tarball backend's files through ``cvmfs_server ingest``, as an operator would."""
    _ingest_tarballs(standin, tmp_path, ec_key[0], policy)
    assert check_invariants(standin.root) == {"atlas/tauid": {"1.0.0"}}
    tags = standin.run("tag", "-l", REPO).stdout
    assert re.search(r"generic-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", tags)
    assert "├─ /bundles/atlas/tauid/1.0.0" in standin.run("list-catalogs", REPO).stdout
    standin.run("ingest", "-d", "bundles/atlas/tauid/1.0.0", REPO)
    assert not (standin.root / "bundles/atlas/tauid/1.0.0").exists()
    standin.assert_clean()


@pytest.mark.cvmfs
def test_tarball_first_publish_carries_the_trust_root(
    standin: Standin,
    tmp_path: Path,
    ec_key: tuple[Path, Path],
    policy: TrustPolicy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new repository published through tarballs gets its trust root as the local backend
    writes it, so that a job with no configuration verifies what it resolves from the ingest."""
    from hepbundle.repository.trust import TRUST_LOG_FILE, TRUST_ROOT_FILE, read_trust_root

    assert not (standin.root / TRUST_ROOT_FILE).exists()
    _ingest_tarballs(standin, tmp_path, ec_key[0], policy)
    got = read_trust_root(standin.root)
    assert got is not None and (standin.root / TRUST_LOG_FILE).is_file()
    assert "tarball" in (standin.root / TRUST_LOG_FILE).read_text()
    # a job pinning that trust root (as a site does) verifies with no policy of its own
    monkeypatch.delenv("HEPBUNDLE_POLICY", raising=False)
    monkeypatch.setenv("HEPBUNDLE_TRUST_ROOT", got[1])
    b = hepbundle.resolve("atlas/tauid@prod", repos=[standin.root])
    assert b.signature and b.version == "1.0.0"
    standin.assert_clean()


# --- batch publishing ----------------------------------------------------------------------


@pytest.mark.cvmfs
def test_batch_publish_is_one_transaction_and_one_publish(
    standin: Standin, tmp_path: Path, ec_key: tuple[Path, Path], policy: TrustPolicy
) -> None:
    bundles = [
        _signed(tmp_path, ec_key[0], "1.0.0"),
        _signed(tmp_path, ec_key[0], "1.1.0"),
        make_bundle(tmp_path, "cms/btag", "2.0.0", key=ec_key[0]),
    ]
    results = publish_many([b.root for b in bundles], REPO, backend="cvmfs", policy=policy)
    assert [r.status for r in results] == ["published"] * 3
    assert {r.serial for r in results} == {1}
    assert standin.commands() == ["transaction", "publish"]
    assert standin.calls()[1]["argv"][:3] == ["publish", "-a", "hepbundle-batch-3-s1"]  # type: ignore[index]
    assert check_invariants(standin.root) == {
        "atlas/tauid": {"1.0.0", "1.1.0"},
        "cms/btag": {"2.0.0"},
    }
    standin.assert_clean()
    # the same batch again: nothing to do, no transaction at all
    again = publish_many([b.root for b in bundles], REPO, backend="cvmfs", policy=policy)
    assert [r.status for r in again] == ["unchanged"] * 3
    assert standin.commands() == ["transaction", "publish"]


@pytest.mark.cvmfs
def test_an_import_is_one_transaction(
    standin: Standin, tmp_path: Path, ec_key: tuple[Path, Path], policy: TrustPolicy
) -> None:
    """hepbundle import --backend cvmfs: every new bundle of the store in ONE transaction and
    one publish; a re-run finds them unchanged and opens no transaction."""
    from hepbundle.importers import plan_import
    from hepbundle.importers.run import ImportOptions, run_import
    from hepbundle.signing import KeySigner

    from .import_fixtures import make_groupdata

    gd = make_groupdata(tmp_path / "GroupData")
    opts = ImportOptions(
        repo=Path(REPO), backend="cvmfs", signer=KeySigner(ec_key[0]), policy=policy
    )
    report = run_import(plan_import("atlas-groupdata", gd), opts)
    assert report.count("published") == len(report.outcomes) >= 3
    assert standin.commands() == ["transaction", "publish"]
    published = check_invariants(standin.root)
    assert sum(len(v) for v in published.values()) == len(report.outcomes)
    standin.assert_clean()
    again = run_import(plan_import("atlas-groupdata", gd), opts)
    assert again.count("unchanged") == len(report.outcomes)
    assert standin.commands() == ["transaction", "publish"]


@pytest.mark.cvmfs
def test_nothing_is_fsynced_inside_a_transaction(
    standin: Standin,
    tmp_path: Path,
    ec_key: tuple[Path, Path],
    policy: TrustPolicy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The publish is the durability point of a CVMFS transaction: the writes inside it (bundle
    files, directories, catalogue, serial) are not synced one by one; a local publish syncs."""
    synced: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    bundles = [_signed(tmp_path, ec_key[0], v) for v in ("1.0.0", "1.1.0")]
    synced.clear()
    publish_many([b.root for b in bundles], REPO, backend="cvmfs", policy=policy)
    assert synced == [] and standin.commands() == ["transaction", "publish"]
    assert check_invariants(standin.root) == {"atlas/tauid": {"1.0.0", "1.1.0"}}
    publish_many([b.root for b in bundles], tmp_path / "local", allow_unsigned=True, policy=policy)
    assert len(synced) > 2 * 3  # every file, directory and catalogue write of a local publish


@pytest.mark.cvmfs
def test_batch_refusal_publishes_nothing_and_names_the_bundle(
    standin: Standin,
    tmp_path: Path,
    ec_key: tuple[Path, Path],
    policy: TrustPolicy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publish(_signed(tmp_path, ec_key[0], "1.0.0").root, REPO, backend="cvmfs", policy=policy)
    published = sorted(str(p.relative_to(standin.root)) for p in standin.root.rglob("*"))
    fresh = _signed(tmp_path, ec_key[0], "1.1.0")
    other = _signed(tmp_path, ec_key[0], "1.0.0", payload=b"other weights")
    with pytest.raises(RepositoryError) as e:
        publish_many([fresh.root, other.root], REPO, backend="cvmfs", policy=policy)
    assert "batch refused, nothing published: atlas/tauid@1.0.0 (bundle 2 of 2)" in str(e.value)
    assert "already published with different content" in str(e.value)
    unsigned = make_bundle(tmp_path, "cms/btag", "1.0.0")
    with pytest.raises(SignatureError, match=r"batch refused.*cms/btag@1.0.0 \(bundle 2 of 2\)"):
        publish_many([fresh.root, unsigned.root], REPO, backend="cvmfs", policy=policy)
    with pytest.raises(RepositoryError, match="two versions of atlas/tauid in one batch"):
        publish_many([fresh.root, other.root], REPO, backend="cvmfs", policy=policy, alias="prod")
    assert standin.commands() == ["transaction", "publish"]  # only the first publish
    # a failure inside the transaction (disk full at the serial) aborts the whole batch
    import hepbundle.repository.tree as tree

    def disk_full(*a: object, **k: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tree, "bump_serial", disk_full)
    with pytest.raises(OSError):
        publish_many(
            [fresh.root, make_bundle(tmp_path, "cms/btag", "1.0.1", key=ec_key[0]).root],
            REPO,
            backend="cvmfs",
            policy=policy,
        )
    assert standin.commands()[-2:] == ["transaction", "abort"]
    assert sorted(str(p.relative_to(standin.root)) for p in standin.root.rglob("*")) == published
    standin.assert_clean()


@pytest.mark.cvmfs
def test_records_are_appended_in_a_transaction_on_a_stratum0(
    standin: Standin, tmp_path: Path, ec_key: tuple[Path, Path], policy: TrustPolicy
) -> None:
    """On a Stratum-0 /cvmfs/R is read-only outside transactions: eval and fpga-compare records
    go through one transaction each."""
    from hepbundle.repository.records import record_for_bundle

    publish(_signed(tmp_path, ec_key[0], "1.0.0").root, REPO, backend="cvmfs", policy=policy)
    published = hepbundle.Bundle.load(standin.root / "bundles/atlas/tauid/1.0.0")
    rec = record_for_bundle(published, "eval", {"auc": 0.91}, {"roc.txt": b"0 0\n1 1\n"})
    assert rec is not None and rec.payload == {"auc": 0.91}
    assert standin.commands() == ["transaction", "publish"] * 2
    message = standin.calls()[-1]["argv"][4]  # type: ignore[index]
    assert message == "hepbundle record eval for atlas/tauid@1.0.0"
    listed = list_records(standin.root, "atlas/tauid", "1.0.0")
    assert [r.kind for r in listed] == ["eval"] and listed[0].attachment("roc.txt").is_file()
    standin.assert_clean()
    # not a Stratum-0 (no cvmfs_server here): the clear error of a client mount stays
    standin.monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    if standin.mode == "mount":
        with pytest.raises(RepositoryError, match="is read-only"):
            record_for_bundle(published, "eval", {"auc": 0.9})


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
        "cvmfs_server ingest --tar_file atlas.tauid-1.1.0.catalog.tar "
        "--base_dir bundles/atlas/_catalog <repository>",
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
        assert sorted(tar.getnames()) == ["index.sqlite", "namespace.json", "tauid.json"]
    # ingest emulated: unpack under the two base directories of a copy of the repository
    ingested = tmp_path / "ingested"
    shutil.copytree(base, ingested)
    with tarfile.open(res.artifacts["bundle_tar"]) as tar:
        tar.extractall(ingested / "bundles/atlas/tauid", filter="data")
    with tarfile.open(res.artifacts["catalog_tar"]) as tar:
        tar.extractall(ingested / "bundles/atlas/_catalog", filter="data")
    assert check_invariants(ingested) == {"atlas/tauid": {"1.0.0", "1.1.0"}}
    assert read_name_catalog(ingested, "atlas/tauid").aliases == {"prod": "1.1.0"}
    assert serial_of(ingested, "atlas") == 2
    with sqlite3.connect(index_file(ingested, "atlas")) as conn:
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
