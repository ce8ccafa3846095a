"""Fuzzing the readers of untrusted input: YAML (spec, trust policy, import map), JSON, manifest,
catalogue and repository.json, with random and adversarial documents from hypothesis. Every
input must either parse or raise one of hepbundle's own errors — never another exception, a
hang or a crash. The run is bounded (example count and per-example deadline), so CI runs it in
a fixed time; ``HEPBUNDLE_FUZZ_EXAMPLES`` raises the count for a longer local campaign.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hepbundle._json import parse_json
from hepbundle._yaml import parse_yaml
from hepbundle.errors import HepbundleError
from hepbundle.manifest import Manifest
from hepbundle.repository.catalog import catalog_from_json

pytestmark = pytest.mark.slow  # ~15 s of CPU at the default count: CI runs it

_EXAMPLES = int(os.environ.get("HEPBUNDLE_FUZZ_EXAMPLES", "150"))
_SETTINGS = settings(
    max_examples=_EXAMPLES,
    deadline=2000,
    derandomize=True,  # the same inputs on every CI run; raise the count to explore further
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- adversarial fragments the random text is built from -----------------------------------

_YAML_BITS = [
    "&a [x, x]",
    "*a",
    "<<: *a",
    "[" * 200,
    "{" * 100,
    "]" * 50,
    "\x00",
    "\t",
    "!!python/object:os.system",
    "!!binary AAAA",
    "!!timestamp 99999-99-99",
    "!!float .nan",
    "? complex key",
    "---",
    "...",
    "%YAML 1.1",
    "'unterminated",
    '"\\x',
    "name: atlas/x",
    "version: 1.0.0",
    "rules:",
    "  - namespace: '*'",
    "    signers: [{key: k.pem}]",
    "files: [{path: a, role: model}]",
    "bundles:",
    "\ufeff",
    "\u2028",
    "9" * 400,
    "0x" + "f" * 100,
]
_JSON_BITS = [
    "[" * 300,
    "]" * 300,
    "{" * 150,
    '{"a":',
    '"\\ud800"',
    "1e999999",
    "-" + "9" * 5000,
    "NaN",
    "Infinity",
    "null",
    '"mediaType": "application/vnd.hepbundle.manifest.v1+json"',
    '"files": [',
    '{"path": "../x", "size": -1, "sha256": "zz", "role": "model"}',
    '"serial": "abc"',
    "\x00",
    "\xff",
]


def _fragments(bits: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.sampled_from(bits), st.text(max_size=40)), max_size=30).map(
        lambda parts: "\n".join(parts)
    )


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=30),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
        ),
        max_leaves=40,
    )


def _manifest_like() -> st.SearchStrategy[dict[str, Any]]:
    """Documents close to a valid manifest, each member possibly replaced by a random value."""
    entry = st.fixed_dictionaries(
        {
            "path": st.one_of(st.sampled_from(["a", "../a", "/a", "a//b", "a\x00"]), st.text()),
            "size": st.one_of(st.integers(), st.text(), st.floats()),
            "sha256": st.one_of(st.just("0" * 64), st.text()),
            "role": st.one_of(st.sampled_from(["model", "weights", "nope"]), _json_values()),
        },
        optional={"legacyPath": st.one_of(st.text(), _json_values())},
    )
    return st.fixed_dictionaries(
        {
            "mediaType": st.one_of(
                st.just("application/vnd.hepbundle.manifest.v1+json"), st.text()
            ),
            "name": st.one_of(st.just("atlas/x"), _json_values()),
            "version": st.one_of(st.just("1.0.0"), _json_values()),
            "created": st.one_of(st.just("2024-01-01T00:00:00Z"), _json_values()),
            "hashing": st.one_of(
                st.just({"algorithm": "sha256", "ignore": [], "symlinks": "refuse"}),
                _json_values(),
            ),
            "files": st.one_of(st.lists(entry, max_size=5), _json_values()),
        },
        optional={"fpga": _json_values(), "provenance": _json_values()},
    )


def _only_our_errors(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except HepbundleError as e:
        assert len(str(e)) <= 2600  # one readable line, however hostile the input
        assert "\n" not in e.message or len(e.message) < 2600


# -- the properties -------------------------------------------------------------------------


@_SETTINGS
@given(text=_fragments(_YAML_BITS))
def test_yaml_reader(text: str) -> None:
    _only_our_errors(parse_yaml, text, "fuzz.yaml")
    _only_our_errors(lambda t: parse_yaml(t, "fuzz.yaml", aliases=False), text)


@_SETTINGS
@given(text=_fragments(_YAML_BITS))
def test_spec_policy_and_map_files(text: str) -> None:
    from hepbundle.importers._mapping import load_map
    from hepbundle.policy import TrustPolicy
    from hepbundle.spec import load_spec

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "hepbundle.yaml"
        p.write_bytes(text.encode("utf-8", "surrogatepass"))
        for reader in (load_spec, TrustPolicy.load, load_map):
            _only_our_errors(reader, p)


@_SETTINGS
@given(text=_fragments(_JSON_BITS))
def test_json_reader(text: str) -> None:
    _only_our_errors(parse_json, text.encode("utf-8", "surrogatepass"), "fuzz.json")


@_SETTINGS
@given(doc=_manifest_like())
def test_manifest_reader(doc: dict[str, Any]) -> None:
    _only_our_errors(Manifest.from_bytes, json.dumps(doc).encode())


@_SETTINGS
@given(text=_fragments(_JSON_BITS))
def test_manifest_reader_raw(text: str) -> None:
    _only_our_errors(Manifest.from_bytes, text.encode("utf-8", "surrogatepass"))


@_SETTINGS
@given(value=_json_values())
def test_catalogue_reader(value: Any) -> None:
    doc = {
        "mediaType": "application/vnd.hepbundle.catalog.v1+json",
        "name": "atlas/x",
        "versions": value,
        "aliases": value,
    }
    _only_our_errors(lambda d: catalog_from_json(d, source="fuzz.json"), doc)
    _only_our_errors(lambda d: catalog_from_json(d, source="fuzz.json"), value)


@_SETTINGS
@given(value=_json_values())
def test_repository_json_reader(value: Any) -> None:
    from hepbundle.repository.layout import REPOSITORY_FILE, read_repository

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / REPOSITORY_FILE).parent.mkdir(parents=True)
        (root / REPOSITORY_FILE).write_text(json.dumps(value))
        _only_our_errors(read_repository, root)
        doc = {"mediaType": "application/vnd.hepbundle.repository.v1+json", "serial": value}
        (root / REPOSITORY_FILE).write_text(json.dumps(doc))
        _only_our_errors(read_repository, root)


def test_the_fuzzer_finds_errors_it_should() -> None:
    """The properties can fail: a reader raising a foreign exception is caught."""

    def broken(_: Path) -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        _only_our_errors(broken, Path("x"))
