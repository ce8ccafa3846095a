"""One REF resolver for every command: each command that takes a REF refuses a yanked version
and a bundle swapped behind the catalogue exactly as `hepbundle path` does, and finds its REF
through the same search path (HEPBUNDLE_PATH / --repo)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle import resolver
from hepbundle.cli import main
from hepbundle.errors import NotFoundError, VerificationError, YankedError
from hepbundle.repository.layout import catalog_file
from hepbundle.repository.operations import yank

from .test_load import make_version, repo  # noqa: F401  (the fixture)


def _commands(tmp: Path, ec_key: tuple[Path, Path]) -> dict[str, list[str]]:
    npz = tmp / "x.npz"
    np.savez(npz, x=np.zeros((2, 16), dtype=np.float32), y=np.zeros(2))
    att = tmp / "att.json"
    att.write_text("{}")
    return {
        "path": ["path", "{ref}"],
        "verify": ["verify", "{ref}"],
        "show": ["show", "{ref}", "--no-card"],
        "fpga compare": ["fpga", "compare", "{ref}", "--inputs", str(npz)],
        "fpga reloadable": ["fpga", "reloadable", "{ref}"],
        "provenance": ["provenance", "{ref}"],
        "attest": ["attest", "{ref}", "-o", str(tmp / "new.json"), "--key", str(ec_key[0])],
        "verify-attestation": ["verify-attestation", str(att), "{ref}", "--key", str(ec_key[1])],
        "lineage": ["lineage", "{ref}"],
        "eval": ["eval", "{ref}", "--data", str(npz), "--labels", "y"],
        "drift": ["drift", "{ref}", "--data", str(npz)],
        "reproduce": ["reproduce", "{ref}", "--check"],
    }


COMMANDS = [
    "path",
    "verify",
    "show",
    "fpga compare",
    "fpga reloadable",
    "provenance",
    "attest",
    "verify-attestation",
    "lineage",
    "eval",
    "drift",
    "reproduce",
]


def _run(args: list[str]) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, args)
    return res.exit_code, res.stdout, res.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_yanked_version_refused_by_every_command(
    repo: Path,  # noqa: F811
    tmp_path: Path,
    ec_key: tuple[Path, Path],
    command: str,
) -> None:
    yank("atlas/tauid@1.1.0", "wrong pile-up profile", repo, force=True)
    args = [a.format(ref="atlas/tauid@prod") for a in _commands(tmp_path, ec_key)[command]]
    code, out, err = _run(args)
    assert code == 2, (out, err)
    assert "atlas/tauid@1.1.0 is yanked: wrong pile-up profile" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    # --allow-yanked gets past the resolver (the command may still fail for its own reasons)
    code, out, err = _run([*args, "--allow-yanked"])
    assert "is yanked" not in err.replace("(allowed)", "")


@pytest.mark.parametrize("command", COMMANDS)
def test_swapped_bundle_refused_by_every_command(
    repo: Path,  # noqa: F811
    tmp_path: Path,
    ec_key: tuple[Path, Path],
    command: str,
) -> None:
    """The 1.1.0 directory replaced by 1.0.0's (a valid, signed bundle, but not the one the
    catalogue recorded)."""
    target = repo / "bundles" / "atlas" / "tauid" / "1.1.0"
    shutil.rmtree(target)
    shutil.copytree(repo / "bundles" / "atlas" / "tauid" / "1.0.0", target)
    args = [a.format(ref="atlas/tauid@1.1.0") for a in _commands(tmp_path, ec_key)[command]]
    code, out, err = _run(args)
    assert code == 1, (out, err)
    assert "differs from the catalogue" in err and "Traceback" not in err


def test_locate_reads_the_catalogue_without_opening(repo: Path) -> None:  # noqa: F811
    where = resolver.locate("atlas/tauid@prod")
    assert where.record is not None and where.record.version == "1.1.0"
    assert where.repo == repo and where.path == repo / "bundles" / "atlas" / "tauid" / "1.1.0"
    shutil.rmtree(where.path)  # nothing is opened: a missing directory is not noticed here
    assert resolver.locate("atlas/tauid@prod").path == where.path
    yank("atlas/tauid@1.0.0", "bad", repo, force=True)
    with pytest.raises(YankedError) as e:
        resolver.locate("atlas/tauid@1.0.0")
    assert isinstance(e.value, NotFoundError) and e.value.ref == "atlas/tauid@1.0.0"
    assert resolver.locate("atlas/tauid@1.0.0", allow_yanked=True).record.yanked == "bad"  # type: ignore[union-attr]


def test_read_ref_checks_the_catalogue_digest(repo: Path) -> None:  # noqa: F811
    where, manifest, digest = resolver.read_ref("atlas/tauid@prod")
    assert manifest.version == "1.1.0" and where.record is not None
    assert digest == where.record.manifest_digest
    cat_file = catalog_file(repo, "atlas/tauid")
    cat = json.loads(cat_file.read_text())
    cat["versions"]["1.1.0"]["manifestSha256"] = "0" * 64
    cat_file.write_text(json.dumps(cat))
    with pytest.raises(VerificationError, match="differs from the catalogue"):
        resolver.read_ref("atlas/tauid@prod")


def test_one_search_rule_for_show_and_path(
    repo: Path,  # noqa: F811
    tmp_path: Path,
    ec_key: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`show`, `verify`, `versions` and `find` search HEPBUNDLE_PATH like `path` (they used to
    read HEPBUNDLE_REPO only, or take a directory), and --repo (repeatable) overrides both."""
    monkeypatch.delenv("HEPBUNDLE_REPO", raising=False)
    code, out, err = _run(["show", "atlas/tauid@prod", "--json"])
    assert code == 0, err
    assert json.loads(out)["catalog"]["version"] == "1.1.0"
    other = tmp_path / "other"
    hepbundle.repository.publish(
        make_version(tmp_path / "o", "3.0.0", ec_key[0], b"other" * 100), other, alias="prod"
    )
    for cmd in (["show", "--json"], ["path", "--json"], ["verify", "--json"]):
        code, out, err = _run(
            [cmd[0], "atlas/tauid@prod", "--repo", str(other), "--repo", str(repo), *cmd[1:]]
        )
        assert code == 0, err
        assert "3.0.0" in out
    code, out, err = _run(["verify", "atlas/tauid@prod"])
    assert code == 0 and out.startswith("OK atlas/tauid@1.1.0: signed by key"), (out, err)
    code, out, err = _run(["versions", "atlas/tauid"])
    assert code == 0 and out.split()[0] == "2.0.0-rc.1" and "@prod" in out, (out, err)
    code, out, err = _run(["versions", "atlas/tauid", "--repo", str(other), "--repo", str(repo)])
    assert code == 0 and out.split() == ["3.0.0", *out.split()[1:]] and "1.1.0" not in out
    code, out, err = _run(["find", "--json"])
    assert code == 0 and {h["ref"] for h in json.loads(out)} == {"atlas/tauid@1.1.0"}
    # every repository of the path is searched; the first hides the same name@version later
    monkeypatch.setenv("HEPBUNDLE_PATH", f"{other}:{repo}")
    code, out, err = _run(["find", "--all-versions", "--json"])
    hits = json.loads(out)
    assert code == 0 and [(h["version"], h["repository"]) for h in hits] == [
        ("3.0.0", str(other)),
        ("2.0.0-rc.1", str(repo)),
        ("1.1.0", str(repo)),
        ("1.0.0", str(repo)),
    ], hits


def test_not_found_says_no_such_repository_and_did_you_mean(
    repo: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = tmp_path / "nonexist"
    for args in (["path", "atlas/tauid"], ["versions", "atlas/tauid"], ["find", "tau"]):
        code, _out, err = _run([*args, "--repo", str(missing)])
        assert code == 2 and err.startswith(f"hepbundle: error: no such repository: {missing}")
        assert err.count("\n") == 1, err
    code, _out, err = _run(["path", "atlas/tuaid"])
    assert code == 2 and "no bundle named 'atlas/tuaid'" in err
    assert "did you mean 'atlas/tauid'?" in err
    # a path entry that is not a repository is named, and the others still searched
    monkeypatch.setenv("HEPBUNDLE_PATH", f"{missing}:{repo}")
    code, _out, err = _run(["show", "atlas/tuaid"])
    assert code == 2 and "did you mean 'atlas/tauid'?" in err
    assert f"not a repository: {missing}" in err
    assert _run(["path", "atlas/tauid"])[0] == 0
    assert _run(["find", "tau"])[0] == 0
    code, _out, err = _run(["versions", "atlas/taiud"])
    assert code == 2 and "did you mean 'atlas/tauid'?" in err
