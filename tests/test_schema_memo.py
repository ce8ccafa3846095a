"""A document that passed a bundle-spec schema is remembered in the node cache, so a later
process checking the same document does not import jsonschema (spec._memo_path)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import pytest

import hepbundle
from hepbundle import spec
from hepbundle.errors import SpecError

from .conftest import cli_imports


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The schemas jsonschema was asked to check a document against (memo misses)."""
    seen: list[str] = []
    real = spec._validator

    def validator(name: str) -> Any:
        seen.append(name)
        return real(name)

    monkeypatch.setattr(spec, "_validator", validator)
    return seen


_POLICY = {"version": 1, "rules": [{"namespace": "*", "signers": [{"key": "/k.pub.pem"}]}]}


def test_a_valid_document_is_checked_once_per_node(calls: list[str]) -> None:
    spec.validate(_POLICY, "policy.schema.json")
    spec.validate(dict(_POLICY), "policy.schema.json")
    assert calls == ["policy.schema.json"]
    other = {**_POLICY, "rules": [{"namespace": "cms", "signers": [{"key": "/k.pub.pem"}]}]}
    spec.validate(other, "policy.schema.json")  # another document: checked
    assert calls == ["policy.schema.json"] * 2


def test_an_invalid_document_is_refused_every_time(calls: list[str]) -> None:
    bad = {**_POLICY, "rules": [{"namespace": "*", "signers": [{"kye": "/k.pub.pem"}]}]}
    for _ in range(2):
        with pytest.raises(SpecError):
            spec.validate(bad, "policy.schema.json")
    assert len(calls) == 2


@pytest.mark.parametrize(
    "data",
    [
        {**_POLICY, "rules": ({"namespace": "*", "signers": [{"key": "/k"}]},)},  # a tuple
        {**_POLICY, 1: "x"},  # an int key (json.dumps would make it "1")
        {**_POLICY, "when": __import__("datetime").date(2026, 1, 1)},  # a YAML date
    ],
    ids=["tuple", "int-key", "date"],
)
def test_a_document_that_is_not_plain_json_is_never_remembered(
    calls: list[str], data: dict[Any, Any]
) -> None:
    """Values that would encode like others the schema treats differently are checked each
    time (whatever jsonschema says about them)."""
    for _ in range(2):
        with contextlib.suppress(SpecError):
            spec.validate(data, "policy.schema.json")
    assert len(calls) == 2


def test_another_schema_version_checks_again(
    calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec.validate(_POLICY, "policy.schema.json")
    monkeypatch.setattr(spec, "_schemas_digest", lambda: b"\x01" * 32)  # the schemas changed
    spec.validate(_POLICY, "policy.schema.json")
    assert len(calls) == 2


def test_no_cache_and_foreign_memos(calls: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """HEPBUNDLE_NO_CACHE remembers nothing; a memo file others can write is not believed."""
    monkeypatch.setenv("HEPBUNDLE_NO_CACHE", "1")
    spec.validate(_POLICY, "policy.schema.json")
    spec.validate(_POLICY, "policy.schema.json")
    assert len(calls) == 2
    monkeypatch.delenv("HEPBUNDLE_NO_CACHE")
    spec.validate(_POLICY, "policy.schema.json")
    memo = spec._memo_path(_POLICY, "policy.schema.json")
    assert memo is not None and memo.is_file()
    os.chmod(memo, 0o666)
    spec.validate(_POLICY, "policy.schema.json")
    assert len(calls) == 4


def test_sign_after_build_imports_no_jsonschema_nor_yaml(
    built: hepbundle.Bundle, ec_key: tuple[Path, Path]
) -> None:
    """`hepbundle sign` of a bundle built on this node reads its manifest, which the build
    checked and remembered: jsonschema (~45 ms of start-up with referencing and attrs) and
    PyYAML stay unimported; with the node cache off the manifest is checked again."""
    args = ["sign", str(built.root), "--key", str(ec_key[0])]
    modules = ("jsonschema", "referencing", "yaml")
    assert cli_imports(args, modules) == ""
    no_cache = cli_imports([*args, "--force"], modules, {"HEPBUNDLE_NO_CACHE": "1"})
    assert no_cache == "jsonschema,referencing"
