"""Lineage: parents pinned by manifest digest at build time, and the family tree afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.cli import main
from hepbundle.errors import SpecError
from hepbundle.provenance.lineage import family

from .conftest import write_spec


def child(
    tmp_path: Path, name: str, version: str, parents: str, out: Path | None = None
) -> hepbundle.Bundle:
    d = tmp_path / f"src-{name.replace('/', '-')}-{version}"
    (d / "model").mkdir(parents=True, exist_ok=True)
    (d / "model" / "m.onnx").write_bytes(f"{name}@{version}".encode())
    write_spec(d, f"name: {name}\nversion: {version}\nfiles: [{{path: model/m.onnx}}]\n{parents}")
    return hepbundle.build(d, out or tmp_path / "dist" / name / version)


@pytest.fixture
def family_tree(model_dir: Path, tmp_path: Path) -> dict[str, hepbundle.Bundle]:
    """atlas/tauid@1.2.0 → fine-tuned 1.3.0 (pinned by path) → distilled tauid-small (pinned by
    digest), and a second fine-tune from 1.2.0; all under one dist/ tree."""
    dist = tmp_path / "dist"
    root = hepbundle.build(model_dir, dist / "atlas/tauid/1.2.0")
    ft = child(
        tmp_path,
        "atlas/tauid",
        "1.3.0",
        f"parents:\n  - fine_tuned_from: atlas/tauid@1.2.0\n    path: {root.root}\n",
    )
    small = child(
        tmp_path,
        "atlas/tauid-small",
        "0.1.0",
        f"parents:\n  - distilled_from: atlas/tauid@1.3.0\n    manifest_digest: sha256:{ft.manifest_digest}\n",
    )
    alt = child(
        tmp_path,
        "atlas/tauid-alt",
        "1.0.0",
        f"parents:\n  - retrained_from: atlas/tauid@1.2.0\n    manifest_digest: {root.manifest_digest}\n",
    )
    return {"root": root, "ft": ft, "small": small, "alt": alt}


def test_parents_recorded_by_digest(family_tree: dict[str, hepbundle.Bundle]) -> None:
    ft, small = family_tree["ft"], family_tree["small"]
    assert ft.manifest.meta["parents"] == [
        {
            "relation": "fine_tuned_from",
            "ref": "atlas/tauid@1.2.0",
            "manifestDigest": family_tree["root"].manifest_digest,
            "pinnedBy": ["path"],
        }
    ]
    assert small.manifest.meta["parents"][0]["manifestDigest"] == ft.manifest_digest


def test_family_tree_both_directions(family_tree: dict[str, hepbundle.Bundle]) -> None:
    t = family(str(family_tree["ft"].root))
    assert [(a["relation"], a["ref"], a["found"]) for a in t.ancestors] == [
        ("fine_tuned_from", "atlas/tauid@1.2.0", True)
    ]
    assert [(d["relation"], d["ref"]) for d in t.descendants] == [
        ("distilled_from", "atlas/tauid-small@0.1.0")
    ]
    top = family(str(family_tree["root"].root))
    assert top.ancestors == []
    assert [d["ref"] for d in top.descendants] == ["atlas/tauid-alt@1.0.0", "atlas/tauid@1.3.0"]
    assert top.descendants[1]["children"][0]["ref"] == "atlas/tauid-small@0.1.0"
    leaf = family(str(family_tree["small"].root))
    assert leaf.ancestors[0]["parents"][0]["ref"] == "atlas/tauid@1.2.0"  # grandparent


def test_lineage_cli_prints_readable_tree(family_tree: dict[str, hepbundle.Bundle]) -> None:
    ft = family_tree["ft"]
    r = CliRunner().invoke(main, ["lineage", str(ft.root)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith(f"atlas/tauid@1.3.0  sha256:{ft.manifest_digest[:12]}")
    assert lines[1] == "ancestors"
    assert lines[2].startswith("  └─ fine tuned from atlas/tauid@1.2.0  sha256:")
    assert lines[3] == "descendants"
    assert lines[4].startswith("  └─ atlas/tauid-small@0.1.0, distilled from it  sha256:")
    r = CliRunner().invoke(main, ["lineage", str(ft.root), "--json"])
    assert json.loads(r.output)["manifestDigest"] == ft.manifest_digest


def test_unknown_parent_is_shown_not_found(tmp_path: Path) -> None:
    orphan = child(
        tmp_path,
        "cms/btag",
        "2.0.0",
        "parents:\n  - derived_from: cms/btag@1.0.0\n    manifest_digest: '" + "ab" * 32 + "'\n",
    )
    r = CliRunner().invoke(main, ["lineage", str(orphan.root)])
    assert r.exit_code == 0, r.output
    assert "└─ derived from cms/btag@1.0.0  sha256:abababababab  (not found here)" in r.output
    assert "descendants: none found" in r.output


@pytest.mark.parametrize(
    ("parents", "message"),
    [
        (
            "parents:\n  - fine_tuned_from: atlas/tauid@1.2.0\n",
            r":5: parents\[0\]: cannot pin atlas/tauid@1.2.0 by digest .*HEPBUNDLE_REPO",
        ),
        (
            "parents:\n  - {fine_tuned_from: atlas/x@1.0.0, distilled_from: atlas/y@1.0.0, manifest_digest: '"
            + "0" * 64
            + "'}\n",
            r":5: parents\[0\]: name exactly one relation",
        ),
        (
            "parents:\n  - fine_tuned_from: atlas/tauid\n",
            r":5: parents\[0\].fine_tuned_from: 'atlas/tauid' is invalid: namespace/name@version",
        ),
        (
            "parents:\n  - finetuned_from: atlas/tauid@1.2.0\n",
            r"parents\[0\].finetuned_from: unknown key \(did you mean 'fine_tuned_from'",
        ),
        (
            "parents:\n  - fine_tuned_from: atlas/other@1.2.0\n    path: {root}\n",
            r":6: parents\[0\].path: .* holds atlas/tauid@1.2.0, not atlas/other@1.2.0",
        ),
        (
            "parents:\n  - fine_tuned_from: atlas/tauid@1.2.0\n    path: {root}\n    manifest_digest: '"
            + "0" * 64
            + "'\n",
            r"parents\[0\]: atlas/tauid@1.2.0 digests disagree: spec 000000000000…, path",
        ),
    ],
)
def test_parent_errors(built: hepbundle.Bundle, tmp_path: Path, parents: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        child(tmp_path, "atlas/kid", "1.0.0", parents.replace("{root}", str(built.root)))


def test_parent_pinned_through_repository(
    built: hepbundle.Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HEPBUNDLE_REPO: the parent's digest comes from the catalogue, and lineage REF accepts
    ns/name@version and finds descendants published there."""
    from hepbundle.repository import publish

    repo = tmp_path / "repo"
    publish(built.root, repo, allow_unsigned=True, alias="prod")
    monkeypatch.setenv("HEPBUNDLE_REPO", str(repo))
    kid = child(tmp_path, "atlas/kid", "1.0.0", "parents:\n  - fine_tuned_from: atlas/tauid@prod\n")
    assert kid.manifest.meta["parents"][0]["pinnedBy"] == ["repository"]
    assert kid.manifest.meta["parents"][0]["manifestDigest"] == built.manifest_digest
    assert kid.manifest.meta["parents"][0]["ref"] == "atlas/tauid@1.2.0"  # the alias, resolved
    assert kid.manifest.meta["parents"][0]["requested"] == "atlas/tauid@prod"
    publish(kid.root, repo, allow_unsigned=True)
    r = CliRunner().invoke(main, ["lineage", "atlas/tauid@1.2.0", "--repo", str(repo)])
    assert r.exit_code == 0, r.output
    assert "└─ atlas/kid@1.0.0, fine tuned from it" in r.output
    r = CliRunner().invoke(main, ["show", str(kid.root)])
    assert (
        f"parent    fine tuned from atlas/tauid@1.2.0 (sha256:{built.manifest_digest[:12]})"
        in r.output
    )
    r = CliRunner().invoke(main, ["lineage", "atlas/kid@1.0.0", "--json"])  # HEPBUNDLE_REPO
    assert json.loads(r.output)["ancestors"][0]["location"] == str(
        repo / "bundles/atlas/tauid/1.2.0"
    )
    r = CliRunner().invoke(main, ["provenance", "atlas/kid@1.0.0", "--format", "json"])
    assert json.loads(r.output)["parents"][0]["manifestDigest"] == built.manifest_digest
    # a parent the repository does not know is fine when the spec pins it itself
    other = child(
        tmp_path,
        "atlas/kid2",
        "1.0.0",
        "parents:\n  - derived_from: cms/btag@1.0.0\n    manifest_digest: '" + "cd" * 32 + "'\n",
    )
    assert other.manifest.meta["parents"][0]["pinnedBy"] == ["spec"]
    with pytest.raises(
        SpecError,
        match=r":5: parents\[0\].fine_tuned_from: atlas/tauid@9.9.9: atlas/tauid has no version '9.9.9'",
    ):
        child(tmp_path, "atlas/kid", "1.0.1", "parents:\n  - fine_tuned_from: atlas/tauid@9.9.9\n")
