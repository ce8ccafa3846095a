"""The validity scope: the section's rules (bundle-spec/validity.md), the context a job states,
and the build that records the section in the manifest."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

import hepbundle
from hepbundle.errors import BuildError, FormatError, SpecError, UsageError
from hepbundle.repository.catalog import NameCatalog
from hepbundle.spec import validate
from hepbundle.validity import Scope, parse_context, plain_times

from .conftest import signed_iov_versions, trust_key, write_spec

SPEC_PAGE = Path(__file__).parents[1] / "bundle-spec" / "validity.md"


def _examples() -> tuple[dict[str, object], dict[str, object]]:
    text = SPEC_PAGE.read_text()
    (spec_yaml,) = re.findall(r"```yaml\n(.*?)```", text, re.S)
    (manifest_json,) = re.findall(r"```json\n(.*?)```", text, re.S)
    return yaml.safe_load(spec_yaml), json.loads(manifest_json)


def test_the_spec_page_examples_validate_and_the_build_form_is_the_manifest_one(
    tmp_path: Path,
) -> None:
    written, recorded = _examples()
    validate(recorded, "validity.schema.json")
    d = tmp_path / "src"
    (d / "model").mkdir(parents=True)
    (d / "model" / "model.bin").write_bytes(b"\x00" * 64)
    page = SPEC_PAGE.read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", page, re.S)
    write_spec(d, "name: atlas/tauid\nversion: 1.0.0\nfiles:\n  - path: model/model.bin\n")
    (d / "hepbundle.yaml").write_text((d / "hepbundle.yaml").read_text() + block)
    b = hepbundle.build(d, tmp_path / "out")
    assert b.manifest.meta["validity"] == recorded
    validate(b.manifest.to_json(), "manifest.schema.json")
    assert Scope.from_json(plain_times(written["validity"])).to_json() == recorded  # type: ignore[index]


@pytest.fixture
def scope() -> Scope:
    _, recorded = _examples()
    return Scope.from_json(recorded)


@pytest.mark.parametrize(
    ("context", "excluded"),
    [
        ("run=456789", []),
        ("run=450000", []),
        ("run=456999", []),
        ("run=457000", ["run"]),
        ("run=999999", []),  # the open-ended second range
        ("run=456789,release=CMSSW_15_0_3", []),
        ("release=Athena,25.0.12", []),  # asetup's spelling
        ("release=CMSSW_14_0_1", ["release"]),
        ("time=2024-06-01", []),
        ("time=2024-11-01T00:00:00Z", ["time"]),  # until is excluded
        ("time=2024-03-31T23:59:59Z", ["time"]),
        ("onnxruntime=1.18", []),
        ("onnxruntime=1.17.3", ["onnxruntime"]),
        ("geometry=ATLAS-R3S-2021-03-02-00,beam=hi", ["beam"]),
        ("stream=express_express,period=data23", ["period"]),
        ("campaign=anything", []),  # a key the scope does not restrict is not checked
    ],
)
def test_a_scope_excludes_exactly_the_keys_it_restricts_and_misses(
    scope: Scope, context: str, excluded: list[str]
) -> None:
    ctx = parse_context(context)
    assert scope.excluded_by(ctx) == excluded
    # covers: admitted and at least one key positively matched
    assert scope.covers(ctx) == (not excluded and context != "campaign=anything")


def test_an_empty_scope_excludes_nothing_and_covers_nothing() -> None:
    empty = Scope.from_json(None)
    assert empty.empty and empty.excluded_by(parse_context("run=1")) == []
    assert not empty.covers(parse_context("run=1"))


def test_describe_names_the_dimensions_a_person_asked_about(scope: Scope) -> None:
    assert scope.describe(["run"]) == "runs 450000–456999, 470000–…"
    assert "releases Athena 25.0.*, CMSSW_15_0_*" in scope.describe()


def test_a_context_from_a_mapping_is_the_same_as_from_text() -> None:
    a = parse_context({"run": 456789, "release": "CMSSW_15_0_3"})
    b = parse_context("run=456789, release=CMSSW_15_0_3")
    assert a == b and a.run == 456789 and str(a) == "run=456789,release=CMSSW_15_0_3"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("run=abc", "run='abc' is not a run number"),
        # digits to str.isdigit, not run numbers ('²' used to escape int() as a ValueError)
        ("run=\u00b2", "run='\u00b2' is not a run number"),
        ("run=\u0662\u0665\u0660", "is not a run number"),
        ("run456789", "'run456789' is not key=value"),
        ("time=2024-13-01", "time"),
        ("Run=1", "'Run' is not a context key"),
        ("run=1,run=2", "run is given twice"),
        ("release=", "has no usable value"),
    ],
)
def test_a_malformed_context_is_one_line_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_context(text, source="--context")
    assert message in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).startswith("--context: ") or "time" in message


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"runs": [{"first": 10, "last": 5}]}, "validity.runs[0]: last 5 is before first 10"),
        ({"times": [{"since": "2024-05-01", "until": "2024-04-01"}]}, "is not after since"),
        ({"runtimes": ["onnxruntime ~ 1.18"]}, "is not a requirement"),
        ({"scope": {"run": "1"}}, "not a free-form key"),
        ({"iovs": []}, "validity.iovs: unknown key"),
        ({}, "at least one of"),
    ],
)
def test_a_malformed_scope_is_one_format_error_naming_the_field(
    section: dict[str, object], message: str
) -> None:
    with pytest.raises(FormatError) as e:
        Scope.from_json(section)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_build_refuses_a_range_that_ends_before_it_starts_naming_the_line(
    tmp_path: Path,
) -> None:
    d = tmp_path / "src"
    (d / "m").mkdir(parents=True)
    (d / "m" / "x.bin").write_bytes(b"1")
    write_spec(
        d,
        """
        name: atlas/tauid
        version: 1.0.0
        files: [{path: m/x.bin}]
        validity:
          runs: [{first: 10, last: 5}]
        """,
    )
    with pytest.raises(BuildError, match=r"hepbundle.yaml:4: validity.runs\[0\]: last 5"):
        hepbundle.build(d, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_schema_refuses_a_misspelt_member_at_load_with_a_suggestion(tmp_path: Path) -> None:
    d = tmp_path / "src"
    write_spec(
        d,
        """
        name: atlas/tauid
        version: 1.0.0
        files: [{path: x}]
        validity:
          run: [{first: 1}]
        """,
    )
    with pytest.raises(SpecError, match=r"validity.run: unknown key \(did you mean 'runs'\?\)"):
        hepbundle.build(d, tmp_path / "out")


def test_resolving_with_a_run_outside_the_iov_is_refused_naming_scope_and_context(
    scoped_repo: Path,
) -> None:
    assert hepbundle.resolve("atlas/tauid@prod", context={"run": 250}).version == "1.1.0"
    with pytest.raises(hepbundle.ValidityError) as e:
        hepbundle.resolve("atlas/tauid@prod", context="run=456789,release=CMSSW_15_0_3")
    msg = str(e.value)
    assert "atlas/tauid@1.1.0 is not valid for run=456789" in msg
    assert "context run=456789,release=CMSSW_15_0_3" in msg and "runs 200–299" in msg
    assert "\n" not in msg
    with pytest.raises(hepbundle.ValidityError, match="releases CMSSW_15_0_"):
        hepbundle.resolve("atlas/tauid@1.2.0", context={"release": "CMSSW_14_0_1"})
    # no context: nothing to check
    assert hepbundle.resolve("atlas/tauid@1.0.0").version == "1.0.0"


def test_hepbundle_context_and_path_context_refuse_like_the_api(
    scoped_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from hepbundle.cli import main

    monkeypatch.setenv("HEPBUNDLE_CONTEXT", "run=150")
    with pytest.raises(hepbundle.ValidityError, match="atlas/tauid@1.2.0 is not valid for run=150"):
        hepbundle.resolve("atlas/tauid")
    assert hepbundle.resolve("atlas/tauid@1.0.0").version == "1.0.0"
    r = CliRunner().invoke(main, ["path", "atlas/tauid@prod"])
    assert r.exit_code == 2 and r.stdout == "" and "not valid for run=150" in r.stderr
    # --context wins over the environment
    r = CliRunner().invoke(
        main, ["path", "atlas/tauid@prod", "--context", "run=201,release=CMSSW_15_0_3"]
    )
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().endswith("1.1.0")
    r = CliRunner().invoke(main, ["path", "atlas/tauid@prod", "--context", "run=x"])
    assert r.exit_code == 2 and r.stdout == ""
    assert "run='x' is not a run number" in r.stderr and r.stderr.count("\n") == 1
    monkeypatch.setenv("HEPBUNDLE_CONTEXT", "run")
    with pytest.raises(UsageError, match="HEPBUNDLE_CONTEXT: 'run' is not key=value"):
        hepbundle.resolve("atlas/tauid@1.0.0")


@pytest.mark.parametrize(("run", "version"), [(150, "1.0.0"), (299, "1.1.0"), (300, "1.2.0")])
def test_at_valid_picks_the_newest_version_whose_iov_covers_the_run(
    scoped_repo: Path, run: int, version: str
) -> None:
    b = hepbundle.resolve("atlas/tauid@valid", context={"run": run})
    assert b.version == version and b.signature  # opened under the trust root, signature checked
    cat = json.loads((scoped_repo / "bundles/atlas/_catalog/tauid.json").read_text())
    assert cat["versions"][version]["validity"] == b.manifest.meta["validity"]  # as published


def test_at_valid_skips_yanked_and_refuses_a_run_no_version_covers(scoped_repo: Path) -> None:
    from hepbundle.repository import yank

    with pytest.raises(hepbundle.NotFoundError) as e:
        hepbundle.resolve("atlas/tauid@valid", context="run=50")
    assert "no version of atlas/tauid is valid for run=50" in str(e.value)
    assert "1.2.0 (runs 300–…)" in str(e.value) and "\n" not in str(e.value)
    yank("atlas/tauid@1.1.0", "bad calibration", scoped_repo, force=True)
    with pytest.raises(hepbundle.NotFoundError, match="no version of atlas/tauid is valid"):
        hepbundle.resolve("atlas/tauid@valid", context="run=250")
    # a key no version restricts is not "covered": @valid names what it chose on
    with pytest.raises(hepbundle.NotFoundError, match="valid for campaign=mc23"):
        hepbundle.resolve("atlas/tauid@valid", context="campaign=mc23")


def test_at_valid_without_a_context_is_one_usage_line(scoped_repo: Path) -> None:
    from click.testing import CliRunner

    from hepbundle.cli import main

    with pytest.raises(UsageError, match="@valid picks the version .* no context was given"):
        hepbundle.resolve("atlas/tauid@valid")
    r = CliRunner().invoke(main, ["path", "atlas/tauid@valid"])
    assert r.exit_code == 2 and r.stdout == "" and r.stderr.count("\n") == 1, r.output
    r = CliRunner().invoke(main, ["path", "atlas/tauid@valid", "--context", "run=456789"])
    assert r.exit_code == 0 and r.stdout.strip().endswith("1.2.0"), r.output


def test_at_valid_confirms_the_catalogue_choice_on_the_signed_manifest(
    scoped_repo: Path,
) -> None:
    """The catalogue's scope is not signed: a record edited to claim run 50 for 1.1.0 gets it
    chosen, but the bundle's verified manifest says runs 200-299, so it is refused."""
    f = scoped_repo / "bundles/atlas/_catalog/tauid.json"
    cat = json.loads(f.read_text())
    cat["versions"]["1.1.0"]["validity"] = {"runs": [{"first": 0, "last": 299}]}
    f.write_text(json.dumps(cat))
    with pytest.raises(hepbundle.ValidityError, match="chosen as @valid for run=50 by the cata"):
        hepbundle.resolve("atlas/tauid@valid", context="run=50")


def test_valid_is_not_an_alias_name(scoped_repo: Path) -> None:
    from hepbundle.repository import set_alias

    with pytest.raises(SpecError, match="'valid' is not a valid alias"):
        set_alias("atlas/tauid@1.0.0", "valid", scoped_repo)


def test_at_valid_under_a_signed_catalogue_checks_the_chosen_versions_statements(
    tmp_path: Path, ec_key: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `repo init` repository whose catalogue the release key signs: @valid's choice is
    checked against the signed publish and yank statements of that version, as a pin is."""
    from hepbundle.policy import TrustPolicy
    from hepbundle.repository import init_repository, publish
    from hepbundle.signing import KeySigner

    root = tmp_path / "repo"
    init_repository(root, TrustPolicy.from_flags(keys=[ec_key[1]]))  # type: ignore[arg-type]
    for _, b in signed_iov_versions(tmp_path, ec_key[0]):
        publish(b.root, root, statement_signer=KeySigner(ec_key[0]))
    monkeypatch.setenv("HEPBUNDLE_PATH", str(root))
    assert hepbundle.resolve("atlas/tauid@valid", context="run=250").version == "1.1.0"
    # a signed yank of 1.1.0, then the catalogue edited to un-yank it (rollback?): @valid
    # would choose it again, and the signed statements refuse it
    from hepbundle.repository import yank

    yank("atlas/tauid@1.1.0", "bad calibration", root, force=True, signer=KeySigner(ec_key[0]))
    with pytest.raises(hepbundle.NotFoundError, match="no version of atlas/tauid is valid"):
        hepbundle.resolve("atlas/tauid@valid", context="run=250")
    f = root / "bundles/atlas/_catalog/tauid.json"
    cat = json.loads(f.read_text())
    cat["versions"]["1.1.0"]["yanked"] = None
    f.write_text(json.dumps(cat))
    with pytest.raises(hepbundle.PolicyError, match="yanked state differs"):
        hepbundle.resolve("atlas/tauid@valid", context="run=250")


def _prod_moved_through(
    tmp_path: Path, key: Path, root: Path, order: tuple[str, ...], **publish_kw: object
) -> dict[str, hepbundle.Bundle]:
    """Publish the three IOV versions, moving prod to each version of ``order`` in turn (the
    way prod follows data taking); returns the bundles."""
    from hepbundle.repository import publish, set_alias

    bundles = dict(signed_iov_versions(tmp_path, key))
    for b in bundles.values():
        publish(b.root, root, **publish_kw)  # type: ignore[arg-type]
    signer = publish_kw.get("statement_signer")
    for v in order:
        set_alias(f"atlas/tauid@{v}", "prod", root, signer=signer)  # type: ignore[arg-type]
    return bundles


@pytest.fixture
def prod_repo(tmp_path: Path, ec_key: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """prod moved 1.0.0 → 1.2.0 (never 1.1.0), signed bundles, unsigned catalogue."""
    root = tmp_path / "repo"
    trust_key(tmp_path, ec_key[1], monkeypatch)
    _prod_moved_through(tmp_path, ec_key[0], root, ("1.0.0", "1.2.0"))
    monkeypatch.setenv("HEPBUNDLE_PATH", str(root))
    return root


def test_at_prod_with_a_context_picks_the_newest_covering_version_prod_has_pointed_at(
    prod_repo: Path,
) -> None:
    from click.testing import CliRunner

    from hepbundle.cli import main

    assert hepbundle.resolve("atlas/tauid@prod", context="run=350").version == "1.2.0"
    # data of an earlier period: the version that was prod for it (a conditions lookup)
    assert hepbundle.resolve("atlas/tauid@prod", context="run=150").version == "1.0.0"
    r = CliRunner().invoke(main, ["path", "atlas/tauid@prod", "--context", "run=150"])
    assert r.exit_code == 0 and r.stdout.strip().endswith("1.0.0"), r.output
    # 1.1.0 covers run 250 but prod never pointed at it: refused, naming prod's version's scope
    with pytest.raises(
        hepbundle.ValidityError, match=r"atlas/tauid@1.2.0 is not valid for run=250"
    ):
        hepbundle.resolve("atlas/tauid@prod", context="run=250")
    # a key the current version does not restrict: the current version, as before
    assert hepbundle.resolve("atlas/tauid@prod", context="campaign=mc23").version == "1.2.0"
    assert hepbundle.resolve("atlas/tauid@prod").version == "1.2.0"


def test_at_prod_with_a_context_skips_yanked_versions_of_its_history(prod_repo: Path) -> None:
    from hepbundle.repository import yank

    yank("atlas/tauid@1.0.0", "bad calibration", prod_repo)
    with pytest.raises(hepbundle.ValidityError, match="atlas/tauid@1.2.0 is not valid for run=150"):
        hepbundle.resolve("atlas/tauid@prod", context="run=150")


def test_at_prod_history_choice_is_confirmed_on_the_signed_manifest(prod_repo: Path) -> None:
    """An unsigned catalogue edited so that 1.0.0 claims run 50: prod's history choice lands on
    it, and its verified manifest (runs 100-199) refuses it."""
    f = prod_repo / "bundles/atlas/_catalog/tauid.json"
    cat = json.loads(f.read_text())
    cat["versions"]["1.0.0"]["validity"] = {"runs": [{"first": 0, "last": 199}]}
    f.write_text(json.dumps(cat))
    with pytest.raises(
        hepbundle.ValidityError, match="chosen as @prod for run=50 by the catalogue"
    ):
        hepbundle.resolve("atlas/tauid@prod", context="run=50")


@pytest.fixture
def signed_catalogue(
    tmp_path: Path, ec_key: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path]:
    """A `repo init` repository whose catalogue the release key signs: the three IOV versions
    and 1.3.0 (runs 300-…, overlapping 1.2.0), prod moved 1.0.0 → 1.3.0."""
    from hepbundle.policy import TrustPolicy
    from hepbundle.repository import init_repository, publish, set_alias
    from hepbundle.signing import KeySigner, sign

    root = tmp_path / "repo"
    init_repository(root, TrustPolicy.from_flags(keys=[ec_key[1]]))  # type: ignore[arg-type]
    signer = KeySigner(ec_key[0])
    _prod_moved_through(tmp_path, ec_key[0], root, ("1.0.0",), statement_signer=signer)
    d = tmp_path / "src-1.3.0"
    (d / "model").mkdir(parents=True)
    (d / "model" / "model.onnx").write_bytes(b"1.3.0" * 100)
    write_spec(
        d,
        "name: atlas/tauid\nversion: 1.3.0\nfiles: [{path: model/model.onnx, role: model}]\n"
        "validity:\n  runs: [{first: 300}]\n",
    )
    b = hepbundle.build(d, tmp_path / "dist" / "1.3.0")
    sign(b.root, signer)
    publish(b.root, root, statement_signer=signer)
    set_alias("atlas/tauid@1.3.0", "prod", root, signer=signer)
    monkeypatch.setenv("HEPBUNDLE_PATH", str(root))
    return root, root / "bundles/atlas/_catalog/tauid.json"


def _edit_scope(f: Path, version: str, validity: dict[str, object]) -> None:
    cat = json.loads(f.read_text())
    cat["versions"][version]["validity"] = validity
    f.write_text(json.dumps(cat))


def test_the_publish_statement_signs_the_recorded_scope(
    signed_catalogue: tuple[Path, Path],
) -> None:
    from hepbundle.repository.statements import _bodies

    _, f = signed_catalogue
    cat = read_name_catalog_file(f)
    published = {
        s.body["version"]: s.body for s in _bodies(cat, "t") if s.body["type"] == "publish"
    }
    assert published["1.3.0"]["validity"] == {"runs": [{"first": 300}]}
    assert published["1.0.0"]["validity"] == cat.versions["1.0.0"].validity
    assert hepbundle.resolve("atlas/tauid@valid", context="run=350").version == "1.3.0"
    assert hepbundle.resolve("atlas/tauid@prod", context="run=150").version == "1.0.0"


def test_a_hand_edited_catalogue_scope_cannot_hide_a_newer_covering_version(
    signed_catalogue: tuple[Path, Path],
) -> None:
    """1.3.0's catalogue scope narrowed by hand: @valid would fall back to 1.2.0 (which does
    cover run 350, so its own manifest agrees); the signed scopes choose 1.3.0: refused."""
    _, f = signed_catalogue
    _edit_scope(f, "1.3.0", {"runs": [{"first": 0, "last": 1}]})
    with pytest.raises(hepbundle.PolicyError) as e:
        hepbundle.resolve("atlas/tauid@valid", context="run=350")
    assert "scopes choose 1.2.0 as @valid for run=350, the signed statements choose 1.3.0" in str(
        e.value
    )
    # prod (1.3.0): its record now excludes run 350, so its history is searched and nothing
    # there covers; prod's own version it stays, the signed choice agrees, its manifest covers
    assert hepbundle.resolve("atlas/tauid@prod", context="run=350").version == "1.3.0"


def test_a_hand_edited_catalogue_scope_cannot_promote_a_version_that_does_not_cover(
    signed_catalogue: tuple[Path, Path],
) -> None:
    _, f = signed_catalogue
    _edit_scope(f, "1.1.0", {"runs": [{"first": 0}]})  # claims run 50 (signed: 200-299)
    with pytest.raises(hepbundle.PolicyError, match="signed statements choose no version"):
        hepbundle.resolve("atlas/tauid@valid", context="run=50")
    _edit_scope(f, "1.0.0", {"runs": [{"first": 0}]})  # prod's history: claims run 50 too
    with pytest.raises(hepbundle.PolicyError, match="as @prod for run=50"):
        hepbundle.resolve("atlas/tauid@prod", context="run=50")


def test_a_forged_alias_history_entry_is_not_a_signed_move(
    signed_catalogue: tuple[Path, Path],
) -> None:
    _, f = signed_catalogue
    cat = json.loads(f.read_text())
    cat["aliasHistory"].append(
        {"alias": "prod", "version": "1.1.0", "previous": "1.3.0", "time": "2026-01-01T00:00:00Z"}
    )
    f.write_text(json.dumps(cat))
    with pytest.raises(hepbundle.PolicyError, match="its last signed move is to 1.3.0"):
        hepbundle.resolve("atlas/tauid@prod", context="run=250")


def test_statements_from_before_signed_scopes_still_resolve(
    tmp_path: Path, ec_key: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publish statements without a `validity` member (what the previous hepbundle signed):
    they verify, and choices by scope rest on the catalogue's record for those versions."""
    from hepbundle.policy import TrustPolicy
    from hepbundle.repository import init_repository, statements
    from hepbundle.signing import KeySigner

    effects = statements._effects

    def old_effects(before: object, after: object) -> list[dict[str, object]]:
        out = effects(before, after)  # type: ignore[arg-type]
        return [{k: v for k, v in e.items() if k != "validity"} for e in out]

    monkeypatch.setattr(statements, "_effects", old_effects)
    root = tmp_path / "repo"
    init_repository(root, TrustPolicy.from_flags(keys=[ec_key[1]]))  # type: ignore[arg-type]
    _prod_moved_through(
        tmp_path, ec_key[0], root, ("1.0.0", "1.2.0"), statement_signer=KeySigner(ec_key[0])
    )
    monkeypatch.setattr(statements, "_effects", effects)
    monkeypatch.setenv("HEPBUNDLE_PATH", str(root))
    cat = read_name_catalog_file(root / "bundles/atlas/_catalog/tauid.json")
    assert not any("validity" in s.body for s in statements._bodies(cat, "t"))
    assert hepbundle.resolve("atlas/tauid@valid", context="run=250").version == "1.1.0"
    assert hepbundle.resolve("atlas/tauid@prod", context="run=150").version == "1.0.0"


def read_name_catalog_file(f: Path) -> NameCatalog:
    from hepbundle.repository.catalog import catalog_from_json

    return catalog_from_json(json.loads(f.read_text()), source=str(f))


@pytest.mark.parametrize(
    ("requirement", "version", "admitted"),
    [
        # documented: numeric parts compare as numbers, 1.18 equals 1.18.0
        (">= 1.18", "1.18", True), (">= 1.18", "1.18.0", True), ("== 1.18.0", "1.18", True),
        (">= 1.9", "1.10", True), ("< 2", "1.99", True), (">= 1.18, < 2", "1.20.1", True),
        ("< 2", "2.0.0", False), ("!= 1.18.1", "1.18.1", False),
        # pre-releases come before their release (a release candidate of 1.18 is not >= 1.18),
        # and a runtime's pre-release is judged by its place, not left out
        (">= 1.18", "1.18.0rc1", False), (">= 1.18", "1.18a", False),
        (">= 1.18", "1.19.0rc1", True), (">= 1.18", "1.19.0.dev3", True),
        ("< 2", "2.0.0rc1", False),  # not 1.x: the 2 series' candidate (PEP 440's rule)
        ("<= 1.18", "1.18.0rc1", True),
        # a local label (a build for CUDA 12.1) is the release it labels
        ("== 1.18", "1.18.0+cu121", True), (">= 1.18", "1.18.0+cu121", True),
        ("< 1.18", "1.18.0+cu121", False), ("!= 1.18.1", "1.18.1+local", False),
        ("== 1.18+cu121", "1.18.0+cu118", False),
        # post-releases follow their release; "> 1.18" means a later release (PEP 440)
        (">= 1.18", "1.18.post1", True), ("<= 1.18", "1.18.post1", False),
        ("== 1.18", "1.18.post1", False), ("> 1.18", "1.18.post1", False),
        ("> 1.18", "1.18.1", True), (">= 6.28", "6.30-04", True),  # -04: a post-release
        # versions PEP 440 cannot read keep the numeric-part order (numbers, then words)
        (">= 2.16", "2.16.1-gpu", True), ("< 2.16", "2.16.1-gpu", False),
        (">= 11.1", "11.2.p01", True), (">= 1.18-foo", "1.18-goo", True),
        (">= 1.18-foo", "1.19", True),
    ],
)  # fmt: skip
def test_runtime_requirements_order_pre_local_and_post_releases(
    requirement: str, version: str, admitted: bool
) -> None:
    from hepbundle.validity import Requirement

    assert Requirement.parse(f"onnxruntime {requirement}", "t").admits(version) is admitted
    scope = Scope.from_json({"runtimes": [f"onnxruntime {requirement}"]})
    assert scope.covers(parse_context(f"onnxruntime={version}")) is admitted
