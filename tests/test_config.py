"""One configuration module: every environment variable is read in hepbundle.config (an AST scan
of the package proves no other module reads os.environ), documented in one table, and the two
cache variables are one setting with the old name still working."""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

import pytest

from hepbundle import config
from hepbundle.cache import default_cache
from hepbundle.fpga.emulation import cache_root

SRC = Path(config.__file__).parent
DOCS = Path(__file__).parents[1] / "docs"


def _environment_reads(tree: ast.AST) -> list[int]:
    """Lines reading the environment: os.environ.get/[]/in, os.getenv, click envvar=."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "getenv":
            lines.append(node.lineno)
        if isinstance(node, ast.keyword) and node.arg == "envvar":
            lines.append(node.value.lineno)
        if isinstance(node, ast.Attribute) and node.attr == "environ":
            parent_ok = False
            for outer in ast.walk(tree):
                # {**os.environ, ...} hands the environment to a subprocess: not a read
                if isinstance(outer, ast.Dict) and any(
                    k is None and v is node for k, v in zip(outer.keys, outer.values, strict=True)
                ):
                    parent_ok = True
                # os.environ.setdefault(...) writes for a third-party library: not a read
                if (
                    isinstance(outer, ast.Attribute)
                    and outer.value is node
                    and outer.attr == "setdefault"
                ):
                    parent_ok = True
            if not parent_ok:
                lines.append(node.lineno)
    return lines


def test_no_module_but_config_reads_the_environment() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path == Path(config.__file__):
            continue
        for line in _environment_reads(ast.parse(path.read_text(), str(path))):
            offenders.append(f"{path.relative_to(SRC)}:{line}")
    assert offenders == [], "read the environment through hepbundle.config: " + ", ".join(offenders)


def test_the_scan_finds_a_read() -> None:
    """The scan above is not vacuous: it flags each way of reading a variable."""
    for code in (
        "import os\nx = os.environ.get('A')",
        "import os\nx = os.environ['A']",
        "import os\nx = os.getenv('A')",
        "import click\no = click.option('--t', envvar='T')",
    ):
        assert _environment_reads(ast.parse(code)), code
    assert not _environment_reads(ast.parse("import os\nenv = {**os.environ, 'LC_ALL': 'C'}"))


def test_docs_table_is_the_variables_table() -> None:
    text = (DOCS / "configuration.md").read_text()
    documented = re.findall(r"^\| `(\w+)` \|", text, re.M)
    assert documented == [v.name for v in config.VARIABLES]


def test_undeclared_variable_cannot_be_read() -> None:
    with pytest.raises(KeyError):
        config._get("HEPBUNDLE_NOT_A_SETTING")


def test_cache_dir_new_name_wins_old_name_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("HEPBUNDLE_CACHE_DIR", raising=False)
    monkeypatch.setenv("HEPBUNDLE_CACHE", str(tmp_path / "old"))
    config._warned.clear()
    with caplog.at_level(logging.WARNING, logger="hepbundle"):
        assert cache_root() == tmp_path / "old"
        cache = default_cache()
        assert cache is not None and cache.directory.is_relative_to(tmp_path / "old")
    assert "HEPBUNDLE_CACHE is deprecated" in caplog.text
    monkeypatch.setenv("HEPBUNDLE_CACHE_DIR", str(tmp_path / "new"))
    assert cache_root() == tmp_path / "new"
    cache = default_cache()
    assert cache is not None and cache.directory.is_relative_to(tmp_path / "new")
    monkeypatch.setenv("HEPBUNDLE_NO_CACHE", "1")
    assert default_cache() is None


def test_settings_follow_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEPBUNDLE_PATH", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    monkeypatch.setenv("HEPBUNDLE_REPO", str(tmp_path / "r"))
    monkeypatch.setenv("HEPBUNDLE_HASH_THREADS", "nope")
    s = config.settings()
    assert s.search_path == (tmp_path / "a", tmp_path / "b")
    assert s.default_repo == tmp_path / "r" and s.hash_threads is None
    monkeypatch.delenv("HEPBUNDLE_REPO")
    assert config.settings().default_repo == Path("hepbundle-repo")
