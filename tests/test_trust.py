"""Trust by default: a repository's trust root, how a node accepts it (pin, CVMFS, trust on first
use), and default deny for jobs that have no policy at all."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.cache import parse_mountinfo
from hepbundle.cli import main
from hepbundle.errors import PolicyError, RepositoryError
from hepbundle.policy import TrustPolicy
from hepbundle.repository import init_repository, publish, set_trust_root, trust_root_for
from hepbundle.repository.layout import catalog_file, ensure_repository
from hepbundle.repository.trust import TRUST_LOG_FILE, TRUST_ROOT_FILE, known_repositories_file
from hepbundle.signing import KeySigner
from hepbundle.spec import validate

from . import pki
from .repo_fixtures import make_bundle


def _run(*args: object) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def trusted_repo(tmp_path: Path, ec_key: tuple[Path, Path]) -> Path:
    """A repository made by its operator with `repo init --key`, holding atlas/tauid 1.0.0."""
    root = tmp_path / "repo"
    code, out, err = _run("repo", "init", "--repo", root, "--key", ec_key[1])
    assert code == 0, err
    assert out.startswith("wrote trust root sha256:")
    publish(
        make_bundle(tmp_path, key=ec_key[0]),
        root,
        alias="prod",
        statement_signer=KeySigner(ec_key[0]),
    )
    return root


def test_trust_root_is_self_contained_and_valid(trusted_repo: Path, ec_key: tuple[Path, Path]):
    doc = json.loads((trusted_repo / TRUST_ROOT_FILE).read_bytes())
    validate(doc, "trust-root.schema.json")
    assert doc["policy"]["rules"][0]["signers"]["any_of"][0]["key"].startswith("-----BEGIN")
    # the key file is not needed any more: the trust root carries it
    ec_key[1].unlink()
    assert hepbundle.resolve("atlas/tauid@prod", repos=[trusted_repo]).signature


def test_new_job_without_configuration_verifies_signatures(
    trusted_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --policy, no HEPBUNDLE_POLICY: the repository's trust root is applied, so a bundle
    signed by an unknown key and an unsigned one are refused."""
    monkeypatch.setenv("HEPBUNDLE_PATH", str(trusted_repo))
    b = hepbundle.resolve("atlas/tauid@prod")
    assert [s.kind for s in b.signature or []] == ["key"]
    code, out, err = _run("path", "atlas/tauid@prod", "model/model.onnx")
    assert code == 0 and Path(out.strip()).is_file(), err
    # a bundle signed by a key the trust root does not name is refused at publish...
    intruder, _ = pki.write_key(pki.ec_key(), tmp_path / "intruder.pem")
    rogue = make_bundle(tmp_path, version="1.0.0", payload=b"rogue", key=intruder)
    with pytest.raises(PolicyError, match="not allowed to sign atlas/tauid"):
        publish(rogue, trusted_repo)
    # ...and if slipped into the tree behind the publisher's back, at resolve
    dest = trusted_repo / "bundles/atlas/tauid/1.0.0"
    shutil.rmtree(dest)
    shutil.copytree(rogue.root, dest)
    cat_file = catalog_file(trusted_repo, "atlas/tauid")
    cat = json.loads(cat_file.read_bytes())
    cat["versions"]["1.0.0"]["manifestSha256"] = rogue.manifest_digest
    cat_file.write_text(json.dumps(cat))
    with pytest.raises(PolicyError, match="no signed publish statement"):
        hepbundle.resolve("atlas/tauid@1.0.0")
    code, out, err = _run("path", "atlas/tauid@1.0.0")
    assert code == 1 and out == "" and "no signed publish statement" in err
    # opened by path inside the repository, the trust root still judges its signature
    with pytest.raises(PolicyError, match="not allowed to sign atlas/tauid"):
        hepbundle.open(dest)
    code, out, err = _run("verify", dest)
    assert code == 1 and out == "" and "not allowed" in err


def test_repository_without_trust_root_is_refused(
    tmp_path: Path, ec_key: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old fail-open case: signed or unsigned, a repository without a trust root and a job
    without a policy refuse, saying how to configure trust."""
    root = tmp_path / "plain"
    ensure_repository(root)  # a repository made before trust roots existed
    policy = TrustPolicy.from_flags(keys=[ec_key[1]])
    publish(make_bundle(tmp_path, key=ec_key[0]), root, policy=policy)
    assert not (root / TRUST_ROOT_FILE).exists()
    publish(make_bundle(tmp_path, "atlas/unsigned"), root, allow_unsigned=True)
    monkeypatch.setenv("HEPBUNDLE_PATH", str(root))
    for ref in ("atlas/tauid@1.0.0", "atlas/unsigned"):
        with pytest.raises(PolicyError, match="has no trust root") as e:
            hepbundle.resolve(ref)
        assert "hepbundle repo init" in str(e.value) and "HEPBUNDLE_POLICY" in str(e.value)
        code, out, err = _run("path", ref)
        assert code == 1 and out == "" and "no trust policy configured" in err
    # asked for by name, integrity only works, is logged and never called verified
    code, out, err = _run("path", "atlas/unsigned", "--integrity-only")
    assert code == 0 and Path(out.strip()).is_dir()
    assert hepbundle.resolve("atlas/unsigned", verify="integrity").signature is None


def test_copied_repository_needs_acceptance_then_detects_a_changed_root(
    trusted_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mirror copied to another node (another node cache) is not trusted until accepted once,
    explicitly; a trust root swapped later under the same repository name is refused."""
    mirror = shutil.copytree(trusted_repo, tmp_path / "mirror", symlinks=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-node-cache"))
    with pytest.raises(PolicyError, match="not accepted on this node") as e:
        hepbundle.resolve("atlas/tauid@prod", repos=[mirror])
    assert "hepbundle repo trust" in str(e.value)
    code, out, err = _run("repo", "trust", mirror)
    assert code == 0 and out.startswith("accepted trust root sha256:"), err
    assert known_repositories_file().is_file()
    assert hepbundle.resolve("atlas/tauid@prod", repos=[mirror]).signature
    # an attacker replaces the trust root of the mirror with one naming their own key
    _, evil_pub = pki.write_key(pki.ec_key(), tmp_path / "evil.pem")
    doc = json.loads((mirror / TRUST_ROOT_FILE).read_bytes())
    doc["policy"]["rules"][0]["signers"]["any_of"][0]["key"] = evil_pub.read_text()
    (mirror / TRUST_ROOT_FILE).write_text(json.dumps(doc))
    with pytest.raises(PolicyError, match="CHANGED"):
        hepbundle.resolve("atlas/tauid@prod", repos=[mirror])


def test_site_pin_by_digest_or_file(
    trusted_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = trust_root_for(trusted_repo)
    assert found is not None and found.authenticated_by == "accepted"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "fresh-node"))  # nothing accepted here
    monkeypatch.setenv("HEPBUNDLE_TRUST_ROOT", found.digest)
    assert hepbundle.resolve("atlas/tauid@prod", repos=[trusted_repo]).signature
    copy = shutil.copy(trusted_repo / TRUST_ROOT_FILE, tmp_path / "site-pin.json")
    monkeypatch.setenv("HEPBUNDLE_TRUST_ROOT", f"sha256:{'0' * 64},{copy}")
    assert trust_root_for(trusted_repo).authenticated_by == "pinned"  # type: ignore[union-attr]
    monkeypatch.setenv("HEPBUNDLE_TRUST_ROOT", f"sha256:{'0' * 64}")
    with pytest.raises(PolicyError, match="does not pin"):
        hepbundle.resolve("atlas/tauid@prod", repos=[trusted_repo])
    monkeypatch.setenv("HEPBUNDLE_TRUST_ROOT", " , ")
    with pytest.raises(PolicyError, match="names no trust root"):
        hepbundle.resolve("atlas/tauid@prod", repos=[trusted_repo])


def test_trust_root_changes_only_by_the_logged_operator_command(
    trusted_repo: Path, tmp_path: Path, ec_key: tuple[Path, Path]
) -> None:
    with pytest.raises(RepositoryError, match="already has a trust root"):
        init_repository(trusted_repo, TrustPolicy.from_flags(keys=[ec_key[1]]))  # type: ignore[arg-type]
    priv, pub = pki.write_key(pki.ec_key(), tmp_path / "new-release.pem")
    code, _, err = _run("repo", "trust-root", "set", "--repo", trusted_repo, "--key", pub)
    assert code == 2 and "--reason" in err
    code, out, err = _run(
        "repo",
        "trust-root",
        "set",
        "--repo",
        trusted_repo,
        "--key",
        pub,
        "--reason",
        "key rotation",
    )
    assert code == 0, err
    log = [json.loads(line) for line in (trusted_repo / TRUST_LOG_FILE).read_text().splitlines()]
    assert [e["reason"] for e in log] == [
        "repository initialised (hepbundle repo init)",
        "key rotation",
    ]
    assert log[1]["previous"] == log[0]["sha256"] and log[1]["operator"]
    # the old key no longer satisfies the repository's policy; the new one does
    with pytest.raises(PolicyError, match="not allowed"):
        hepbundle.resolve("atlas/tauid@prod", repos=[trusted_repo])
    publish(
        make_bundle(tmp_path, version="2.0.0", payload=b"2", key=priv),
        trusted_repo,
        statement_signer=KeySigner(priv),
    )
    assert hepbundle.resolve("atlas/tauid@2.0.0", repos=[trusted_repo]).signature
    code, out, _ = _run("repo", "trust-root", "show", "--repo", trusted_repo)
    assert code == 0 and "accepted" in out and "atlas" not in out.split()[0]
    assert set_trust_root(trusted_repo, TrustPolicy.from_flags(keys=[pub]), reason="same")  # type: ignore[arg-type]


def test_first_publish_writes_the_trust_root(tmp_path: Path, ec_key: tuple[Path, Path]) -> None:
    root = tmp_path / "new"
    code, _, err = _run(
        "publish", make_bundle(tmp_path, key=ec_key[0]).root, "--repo", root, "--key", ec_key[1]
    )  # fmt: skip
    assert code == 0, err
    assert (root / TRUST_ROOT_FILE).is_file()
    # the next publish needs no policy flags: the repository's trust root judges it
    intruder, _ = pki.write_key(pki.ec_key(), tmp_path / "intruder.pem")
    rogue = make_bundle(tmp_path, version="1.1.0", payload=b"r", key=intruder).root
    code, _, err = _run("publish", rogue, "--repo", root)
    assert code == 1 and "not allowed to sign atlas/tauid" in err
    nxt = make_bundle(tmp_path, version="1.1.0", payload=b"b", key=ec_key[0]).root
    code, _, err = _run("publish", nxt, "--repo", root)
    assert code == 0, err
    code, out, err = _run("path", "atlas/tauid", "--repo", root)
    assert code == 0 and out.strip().endswith("1.1.0"), err


def test_cvmfs_claim_needs_a_real_cvmfs2_mount(trusted_repo: Path, tmp_path: Path) -> None:
    """A trust root is taken as authenticated by CVMFS only on a cvmfs2 FUSE mount; a plain
    directory called /cvmfs/… (or HEPBUNDLE_CVMFS_ROOT) gets no such credit."""
    info = (
        "36 25 0:32 / /cvmfs/ml.cern.ch rw,relatime shared:17 - fuse cvmfs2 ro,user_id=0\n"
        "37 25 0:33 / /cvmfs/fake.cern.ch rw,relatime shared:18 - fuse sshfs rw\n"
        "38 25 0:34 / /srv/cvmfs ro - ext4 /dev/sda1 ro\n"
    )
    assert parse_mountinfo(info) == ("/cvmfs/ml.cern.ch",)
    code = (
        "import sys, hepbundle.repository.trust as t\n"
        f"r = t.trust_root_for(__import__('pathlib').Path({str(trusted_repo)!r}))\n"
        "print(r.authenticated_by)\n"
    )
    env = {
        "PYTHONPATH": str(Path(hepbundle.__file__).parents[1]),
        "XDG_CACHE_HOME": str(tmp_path / "n"),
    }
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "not accepted on this node" in r.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "{b}", "--data", "{d}", "--labels", "y"],
        ["fpga", "compare", "{b}", "--inputs", "{d}"],
        ["drift", "{b}", "--data", "{d}"],
        ["reproduce", "{b}", "--check"],
        ["verify", "{b}"],
        ["path", "{b}"],
    ],
)
def test_every_reading_command_refuses_without_trust(
    argv: list[str], signed: hepbundle.Bundle, tmp_path: Path
) -> None:
    """A signed bundle and no policy anywhere: each command refuses before using the bundle,
    and says how to configure trust."""
    import numpy as np

    np.savez(tmp_path / "d.npz", y=np.zeros(3), x=np.zeros((3, 2)))
    args = [a.format(b=signed.root, d=tmp_path / "d.npz") for a in argv]
    code, out, err = _run(*args)
    assert code == 1 and out == "" and "no trust policy configured" in err, err
    assert "integrity-only" in err
