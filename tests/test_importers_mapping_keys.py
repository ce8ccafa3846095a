"""Every key of the import mapping is documented in docs/migration.md, and its table of which
importer reads which key is what the importers do: a key marked "—" is an error naming it, a
key marked "yes" is read (setting it changes the plan of a realistic store)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from hepbundle.errors import SpecError
from hepbundle.importers import plan_import
from hepbundle.importers._mapping import ENTRY_ONLY_KEYS

from .import_fixtures import make_cms_data, make_groupdata

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "migration.md").read_text()
SCHEMA = json.loads((ROOT / "bundle-spec" / "v1" / "import-map.schema.json").read_text())
KINDS = ("dir", "atlas-groupdata", "cms-data", "mlflow")


def _table(header: str) -> dict[str, list[str]]:
    """The rows of the Markdown table starting with ``header``: first cell's `key` → cells."""
    lines = DOC[DOC.index(header) :].splitlines()
    rows: dict[str, list[str]] = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        key = re.fullmatch(r"`([a-z_.]+)`", cells[0])
        assert key, f"docs/migration.md: a row of {header!r} does not name one key: {line}"
        rows[key.group(1)] = cells[1:]
    return rows


READS = _table("| key | `dir` | `atlas-groupdata` | `cms-data` | `mlflow` |")
MEANS = _table("| key | meaning |")
FIELDS = _table("| field | in `defaults:` | in a `bundles:` entry | meaning |")


def test_every_key_of_the_schema_is_documented() -> None:
    top = set(SCHEMA["properties"])
    assert set(READS) == top | {"defaults.version"}
    assert set(MEANS) == set(READS)
    meta = set(SCHEMA["$defs"]["meta"]["properties"])
    entry = set(SCHEMA["properties"]["bundles"]["items"]["properties"])
    assert set(FIELDS) == meta | entry
    assert {k for k, (d, _e, _m) in FIELDS.items() if d == "—"} == set(ENTRY_ONLY_KEYS)


#: per importer: the realistic store's mapping without the key (``dir`` needs one bundle)
BASE = {
    "dir": "bundles:\n  - {name: atlas/tau, version: 1.0.0, include: ['tauRecTools/00-02-00/']}\n",
    "atlas-groupdata": "",
    "cms-data": "",
}
#: the key set to a value that, read, changes the plan of that store
SET = {
    "format": "format: 1\n",
    "namespace": "namespace: lhcb\n",
    "names": {
        "atlas-groupdata": "names: {tauRecTools: atlas/tau}\n",
        "cms-data": "names: {RecoTauTag-TrainingFiles: cms/deeptau}\n",
        "dir": "names: {tauRecTools: atlas/tau}\n",
        "mlflow": "names: {tau-id: mlflow/tau}\n",
    },
    "defaults": "defaults: {license: MIT}\n",
    "defaults.version": "defaults: {version: 3.0.0}\n",
    "roles": {
        "cms-data": "roles: {'*.root': model}\n",
        None: "roles: {'*.onnx': weights}\n",
    },
    "skip": {"cms-data": "skip: [graph.pb]\n", None: "skip: [README.txt]\n"},
    "include_dev": "include_dev: true\n",
    "bundles": {
        "dir": "bundles:\n  - {name: atlas/tau, version: 1.0.0, include: ['tauRecTools/00-02-00/']}\n"
        "  - {name: atlas/jet, version: 2.0.0, include: ['JetTagCalibration/']}\n",
        None: "bundles:\n  - {name: atlas/tauid-r22, version: 3.0.0, include: "
        "['tauRecTools/R22_preprod/']}\n",
    },
    "package": "package: RecoTauTag/Other\n",
    "layout": "layout: root\n",
}


def _value(key: str, kind: str) -> str:
    v: Any = SET[key]
    return v if isinstance(v, str) else v.get(kind, v.get(None))


def _plan(kind: str, source: Path, text: str, tmp_path: Path) -> dict[str, Any]:
    m = tmp_path / "map.yaml"  # one file: the plans compared differ by the key alone
    m.write_text(text)
    return plan_import(kind, source, m).to_json()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("key", sorted(READS))
def test_the_table_of_keys_is_what_each_importer_does(kind: str, key: str, tmp_path: Path) -> None:
    cell = READS[key][KINDS.index(kind)]
    assert cell.startswith(("yes", "—")), cell
    source = {
        "cms-data": lambda: make_cms_data(tmp_path / "cms"),
        "mlflow": lambda: tmp_path / "never-opened.db",
    }.get(kind, lambda: make_groupdata(tmp_path / "GroupData"))()
    text = _value(key, kind)
    if key != "bundles" or kind != "dir":
        text = BASE.get(kind, "") + text
    if cell.startswith("—"):
        top = key.split(".")[0] if key != "defaults.version" else key
        with pytest.raises(SpecError, match=rf"map\.yaml:\d+: {re.escape(top)}: the "
                           rf"{kind} importer does not use this key"):  # fmt: skip
            _plan(kind, source, text, tmp_path)
        return
    if kind == "mlflow":  # read: the key check passed, then the (absent) store is opened
        with pytest.raises(SpecError, match="does not exist"):
            _plan(kind, source, text, tmp_path)
        return
    with_key = _plan(kind, source, text, tmp_path)
    if key != "format":  # format: 1 is what a mapping without it means
        assert with_key != _plan(kind, source, BASE.get(kind, ""), tmp_path), (
            f"{key} is documented as read by {kind}, but setting it changes nothing"
        )


@pytest.mark.parametrize("key", ENTRY_ONLY_KEYS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_bundles_entry_field_in_defaults_is_an_error(kind: str, key: str, tmp_path: Path) -> None:
    """``defaults: {alias: prod}`` passed the schema (the fields are shared) and was ignored by
    every importer: no version got the alias, with exit 0."""
    value = {"name": "atlas/x", "include": "[a/]", "exclude": "[b/]", "strip": "a", "alias": "prod"}
    m = tmp_path / "map.yaml"
    m.write_text(f"defaults:\n  license: MIT\n  {key}: {value[key]}\n")
    with pytest.raises(SpecError, match=rf"map.yaml:3: defaults.{key}: a key of a bundles: entry"):
        plan_import(kind, make_groupdata(tmp_path / "GroupData"), m)
