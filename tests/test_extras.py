"""Optional dependencies in one module: the extras table agrees with pyproject.toml, no module
imports an optional framework except through hepbundle.extras, and plotting asks for the small
`plot` extra (matplotlib), not for TensorFlow."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

from hepbundle import extras
from hepbundle.errors import MissingExtraError

ROOT = Path(__file__).parents[1]
SRC = ROOT / "src" / "hepbundle"


def test_extras_table_matches_pyproject() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for extra, packages in extras.EXTRAS.items():
        names = [p.split(">")[0].split("=")[0].split("[")[0] for p in declared[extra]]
        assert names == [p.split("[")[0] for p in packages], extra
    assert set(extras.MODULE_EXTRA.values()) <= set(extras.EXTRAS)
    assert declared["plot"] == ["matplotlib>=3.7"]


def test_no_optional_framework_imported_directly() -> None:
    """An `import onnxruntime` (or a try/except ImportError) anywhere but extras.py fails."""
    optional = set(extras.MODULE_EXTRA)
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "extras.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            if any(n.split(".")[0] in optional for n in names):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
            if (
                isinstance(node, ast.ExceptHandler)
                and isinstance(node.type, ast.Name)
                and node.type.id in ("ImportError", "ModuleNotFoundError")
            ):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} (except ImportError)")
    assert offenders == []


def test_plot_needs_only_the_plot_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("matplotlib", "matplotlib.pyplot"):  # None makes `import name` raise
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingExtraError, match="'plot' extra"):
        extras.require("matplotlib.pyplot")


def test_optional_is_none_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("hls4ml", "hls4ml.report"):
        monkeypatch.setitem(sys.modules, name, None)
    assert extras.optional("hls4ml.report") is None
    assert extras.optional("json") is not None
