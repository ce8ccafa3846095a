"""The layer order of docs/design.md is enforced by the import-linter contract in pyproject.toml:
it holds on the source tree, and it breaks on a copy of the tree with one import running up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed")


def _lint(src: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT), "--config", str(cwd / "pyproject.toml"), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_contract_holds() -> None:
    res = _lint(ROOT / "src", ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 kept, 0 broken" in res.stdout


@pytest.mark.parametrize(
    ("module", "line"),
    [
        ("bundle.py", "from .builder import build  # up: the opened bundle never builds\n"),
        (
            "signing.py",
            "def f():\n    from .resolver import resolve  # up, even inside a function\n",
        ),
        (
            "manifest.py",
            "import typing\nif typing.TYPE_CHECKING:\n    from .bundle import Bundle\n",
        ),
    ],
)
def test_contract_breaks_on_an_upward_import(tmp_path: Path, module: str, line: str) -> None:
    shutil.copytree(ROOT / "src" / "hepbundle", tmp_path / "src" / "hepbundle")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "hepbundle" / module
    target.write_text(target.read_text() + "\n" + line)
    res = _lint(tmp_path / "src", tmp_path)
    assert res.returncode != 0
    assert "BROKEN" in res.stdout or "broken" in res.stdout


def test_contract_names_every_top_level_module() -> None:
    """`exhaustive`: a new module must be placed in the order (the contract fails otherwise)."""
    import tomllib

    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ][0]
    assert contract["exhaustive"] is True
    pkg = ROOT / "src" / "hepbundle"
    modules = {p.stem for p in pkg.glob("*.py") if p.stem != "__init__"}
    modules |= {p.name for p in pkg.iterdir() if (p / "__init__.py").is_file()}
    assert modules == set(contract["layers"])
