"""The public API is exactly ``hepbundle.__all__`` plus the public modules (as httpx's
tests/test_exported_members.py does it): a name that appears in the ``hepbundle`` namespace without
being exported, or a module that is neither public nor declared internal, fails here. Checked in a
fresh interpreter, before and after every lazily exported name is used."""

from __future__ import annotations

import json
import subprocess
import sys

import hepbundle
from hepbundle import errors

#: documented in docs/reference/api.md: importable, with a stable interface
PUBLIC_MODULES = {
    "builder", "bundle", "config", "errors", "load", "loaders", "manifest", "policy",
    "provenance", "repository", "resolver", "signing", "attestation", "data", "fpga",
    "importers", "site", "spec", "reproduce", "cli", "extras", "remote", "template", "iosig",
    "validity",
}  # fmt: skip
#: implementation modules the public ones import; no stability promise (docs/reference/api.md)
INTERNAL_MODULES = {"cache", "digest", "filemodes", "integrity", "limits", "paths", "regular"}

_PROBE = """
import json, sys, types
import hepbundle
def leaked():
    return sorted(n for n, v in vars(hepbundle).items()
                  if not n.startswith("_") and n not in hepbundle.__all__)
def modules(names):
    return sorted(n for n in names if isinstance(getattr(hepbundle, n), types.ModuleType))
before = leaked()
for name in hepbundle.__all__:
    getattr(hepbundle, name)
after = leaked()
print(json.dumps({"before": before, "after": after, "modules": modules(after)}))
"""


def _probe() -> dict[str, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True
    ).stdout
    return dict(json.loads(out))


def test_all_is_sorted_and_complete() -> None:
    assert hepbundle.__all__ == sorted(hepbundle.__all__)
    assert set(dir(hepbundle)) >= set(hepbundle.__all__)


def test_nothing_but_modules_leaks_into_the_namespace() -> None:
    got = _probe()
    # every non-exported name is a submodule (set by the import system), never a helper
    assert got["after"] == got["modules"], set(got["after"]) - set(got["modules"])
    unknown = set(got["after"]) - PUBLIC_MODULES - INTERNAL_MODULES
    assert unknown == set(), f"undeclared modules in the hepbundle namespace: {sorted(unknown)}"


def test_the_check_fails_on_a_leak() -> None:
    """The probe is not vacuous: a helper put into the namespace is reported."""
    probe = _PROBE.replace("before = leaked()", "hepbundle.helper = len\nbefore = leaked()")
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    got = json.loads(out)
    assert "helper" in got["after"] and "helper" not in got["modules"]


def test_whole_error_tree_is_exported() -> None:
    tree = {
        name
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, errors.HepbundleError)
    }
    assert tree == set(errors.__all__)
    assert tree <= set(hepbundle.__all__)
    for name in tree:
        assert getattr(hepbundle, name) is getattr(errors, name)
