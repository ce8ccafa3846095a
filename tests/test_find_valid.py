"""``hepbundle find --valid-for``: the catalogue index answers by validity scope, and its answer is
exactly what ``ns/name@valid`` picks (bundle-spec/validity.md, hepbundle.repository.index).
``scoped_repo`` (conftest) has the three consecutive run IOVs."""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.cli import main
from hepbundle.errors import NotFoundError
from hepbundle.repository import FindQuery, find, publish, yank
from hepbundle.repository.catalog import NameCatalog, VersionRecord, read_name_catalog
from hepbundle.repository.index import rebuild_index
from hepbundle.repository.layout import bundle_relpath, catalog_file, ensure_repository
from hepbundle.resolver import find as find_on_path
from hepbundle.resolver import locate
from hepbundle.validity import parse_context

from .conftest import write_spec
from .repo_fixtures import check_invariants


def _valid(context: str, **kw: object) -> list[tuple[str, str]]:
    hits = find_on_path(FindQuery(valid_for=parse_context(context), **kw))  # type: ignore[arg-type]
    return [(h.name, h.version) for _, h in hits]


@pytest.mark.parametrize(
    ("run", "version"), [(100, "1.0.0"), (199, "1.0.0"), (200, "1.1.0"), (299, "1.1.0"),
                         (300, "1.2.0"), (10**9, "1.2.0")],
)  # fmt: skip
def test_three_consecutive_iovs_find_what_at_valid_picks(
    scoped_repo: Path, run: int, version: str
) -> None:
    assert _valid(f"run={run}") == [("atlas/tauid", version)]
    assert locate("atlas/tauid@valid", context={"run": run}).record.version == version  # type: ignore[union-attr]
    # every covering version: consecutive IOVs, so one
    assert _valid(f"run={run}", all_versions=True) == [("atlas/tauid", version)]


def test_a_run_no_iov_covers_finds_nothing(scoped_repo: Path) -> None:
    assert _valid("run=99") == []
    with pytest.raises(NotFoundError):
        locate("atlas/tauid@valid", context="run=99")
    # a key no version restricts is covered by none (as @valid says)
    assert _valid("campaign=mc23") == []


def test_yanked_versions_are_skipped_unless_asked_for(scoped_repo: Path) -> None:
    yank("atlas/tauid@1.1.0", "bad calibration", scoped_repo, force=True)
    assert _valid("run=250") == []
    assert _valid("run=250", all_versions=True) == []
    hits = find_on_path(
        FindQuery(valid_for=parse_context("run=250"), all_versions=True, include_yanked=True)
    )
    assert [(h.version, h.yanked) for _, h in hits] == [("1.1.0", "bad calibration")]
    # the neighbours are unaffected
    assert _valid("run=150") == [("atlas/tauid", "1.0.0")]


def test_release_and_run_together_need_both_when_both_are_restricted(scoped_repo: Path) -> None:
    # every version of scoped_repo says releases CMSSW_15_0_*
    assert _valid("run=250,release=CMSSW_15_0_3") == [("atlas/tauid", "1.1.0")]
    assert _valid("run=250,release=CMSSW_14_0_1") == []
    # release alone: all three cover; the newest is @valid's
    assert _valid("release=CMSSW_15_0_3") == [("atlas/tauid", "1.2.0")]
    assert _valid("release=CMSSW_15_0_3", all_versions=True) == [
        ("atlas/tauid", v) for v in ("1.2.0", "1.1.0", "1.0.0")
    ]


def _publish_scoped(tmp_path: Path, root: Path, name: str, version: str, validity: str) -> None:
    d = tmp_path / "src" / name.replace("/", "_") / version
    (d / "model").mkdir(parents=True)
    (d / "model" / "model.onnx").write_bytes(f"{name}{version}".encode() * 50)
    write_spec(
        d,
        f"name: {name}\nversion: {version}\nsummary: scoped {name}\n"
        f"files: [{{path: model/model.onnx, role: model}}]\nvalidity:\n{validity}",
    )
    b = hepbundle.build(d, tmp_path / "dist" / name / version)
    publish(b.root, root, allow_unsigned=True)


@pytest.fixture
def keyed_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Names scoped by every kind of key: release globs, conditions and geometry tags, periods,
    a runtime requirement, free keys, time ranges; no run ranges at all."""
    root = tmp_path / "repo"
    scopes = {
        ("cms/btag", "1.0.0"): "  releases: ['CMSSW_14_0_*']\n  conditions: ['140X_dataRun3_*']\n",
        ("cms/btag", "2.0.0"): "  releases: ['CMSSW_15_0_*', 'CMSSW_15_1_*']\n"
        "  conditions: ['150X_dataRun3_v[0-9]*']\n",
        ("atlas/tauid", "1.0.0"): "  releases: ['Athena 25.0.*']\n  geometry: ATLAS-R3S-2021-03-*\n"
        "  runtimes: ['onnxruntime >= 1.18, < 2']\n",
        ("atlas/tauid", "1.1.0"): "  releases: ['Athena 25.0.*']\n  periods: [data24, data25]\n"
        "  scope: {beam: [pp, 'p*'], stream: 'physics_*'}\n",
        ("lhcb/pid", "1.0.0"): "  times: [{since: 2024-04-01, until: 2024-11-01}]\n",
        ("lhcb/pid", "1.1.0"): "  times: [{since: '2024-11-01T00:00:00Z'}]\n",
    }
    for (name, version), validity in scopes.items():
        _publish_scoped(tmp_path, root, name, version, validity)
    monkeypatch.setenv("HEPBUNDLE_PATH", str(root))
    return root


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ("release=CMSSW_15_1_2", ["cms/btag@2.0.0"]),
        ("release=CMSSW_14_0_9", ["cms/btag@1.0.0"]),
        ("release=CMSSW_13_0_0", []),
        ("release=Athena,25.0.12", ["atlas/tauid@1.1.0"]),  # asetup's spelling, newest covering
        ("conditions=150X_dataRun3_v7", ["cms/btag@2.0.0"]),
        ("conditions=150X_dataRun3_vX", []),  # the [0-9] class is honoured
        ("release=CMSSW_15_0_3,conditions=140X_dataRun3_v1", []),  # each excludes the other
        ("geometry=ATLAS-R3S-2021-03-02-00", ["atlas/tauid@1.0.0"]),
        # 1.1.0 says nothing of geometry and matches the release: it covers, and is newer
        ("geometry=ATLAS-R3S-2021-03-02-00,release=Athena 25.0.3", ["atlas/tauid@1.1.0"]),
        ("geometry=ATLAS-R3S-2022-01,release=Athena 25.0.3", ["atlas/tauid@1.1.0"]),
        ("geometry=ATLAS-R3S-2021-03-02-00,period=data23", ["atlas/tauid@1.0.0"]),
        ("period=data25", ["atlas/tauid@1.1.0"]),
        ("onnxruntime=1.19.2", ["atlas/tauid@1.0.0"]),
        ("onnxruntime=2.0", []),
        ("onnxruntime=1.17", []),
        ("beam=pPb", ["atlas/tauid@1.1.0"]),
        ("beam=hi", []),
        ("stream=physics_Main,beam=pp", ["atlas/tauid@1.1.0"]),
        ("time=2024-06-01", ["lhcb/pid@1.0.0"]),
        ("time=2024-11-01", ["lhcb/pid@1.1.0"]),  # until excluded, since included
        ("time=2024-03-31T23:59:59Z", []),
        ("time=2030-01-01", ["lhcb/pid@1.1.0"]),  # open-ended
    ],
)
def test_every_kind_of_key_is_answered_from_the_index_as_at_valid_would(
    keyed_repo: Path, context: str, expected: list[str]
) -> None:
    assert [f"{n}@{v}" for n, v in _valid(context)] == expected
    for name in ("atlas/tauid", "cms/btag", "lhcb/pid"):
        try:
            picked = [f"{name}@{locate(f'{name}@valid', context=context).record.version}"]  # type: ignore[union-attr]
        except NotFoundError:
            picked = []
        assert picked == [e for e in expected if e.startswith(name + "@")]


def test_valid_for_combines_with_the_other_filters(keyed_repo: Path) -> None:
    assert _valid("release=Athena 25.0.1", namespace="atlas") == [("atlas/tauid", "1.1.0")]
    assert _valid("release=Athena 25.0.1", namespace="cms") == []
    assert _valid("time=2024-06-01", text="scoped lhcb") == [("lhcb/pid", "1.0.0")]
    assert _valid("time=2024-06-01", limit=1, text="scoped") == [("lhcb/pid", "1.0.0")]


def test_the_cli_prints_the_scope_asked_about_and_json_carries_it(keyed_repo: Path) -> None:
    r = CliRunner().invoke(main, ["find", "--valid-for", "release=CMSSW_15_1_2"])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [
        "cms/btag@2.0.0  [releases CMSSW_15_0_*, CMSSW_15_1_*]  scoped cms/btag"
    ]
    r = CliRunner().invoke(
        main, ["find", "--valid-for", "time=2024-06-01,release=x", "--all-versions", "--json"]
    )
    assert r.exit_code == 0, r.output
    (hit,) = json.loads(r.stdout)
    assert hit["ref"] == "lhcb/pid@1.0.0" and hit["repository"] == str(keyed_repo)
    assert hit["validity"] == {"times": [{"since": "2024-04-01", "until": "2024-11-01"}]}
    r = CliRunner().invoke(main, ["find", "--valid-for", "run=13"])
    assert r.exit_code == 0 and r.stdout == "" and "no match valid for run=13" in r.stderr
    # without --valid-for, no validity member (the output of find is unchanged)
    r = CliRunner().invoke(main, ["find", "--json"])
    assert r.exit_code == 0 and all("validity" not in h for h in json.loads(r.stdout))


@pytest.mark.parametrize("bad", ["run=abc", "run", "Run=1"])
def test_a_malformed_valid_for_is_one_usage_line(keyed_repo: Path, bad: str) -> None:
    r = CliRunner().invoke(main, ["find", "--valid-for", bad])
    assert r.exit_code == 2 and r.stdout == "", r.output
    assert r.stderr.startswith("error: --valid-for: ") or "--valid-for: " in r.stderr
    assert r.stderr.count("\n") == 1, r.stderr


def test_a_publish_into_the_recent_shard_is_found_and_matches_a_rebuild(
    tmp_path: Path, keyed_repo: Path
) -> None:
    """A large shard takes a publish into its recent shard: the new version's scope rows are
    found through the merged views, and equal those of an index rebuilt from the catalogue."""
    from hepbundle.repository.index import recent_file
    from hepbundle.repository.layout import index_file

    for i in range(40):
        _publish_scoped(
            tmp_path, keyed_repo, "cms/btag", f"3.{i}.0", "  releases: ['CMSSW_16_*']\n"
        )
    rebuild_index(keyed_repo)
    _publish_scoped(
        tmp_path, keyed_repo, "cms/btag", "4.0.0",
        "  releases: ['CMSSW_16_*']\n  runs: [{first: 500000, last: 500999}]\n",
    )  # fmt: skip
    assert recent_file(index_file(keyed_repo, "cms")).is_file()
    assert _valid("run=500500") == [("cms/btag", "4.0.0")]
    assert _valid("release=CMSSW_16_0_1,run=7") == [("cms/btag", "3.39.0")]
    yank("cms/btag@4.0.0", "wrong runs", keyed_repo, force=True)
    assert _valid("run=500500") == []
    assert _valid("release=CMSSW_16_0_1") == [("cms/btag", "3.39.0")]
    check_invariants(keyed_repo)  # the merged scope rows equal a rebuilt index's


def _random_scope(rng: random.Random) -> dict[str, object] | None:
    scope: dict[str, object] = {}
    if rng.random() < 0.7:
        runs = []
        for _ in range(rng.randint(1, 3)):
            first = rng.randint(0, 2000)
            runs.append({"first": first} if rng.random() < 0.15 else
                        {"first": first, "last": first + rng.choice([0, 1, 9, 100, 511, 1024])})  # fmt: skip
        scope["runs"] = runs
    if rng.random() < 0.5:
        scope["releases"] = rng.sample(["CMSSW_15_0_*", "CMSSW_15_*", "CMSSW_1?_0_3", "CMSSW_[0-9]*", "*"], 2)  # fmt: skip
    if rng.random() < 0.3:
        scope["conditions"] = [rng.choice(["150X_v1", "150X_*", "140X_*"])]
    if rng.random() < 0.2:
        scope["runtimes"] = [rng.choice(["onnxruntime >= 1.18", "onnxruntime < 1.18"])]
    if rng.random() < 0.1:
        return {"runs": [{"first": 5, "last": 1}]}  # unreadable: never the valid one
    return scope or None


def test_the_index_agrees_with_at_valid_on_random_scopes_and_contexts(tmp_path: Path) -> None:
    """A catalogue of random scopes (a seeded generator): for random contexts, the index search
    gives per name exactly NameCatalog.valid_for's choice (what @valid resolves), and with
    --all-versions exactly the versions whose recorded scope covers the context."""
    from hepbundle.validity import covers_recorded

    rng = random.Random(19)
    root = tmp_path / "repo"
    ensure_repository(root)
    names = [f"{ns}/m{i}" for ns in ("atlas", "atlas-b", "cms") for i in range(12)]
    for name in names:
        versions = {}
        for j in range(rng.randint(1, 12)):
            v = f"1.{j}.0" + ("-rc1" if rng.random() < 0.1 else "")
            versions[v] = VersionRecord(
                version=v, manifest_digest="0" * 64, path=bundle_relpath(name, v),
                created="2026-01-01T00:00:00Z", published="2026-01-01T00:00:00Z",
                yanked="bad" if rng.random() < 0.1 else None, validity=_random_scope(rng),
            )  # fmt: skip
        path = catalog_file(root, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(NameCatalog(name, versions).to_bytes())
    rebuild_index(root)
    for _ in range(150):
        parts = []
        if rng.random() < 0.8:
            parts.append(f"run={rng.randint(0, 3200)}")
        if rng.random() < 0.4:
            parts.append(f"release={rng.choice(['CMSSW_15_0_3', 'CMSSW_14_0_3', 'CMSSW_9_1'])}")
        if rng.random() < 0.2:
            parts.append(f"conditions={rng.choice(['150X_v1', '140X_v2'])}")
        if rng.random() < 0.2:
            parts.append(f"onnxruntime={rng.choice(['1.17.1', '1.18', '1.20.0'])}")
        ctx = parse_context(",".join(parts) or "run=1")
        picked, covering = {}, set()
        for name in names:
            cat = read_name_catalog(root, name)
            with contextlib.suppress(NotFoundError):
                picked[name] = cat.valid_for(ctx).version
            covering |= {
                (name, r.version)
                for r in cat.versions.values()
                if not r.yanked and covers_recorded(r.validity, ctx, "test")
            }
        hits = find(root, FindQuery(valid_for=ctx, limit=10_000))
        assert {h.name: h.version for h in hits} == picked, ctx
        assert [h.name for h in hits] == sorted(picked, key=lambda n: n)  # name order
        every = find(root, FindQuery(valid_for=ctx, all_versions=True, limit=10_000))
        assert {(h.name, h.version) for h in every} == covering, ctx
        if len(hits) > 3:  # the limit cuts in name order, across shards
            assert find(root, FindQuery(valid_for=ctx, limit=3)) == hits[:3]


def test_an_index_from_before_validity_search_says_to_rebuild_and_a_writer_completes_it(
    tmp_path: Path, keyed_repo: Path
) -> None:
    import sqlite3

    from hepbundle.errors import RepositoryError
    from hepbundle.repository.layout import index_file

    shard = index_file(keyed_repo, "cms")
    with sqlite3.connect(shard) as conn:  # what an older hepbundle wrote: no scope tables
        conn.executescript("DROP TABLE iovs; DROP TABLE scopes;")
    with pytest.raises(RepositoryError, match="predates validity search") as e:
        _valid("release=CMSSW_15_1_2")
    assert "catalog rebuild" in (e.value.hint or "")
    assert [h.name for _, h in find_on_path(FindQuery())]  # plain find still reads it
    # the next publish into that namespace rebuilds the shard from the per-name files
    _publish_scoped(tmp_path, keyed_repo, "cms/other", "1.0.0", "  releases: ['CMSSW_9_*']\n")
    assert _valid("release=CMSSW_15_1_2") == [("cms/btag", "2.0.0")]
    assert _valid("release=CMSSW_9_1") == [("cms/other", "1.0.0")]
