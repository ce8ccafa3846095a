"""Loading in production jobs: resolve through HEPBUNDLE_PATH, aliases, yanked versions,
catalogue/manifest digest checks, lazy verification, concurrent opens, and `hepbundle path`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.cli import main
from hepbundle.errors import (
    IntegrityError,
    NotFoundError,
    PolicyError,
    SignatureError,
    VerificationError,
)
from hepbundle.policy import TrustPolicy
from hepbundle.repository.layout import catalog_file
from hepbundle.repository.operations import set_alias, yank
from hepbundle.repository.publish import publish
from hepbundle.signing import KeySigner, sign

from .conftest import write_spec


def make_version(tmp_path: Path, version: str, key: Path, payload: bytes) -> Path:
    d = tmp_path / f"src-{version}"
    (d / "model").mkdir(parents=True)
    (d / "model" / "model.onnx").write_bytes(payload)
    write_spec(
        d,
        f"name: atlas/tauid\nversion: {version}\nfiles:\n  - path: model/model.onnx\n    role: model\n",
    )
    b = hepbundle.build(d, tmp_path / "dist" / version)
    sign(b.root, KeySigner(key))
    return b.root


@pytest.fixture
def repo(tmp_path: Path, ec_key: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local repository with atlas/tauid 1.0.0, 1.1.0 (prod) and 2.0.0-rc.1, on HEPBUNDLE_PATH."""
    root = tmp_path / "repo"
    monkeypatch.setenv("HEPBUNDLE_POLICY", str(_policy_file(tmp_path, ec_key[1])))
    for v in ("1.0.0", "1.1.0", "2.0.0-rc.1"):
        publish(
            make_version(tmp_path, v, ec_key[0], v.encode() * 1000),
            root,
            alias="prod" if v == "1.1.0" else None,
        )
    monkeypatch.setenv("HEPBUNDLE_PATH", str(root))
    return root


def _policy_file(tmp_path: Path, pub: Path) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(f"version: 1\nrules:\n  - namespace: '*'\n    signers:\n      - key: {pub}\n")
    return p


def test_resolve_alias_version_and_latest(repo: Path) -> None:
    assert hepbundle.resolve("atlas/tauid@prod").version == "1.1.0"
    assert hepbundle.resolve("atlas/tauid@1.0.0").version == "1.0.0"
    assert hepbundle.resolve("atlas/tauid").version == "1.1.0"  # pre-releases are not 'latest'
    b = hepbundle.resolve("atlas/tauid@2.0.0-rc.1")
    assert b.path("model/model.onnx").read_bytes().startswith(b"2.0.0-rc.1")
    assert b.signature, "the signature was checked against HEPBUNDLE_POLICY"


def test_alias_move_is_seen_by_the_next_resolve(repo: Path) -> None:
    set_alias("atlas/tauid@1.0.0", "prod", repo)
    assert hepbundle.resolve("atlas/tauid@prod").version == "1.0.0"


def test_yanked_refused_unless_allowed(repo: Path, caplog: pytest.LogCaptureFixture) -> None:
    yank("atlas/tauid@1.1.0", "wrong pile-up profile", repo, force=True)
    with pytest.raises(NotFoundError, match="yanked: wrong pile-up profile"):
        hepbundle.resolve("atlas/tauid@prod")
    assert hepbundle.resolve("atlas/tauid@1.1.0", allow_yanked=True).version == "1.1.0"
    assert "yanked" in caplog.text
    assert hepbundle.resolve("atlas/tauid").version == "1.0.0"  # latest skips yanked


def test_catalogue_manifest_digest_mismatch_refused(repo: Path) -> None:
    cat_file = catalog_file(repo, "atlas/tauid")
    cat = json.loads(cat_file.read_text())
    cat["versions"]["1.1.0"]["manifestSha256"] = "0" * 64
    cat_file.write_text(json.dumps(cat))
    with pytest.raises(VerificationError, match="differs from the catalogue"):
        hepbundle.resolve("atlas/tauid@1.1.0")


def test_unknown_names_and_versions_suggest(repo: Path) -> None:
    with pytest.raises(NotFoundError, match="atlas/tauid"):
        hepbundle.resolve("atlas/tauidd@prod")
    with pytest.raises(NotFoundError, match="did you mean"):
        hepbundle.resolve("atlas/tauid@prdo")


def test_search_path_order(
    repo: Path, tmp_path: Path, ec_key: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like CALIBPATH: the first repository holding the name and version wins; others are searched."""
    other = tmp_path / "other"
    publish(make_version(tmp_path / "o", "3.0.0", ec_key[0], b"other" * 100), other, alias="prod")
    monkeypatch.setenv("HEPBUNDLE_PATH", f"{other}:{repo}")
    assert hepbundle.resolve("atlas/tauid@prod").version == "3.0.0"
    assert hepbundle.resolve("atlas/tauid@1.0.0").root.is_relative_to(repo)


def test_policy_enforced_on_resolve(repo: Path, tmp_path: Path) -> None:
    from hepbundle.signing import generate_key

    _, stranger = generate_key(tmp_path / "stranger.pem")
    with pytest.raises((PolicyError, SignatureError)):
        hepbundle.resolve("atlas/tauid@prod", policy=TrustPolicy.from_flags(keys=[stranger]))


def test_lazy_catches_tamper_between_open_and_use(repo: Path) -> None:
    b = hepbundle.resolve("atlas/tauid@prod")
    f = b.root / "model" / "model.onnx"
    f.chmod(0o644)
    data = bytearray(f.read_bytes())
    data[10] ^= 1
    f.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="model/model.onnx"):
        b.path("model/model.onnx")


def test_concurrent_threads_share_one_bundle(repo: Path) -> None:
    b = hepbundle.resolve("atlas/tauid@prod")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                assert b.path("model/model.onnx").is_file()
                hepbundle.resolve("atlas/tauid@prod").path("model/model.onnx")
        except BaseException as e:  # collected and re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_concurrent_processes_share_the_node_cache(repo: Path) -> None:
    code = "import hepbundle; print(hepbundle.resolve('atlas/tauid@prod', verify='full').verify().cached)"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    outs = [p.communicate()[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    # once any process recorded the file, a later full verify is served from the cache
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert again.stdout.strip() == "1"


def test_path_command(repo: Path) -> None:
    r = CliRunner().invoke(main, ["path", "atlas/tauid@prod", "model/model.onnx"])
    assert r.exit_code == 0, r.stderr
    p = Path(r.stdout.strip())
    assert p.is_absolute() and p.read_bytes().startswith(b"1.1.0")
    p.chmod(0o644)
    p.write_bytes(b"evil" + p.read_bytes()[4:])
    r = CliRunner().invoke(main, ["path", "atlas/tauid@prod", "model/model.onnx"])
    assert r.exit_code == 1 and r.stdout == "" and "model/model.onnx" in r.stderr


def test_working_directory_never_shadows_the_repository(
    repo: Path, tmp_path: Path, ec_key: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # an attacker (or an accident) leaves a validly signed directory named like the reference
    work = tmp_path / "job"
    for text in ("atlas/tauid@prod", "atlas/tauid"):
        fake = work / text
        fake.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(
            make_version(tmp_path / text.replace("/", "_"), "9.9.9", ec_key[0], b"x"), fake
        )
    monkeypatch.chdir(work)
    assert hepbundle.resolve("atlas/tauid@prod").version == "1.1.0"
    assert hepbundle.resolve("atlas/tauid").version == "1.1.0"
    r = CliRunner().invoke(main, ["path", "atlas/tauid@prod"])
    assert r.exit_code == 0, r.stderr
    assert Path(r.stdout.strip()) == (repo / "bundles/atlas/tauid/1.1.0").resolve()
    # the directory is still reachable, written as a path
    assert hepbundle.resolve("./atlas/tauid@prod").version == "9.9.9"
    # a reference the repository does not know says how to mean the directory
    (work / "atlas" / "tauid@nightly").mkdir()
    with pytest.raises(NotFoundError, match="no version or alias 'nightly'") as e:
        hepbundle.resolve("atlas/tauid@nightly")
    assert "write ./atlas/tauid@nightly" in str(e.value)
