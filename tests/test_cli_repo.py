"""The repository commands through click's CliRunner: the release manager's path end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.cli import main
from hepbundle.repository.layout import catalog_file, index_file

from .repo_fixtures import check_invariants, make_bundle


def run(*args: object, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, [str(a) for a in args], env=env)
    return r.exit_code, r.stdout, r.stderr


def test_sign_publish_prod_find_show_versions_yank(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path], tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    code, out, err = run(
        "publish", signed.root, "--repo", repo, "--key", ec_key[1], "--alias", "prod", "--json"
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["status"] == "published" and res["alias"] == "prod" and len(res["signers"]) == 1
    code, out, _ = run("find", "tau", "--repo", repo)
    assert code == 0 and out.startswith("atlas/tauid@1.2.0 @prod  Tau identification RNN")
    code, out, _ = run("find", "--framework", "onnx", "--repo", repo, "--json")
    assert [h["ref"] for h in json.loads(out)] == ["atlas/tauid@1.2.0"]
    code, out, _ = run("show", "atlas/tauid@prod", "--repo", repo, "--no-card")
    assert code == 0 and "atlas/tauid@1.2.0" in out and str(repo / "bundles") in out
    code, out, _ = run("show", "atlas/tauid@prod", "--json", env={"HEPBUNDLE_REPO": str(repo)})
    assert json.loads(out)["catalog"]["version"] == "1.2.0"
    code, out, _ = run("publish", signed.root, "--repo", repo, "--key", ec_key[1])
    assert code == 0 and out.startswith("unchanged atlas/tauid@1.2.0")
    yank = ("yank", "atlas/tauid@prod", "--reason", "bad calibration", "--repo", repo)
    code, out, err = run(*yank)  # prod points at it: every job loading @prod would fail
    assert code == 2 and "is what @prod points at" in err and "--force" in err
    env = {"HEPBUNDLE_ACTOR": "release-manager@cern.ch"}
    code, out, err = run(*yank, "--force", env=env)
    assert code == 0 and out.strip() == "yanked atlas/tauid@1.2.0: bad calibration"
    assert "@prod now points at a yanked version" in err
    code, out, _ = run("versions", "atlas/tauid", "--repo", repo)
    assert out.split() == ["1.2.0", *out.split()[1:2], "@prod", "[YANKED:", "bad", "calibration]"]
    code, _, err = run("show", "atlas/tauid@1.2.0", "--repo", repo, "--no-card")
    assert code == 2 and "atlas/tauid@1.2.0 is yanked: bad calibration" in err  # as `path` does
    code, out, _ = run("show", "atlas/tauid@1.2.0", "--repo", repo, "--no-card", "--allow-yanked")
    assert "YANKED: bad calibration" in out
    check_invariants(repo)


def test_show_says_what_the_catalogue_knows(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path], tmp_path: Path
) -> None:
    """A release manager's questions under the title of `show ns/x@prod`: when it was published,
    which aliases point at this version (and who moved them), who signed it; and a yanked
    version says so first, with who yanked it, not under the metrics."""
    repo = tmp_path / "repo"
    me = {"HEPBUNDLE_ACTOR": "rm@cern.ch"}
    assert run("publish", signed.root, "--repo", repo, "--trust-key", ec_key[1])[0] == 0
    assert run("alias", "atlas/tauid@1.2.0", "prod", "--repo", repo, env=me)[0] == 0
    code, out, err = run("show", "atlas/tauid@prod", "--repo", repo, "--no-card")
    assert code == 0, err
    head = out.splitlines()[:5]
    doc = json.loads(catalog_file(repo, "atlas/tauid").read_text())
    rec = doc["versions"]["1.2.0"]
    (signer,) = rec["signers"]
    assert signer.startswith("sha256:"), signer  # a key's fingerprint; `show` says "key"
    since = doc["aliasHistory"][-1]["time"]
    assert head[1:4] == [
        f"  published {rec['published']} in {repo}",
        f"  aliases   @prod (since {since} by rm@cern.ch), @latest",
        f"  signers   key {signer}",
    ], head
    code, out, _ = run("show", "atlas/tauid@prod", "--repo", repo, "--json")
    cat = json.loads(out)["catalog"]
    assert cat["published"] == rec["published"] and cat["signers"] == [signer]
    assert [a["alias"] for a in cat["aliases"]] == ["prod", "latest"] and cat["yanked"] is None
    yank = ("yank", "atlas/tauid@1.2.0", "--reason", "bad calibration", "--repo", repo, "--force")
    assert run(*yank, env=me)[0] == 0
    code, out, _ = run("show", "atlas/tauid@1.2.0", "--repo", repo, "--allow-yanked")
    assert code == 0
    yanked = json.loads(catalog_file(repo, "atlas/tauid").read_text())["versions"]["1.2.0"]
    assert out.splitlines()[1] == (
        f"  YANKED: bad calibration ({yanked['yanked']['time']} by rm@cern.ch); "
        "do not use it, pin another version"
    )
    # no catalogue, no catalogue block
    code, out, _ = run("show", signed.root, "--no-card")
    assert code == 0 and "  aliases " not in out and "  published " not in out


def test_show_names_the_signers_the_trust_root_names(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path], tmp_path: Path
) -> None:
    """A key signer is a fingerprint; the policy the repository was created with can say
    whose key it is (``name:``), kept in the trust root: `show` then prints the name next to
    the fingerprint, and --json maps each signer to its name (issue 14, item 11)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nrules:\n  - namespace: '*'\n    signers:\n"
        f"      - key: {ec_key[1]}\n        name: Jane Doe, tau release manager\n"
    )
    repo = tmp_path / "repo"
    code, _, err = run("publish", signed.root, "--repo", repo, "--policy", policy)
    assert code == 0, err
    doc = json.loads(catalog_file(repo, "atlas/tauid").read_text())
    (signer,) = doc["versions"]["1.2.0"]["signers"]
    code, out, err = run("show", "atlas/tauid@1.2.0", "--repo", repo, "--no-card")
    assert code == 0, err
    assert f"  signers   Jane Doe, tau release manager (key {signer})" in out.splitlines()
    code, out, _ = run("show", "atlas/tauid@1.2.0", "--repo", repo, "--json")
    cat = json.loads(out)["catalog"]
    assert cat["signers"] == [signer]
    assert cat["signer_names"] == {signer: "Jane Doe, tau release manager"}


def test_signer_names_from_certificate_subjects() -> None:
    from hepbundle.policy import signer_name

    grid = "/DC=ch/DC=cern/OU=Organic Units/OU=Users/CN=jdoe/CN=123456/CN=Jane Doe"
    assert signer_name(grid, {}) == "Jane Doe"
    assert signer_name("CN=Jane Doe,OU=Users,O=CERN", {}) == "Jane Doe"
    assert signer_name("O=CERN,CN=Jane Doe", {}) == "Jane Doe"
    assert signer_name("sha256:" + "ab" * 32, {}) is None  # an unnamed key
    assert signer_name("sha256:" + "ab" * 32, {"sha256:" + "ab" * 32: "Jane"}) == "Jane"
    assert signer_name("jane.doe@cern.ch", {}) is None  # sigstore: readable as it is
    assert signer_name("https://gitlab.cern.ch/a/b//.gitlab-ci.yml@refs/heads/main", {}) is None


def test_default_repo_is_env_then_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = make_bundle(tmp_path, version="2.0.0")
    monkeypatch.chdir(tmp_path)
    assert run("publish", b.root, "--allow-unsigned")[0] == 0
    assert (tmp_path / "hepbundle-repo/bundles/atlas/tauid/2.0.0/hepbundle.json").is_file()
    env_repo = tmp_path / "env-repo"
    code, _, _ = run("publish", b.root, "--allow-unsigned", env={"HEPBUNDLE_REPO": str(env_repo)})
    assert code == 0 and catalog_file(env_repo, "atlas/tauid").is_file()


def test_yank_and_alias_safety_record_who(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for v in ("1.0.0", "1.1.0"):
        b = make_bundle(tmp_path, version=v)
        assert run("publish", b.root, "--repo", repo, "--allow-unsigned")[0] == 0
    me = {"HEPBUNDLE_ACTOR": "jane@cern.ch"}
    assert run("alias", "atlas/tauid@1.1.0", "prod", "--repo", repo, env=me)[0] == 0
    # yanking what prod points at: refused, with the command that moves prod first
    code, _, err = run("yank", "atlas/tauid@1.1.0", "--reason", "bad", "--repo", repo)
    assert code == 2 and "@prod points at" in err
    assert "hepbundle alias atlas/tauid@1.0.0 prod" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1
    # the unaliased 1.0.0 yanks; a second yank does not silently replace the reason
    code, out, _ = run("yank", "atlas/tauid@1.0.0", "--reason", "first", "--repo", repo, "--json")
    assert code == 0 and json.loads(out)["actor"]
    code, _, err = run("yank", "atlas/tauid@1.0.0", "--reason", "second", "--repo", repo)
    assert code == 2 and "already yanked" in err and "first" in err
    code, _, _ = run(
        "yank", "atlas/tauid@1.0.0", "--reason", "second", "--repo", repo, "--force", env=me
    )
    assert code == 0
    # an alias onto a yanked version: refused, then allowed with --force and a warning
    code, _, err = run("alias", "atlas/tauid@1.0.0", "beta", "--repo", repo)
    assert code == 2 and "is yanked (second)" in err and "--force" in err
    code, _, err = run("alias", "atlas/tauid@1.0.0", "beta", "--repo", repo, "--force", env=me)
    assert code == 0 and "@beta now points at a yanked version" in err
    doc = json.loads(catalog_file(repo, "atlas/tauid").read_text())
    assert doc["versions"]["1.0.0"]["yanked"] == {
        "reason": "second",
        "time": doc["versions"]["1.0.0"]["yanked"]["time"],
        "actor": "jane@cern.ch",
    }
    assert [(e["alias"], e["actor"]) for e in doc["aliasHistory"]] == [
        ("prod", "jane@cern.ch"),
        ("beta", "jane@cern.ch"),
    ]
    check_invariants(repo)  # the schema takes the actor fields
    # every version yanked: ns/name says so instead of suggesting yanked versions
    assert run("yank", "atlas/tauid@1.1.0", "--reason", "bad", "--repo", repo, "--force")[0] == 0
    code, _, err = run("show", "atlas/tauid", "--repo", repo)
    assert code == 2 and "every version of atlas/tauid is yanked" in err


def test_alias_versions_rebuild(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for v in ("1.0.0", "1.1.0"):
        b = make_bundle(tmp_path, version=v)
        assert run("publish", b.root, "--repo", repo, "--allow-unsigned")[0] == 0
    assert run("alias", "atlas/tauid@1.0.0", "prod", "--repo", repo)[1] == (
        "atlas/tauid@prod -> 1.0.0\n"
    )
    out = run("alias", "atlas/tauid@1.1.0", "prod", "--repo", repo, "--json")[1]
    assert json.loads(out)["version"] == "1.1.0"
    out = run("versions", "atlas/tauid", "--repo", repo, "--json")[1]
    hist = json.loads(out)["aliasHistory"]
    assert [(h["previous"], h["version"]) for h in hist] == [(None, "1.0.0"), ("1.0.0", "1.1.0")]
    out = run("versions", "atlas/tauid", "--repo", repo)[1]
    assert out.splitlines()[0].split()[0] == "1.1.0" and "@prod (latest)" in out.splitlines()[0]
    index_file(repo, "atlas").unlink()
    assert run("catalog", "rebuild", "--repo", repo)[1] == "rebuilt the index: 2 versions\n"
    check_invariants(repo)


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["publish", "{bundle}", "--repo", "{repo}"], "is unsigned; refusing", 1),
        (["publish", "{bundle}", "--backend", "cvmfs", "--repo", "ml.cern.ch", "--allow-unsigned"], "never publishes unsigned", 1),
        (["publish", "/nonexistent/b", "--allow-unsigned"], "does not exist", 2),
        (["show", "atlas/nope@1.0.0", "--repo", "{repo}"], "no bundle named 'atlas/nope'", 2),
        (["show", "nonexistent-dir"], "neither an existing path nor a bundle reference", 2),
        (["alias", "atlas/tauid@9.0.0", "prod", "--repo", "{repo}"], "no version '9.0.0'", 2),
        (["yank", "atlas/tauid@1.0.0", "--reason", "x", "--repo", "{tmp}/none"], "not a hepbundle repository", 2),
        (["find", "--repo", "{tmp}/none"], "no such repository", 2),
        (["versions", "atlas/tauidd", "--repo", "{repo}"], "did you mean 'atlas/tauid'", 2),
    ],
)  # fmt: skip
def test_bad_input_one_line(tmp_path: Path, args: list[str], message: str, code: int) -> None:
    b = make_bundle(tmp_path, version="1.0.0")
    repo = tmp_path / "repo"
    assert run("publish", b.root, "--repo", repo, "--allow-unsigned")[0] == 0
    other = make_bundle(tmp_path / "o", version="1.1.0")
    argv = [a.format(bundle=other.root, repo=repo, tmp=tmp_path) for a in args]
    got, _, err = run(*argv)
    assert got == code and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_overwrite_refused_through_cli(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run("publish", make_bundle(tmp_path).root, "--repo", repo, "--allow-unsigned")
    other = make_bundle(tmp_path, payload=b"different")
    code, _, err = run("publish", other.root, "--repo", repo, "--allow-unsigned")
    assert code == 2 and "already published with different content" in err
