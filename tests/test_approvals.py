"""Role-based sign-off: `hepbundle approve REF --as ROLE` and `alias` refusing to move prod
without the approvals the trust policy asks for; the role is the signed one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.cli import main
from hepbundle.errors import PolicyError, RepositoryError
from hepbundle.policy import TrustPolicy
from hepbundle.repository import approve_ref, init_repository, publish, set_alias
from hepbundle.repository.approvals import valid_approvals
from hepbundle.signing import KeySigner

from . import pki
from .repo_fixtures import make_bundle

NAME = "atlas/tauid"


def _run(*args: object) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    return {
        who: pki.write_key(pki.ec_key(), tmp_path / "keys" / f"{who}.pem")
        for who in ("release", "physics", "intruder")
    }


@pytest.fixture
def repo(tmp_path: Path, keys: dict[str, tuple[Path, Path]]) -> Path:
    """prod needs a physics-validation approval (physics key) and a release approval (release
    key); the release key signs bundles and the catalogue."""
    rel, phys = keys["release"][1], keys["physics"][1]
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(
        f"""version: 1
rules:
  - namespace: "atlas/*"
    signers: [{{key: {rel}}}]
    approvals:
      prod:
        physics-validation: {{key: {phys}}}
        release: {{key: {rel}}}
"""
    )
    root = tmp_path / "repo"
    init_repository(root, TrustPolicy.load(policy_file))
    for v in ("1.0.0", "1.1.0"):
        b = make_bundle(tmp_path, version=v, payload=v.encode(), key=keys["release"][0])
        publish(b, root, statement_signer=KeySigner(keys["release"][0]))
    return root


def test_alias_refuses_prod_without_the_approvals(
    repo: Path, keys: dict[str, tuple[Path, Path]]
) -> None:
    rel = KeySigner(keys["release"][0])
    with pytest.raises(
        PolicyError,
        match="needs approvals by physics-validation, release; missing: physics-validation, release",
    ):
        set_alias(f"{NAME}@1.1.0", "prod", repo, signer=rel)
    code, out, err = _run(
        "approve",
        f"{NAME}@1.1.0",
        "--as",
        "physics-validation",
        "--approver-key",
        keys["physics"][0],
        "--repo",
        repo,
    )
    assert code == 0 and out.startswith("approved atlas/tauid@1.1.0 as physics-validation"), err
    with pytest.raises(PolicyError, match="missing: release$|missing: release "):
        set_alias(f"{NAME}@1.1.0", "prod", repo, signer=rel)
    approve_ref(f"{NAME}@1.1.0", "release", rel, repo)
    done = set_alias(f"{NAME}@1.1.0", "prod", repo, signer=rel)
    assert done.version == "1.1.0"
    assert hepbundle.resolve(f"{NAME}@prod", repos=[repo]).version == "1.1.0"
    # approvals are per version (manifest digest): 1.0.0 has none
    code, _, err = _run(
        "alias", f"{NAME}@1.0.0", "prod", "--repo", repo, "--sign-key", keys["release"][0]
    )
    assert code == 1 and "missing: physics-validation, release" in err
    # other aliases need nothing
    assert set_alias(f"{NAME}@1.0.0", "validated", repo, signer=rel).version == "1.0.0"


def test_approval_by_the_wrong_key_or_relabelled_role_does_not_count(
    repo: Path, keys: dict[str, tuple[Path, Path]]
) -> None:
    with pytest.raises(
        PolicyError, match="not allowed to approve atlas/tauid as 'physics-validation'"
    ):
        approve_ref(f"{NAME}@1.1.0", "physics-validation", KeySigner(keys["intruder"][0]), repo)
    # the physics key approves as 'review'; relabelling the record's role and signature file
    # to physics-validation must not pass: the role is inside the signed statement
    rec = approve_ref(f"{NAME}@1.1.0", "review", KeySigner(keys["physics"][0]), repo)
    doc = (rec.path / "record.json").read_text()
    (rec.path / "record.json").write_text(doc.replace('"review"', '"physics-validation"'))
    (rec.path / "hepbundle.review.sig").rename(rec.path / "hepbundle.physics-validation.sig")
    policy = TrustPolicy.load(repo.parent / "policy.yaml")
    roles = policy.required_approvals(NAME, "prod")
    assert valid_approvals(repo, NAME, "1.1.0", roles) == {}
    with pytest.raises(PolicyError, match="missing: physics-validation"):
        set_alias(f"{NAME}@1.1.0", "prod", repo, signer=KeySigner(keys["release"][0]))


def test_publish_with_an_alias_that_needs_approvals_is_refused(
    repo: Path, tmp_path: Path, keys: dict[str, tuple[Path, Path]]
) -> None:
    b = make_bundle(tmp_path, version="2.0.0", payload=b"2", key=keys["release"][0])
    with pytest.raises(RepositoryError, match="requires approvals"):
        publish(b, repo, alias="prod", statement_signer=KeySigner(keys["release"][0]))
    assert not (repo / "bundles" / "atlas" / "tauid" / "2.0.0").exists()


def test_resolving_prod_rechecks_the_approvals(
    repo: Path, keys: dict[str, tuple[Path, Path]]
) -> None:
    """The signed alias move is not enough: a prod whose approvals were removed or altered after
    the move is refused when a job resolves it (and not before the approvals are back)."""
    rel = KeySigner(keys["release"][0])
    approve_ref(f"{NAME}@1.1.0", "physics-validation", KeySigner(keys["physics"][0]), repo)
    release = approve_ref(f"{NAME}@1.1.0", "release", rel, repo)
    set_alias(f"{NAME}@1.1.0", "prod", repo, signer=rel)
    assert hepbundle.resolve(f"{NAME}@prod", repos=[repo]).version == "1.1.0"
    saved = (release.path / "hepbundle.release.sig").read_bytes()
    (release.path / "hepbundle.release.sig").unlink()
    with pytest.raises(PolicyError, match=r"atlas/tauid@prod points at 1.1.0, .*missing: release"):
        hepbundle.resolve(f"{NAME}@prod", repos=[repo])
    code, _, err = _run("path", f"{NAME}@prod", "--repo", repo)
    assert code != 0 and "missing: release" in err and "Traceback" not in err
    # the version itself is not guarded (only the alias is), and prod is back once restored
    assert hepbundle.resolve(f"{NAME}@1.1.0", repos=[repo]).version == "1.1.0"
    (release.path / "hepbundle.release.sig").write_bytes(saved)
    assert hepbundle.resolve(f"{NAME}@prod", repos=[repo]).version == "1.1.0"
    # an approval record edited to another version's digest does not count either
    doc = json.loads((release.path / "record.json").read_text())
    doc["manifestSha256"] = "0" * 64
    (release.path / "record.json").write_text(json.dumps(doc))
    with pytest.raises(PolicyError, match="missing: release"):
        hepbundle.resolve(f"{NAME}@prod", repos=[repo])
