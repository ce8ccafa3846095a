"""Signed catalogue statements: alias hijack, rollback, hidden or un-yanked versions, serial
rollback and frozen mirrors are refused; the node cache remembers what it has seen."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.cli import main
from hepbundle.errors import PolicyError, SignatureError, SigningError
from hepbundle.policy import TrustPolicy
from hepbundle.repository import init_repository, publish, set_alias, yank
from hepbundle.repository.layout import (
    catalog_file,
    ensure_repository,
    read_repository,
    repository_format,
)
from hepbundle.repository.statements import CatalogRollbackError, next_serial
from hepbundle.signing import KeySigner
from hepbundle.spec import validate

from . import pki
from .repo_fixtures import make_bundle

NAME = "atlas/tauid"


def _run(*args: object) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def repo(tmp_path: Path, ec_key: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `repo init` repository (catalogue signed by the release key) with 1.0.0 and 1.1.0,
    prod -> 1.1.0, on HEPBUNDLE_PATH; no trust configuration otherwise."""
    root = tmp_path / "repo"
    init_repository(root, TrustPolicy.from_flags(keys=[ec_key[1]]))  # type: ignore[arg-type]
    signer = KeySigner(ec_key[0])
    for v in ("1.0.0", "1.1.0"):
        b = make_bundle(tmp_path, version=v, payload=v.encode(), key=ec_key[0])
        publish(b, root, alias="prod" if v == "1.1.0" else None, statement_signer=signer)
    monkeypatch.setenv("HEPBUNDLE_PATH", str(root))
    return root


def _catalog(root: Path) -> Path:
    return catalog_file(root, NAME)


def _edit(root: Path, change: object) -> None:
    doc = json.loads(_catalog(root).read_bytes())
    change(doc)  # type: ignore[operator]
    _catalog(root).write_text(json.dumps(doc))


def test_statements_are_chained_and_valid(repo: Path) -> None:
    from hepbundle.repository import read_name_catalog
    from hepbundle.signing import parse_statement

    cat = read_name_catalog(repo, NAME)
    bodies = [parse_statement(d, "s").body for d in cat.statements]
    assert [(b["type"], b["version"]) for b in bodies] == [
        ("publish", "1.0.0"),
        ("publish", "1.1.0"),
        ("alias", "1.1.0"),
    ]
    assert bodies[0]["previous"] is None and [b["seq"] for b in bodies] == [0, 1, 2]
    assert bodies[2]["serial"] == bodies[1]["serial"] and bodies[2]["alias"] == "prod"
    for b in bodies:
        validate(b, "statement.schema.json")
    validate(json.loads(_catalog(repo).read_bytes()), "catalog.schema.json")
    assert hepbundle.resolve(f"{NAME}@prod").version == "1.1.0"


def test_alias_hijack_is_refused(repo: Path) -> None:
    """Editing the catalogue so that prod points at an older, legitimately signed version."""
    _edit(repo, lambda d: d["aliases"].update(prod="1.0.0"))
    with pytest.raises(
        PolicyError, match=r"prod points at 1\.0\.0, but its last signed move is to 1\.1\.0"
    ):
        hepbundle.resolve(f"{NAME}@prod")
    code, out, err = _run("path", f"{NAME}@prod")
    assert code == 1 and out == "" and "hijack" in err
    assert hepbundle.resolve(f"{NAME}@1.1.0").version == "1.1.0"  # the rest still resolves


def test_alias_moves_need_the_release_signature(
    repo: Path, ec_key: tuple[Path, Path], tmp_path: Path
) -> None:
    code, _, err = _run("alias", f"{NAME}@1.0.0", "prod", "--repo", repo)
    assert code == 2 and "needs a statement signer" in err
    intruder, _ = pki.write_key(pki.ec_key(), tmp_path / "intruder.pem")
    with pytest.raises(PolicyError, match="not allowed"):
        set_alias(f"{NAME}@1.0.0", "prod", repo, signer=KeySigner(intruder))
    assert hepbundle.resolve(f"{NAME}@prod").version == "1.1.0"  # nothing was written
    code, _, err = _run("alias", f"{NAME}@1.0.0", "prod", "--repo", repo, "--sign-key", ec_key[0])
    assert code == 0, err
    assert hepbundle.resolve(f"{NAME}@prod").version == "1.0.0"


def test_forged_or_edited_statements_are_refused(repo: Path, tmp_path: Path) -> None:
    doc = json.loads(_catalog(repo).read_bytes())
    # a statement whose signed body was edited (alias moved inside the signature)
    import base64

    env = doc["statements"][2]["dsseEnvelope"]
    payload = base64.b64decode(env["payload"]).replace(
        b'\\"version\\": \\"1.1.0\\"', b'\\"version\\": \\"1.0.0\\"'
    )
    assert payload != base64.b64decode(env["payload"])
    forged = json.loads(json.dumps(doc))
    forged["statements"][2]["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    forged["aliases"]["prod"] = "1.0.0"
    _catalog(repo).write_text(json.dumps(forged))
    with pytest.raises(SignatureError):
        hepbundle.resolve(f"{NAME}@prod")
    # a statement appended by an intruder's key
    intruder, _ = pki.write_key(pki.ec_key(), tmp_path / "intruder.pem")
    from hepbundle.repository.catalog import catalog_from_json
    from hepbundle.repository.statements import sign_changes

    cat = catalog_from_json(doc, source="x")
    moved = sign_changes(
        cat, cat.with_alias("prod", "1.0.0"), KeySigner(intruder), policy=None, repository="repo",
        serial=99,
    )  # fmt: skip
    _catalog(repo).write_bytes(moved.to_bytes())
    rj = repo / "catalog" / "repository.json"
    rj.write_text(json.dumps({**json.loads(rj.read_bytes()), "serial": 99}))
    with pytest.raises(PolicyError, match="not allowed"):
        hepbundle.resolve(f"{NAME}@prod")


def test_catalogue_rollback_is_refused_by_the_node_cache(
    repo: Path, ec_key: tuple[Path, Path]
) -> None:
    """Copying an older catalogue file over the current one un-yanks a version: a node that
    has seen the newer chain refuses the older one."""
    old = _catalog(repo).read_bytes()
    yank(f"{NAME}@1.1.0", "wrong calibration", repo, signer=KeySigner(ec_key[0]), force=True)
    assert hepbundle.resolve(NAME).version == "1.0.0"  # this node sees the yank
    _catalog(repo).write_bytes(old)
    with pytest.raises(CatalogRollbackError, match="rollback refused"):
        hepbundle.resolve(f"{NAME}@1.1.0")
    code, out, err = _run("path", NAME)
    assert code == 1 and out == "" and "rollback" in err


def test_unyank_and_hidden_release_are_refused(repo: Path, ec_key: tuple[Path, Path]) -> None:
    # hide the newest release: latest would fall back to an older one
    current = _catalog(repo).read_bytes()
    _edit(repo, lambda d: (d["versions"].pop("1.1.0"), d["aliases"].pop("prod")))
    with pytest.raises(PolicyError, match="the signed statements say 1.1.0"):
        hepbundle.resolve(NAME)
    _catalog(repo).write_bytes(current)
    # un-yank by editing the yanked mark away
    yank(f"{NAME}@1.0.0", "bad", repo, signer=KeySigner(ec_key[0]))
    _edit(repo, lambda d: d["versions"]["1.0.0"].update(yanked=None))
    with pytest.raises(PolicyError, match="yanked state differs"):
        hepbundle.resolve(f"{NAME}@1.0.0")


def _repo_of_format(tmp_path: Path, ec_key: tuple[Path, Path], fmt: int) -> Path:
    """The ``repo`` fixture's repository, in repository format ``fmt``."""
    root = tmp_path / f"repo-f{fmt}"
    ensure_repository(root, fmt=fmt)
    init_repository(root, TrustPolicy.from_flags(keys=[ec_key[1]]))  # type: ignore[arg-type]
    signer = KeySigner(ec_key[0])
    for v in ("1.0.0", "1.1.0"):
        b = make_bundle(tmp_path, version=v, payload=v.encode(), key=ec_key[0])
        publish(b, root, alias="prod" if v == "1.1.0" else None, statement_signer=signer)
    assert repository_format(root) == fmt
    return root


@pytest.mark.parametrize("fmt", [1, 2])
def test_repository_serial_rollback_is_refused(
    tmp_path: Path, ec_key: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, fmt: int
) -> None:
    """The serial that orders changes (format 1: the repository's in repository.json; format 2:
    the namespace's in bundles/<ns>/_catalog/namespace.json) lowered below what is signed."""
    repo = _repo_of_format(tmp_path, ec_key, fmt)
    monkeypatch.setenv("HEPBUNDLE_PATH", str(repo))
    path = repo / next_serial(repo, NAME, read_repository(repo))[1]
    doc = json.loads(path.read_bytes())
    assert doc["serial"] >= 2
    assert hepbundle.resolve(f"{NAME}@prod")  # this node records that serial
    doc["serial"] = 1
    path.write_text(json.dumps(doc))
    with pytest.raises(CatalogRollbackError, match="rolled back|rollback refused"):
        hepbundle.resolve(f"{NAME}@prod")
    # and a writer does not start counting again from the lowered serial
    b = make_bundle(tmp_path, version="1.2.0", payload=b"12", key=ec_key[0])
    with pytest.raises(CatalogRollbackError, match=f"{path.name} was rolled back"):
        publish(b, repo, statement_signer=KeySigner(ec_key[0]))


def test_format2_namespace_serials_are_checked_one_by_one(
    tmp_path: Path, ec_key: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per-namespace serials against the node cache: a namespace far ahead of another is no
    rollback of the other, and a namespace's whole subtree put back is refused."""
    repo = _repo_of_format(tmp_path, ec_key, 2)
    monkeypatch.setenv("HEPBUNDLE_PATH", str(repo))
    signer = KeySigner(ec_key[0])
    for v in ("1.0.0", "1.1.0", "1.2.0", "1.3.0"):
        b = make_bundle(
            tmp_path, name="cms/btag", version=v, payload=b"c" + v.encode(), key=ec_key[0]
        )
        publish(b, repo, statement_signer=signer)
    assert hepbundle.resolve("cms/btag").version == "1.3.0"  # cms at serial 4, atlas at 2
    assert hepbundle.resolve(f"{NAME}@prod").version == "1.1.0"
    snapshot = shutil.copytree(repo / "bundles" / "atlas" / "_catalog", tmp_path / "atlas-old")
    b = make_bundle(tmp_path, version="1.2.0", payload=b"12", key=ec_key[0])
    publish(b, repo, alias="prod", statement_signer=signer)
    assert hepbundle.resolve(f"{NAME}@prod").version == "1.2.0"
    shutil.rmtree(repo / "bundles" / "atlas" / "_catalog")
    shutil.copytree(snapshot, repo / "bundles" / "atlas" / "_catalog")
    with pytest.raises(CatalogRollbackError, match="rollback refused"):
        hepbundle.resolve(f"{NAME}@prod")
    assert hepbundle.resolve("cms/btag").version == "1.3.0"  # the other namespace is unaffected


def test_whole_repository_rollback_is_refused(
    repo: Path, tmp_path: Path, ec_key: tuple[Path, Path]
) -> None:
    """A mirror serving yesterday's full snapshot (catalogue and serial consistent with each
    other) is refused by a node that saw today's."""
    snapshot = shutil.copytree(repo, tmp_path / "snapshot", symlinks=True)
    b = make_bundle(tmp_path, version="1.2.0", payload=b"12", key=ec_key[0])
    publish(b, repo, alias="prod", statement_signer=KeySigner(ec_key[0]))
    assert hepbundle.resolve(f"{NAME}@prod").version == "1.2.0"
    shutil.rmtree(repo)
    shutil.copytree(snapshot, repo, symlinks=True)
    with pytest.raises(CatalogRollbackError, match="rollback refused"):
        hepbundle.resolve(f"{NAME}@prod")


def test_expired_statements_detect_a_frozen_mirror(
    tmp_path: Path, ec_key: tuple[Path, Path]
) -> None:
    root = tmp_path / "short"
    init_repository(root, TrustPolicy.from_flags(keys=[ec_key[1]]))  # type: ignore[arg-type]
    b = make_bundle(tmp_path, key=ec_key[0])
    publish(b, root, alias="prod", statement_signer=KeySigner(ec_key[0]), expires_days=2 / 86400)
    assert hepbundle.resolve(f"{NAME}@prod", repos=[root]).version == "1.0.0"
    time.sleep(3)
    with pytest.raises(CatalogRollbackError, match="expired"):
        hepbundle.resolve(f"{NAME}@prod", repos=[root])


def test_unsigned_catalogue_under_a_signing_policy_is_refused(repo: Path) -> None:
    _edit(repo, lambda d: d.pop("statements"))
    with pytest.raises(PolicyError, match="carries no signed statements"):
        hepbundle.resolve(f"{NAME}@prod")


def test_writer_refuses_without_a_statement_signer(
    repo: Path, tmp_path: Path, ec_key: tuple[Path, Path]
) -> None:
    b = make_bundle(tmp_path, version="1.2.0", payload=b"12", key=ec_key[0])
    with pytest.raises(SigningError, match="needs a statement signer"):
        publish(b, repo)
    with pytest.raises(SigningError, match="needs a statement signer"):
        yank(f"{NAME}@1.0.0", "x", repo)
    assert not (repo / "bundles" / "atlas" / "tauid" / "1.2.0").exists()


# a fresh interpreter (pytest has imported everything by now): a job's first resolve
_RESOLVE_CHILD = """
import json, sys
import hepbundle
b = hepbundle.resolve(sys.argv[1])
assert b.signature
b.path("model/model.onnx")
print(json.dumps([m for m in json.loads(sys.argv[2]) if m in sys.modules]))
"""

# what a resolve from a key-signed repository must not load (docs/performance.md: they were most
# of the first resolve's 80-145 ms): X.509 parsing, the publishers and batch machinery, SQLite
_NOT_ON_RESOLVE = (
    "cryptography.x509",
    "hepbundle._signers.certificate",
    "hepbundle._signers.sigstore",
    "hepbundle.repository.publish",
    "hepbundle.repository.operations",
    "hepbundle.repository.tree",
    "hepbundle.repository.index",
    "sqlite3",
)


def test_first_resolve_loads_only_what_it_checks(repo: Path) -> None:
    """Every check still runs (trust root, statements, signature) but nothing else is imported."""
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _RESOLVE_CHILD, f"{NAME}@prod", json.dumps(_NOT_ON_RESOLVE)],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []
