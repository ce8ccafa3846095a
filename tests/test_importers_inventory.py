"""The dry-run plan is a complete inventory of the store: every entry — file, directory, symlink,
special file — appears with a verdict (imported, skipped with its rule, refused with its reason),
checked against an independent walk of realistic GroupData-like and plain stores holding every
edge case a migration meets (unreadable directories, directory symlinks kept as aliases,
dangling and looping links, links leaving the store, FIFOs, VCS metadata, CVMFS markers, empty
directories, non-UTF-8 names)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hepbundle.cli import main
from hepbundle.errors import NotFoundError, SpecError
from hepbundle.importers import plan_import
from hepbundle.importers.base import VERDICTS
from hepbundle.importers.legacy import resolve_legacy
from hepbundle.importers.run import ImportOptions, run_import
from hepbundle.repository.catalog import read_name_catalog
from hepbundle.repository.index import rebuild_index
from hepbundle.signing import KeySigner

from .import_fixtures import GROUPDATA, CmsTag, git, make_cms_repo, make_groupdata, policy_env
from .needs import missing
from .test_permissions import _run_as_nobody, public_tmp

__all__ = ["policy_env", "public_tmp"]  # fixture re-exports

BAD_NAME = os.fsdecode(b"tauRecTools/00-02-00/calib-\xff.root")
LOCKED = "tauRecTools/00-04-00"


def _edge_cases(gd: Path, outside: Path) -> None:
    """Every kind of entry a scan can meet, added to a GroupData-like tree."""
    outside.mkdir()
    (outside / "secret.txt").write_text("not for a bundle\n")
    pkg = gd / "tauRecTools"
    (pkg / "current").symlink_to("00-02-00")  # the version legacy jobs read: an alias
    (gd / "tauRecToolsOld").symlink_to("tauRecTools")  # a package link: no one version
    (pkg / "00-02-00" / "inside.txt").symlink_to("README.txt")  # read through
    (pkg / "00-02-00" / "missing.onnx").symlink_to("gone.onnx")  # dangling
    (pkg / "00-02-00" / "loop").symlink_to("loop")  # looping
    (pkg / "00-02-00" / "secret.txt").symlink_to(outside / "secret.txt")  # leaves the store
    (pkg / "00-02-00" / "ext").symlink_to(outside)  # a directory leaving the store
    os.mkfifo(pkg / "00-02-00" / "pipe")
    (pkg / "00-02-00" / ".cvmfscatalog").write_bytes(b"")
    (pkg / ".git" / "objects").mkdir(parents=True)
    (pkg / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (gd / "Empty" / "v1").mkdir(parents=True)
    (gd / BAD_NAME).write_bytes(b"calib")
    (pkg / "00-02-00" / "weights[1].bin").write_bytes(b"w")  # a glob character
    (gd / LOCKED / "deep").mkdir(parents=True)
    (gd / LOCKED / "rnn.onnx").write_bytes(b"\x08\x07onnx-v4" * 10)
    (gd / LOCKED / "deep" / "more.root").write_bytes(b"root")
    (pkg / "newest.onnx").symlink_to("00-04-00/rnn.onnx")  # into the unreadable directory


def _walk(root: Path, *whole: str) -> set[str]:
    """Every entry below ``root`` as the test sees it, but for what lies below the directories
    ``whole``, which the plan lists as one entry: an unreadable directory (root can look into
    it; an unprivileged plan cannot, and must say so) and ``.git``."""
    out = set()
    for dirpath, dirnames, names in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for n in dirnames + names:
            p = os.path.normpath(os.path.join(rel, n)).replace(os.sep, "/")
            out.add(os.fsencode(p).decode("utf-8", "backslashreplace"))
    return {p for p in out if not any(p.startswith(w + "/") for w in whole)}


def _plan_json(*args: str, cwd: Path) -> dict[str, Any]:
    """``hepbundle import … --dry-run --json`` as an unprivileged account (root reads every
    directory, so an unreadable one is only unreadable to someone else)."""
    cmd = ["import", *args, "--dry-run", "--json"]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            missing("needs setpriv (util-linux) to plan as an unprivileged account")
        r = _run_as_nobody(sys.executable, "-m", "hepbundle", *cmd, cwd=cwd)
        assert r.returncode == 0, r.stderr
        return dict(json.loads(r.stdout))
    res = CliRunner().invoke(main, cmd)
    assert res.exit_code == 0, res.output
    return dict(json.loads(res.output))


def _by_path(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["path"]: e for e in plan["inventory"]["items"]}


def test_groupdata_plan_inventories_every_entry_of_the_store(public_tmp: Path) -> None:
    gd = make_groupdata(public_tmp / "GroupData")
    _edge_cases(gd, public_tmp / "elsewhere")
    home = public_tmp / "home"
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    private = gd / "tauRecTools/00-02-00/private.root"
    private.write_bytes(b"root")
    (gd / LOCKED).chmod(0o000)
    private.chmod(0o000)
    try:
        plan = _plan_json("atlas-groupdata", str(gd), cwd=home)
    finally:
        (gd / LOCKED).chmod(0o755)
        private.chmod(0o644)

    inv = _by_path(plan)
    assert set(inv) == _walk(
        gd, LOCKED, "tauRecTools/.git"
    )  # 100 %: nothing dropped, nothing made up
    inventory = plan["inventory"]
    assert inventory["entries"] == len(inv)
    assert sum(inventory[v] for v in VERDICTS) == len(inv)
    for e in inv.values():
        assert e["verdict"] in VERDICTS and e["reason"], e
        assert "no rule of the importer" not in e["reason"], e
    # imported entries are exactly the planned files, each naming its bundle
    planned = {(f["legacyPath"], b["ref"]) for b in plan["bundles"] for f in b["files"]}
    files = {(p, e["bundles"][0]) for p, e in inv.items() if e["kind"] in ("file", "symlink")
             and e["verdict"] == "imported"}  # fmt: skip
    assert files == planned

    def verdict(path: str) -> tuple[str, str]:
        return inv[path]["verdict"], inv[path]["reason"]

    v2 = "tauRecTools/00-02-00"
    assert verdict(LOCKED)[0] == "refused"
    assert "unreadable directory (permission denied)" in verdict(LOCKED)[1]
    assert verdict(f"{v2}/missing.onnx") == ("refused", "dangling symlink (to gone.onnx)")
    assert verdict(f"{v2}/loop") == ("refused", "looping symlink (to loop)")
    assert verdict(f"{v2}/secret.txt")[0] == "refused"
    assert "symlink leaving the store" in verdict(f"{v2}/secret.txt")[1]
    assert verdict(f"{v2}/ext")[0] == "refused"
    assert "symlinked directory leaving the store" in verdict(f"{v2}/ext")[1]
    assert verdict(f"{v2}/pipe") == ("refused", "a FIFO (named pipe)")
    # the real import could not read it: the plan says so instead of failing half-way
    assert verdict(f"{v2}/private.root") == ("refused", "unreadable file (permission denied)")
    assert verdict("tauRecTools/newest.onnx") == (
        "refused",
        "symlink whose target cannot be read (Permission denied) (to 00-04-00/rnn.onnx)",
    )
    assert verdict(f"{v2}/.cvmfscatalog") == ("skipped", "CVMFS catalogue marker (not data)")
    assert verdict("tauRecTools/.git")[0] == "skipped"
    assert verdict("Empty/v1") == ("skipped", "empty directory")
    assert verdict("Empty") == ("skipped", "directory: nothing below it is imported")
    assert verdict(f"{v2}/weights[1].bin")[0] == "refused"
    assert verdict(f"{v2}/weights[1].bin")[1].startswith("'*', '?' and '[' in file names")
    shown = os.fsencode(BAD_NAME).decode("utf-8", "backslashreplace")
    assert verdict(shown) == ("refused", "the name is not valid UTF-8")
    assert verdict("dev/tauRecTools/00-03-00/rnn.onnx")[1].startswith("dev/ area: off")
    assert verdict("tauRecTools/notes.txt") == ("skipped", "not inside <Package>/<subdir>/")
    # a version holding a refused entry is refused whole (as a cms-data tag is): published
    # without it, it would be incomplete for good; so is a version whose directory is unreadable
    refused = {r["what"]: r["reason"] for r in plan["refused"]}
    assert refused == {
        f"atlas/taurectools@0.2.0 [{v2}]": "refused: 8 entries of this version cannot be "
        f"imported ({shown}: the name is not valid UTF-8); to publish it without them, list "
        "them under skip: in the mapping",
        f"atlas/taurectools@0.4.0 [{LOCKED}]": "refused: 1 entry of this version cannot be "
        f"imported ({LOCKED}: {verdict(LOCKED)[1]}); to publish it without them, list them "
        "under skip: in the mapping",
    }
    assert [b["ref"] for b in plan["bundles"] if "@0.2.0" in b["ref"]] == []
    withheld = "its version atlas/taurectools@0.2.0 is refused (8 entries cannot be imported)"
    for f in ("rnn.onnx", "README.txt", "inside.txt", "sub/extra.root"):
        assert verdict(f"{v2}/{f}") == ("refused", withheld)
    assert verdict(v2) == ("skipped", "directory: nothing below it is imported")
    # so its directory link is no alias
    assert verdict("tauRecTools/current")[0] == "skipped"
    assert "no planned version" in verdict("tauRecTools/current")[1]
    assert plan["legacyAliases"] == []
    assert verdict("tauRecTools")[0] == "imported" and len(inv["tauRecTools"]["bundles"]) == 2

    # the text plan says the same in short (root reads LOCKED and private.root)
    res = CliRunner().invoke(main, ["import", "atlas-groupdata", str(gd), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert f"inventory: {len(inv) + 3} entries of the store" in res.output  # root sees LOCKED/*
    assert f"{v2}/missing.onnx: refused: dangling symlink (to gone.onnx)" in res.output
    assert "refused versions (1, not published):" in res.output
    assert f"atlas/taurectools@0.2.0 [{v2}]: refused: 7 entries of this version" in res.output

    # skip: in the mapping leaves the refused entries out: the versions are published without
    m = public_tmp / "map.yaml"
    bad = ("missing.onnx", "loop", "secret.txt", "ext", "pipe", "private.root", "weights[1].bin")
    m.write_text(
        "skip:\n"
        + "".join(f"  - '{v2}/{b}'\n" for b in bad)
        + f"  - '{v2}/calib-*.root'\n  - '{LOCKED}/'\n"
    )
    m.chmod(0o644)
    (gd / LOCKED).chmod(0o000)
    private.chmod(0o000)
    try:
        plan = _plan_json("atlas-groupdata", str(gd), "--map", str(m), cwd=home)
    finally:
        (gd / LOCKED).chmod(0o755)
        private.chmod(0o644)
    inv = _by_path(plan)
    assert set(inv) == _walk(gd, LOCKED, "tauRecTools/.git")
    assert plan["refused"] == []
    assert verdict(f"{v2}/missing.onnx") == (
        "skipped",
        "skip: in the mapping (the scan refuses it: dangling symlink (to gone.onnx))",
    )
    assert verdict(LOCKED) == (
        "skipped",
        "skip: in the mapping (the scan refuses it: unreadable directory (permission denied): "
        "its entries cannot be listed)",
    )
    assert verdict("tauRecTools/newest.onnx")[0] == "refused"  # in no version: nothing to refuse
    assert {e["verdict"] for p, e in inv.items() if p.startswith(v2 + "/")} == {
        "imported",
        "skipped",
    }
    assert verdict("tauRecTools/current") == (
        "imported",
        "legacy alias: tauRecTools/current -> tauRecTools/00-02-00 is alias 'current' of "
        "atlas/taurectools@0.2.0",
    )
    assert plan["legacyAliases"] == [
        {"link": "tauRecTools/current", "target": v2, "ref": "atlas/taurectools@0.2.0",
         "alias": "current"}
    ]  # fmt: skip
    [v020] = [b for b in plan["bundles"] if b["ref"] == "atlas/taurectools@0.2.0"]
    assert v020["aliases"] == ["current"]
    assert sorted(f["path"] for f in v020["files"]) == [
        "README.txt", "inside.txt", "rnn.onnx", "sub/extra.root"
    ]  # fmt: skip
    assert verdict(f"{v2}/inside.txt")[0] == "imported"
    assert "symlink to README.txt, read through" in verdict(f"{v2}/inside.txt")[1]
    assert verdict(v2)[0] == "imported" and inv[v2]["bundles"] == ["atlas/taurectools@0.2.0"]
    assert verdict("tauRecTools")[0] == "imported" and len(inv["tauRecTools"]["bundles"]) == 3


def test_links_outside_the_store_are_read_only_where_allowed(tmp_path: Path) -> None:
    gd = make_groupdata(tmp_path / "GroupData")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "common.onnx").write_bytes(b"onnx-common")
    (tmp_path / "private.txt").write_text("secret\n")
    v2 = gd / "tauRecTools" / "00-02-00"
    (v2 / "common.onnx").symlink_to(shared / "common.onnx")
    # in another version: a refused entry refuses the version holding it
    (gd / "tauRecTools" / "00-01-00" / "private.txt").symlink_to(tmp_path / "private.txt")

    def verdicts(**kw: Any) -> dict[str, str]:
        plan = plan_import("atlas-groupdata", gd, **kw)
        assert plan.inventory is not None
        reasons.update({e.path: e.reason for e in plan.inventory})
        return {e.path: e.verdict for e in plan.inventory}

    reasons: dict[str, str] = {}

    default = verdicts()
    assert default["tauRecTools/00-02-00/common.onnx"] == "refused"
    assert default["tauRecTools/00-01-00/private.txt"] == "refused"
    allowed = verdicts(allow_links_outside=[shared])
    assert allowed["tauRecTools/00-02-00/common.onnx"] == "imported"
    assert reasons["tauRecTools/00-02-00/common.onnx"] == (
        f"into atlas/taurectools@0.2.0 as common.onnx (symlink to {shared / 'common.onnx'}, "
        "read through, allowed by --allow-links-outside)"
    )
    assert allowed["tauRecTools/00-01-00/private.txt"] == "refused"  # not under the allowed dir
    assert allowed["tauRecTools/00-01-00/rnn.onnx"] == "refused"  # its version is refused
    with pytest.raises(SpecError, match="reads no directory tree"):
        plan_import("mlflow", tmp_path / "mlflow.db", allow_links_outside=[shared])


def test_directory_symlink_becomes_an_alias_in_the_catalogue(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    gd = make_groupdata(tmp_path / "GroupData")
    (gd / "tauRecTools" / "current").symlink_to("00-02-00")
    (gd / "tauRecTools" / "00-02-00" / "gone.root").symlink_to("nowhere.root")
    repo = tmp_path / "repo"
    compat = tmp_path / "compat"
    args = ["import", "atlas-groupdata", str(gd), "--repo", str(repo), "--key", str(ec_key[0]),
            "--compat-tree", str(compat)]  # fmt: skip
    # the dangling link refuses its version whole (the others are published, exit 2): published
    # without it, 0.2.0 would be incomplete for good
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    assert (
        "atlas/taurectools@0.2.0 [tauRecTools/00-02-00]: refused: 1 entry of this version cannot "
        "be imported (tauRecTools/00-02-00/gone.root: dangling symlink (to nowhere.root)); to "
        "publish it without them, list them under skip: in the mapping"
    ) in r.output
    assert "3 published, 0 unchanged, 0 conflicts, 1 refused" in r.output
    assert "1 version(s) refused, not published: atlas/taurectools@0.2.0" in r.output
    assert "0.2.0" not in read_name_catalog(repo, "atlas/taurectools").versions
    # the mapping says to leave it out: 0.2.0 is published without it
    m = tmp_path / "map.yaml"
    m.write_text("skip: ['tauRecTools/00-02-00/gone.root']\n")
    r = CliRunner().invoke(main, [*args, "--map", str(m)])
    assert r.exit_code == 0, r.output
    assert "1 published, 3 unchanged, 0 conflicts, 8 compat links" in r.output
    # a CALIBPATH consumer of tauRecTools/current/… reads the version the link named
    current = compat / "tauRecTools" / "current"
    assert os.readlink(current) == "00-02-00"
    assert (current / "rnn.onnx").read_bytes() == GROUPDATA["tauRecTools/00-02-00/rnn.onnx"]
    # dev/ (3 directories and its file), the loose notes.txt and the dangling link, skipped
    assert "store entries not imported: 6 skipped, 0 refused (--dry-run lists" in r.output
    assert read_name_catalog(repo, "atlas/taurectools").aliases["current"] == "0.2.0"
    # the store moves its link: the re-run moves the alias, publishing nothing
    (gd / "tauRecTools" / "current").unlink()
    (gd / "tauRecTools" / "current").symlink_to("00-01-00")
    opts = ImportOptions(repo=repo, signer=KeySigner(ec_key[0]), compat_tree=compat)
    report = run_import(plan_import("atlas-groupdata", gd, m), opts)
    assert report.count("unchanged") == 4
    assert (current / "rnn.onnx").read_bytes() == GROUPDATA["tauRecTools/00-01-00/rnn.onnx"]
    # 7 files, the alias, 7 directories
    assert report.to_json()["inventory"] == {"imported": 15, "skipped": 6, "refused": 0}
    assert read_name_catalog(repo, "atlas/taurectools").aliases["current"] == "0.1.0"


def test_legacy_lookup_reads_through_a_store_directory_link(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    """A job reading ``tauRecTools/current/rnn.onnx`` (the store's ``current -> 00-02-00``) gets,
    by ``path --legacy``, the Python API and the compat tree alike, the bytes of the version the
    link names, and follows the link when the store moves it (and after an index rebuild)."""
    gd = make_groupdata(tmp_path / "GroupData")
    (gd / "tauRecTools" / "current").symlink_to("00-02-00")
    repo, compat = tmp_path / "repo", tmp_path / "compat"
    args = ["import", "atlas-groupdata", str(gd), "--repo", str(repo), "--key", str(ec_key[0]),
            "--compat-tree", str(compat)]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output

    def cli_path(key: str, *more: str) -> tuple[int, str]:
        r = CliRunner().invoke(main, ["path", "--repo", str(repo), "--legacy", key, *more])
        return r.exit_code, r.output

    def served(key: str) -> bytes:
        code, out = cli_path(key)
        assert code == 0, out
        b, rel = resolve_legacy(key, repos=[repo])
        assert Path(out.strip()) == b.path(rel)
        return b.path(rel).read_bytes()

    v1, v2 = (GROUPDATA[f"tauRecTools/00-0{i}-00/rnn.onnx"] for i in (1, 2))
    assert served("atlas:tauRecTools/current/rnn.onnx") == v2
    assert (
        served("atlas:tauRecTools/current/sub/extra.root")
        == GROUPDATA["tauRecTools/00-02-00/sub/extra.root"]
    )
    assert (compat / "tauRecTools/current/rnn.onnx").read_bytes() == v2
    code, out = cli_path("atlas:tauRecTools/current/rnn.onnx", "--json")
    assert code == 0 and json.loads(out)["ref"] == "atlas/taurectools@0.2.0", out
    # only what the version holds, and only through the alias as the store spelled it
    for absent in ("tauRecTools/current/gone.onnx", "tauRecTools/Current/rnn.onnx",
                    "tauRecTools/prod/rnn.onnx", "current/rnn.onnx"):  # fmt: skip
        code, out = cli_path(f"atlas:{absent}")
        assert code != 0 and "no imported file is recorded" in out, (absent, out)
        with pytest.raises(NotFoundError):
            resolve_legacy(f"atlas:{absent}", repos=[repo])
    # a pin covering the path serves exactly the pinned version, or fails
    code, out = cli_path("atlas:tauRecTools/current/rnn.onnx", "--pin", "tauRecTools=0.1.0")
    assert code != 0 and "asks for version 0.1.0" in out and "its alias current" in out, out
    assert served("atlas:tauRecTools/00-01-00/rnn.onnx") == v1
    # the store moves its link: the re-run moves the alias, and the lookup follows it
    (gd / "tauRecTools" / "current").unlink()
    (gd / "tauRecTools" / "current").symlink_to("00-01-00")
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "0 published, 4 unchanged" in r.output, r.output
    assert served("atlas:tauRecTools/current/rnn.onnx") == v1
    assert (compat / "tauRecTools/current/rnn.onnx").read_bytes() == v1
    code, out = cli_path("atlas:tauRecTools/current/sub/extra.root")
    assert code != 0 and "no imported file is recorded" in out, out  # 0.1.0 has no sub/
    rebuild_index(repo)  # the rule needs no record beyond the signed catalogue and manifests
    assert served("atlas:tauRecTools/current/rnn.onnx") == v1
    # the store points its link at a new version that the import cannot publish (a stray copy
    # in its place): the alias stays where it was, and the compat tree's link with it (it was
    # written pointing at a directory no bundle file is in)
    (gd / "tauRecTools/00-03-00").mkdir()
    (gd / "tauRecTools/00-03-00/rnn.onnx").write_bytes(b"v3")
    (gd / "tauRecTools" / "current").unlink()
    (gd / "tauRecTools" / "current").symlink_to("00-03-00")
    (repo / "bundles/atlas/taurectools/0.3.0").mkdir()
    r = CliRunner().invoke(main, [*args, "--keep-going"])
    assert r.exit_code == 2 and "1 failed" in r.output, r.output
    assert read_name_catalog(repo, "atlas/taurectools").aliases["current"] == "0.1.0"
    assert os.readlink(compat / "tauRecTools" / "current") == "00-01-00"
    assert (compat / "tauRecTools/current/rnn.onnx").read_bytes() == v1
    assert served("atlas:tauRecTools/current/rnn.onnx") == v1


def test_dir_plan_inventories_every_entry_of_the_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    for rel, data in {
        "models/tau/v3/model.onnx": b"onnx" * 100,
        "models/tau/v3/card.md": b"# card\n",
        "models/tau/v3/scratch.bak": b"old",
        "models/jet/weights.bin": b"\x00" * 64,
        "README.md": b"store\n",
    }.items():
        (store / rel).parent.mkdir(parents=True, exist_ok=True)
        (store / rel).write_bytes(data)
    (store / "models" / "tau" / "latest").symlink_to("v3")
    (store / "models" / "tau" / "prod").symlink_to("v3")
    (store / "models" / "tau" / "v3" / "old.onnx").symlink_to("v2/model.onnx")
    (store / "models" / "etc").symlink_to("/etc")
    (store / "tmp").mkdir()
    (store / ".gitignore").write_text("*.bak\n")
    m = tmp_path / "map.yaml"
    bundles = "bundles:\n  - {name: ml/tau, version: 3.0.0, include: ['models/tau/v3/']}\n"

    def dry_run(skip: str) -> dict[str, Any]:
        m.write_text(f"skip: [{skip}]\n{bundles}")
        res = CliRunner().invoke(main, ["import", "dir", str(store), "--map", str(m),
                                        "--dry-run", "--json"])  # fmt: skip
        assert res.exit_code == 0, res.output
        return dict(json.loads(res.output))

    # the dangling old.onnx is in the bundle's directory: the bundle is refused whole
    plan = dry_run("'**/*.bak'")
    assert plan["bundles"] == []
    assert plan["refused"] == [
        {
            "what": "ml/tau@3.0.0 [bundles[0]]",
            "reason": "refused: 1 entry of this version cannot be imported "
            "(models/tau/v3/old.onnx: dangling symlink (to v2/model.onnx)); to publish it "
            "without them, list them under skip: in the mapping",
        }
    ]
    assert _by_path(plan)["models/tau/v3/model.onnx"]["verdict"] == "refused"
    # models/etc (a refused link too) is in no bundle: it refuses none
    plan = dry_run("'**/*.bak', models/tau/v3/old.onnx")
    assert plan["refused"] == []
    inv = _by_path(plan)
    assert set(inv) == _walk(store)
    for e in inv.values():
        assert e["verdict"] in VERDICTS and e["reason"], e
    assert inv["models/tau/prod"]["verdict"] == "imported"
    assert plan["bundles"][0]["aliases"] == ["prod"]
    # 'latest' is the newest version, never an alias a link can take
    assert inv["models/tau/latest"]["verdict"] == "skipped"
    assert "cannot be an alias" in inv["models/tau/latest"]["reason"]
    assert inv["models/tau/v3/scratch.bak"]["reason"] == "skip: in the mapping"
    assert inv["models/jet/weights.bin"]["reason"] == "matched by no bundle"
    assert inv["models/tau/v3/old.onnx"] == {
        "path": "models/tau/v3/old.onnx",
        "kind": "symlink",
        "verdict": "skipped",
        "reason": "skip: in the mapping (the scan refuses it: dangling symlink (to v2/model.onnx))",
        "bundles": [],
    }
    assert inv["models/etc"]["verdict"] == "refused"
    assert inv["tmp"]["reason"] == "empty directory"
    assert inv[".gitignore"]["reason"] == "matched by no bundle"


def test_cms_data_plan_inventories_every_entry_of_every_tag(tmp_path: Path) -> None:
    """The cms-data plan lists every tag and every entry of each version tag's tree (as
    ``git ls-tree -r`` gives them: files, symlinks, submodules) with its verdict."""
    bad_name = os.fsdecode(b"DeepTauId/calib-\xff.pb")
    tags = [
        CmsTag("V00-01-00", "First files", "First training files",
               {"README.md": b"cms-data\n", "DeepTauId/core.pb": b"core" * 100}),
        CmsTag("V00-02-00", "Validation plots and an LFS file", None,
               {".gitattributes": b"validation/** export-ignore\n*.bin filter=lfs\n",
                "validation/roc.png": b"png" * 30, "DeepTauId/core.pb": b"core2" * 100,
                "big.bin": b"version https://git-lfs.github.com/spec/v1\n", bad_name: b"x"}),
        CmsTag("V00-03-00", "Retrained", "Retrained",
               {"big.bin": None, bad_name: None, "DeepTauId/inner.pb": b"inner" * 50}),
    ]  # fmt: skip
    src = make_cms_repo(tmp_path / "src", "RecoTauTag-TrainingFiles", tags)
    (src / "current.pb").symlink_to("DeepTauId/core.pb")
    git(src, "add", "current.pb")
    head = git(src, "rev-parse", "HEAD")
    git(src, "update-index", "--add", "--cacheinfo", f"160000,{head},external")  # a submodule
    git(src, "commit", "-q", "-m", "Links")
    git(src, "tag", "-a", "V00-04-00", "-m", "Links")
    res = CliRunner().invoke(main, ["import", "cms-data", str(src), "--dry-run", "--json"])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output)
    inv = _by_path(plan)
    versions = ("V00-01-00", "V00-02-00", "V00-03-00", "V00-04-00")
    want = {f"tag {t}" for t in (*versions, "before-rename")}
    for t in versions:
        listed = subprocess.run(
            ["git", "ls-tree", "-r", "-z", "--name-only", t], cwd=src, capture_output=True,
            check=True,
        ).stdout  # fmt: skip
        want |= {f"{t}:{p.decode('utf-8', 'backslashreplace')}" for p in listed.split(b"\0") if p}
    assert set(inv) == want  # 100 %: every tag, every entry of each version tag's tree
    inventory = plan["inventory"]
    assert inventory["entries"] == len(inv) == sum(inventory[v] for v in VERDICTS)
    for e in inv.values():
        assert e["verdict"] in VERDICTS and e["reason"], e
    planned = {
        (f"{b['origin'].removeprefix('tag ')}:{f['path']}", b["ref"])
        for b in plan["bundles"]
        for f in b["files"]
    }
    imported = {(p, e["bundles"][0]) for p, e in inv.items() if e["verdict"] == "imported"
                and not p.startswith("tag ")}  # fmt: skip
    assert imported == planned

    def verdict(path: str) -> tuple[str, str, str]:
        return inv[path]["kind"], inv[path]["verdict"], inv[path]["reason"]

    name = "cms/recotautag-trainingfiles"
    assert verdict("V00-01-00:DeepTauId/core.pb") == (
        "file",
        "imported",
        f"into {name}@0.1.0 as DeepTauId/core.pb (legacy path "
        "RecoTauTag/TrainingFiles/data/DeepTauId/core.pb)",
    )
    assert verdict("tag V00-01-00") == (
        "tag",
        "imported",
        f"version {name}@0.1.0: 2 files of its tree",
    )
    kind, v, why = verdict("tag V00-02-00")
    assert (kind, v) == ("tag", "refused") and why.startswith(
        "2 file(s) of the release cannot be imported"
    )
    assert verdict("V00-02-00:DeepTauId/core.pb") == (
        "file",
        "refused",
        f"its version {name}@0.2.0 is refused (see the tag)",
    )
    assert verdict("V00-02-00:big.bin")[1:] == (
        "refused",
        "a git LFS pointer (filter=lfs): the content is not in git",
    )
    shown = "V00-02-00:" + os.fsencode(bad_name).decode("utf-8", "backslashreplace")
    assert verdict(shown)[1:] == (
        "refused",
        "the file name is not valid UTF-8 (bundle paths are UTF-8)",
    )
    assert verdict("V00-03-00:validation/roc.png")[1] == "skipped"
    assert verdict("V00-03-00:validation/roc.png")[2].startswith("export-ignore (.gitattributes)")
    assert verdict("V00-03-00:.gitattributes") == ("file", "skipped", "git metadata")
    assert verdict("V00-04-00:current.pb") == ("symlink", "skipped", "symlink (not imported)")
    assert verdict("V00-04-00:external") == (
        "submodule",
        "skipped",
        "git submodule: its files are not in this repository",
    )
    assert verdict("tag before-rename") == ("tag", "skipped", "not of the form VAA-BB-CC")
    # the text plan counts them and lists what is left out
    res = CliRunner().invoke(main, ["import", "cms-data", str(src), "--dry-run"])
    assert f"inventory: {len(inv)} entries of the store" in res.output
    assert "V00-02-00:big.bin: refused: a git LFS pointer" in res.output


def test_names_the_build_refuses_are_refused_by_the_plan(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    """A GroupData version holding hepbundle.json or hepbundle.sig at its top (a store that
    once held a bundle, copied by hand) or a name with a tab: the dry-run listed them imported
    and only the real build refused them (failed, or the whole run stopped). Now the plan refuses
    the version whole, naming the file, as for any entry the scan refuses; the same name deeper
    down is an ordinary file; skip: publishes the version without it."""
    gd = make_groupdata(tmp_path / "GroupData", {
        "pkg/v1/a.onnx": b"a", "pkg/v1/hepbundle.json": b"{}",
        "pkg/v2/b.onnx": b"b", "pkg/v2/hepbundle.sig": b"sig",
        "pkg/v3/sub/hepbundle.json": b"{}",
        "pkg/v4/ok.root": b"o", "pkg/v4/tab\there.root": b"t",
        "pkg/v5/Model.onnx": b"M", "pkg/v5/model.onnx": b"m",
    })  # fmt: skip
    repo = tmp_path / "repo"
    args = ["import", "atlas-groupdata", str(gd), "--repo", str(repo), "--key", str(ec_key[0])]
    r = CliRunner().invoke(main, [*args, "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    refused = {r["what"]: r["reason"] for r in plan["refused"]}
    assert refused == {
        "atlas/pkg@1.0.0 [pkg/v1]": "refused: 1 entry of this version cannot be imported "
        "(pkg/v1/hepbundle.json: its bundle path 'hepbundle.json' is a name the bundle reserves "
        "(the manifest's, a signature's, a CVMFS marker's)); to publish it without them, list "
        "them under skip: in the mapping",
        "atlas/pkg@2.0.0 [pkg/v2]": "refused: 1 entry of this version cannot be imported "
        "(pkg/v2/hepbundle.sig: its bundle path 'hepbundle.sig' is a name the bundle reserves "
        "(the manifest's, a signature's, a CVMFS marker's)); to publish it without them, list "
        "them under skip: in the mapping",
        "atlas/pkg@4.0.0 [pkg/v4]": "refused: 1 entry of this version cannot be imported "
        "(pkg/v4/tab\there.root: its bundle path is refused: path 'tab\\\\there.root' contains a "
        "NUL or control character); to publish it without them, list them under skip: in the "
        "mapping",
        "atlas/pkg@5.0.0 [pkg/v5]": "refused: 1 entry of this version cannot be imported "
        "(pkg/v5: two of its files' bundle paths collide: paths 'Model.onnx' and 'model.onnx' "
        "collide after Unicode normalisation/case folding); to publish it without them, list "
        "them under skip: in the mapping",
    }
    assert [b["ref"] for b in plan["bundles"]] == ["atlas/pkg@3.0.0"]
    verdict = {e["path"]: (e["verdict"], e["reason"]) for e in plan["inventory"]["items"]}
    assert verdict["pkg/v1/hepbundle.json"][0] == verdict["pkg/v1/a.onnx"][0] == "refused"
    assert verdict["pkg/v1/a.onnx"][1] == (
        "its version atlas/pkg@1.0.0 is refused (1 entry cannot be imported)"
    )
    assert verdict["pkg/v3/sub/hepbundle.json"][0] == "imported"
    # the real import refuses the same versions, and publishes the other
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    assert "1 published, 0 unchanged, 0 conflicts, 4 refused" in r.output
    assert read_name_catalog(repo, "atlas/pkg").versions.keys() == {"3.0.0"}
    m = tmp_path / "map.yaml"
    m.write_text(
        "skip: [pkg/v1/hepbundle.json, pkg/v2/hepbundle.sig, 'pkg/v4/tab*', pkg/v5/Model.onnx]\n"
    )
    r = CliRunner().invoke(main, [*args, "--map", str(m)])
    assert r.exit_code == 0, r.output
    assert read_name_catalog(repo, "atlas/pkg").versions.keys() == {
        "1.0.0", "2.0.0", "3.0.0", "4.0.0", "5.0.0"
    }  # fmt: skip
