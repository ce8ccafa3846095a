"""Publishing into a local repository, and the catalogue it maintains (aliases, yank, search)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hepbundle
from hepbundle.errors import (
    FormatError,
    IntegrityError,
    NotFoundError,
    PolicyError,
    RepositoryError,
    SignatureError,
    SpecError,
)
from hepbundle.policy import TrustPolicy
from hepbundle.repository import (
    FindQuery,
    Ref,
    bundle_dir,
    find,
    parse_ref,
    publish,
    read_name_catalog,
    rebuild,
    set_alias,
    version_key,
    versions,
    yank,
)
from hepbundle.repository.layout import catalog_file, index_file, serial_of
from hepbundle.resolver import locate
from hepbundle.signing import generate_key

from .repo_fixtures import check_invariants, index_rows, make_bundle


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return tmp_path / "repo"


def pub(b: hepbundle.Bundle, repo: Path, **kw: object) -> str:
    return publish(b.root, repo, allow_unsigned=True, **kw).status  # type: ignore[arg-type]


# --- REFs and SemVer ------------------------------------------------------------------------

SEMVER_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.2.0",
    "1.10.0",
    "2.0.0",
]


def test_version_key_follows_the_semver_spec_example() -> None:
    assert sorted(SEMVER_ORDER, key=version_key) == SEMVER_ORDER
    assert version_key("1.0.0+build.5") == version_key("1.0.0")


@given(st.lists(st.tuples(*(st.integers(0, 10**12),) * 3), min_size=2, max_size=20))
def test_version_key_orders_numeric_fields_numerically(
    triples: list[tuple[int, int, int]],
) -> None:
    versions_ = [f"{a}.{b}.{c}" for a, b, c in triples]
    assert sorted(versions_, key=version_key) == sorted(
        versions_, key=lambda v: tuple(int(x) for x in v.split("."))
    )


@pytest.mark.parametrize(
    ("text", "name", "selector"),
    [
        ("atlas/tauid@1.2.0", "atlas/tauid", "1.2.0"),
        ("atlas/tauid@prod", "atlas/tauid", "prod"),
        ("atlas/tauid", "atlas/tauid", None),
    ],
)
def test_parse_catalogue_refs(text: str, name: str, selector: str | None) -> None:
    ref = parse_ref(text)
    assert (ref.name, ref.selector, ref.is_path) == (name, selector, False)


def test_parse_path_refs_and_bad_refs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_ref("./b").is_path and parse_ref("/x/y").is_path
    (tmp_path / "atlas" / "tauid").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    # a string that parses as a reference is one, even when the working directory has it
    assert parse_ref("atlas/tauid") == Ref(name="atlas/tauid")
    assert parse_ref("atlas/tauid@prod") == Ref(name="atlas/tauid", selector="prod")
    assert parse_ref("./atlas/tauid").path == Path("atlas/tauid")
    (tmp_path / "out" / "atlas" / "tauid" / "1.0.0").mkdir(parents=True)
    assert parse_ref("out/atlas/tauid/1.0.0").path == Path("out/atlas/tauid/1.0.0")
    for bad in ("Atlas/X", "atlas/tauid@", "atlas/tauid@Prod!", "tauid"):
        with pytest.raises(NotFoundError):
            parse_ref(bad)


# --- publishing -------------------------------------------------------------------------------


def test_publish_layout_catalogue_and_schemas(tmp_path: Path, repo: Path) -> None:
    b = make_bundle(tmp_path, version="1.2.0")
    res = publish(b.root, repo, allow_unsigned=True, alias="prod")
    assert res.status == "published" and res.serial == 1 and res.signers == ()
    target = bundle_dir(repo, "atlas/tauid", "1.2.0")
    assert Path(res.path) == target.absolute()
    assert (target / ".cvmfscatalog").read_bytes() == b""
    assert hepbundle.Bundle.load(target).manifest_digest == b.manifest_digest
    cat = read_name_catalog(repo, "atlas/tauid")
    rec = cat.resolve("prod")
    assert rec.version == "1.2.0" and rec.manifest_digest == b.manifest_digest
    assert rec.path == "bundles/atlas/tauid/1.2.0" and rec.yanked is None
    assert rec.datasets == ("mc23_13p6TeV:tauid.1.2.0",) and rec.authors == ("Jane Doe",)
    assert serial_of(repo, "atlas") == 1
    assert check_invariants(repo) == {"atlas/tauid": {"1.2.0"}}


def test_same_version_identical_is_noop_different_is_refused(tmp_path: Path, repo: Path) -> None:
    b = make_bundle(tmp_path, version="1.0.0")
    assert pub(b, repo) == "published"
    serial = serial_of(repo, "atlas")
    again = make_bundle(tmp_path / "again", version="1.0.0")  # rebuilt: same bytes?
    assert pub(b, repo) == "unchanged"
    assert serial_of(repo, "atlas") == serial
    other = make_bundle(tmp_path, version="1.0.0", payload=b"retrained")
    with pytest.raises(RepositoryError, match="already published with different content"):
        pub(other, repo)
    assert read_name_catalog(repo, "atlas/tauid").versions["1.0.0"].manifest_digest == (
        b.manifest_digest
    )
    assert again.ref == b.ref
    check_invariants(repo)


def test_republish_identical_with_alias_moves_only_the_alias(tmp_path: Path, repo: Path) -> None:
    b = make_bundle(tmp_path, version="1.0.0")
    pub(b, repo)
    assert pub(b, repo, alias="prod") == "unchanged"
    assert read_name_catalog(repo, "atlas/tauid").aliases == {"prod": "1.0.0"}


def test_damaged_bundle_is_refused_before_anything_is_written(tmp_path: Path, repo: Path) -> None:
    b = make_bundle(tmp_path)
    (b.root / "model" / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="modified model/model.onnx"):
        pub(b, repo)
    assert not repo.exists()


def test_unsigned_refused_by_default(tmp_path: Path, repo: Path) -> None:
    b = make_bundle(tmp_path)
    with pytest.raises(SignatureError, match="unsigned"):
        publish(b.root, repo)
    assert not repo.exists()


def test_signed_bundle_publishes_with_signer_identity(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path], repo: Path
) -> None:
    policy = TrustPolicy.from_flags(keys=[ec_key[1]])
    res = publish(signed.root, repo, policy=policy)
    assert res.status == "published" and len(res.signers) == 1
    rec = read_name_catalog(repo, signed.name).resolve(None)
    assert rec.signers == res.signers
    assert (Path(res.path) / "hepbundle.sig").is_file()
    hit = find(repo, FindQuery(signer=res.signers[0][:12]))
    assert [h.version for h in hit] == [signed.version]
    # the published copy still verifies under the same policy
    hepbundle.signing.verify_signatures(hepbundle.Bundle.load(res.path), policy)


def test_signed_bundle_by_unknown_key_is_refused(
    signed: hepbundle.Bundle, tmp_path: Path, repo: Path
) -> None:
    _, other_pub = generate_key(tmp_path / "other" / "key.pem")
    with pytest.raises((PolicyError, SignatureError)):
        publish(signed.root, repo, policy=TrustPolicy.from_flags(keys=[other_pub]))
    assert not repo.exists()


# --- reading ----------------------------------------------------------------------------------


def test_resolve_latest_skips_prerelease_and_yanked(tmp_path: Path, repo: Path) -> None:
    for v in ("1.0.0", "1.10.0", "1.9.0", "2.0.0-rc.1"):
        pub(make_bundle(tmp_path, version=v), repo)
    cat = read_name_catalog(repo, "atlas/tauid")
    assert cat.resolve(None).version == "1.10.0" == cat.resolve("latest").version
    yank("atlas/tauid@1.10.0", "wrong calibration", repo)
    cat = read_name_catalog(repo, "atlas/tauid")
    assert cat.resolve(None).version == "1.9.0"
    assert cat.resolve("1.10.0").yanked == "wrong calibration"  # still resolvable explicitly
    assert [r.version for r in cat.sorted_versions()] == ["1.0.0", "1.9.0", "1.10.0", "2.0.0-rc.1"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: read_name_catalog(r, "atlas/tauidd"), "did you mean 'atlas/tauid'"),
        (lambda r: read_name_catalog(r, "atlas/tauid").resolve("prd"), "did you mean 'prod'"),
        (lambda r: read_name_catalog(r, "atlas/tauid").resolve("1.0.1"), "did you mean '1.0.0'"),
        (lambda r: locate("atlas/tauid@9.9.9", repos=[r]), "no version '9.9.9'"),
    ],
)
def test_unknown_names_suggest_the_closest(tmp_path: Path, repo: Path, call, message: str) -> None:  # type: ignore[no-untyped-def]
    pub(make_bundle(tmp_path, version="1.0.0"), repo, alias="prod")
    with pytest.raises(NotFoundError) as e:
        call(repo)
    assert message in str(e.value)


def test_locate_refs_and_paths(tmp_path: Path, repo: Path) -> None:
    b = make_bundle(tmp_path, version="1.0.0")
    pub(b, repo, alias="prod")
    loc = locate("atlas/tauid@prod", repos=[repo])
    assert loc.path == bundle_dir(repo, "atlas/tauid", "1.0.0") and loc.record is not None
    assert locate(str(b.root), repos=[repo]).path == b.root


def test_corrupt_or_future_catalogue_is_a_format_error(tmp_path: Path, repo: Path) -> None:
    pub(make_bundle(tmp_path), repo)
    f = catalog_file(repo, "atlas/tauid")
    doc = json.loads(f.read_bytes())
    f.write_text(json.dumps({**doc, "mediaType": "application/vnd.hepbundle.catalog.v9+json"}))
    with pytest.raises(FormatError, match="upgrade"):
        read_name_catalog(repo, "atlas/tauid")
    doc["versions"]["1.0.0"]["manifestSha256"] = "xyz"
    f.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="manifestSha256"):
        read_name_catalog(repo, "atlas/tauid")


# --- aliases, yank, index ---------------------------------------------------------------------


def test_alias_moves_and_history_is_kept(tmp_path: Path, repo: Path) -> None:
    for v in ("1.0.0", "1.1.0"):
        pub(make_bundle(tmp_path, version=v), repo)
    set_alias("atlas/tauid@1.0.0", "prod", repo)
    s1 = serial_of(repo, "atlas")
    s2 = set_alias("atlas/tauid@1.1.0", "prod", repo).serial
    assert s2 == s1 + 1
    set_alias("atlas/tauid@prod", "validated", repo)  # an alias of an alias names a version
    cat = versions("atlas/tauid", repo)
    assert cat.aliases == {"prod": "1.1.0", "validated": "1.1.0"}
    assert [(e.alias, e.previous, e.version) for e in cat.alias_history] == [
        ("prod", None, "1.0.0"),
        ("prod", "1.0.0", "1.1.0"),
        ("validated", None, "1.1.0"),
    ]
    s3 = set_alias("atlas/tauid@1.1.0", "prod", repo).serial  # no move: nothing written
    assert s3 == serial_of(repo, "atlas") == s2 + 1
    assert [h.aliases for h in find(repo, FindQuery(all_versions=True))] == [
        ("prod", "validated"),
        (),
    ]
    for bad in ("latest", "Prod", "1.0.0"):
        with pytest.raises(SpecError):
            set_alias("atlas/tauid@1.0.0", bad, repo)
    check_invariants(repo)


def test_yank_never_deletes(tmp_path: Path, repo: Path) -> None:
    pub(make_bundle(tmp_path, version="1.0.0"), repo)
    yank("atlas/tauid@1.0.0", "leaks test data", repo)
    assert bundle_dir(repo, "atlas/tauid", "1.0.0").is_dir()
    rec = read_name_catalog(repo, "atlas/tauid").versions["1.0.0"]
    assert rec.yanked == "leaks test data" and rec.yanked_time
    assert find(repo, FindQuery()) == []
    assert [h.yanked for h in find(repo, FindQuery(include_yanked=True))] == ["leaks test data"]
    with pytest.raises(SpecError, match="reason"):
        yank("atlas/tauid@1.0.0", " ", repo)
    with pytest.raises(NotFoundError, match="explicit version"):
        yank("atlas/tauid", "x", repo)
    check_invariants(repo)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (FindQuery(), {"atlas/tauid@1.1.0", "cms/btag@2.0.0", "lhcb/pid@0.3.0"}),
        (FindQuery(text="TAU"), {"atlas/tauid@1.1.0"}),
        (FindQuery(text="flavour tagging"), {"cms/btag@2.0.0"}),
        (FindQuery(namespace="cms"), {"cms/btag@2.0.0"}),
        (FindQuery(name="pid"), {"lhcb/pid@0.3.0"}),
        (FindQuery(framework="KERAS"), {"cms/btag@2.0.0"}),
        (FindQuery(tag="gnn"), {"cms/btag@2.0.0"}),
        (FindQuery(tag="gn"), set()),
        (FindQuery(author="jane"), {"atlas/tauid@1.1.0", "cms/btag@2.0.0", "lhcb/pid@0.3.0"}),
        (FindQuery(dataset="tauid.1.0.0"), set()),  # by default only heads are searched
        (FindQuery(dataset="tauid.1.0.0", all_versions=True), {"atlas/tauid@1.0.0"}),
        (FindQuery(text="100%"), set()),
        (
            FindQuery(namespace="atlas", all_versions=True),
            {"atlas/tauid@1.0.0", "atlas/tauid@1.1.0", "atlas/tauid@1.2.0-rc.1"},
        ),
    ],
)
def test_find_filters(tmp_path: Path, repo: Path, query: FindQuery, expected: set[str]) -> None:
    for name, v, summary, tags, fw in [
        ("atlas/tauid", "1.0.0", "Tau ID", ("tau",), "onnx"),
        ("atlas/tauid", "1.1.0", "Tau ID", ("tau",), "onnx"),
        ("atlas/tauid", "1.2.0-rc.1", "Tau ID", ("tau",), "onnx"),
        ("cms/btag", "2.0.0", "b flavour tagging", ("gnn", "btag"), "keras"),
        ("lhcb/pid", "0.3.0", "particle identification", ("pid",), "onnx"),
    ]:
        pub(make_bundle(tmp_path, name, v, summary=summary, tags=tags, framework=fw), repo)
    assert {f"{h.name}@{h.version}" for h in find(repo, query)} == expected


def test_rebuild_equals_incremental_and_restores_a_lost_index(tmp_path: Path, repo: Path) -> None:
    for i, v in enumerate(("1.0.0", "1.1.0", "2.0.0")):
        pub(make_bundle(tmp_path, version=v), repo, alias="prod" if i != 1 else None)
        pub(make_bundle(tmp_path, "cms/btag", v), repo)
    yank("cms/btag@1.1.0", "bug", repo)
    set_alias("atlas/tauid@1.1.0", "validated", repo)
    check_invariants(repo)  # compares the incremental index with a rebuild
    index_file(repo, "atlas").unlink()
    index_file(repo, "cms").unlink()
    assert rebuild(repo) == 6 == index_rows(repo)
    check_invariants(repo)


def test_readonly_index_opens_immutable(tmp_path: Path, repo: Path) -> None:
    pub(make_bundle(tmp_path), repo)
    cat_dir = catalog_file(repo, "atlas/tauid").parent
    cat_dir.chmod(0o555)
    try:
        assert [h.version for h in find(repo, FindQuery(), readonly=True)] == ["1.0.0"]
        assert sorted(p.name for p in cat_dir.iterdir()) == [
            "index.sqlite",
            "namespace.json",
            "tauid.json",
        ]
    finally:
        cat_dir.chmod(0o755)


# --- the normative spec -----------------------------------------------------------------------


def test_spec_examples_validate_against_the_schemas() -> None:
    import re

    from hepbundle.repository.catalog import catalog_from_json
    from hepbundle.spec import validate

    text = (Path(__file__).parents[1] / "bundle-spec" / "repository.md").read_text()
    catalog, repository, namespace, record = (
        json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.S)
    )
    validate(catalog, "catalog.schema.json")
    validate(repository, "repository.schema.json")
    validate(namespace, "namespace.schema.json")
    assert catalog_from_json(catalog, source="spec").resolve("prod").yanked
    assert record["mediaType"] == "application/vnd.hepbundle.record.v1+json"


@pytest.mark.parametrize(
    ("mutate", "message", "schema_refuses"),
    [
        # JSON Schema cannot tie the path to the name and version; the reader does
        (lambda v: v.update(path="bundles/atlas/other/1.0.0"), "path", False),
        (lambda v: v.update(path="../../etc"), "path", True),
        (lambda v: v.pop("created"), "missing field", True),
        (lambda v: v.update(tags="tau"), "tags", True),
        (lambda v: v.update(manifestSha256="ABC"), "manifestSha256", True),
    ],
)
def test_reader_refuses_what_the_schema_refuses(
    tmp_path: Path,
    repo: Path,
    mutate,
    message: str,
    schema_refuses: bool,  # type: ignore[no-untyped-def]
) -> None:
    from hepbundle.spec import validate

    pub(make_bundle(tmp_path), repo)
    f = catalog_file(repo, "atlas/tauid")
    doc = json.loads(f.read_bytes())
    mutate(doc["versions"]["1.0.0"])
    if schema_refuses:
        with pytest.raises(SpecError):
            validate(doc, "catalog.schema.json")
    f.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=message):
        read_name_catalog(repo, "atlas/tauid")


def test_publish_is_part_of_the_top_level_api(tmp_path: Path) -> None:
    import hepbundle.repository

    assert "publish" in hepbundle.__all__ and hepbundle.publish is hepbundle.repository.publish
    res = hepbundle.publish(make_bundle(tmp_path).root, tmp_path / "r", allow_unsigned=True)
    assert res.status == "published"


_versions = st.tuples(*(st.integers(0, 30),) * 3).map(lambda t: f"{t[0]}.{t[1]}.{t[2]}")
_words = st.text("abcdefghij -", min_size=0, max_size=12)


@given(
    st.dictionaries(_versions, st.tuples(_words, st.booleans()), min_size=1, max_size=8),
    st.data(),
)
def test_catalogue_round_trips_and_validates(
    versions_: dict[str, tuple[str, bool]], data: st.DataObject
) -> None:
    from hepbundle.repository import NameCatalog, VersionRecord
    from hepbundle.repository.catalog import catalog_from_json
    from hepbundle.spec import validate

    cat = NameCatalog("atlas/tauid")
    for v, (summary, yanked) in versions_.items():
        cat = cat.with_version(
            VersionRecord(
                v, "ab" * 32, f"bundles/atlas/tauid/{v}", "2026-01-01T00:00:00Z",
                "2026-01-02T00:00:00Z", summary=summary, tags=(summary,),
            )
        )  # fmt: skip
        if yanked:
            cat = cat.with_yank(v, "broken", time="2026-01-03T00:00:00Z")
    for alias in data.draw(st.lists(st.sampled_from(["prod", "validated", "dev"]), max_size=4)):
        cat = cat.with_alias(
            alias, data.draw(st.sampled_from(sorted(versions_))), time="2026-01-04T00:00:00Z"
        )
    doc = json.loads(cat.to_bytes())
    validate(doc, "catalog.schema.json")
    assert catalog_from_json(doc, source="t") == cat
    latest = cat.latest()
    released = [v for v, (_, y) in versions_.items() if not y]
    assert (latest.version if latest else None) == (
        max(released, key=version_key) if released else None
    )


def test_lock_timeout_is_one_clear_error(tmp_path: Path) -> None:
    from hepbundle.repository.lock import repository_lock

    with repository_lock(tmp_path / ".lock"):
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; from hepbundle.repository.lock import "
                "repository_lock as L\nwith L(Path(sys.argv[1]), timeout=0.2): pass",
                str(tmp_path / ".lock"),
            ],
            capture_output=True,
            text=True,
        )
    assert proc.returncode != 0 and "another publisher holds" in proc.stderr


def test_local_batch_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch whose second copy fails leaves the repository exactly as it was; a good batch
    bumps each namespace's serial once and indexes every version in one go."""
    import hepbundle.repository.tree as tree
    from hepbundle.repository import publish_many

    repo = tmp_path / "repo"
    publish(make_bundle(tmp_path, version="0.9.0").root, repo, allow_unsigned=True)
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    a = make_bundle(tmp_path, version="1.0.0")
    b = make_bundle(tmp_path, "cms/btag", "2.0.0")
    real = tree._copy_bundle
    calls = []

    def copy_then_fail(bundle: hepbundle.Bundle, stage: Path, progress: object) -> None:
        calls.append(bundle.ref)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(bundle, stage, progress)  # type: ignore[arg-type]

    monkeypatch.setattr(tree, "_copy_bundle", copy_then_fail)
    with pytest.raises(OSError):
        publish_many([a.root, b.root], repo, allow_unsigned=True)
    assert {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()} == before
    monkeypatch.setattr(tree, "_copy_bundle", real)
    results = publish_many([a.root, b.root], repo, allow_unsigned=True)
    assert [(r.ref, r.status, r.serial) for r in results] == [
        ("atlas/tauid@1.0.0", "published", 2),
        ("cms/btag@2.0.0", "published", 1),  # the first change in namespace cms
    ]
    assert check_invariants(repo) == {"atlas/tauid": {"0.9.0", "1.0.0"}, "cms/btag": {"2.0.0"}}


def test_cli_publishes_several_bundles_at_once(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hepbundle.cli import main

    a = make_bundle(tmp_path, version="1.0.0")
    b = make_bundle(tmp_path, "cms/btag", "2.0.0")
    repo = tmp_path / "repo"
    args = ["publish", str(a.root), str(b.root), "--repo", str(repo), "--allow-unsigned"]
    r = CliRunner().invoke(main, [*args, "--json"])
    assert r.exit_code == 0, r.stderr
    assert [x["status"] for x in json.loads(r.stdout)] == ["published", "published"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and r.stdout.count("unchanged ") == 2
    other = make_bundle(tmp_path, version="1.0.0", payload=b"changed")
    r = CliRunner().invoke(main, ["publish", str(b.root), str(other.root), "--repo", str(repo),
                                  "--allow-unsigned"])  # fmt: skip
    assert r.exit_code == 2
    assert "batch refused, nothing published: atlas/tauid@1.0.0 (bundle 2 of 2)" in r.stderr
