"""Repository format 2: per-namespace subtrees, the sharded index, migration of format 1, and
concurrent publishers holding gateway leases on two namespaces (on the stand-in's gateway
model, tests/cvmfs_standin.py [leases])."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hepbundle.policy import TrustPolicy
from hepbundle.repository import (
    FindQuery,
    append_record,
    find,
    list_names,
    list_records,
    migrate,
    publish,
    read_name_catalog,
    read_repository,
    set_alias,
    yank,
)
from hepbundle.repository._crash import MIGRATE_CRASH_POINTS
from hepbundle.repository.index import dump_index
from hepbundle.repository.layout import (
    catalog_file,
    ensure_repository,
    index_file,
    repository_format,
    serial_of,
    written_paths,
)
from hepbundle.spec import validate

from .repo_fixtures import check_invariants, make_bundle
from .test_repository_cvmfs import REPO, Standin

SRC = str(Path(__file__).parent.parent / "src")


def _v1_repository(tmp: Path) -> Path:
    """A format-1 repository with two namespaces, aliases, a yank and a record."""
    repo = tmp / "repo"
    ensure_repository(repo, fmt=1)
    for v in ("1.0.0", "1.1.0"):
        publish(make_bundle(tmp, version=v).root, repo, allow_unsigned=True, alias="prod")
    publish(make_bundle(tmp, "cms/btag", "2.0.0").root, repo, allow_unsigned=True)
    yank("atlas/tauid@1.0.0", "superseded", repo)
    append_record(repo, "atlas/tauid", "1.1.0", "eval", {"auc": 0.9}, {"roc.txt": b"0 1\n"})
    assert repository_format(repo) == 1 and (repo / "catalog/atlas/tauid.json").is_file()
    return repo


def test_format2_layout_everything_of_a_namespace_under_one_path(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    publish(make_bundle(tmp_path, version="1.0.0").root, repo, allow_unsigned=True, alias="prod")
    publish(make_bundle(tmp_path, "cms/btag", "2.0.0").root, repo, allow_unsigned=True)
    before_cms = {p: p.read_bytes() for p in (repo / "bundles/cms").rglob("*") if p.is_file()}
    publish(make_bundle(tmp_path, version="1.1.0").root, repo, allow_unsigned=True)
    # the second atlas publish wrote nothing outside bundles/atlas (cms untouched, root as made)
    assert {
        p: p.read_bytes() for p in (repo / "bundles/cms").rglob("*") if p.is_file()
    } == before_cms
    assert written_paths(repo, "atlas") == ["bundles/atlas"]
    files = sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file())
    # (the local backend's lock file sits at the root; the cvmfs backend keeps its lock off /cvmfs)
    outside = [f for f in files if not f.startswith("bundles/") and f != ".hepbundle.lock"]
    assert outside == ["catalog/repository.json"]
    assert catalog_file(repo, "atlas/tauid") == repo / "bundles/atlas/_catalog/tauid.json"
    assert (repo / "bundles/atlas/.cvmfscatalog").is_file()
    assert index_file(repo, "cms") == repo / "bundles/cms/_catalog/index.sqlite"
    assert (serial_of(repo, "atlas"), serial_of(repo, "cms")) == (2, 1)
    validate(read_repository(repo), "repository.schema.json")
    state = json.loads((repo / "bundles/atlas/_catalog/namespace.json").read_bytes())
    validate(state, "namespace.schema.json")
    # find reads every shard, merges and cuts at the limit
    hits = find(repo, FindQuery(all_versions=True))
    assert [(h.name, h.version) for h in hits] == [
        ("atlas/tauid", "1.1.0"),
        ("atlas/tauid", "1.0.0"),
        ("cms/btag", "2.0.0"),
    ]
    assert [h.version for h in find(repo, FindQuery(all_versions=True, limit=1))] == ["1.1.0"]
    assert find(repo, FindQuery(text="btag"))[0].name == "cms/btag"
    assert check_invariants(repo) == {"atlas/tauid": {"1.0.0", "1.1.0"}, "cms/btag": {"2.0.0"}}


def test_migration_keeps_everything_and_serials_continue(tmp_path: Path) -> None:
    repo = _v1_repository(tmp_path)
    names = list_names(repo)
    catalogs = {n: read_name_catalog(repo, n) for n in names}
    rows = dump_index(repo)
    hits = find(repo, FindQuery(all_versions=True, include_yanked=True))
    serial = int(read_repository(repo)["serial"])
    done = migrate(repo)
    assert (done.format_before, done.names, done.namespaces, done.serial) == (
        1, 2, ("atlas", "cms"), serial,
    )  # fmt: skip
    assert repository_format(repo) == 2
    assert "serial" not in read_repository(repo)
    validate(read_repository(repo), "repository.schema.json")
    assert list_names(repo) == names
    assert {n: read_name_catalog(repo, n) for n in names} == catalogs
    assert dump_index(repo) == rows
    assert find(repo, FindQuery(all_versions=True, include_yanked=True)) == hits
    [rec] = list_records(repo, "atlas/tauid", "1.1.0")
    assert rec.payload == {"auc": 0.9} and rec.attachment("roc.txt").read_bytes() == b"0 1\n"
    assert not (repo / "catalog/atlas").exists() and not (repo / "catalog/index.sqlite").exists()
    assert sorted(p.name for p in (repo / "catalog").iterdir()) == ["repository.json"]
    check_invariants(repo)
    # a publish after the migration goes on from the old serial, in the namespace
    res = publish(make_bundle(tmp_path, version="1.2.0").root, repo, allow_unsigned=True)
    assert res.serial == serial + 1 and serial_of(repo, "cms") == serial
    assert migrate(repo).format_before == 2  # again: nothing to do


@pytest.mark.parametrize("point", MIGRATE_CRASH_POINTS)
def test_a_killed_migration_leaves_a_valid_repository(tmp_path: Path, point: str) -> None:
    repo = _v1_repository(tmp_path)
    catalogs = {n: read_name_catalog(repo, n) for n in list_names(repo)}
    code = "import sys; from hepbundle.repository import migrate; migrate(sys.argv[1])"
    env = {**os.environ, "PYTHONPATH": SRC, "HEPBUNDLE_CRASH_AT": point}
    proc = subprocess.run([sys.executable, "-c", code, str(repo)], env=env, check=False)
    assert proc.returncode == -9, "the migration was not killed"
    assert repository_format(repo) == (2 if point == "migrate-switched" else 1)
    assert {n: read_name_catalog(repo, n) for n in catalogs} == catalogs  # readable either way
    check_invariants(repo, settled=False)
    migrate(repo)
    assert repository_format(repo) == 2 and not (repo / "catalog/atlas").exists()
    assert {n: read_name_catalog(repo, n) for n in catalogs} == catalogs
    check_invariants(repo)


def test_cli_migrate(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hepbundle.cli import main

    repo = _v1_repository(tmp_path)
    r = CliRunner().invoke(main, ["catalog", "migrate", "--repo", str(repo)])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("migrated to format 2: 2 names in 2 namespaces (atlas, cms)")
    r = CliRunner().invoke(main, ["catalog", "migrate", "--repo", str(repo), "--json"])
    assert json.loads(r.stdout)["formatBefore"] == 2
    r = CliRunner().invoke(main, ["catalog", "migrate", "--repo", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "is not a hepbundle repository" in r.stderr


# --- concurrent publishers through gateway leases (stand-in [leases]) ------------------------

GATEWAY = {
    "version": 2,
    "repos": [
        {
            "domain": REPO,
            "keys": [
                {"id": "k-admin", "path": "/"},
                {"id": "k-atlas", "path": "/bundles/atlas"},
                {"id": "k-cms", "path": "/bundles/cms"},
            ],
        }
    ],
    "keys": [
        {"type": "plain_text", "id": k, "secret": "s"} for k in ("k-admin", "k-atlas", "k-cms")
    ],
}


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Standin]:
    s = Standin(tmp_path, monkeypatch)
    (s.state / "repos" / REPO / "repo.json").write_text(json.dumps(GATEWAY))
    monkeypatch.setenv("STANDIN_GATEWAY_KEY", "k-admin")
    yield s
    for machine in s.machines:  # every publisher machine's mount goes, whatever happened
        s.run("rmfs", REPO, check=False, HEPBUNDLE_CVMFS_ROOT=str(machine))
    s.close()


@pytest.mark.cvmfs
@pytest.mark.slow
def test_two_publishers_with_leases_on_two_namespaces_lose_nothing(
    gateway: Standin, tmp_path: Path, ec_key: tuple[Path, Path]
) -> None:
    policy = TrustPolicy.from_flags(keys=[ec_key[1]])
    # the administrator creates the repository (root lease)
    publish(make_bundle(tmp_path, version="0.1.0", key=ec_key[0]).root, REPO, backend="cvmfs",
            policy=policy)  # fmt: skip
    publish(make_bundle(tmp_path, "cms/btag", "0.1.0", key=ec_key[0]).root, REPO,
            backend="cvmfs", policy=policy)  # fmt: skip
    revision = json.loads((gateway.state / "repos" / REPO / "revision.json").read_text())
    versions = [f"1.{i}.0" for i in range(4)]
    jobs = []
    for ns, name in (("atlas", "atlas/tauid"), ("cms", "cms/btag")):
        machine = tmp_path / f"publisher-{ns}"
        env = {**os.environ, "HEPBUNDLE_CVMFS_ROOT": str(machine), "STANDIN_GATEWAY_KEY": f"k-{ns}",
               "HEPBUNDLE_LOCK_DIR": str(machine / "locks"), "PYTHONPATH": SRC}  # fmt: skip
        gateway.run("mkfs", "-w", "http://gateway:4929/api/v1", REPO, **env)
        gateway.machines.append(machine)
        bundles = [str(make_bundle(tmp_path, name, v, key=ec_key[0]).root) for v in versions]
        script = (
            "import sys; from pathlib import Path; from hepbundle.repository import publish; "
            "from hepbundle.policy import TrustPolicy; p = TrustPolicy.from_flags(keys=[Path(sys.argv[1])])\n"
            "for b in sys.argv[3:]: publish(b, 'ml.cern.ch', backend='cvmfs', policy=p, "
            "lease=sys.argv[2])"
        )
        argv = [sys.executable, "-c", script, str(ec_key[1]), f"bundles/{ns}", *bundles]
        jobs.append((machine, subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)))
    errors = []
    for machine, job in jobs:
        try:
            _, err = job.communicate(timeout=600)
            errors.append(err if job.returncode else "")
        finally:
            gateway.run("rmfs", REPO, check=False, HEPBUNDLE_CVMFS_ROOT=str(machine))
    assert errors == ["", ""], errors
    published = gateway.state / "repos" / REPO / "published"
    assert check_invariants(published) == {
        "atlas/tauid": {"0.1.0", *versions},
        "cms/btag": {"0.1.0", *versions},
    }
    assert (serial_of(published, "atlas"), serial_of(published, "cms")) == (5, 5)
    after = json.loads((gateway.state / "repos" / REPO / "revision.json").read_text())
    assert after == revision + 8  # every publish was its own revision, none lost
    leases = [c for c in gateway.calls(everything=True) if c["argv"][0] == "transaction"]
    assert {c["argv"][1] for c in leases[-8:]} == {f"{REPO}/bundles/atlas", f"{REPO}/bundles/cms"}
    times = {c["mount"]: c["time"] for c in leases[-8:]}
    assert len(times) == 2
    assert json.loads((gateway.state / "repos" / REPO / "leases.json").read_text()) == {}


@pytest.mark.cvmfs
def test_gateway_refuses_busy_and_foreign_paths(gateway: Standin, tmp_path: Path) -> None:
    """[leases]: path_busy for an overlapping lease, invalid_path outside the key's path; and
    hepbundle reports the gateway's words."""
    gateway.run("transaction", REPO)  # admin holds the root
    other = tmp_path / "other-machine"
    env = {"HEPBUNDLE_CVMFS_ROOT": str(other), "STANDIN_GATEWAY_KEY": "k-atlas"}
    gateway.run("mkfs", "-w", "http://gateway:4929/api/v1", REPO, **env)
    gateway.machines.append(other)
    try:
        busy = gateway.run("transaction", f"{REPO}/bundles/atlas/tauid", check=False, **env)
        assert busy.returncode == 1 and '"status": "path_busy"' in busy.stdout
        foreign = gateway.run("transaction", f"{REPO}/bundles/cms", check=False, **env)
        assert foreign.returncode == 1 and "authorization error: invalid_path" in foreign.stderr
        gateway.run("abort", "-f", REPO)
        gateway.run("transaction", f"{REPO}/bundles/atlas", **env)  # free now
        gateway.run("abort", "-f", REPO, **env)
    finally:
        gateway.run("rmfs", REPO, HEPBUNDLE_CVMFS_ROOT=str(other))
    # without a gateway the sub-path is accepted and not enforced
    (gateway.state / "repos" / REPO / "repo.json").unlink()
    gateway.run("transaction", f"{REPO}/bundles/atlas")
    (gateway.root / "elsewhere.txt").write_text("outside the lease")
    gateway.run("publish", REPO)
    assert (gateway.state / "repos" / REPO / "published" / "elsewhere.txt").is_file()


@pytest.mark.cvmfs
def test_migration_on_cvmfs_is_one_transaction(
    gateway: Standin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (gateway.state / "repos" / REPO / "repo.json").unlink()  # a plain Stratum-0
    v1 = _v1_repository(tmp_path)
    gateway.run("transaction", REPO)
    for p in v1.iterdir():
        subprocess.run(["cp", "-a", str(p), str(gateway.root)], check=True)
    gateway.run("publish", "-a", "v1-layout", REPO)
    catalogs = {n: read_name_catalog(gateway.root, n) for n in list_names(gateway.root)}
    done = migrate(REPO, backend="cvmfs")
    assert done.format_before == 1 and repository_format(gateway.root) == 2
    assert gateway.commands() == ["transaction", "publish"]
    assert gateway.calls()[-1]["argv"][:3] == ["publish", "-a", "hepbundle-format-2"]
    assert {n: read_name_catalog(gateway.root, n) for n in catalogs} == catalogs
    check_invariants(gateway.root)
    set_alias("cms/btag@2.0.0", "prod", REPO, backend="cvmfs")
    gateway.assert_clean()
